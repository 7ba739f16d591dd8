"""The benchmark harness: CLI, run specs and keys, models, the training loop, records, reports."""

__version__ = "0.1.0"
# Part of every run key: bump when a change makes old records incomparable.
SUITE_VERSION = "1"
