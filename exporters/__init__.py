"""Prometheus metrics, structured logs and a demo API for Genonaut's FastAPI services."""
