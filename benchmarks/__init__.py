"""Benchmarks: ``python -m benchmarks.overhead`` (``make bench``)."""
