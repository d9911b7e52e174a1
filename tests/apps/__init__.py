"""Small apps and an in-process driver for the exporter tests."""
