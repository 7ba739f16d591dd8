"""The benchmark harness: CLI, run specs and keys, models, the training loop, records, reports."""

__version__ = "0.1.0"
# Part of every run key: bump when a change makes old records incomparable.
# "2": the method hooks of round two (criteria give per-class loss matrices, stages, post-hoc steps),
# the class-balanced loss's default reduction and the numerics in every key.
SUITE_VERSION = "2"
