"""promtool unit tests for the alert and recording rules, generated from config values."""
