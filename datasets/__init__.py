"""Data sources and imbalanced task builders. Importing this registers every built-in source."""

from . import animals, cifar, fashion, folder, synthetic  # noqa: F401  (registration)
from .base import SOURCES, Availability, DataError, Source, SourceData, get_source, register_source
from .tasks import PAPER_RATIOS, TASKS, TaskData, build_task, check_ratio, lt_counts, minority_count

__all__ = [
    "SOURCES",
    "Availability",
    "DataError",
    "Source",
    "SourceData",
    "get_source",
    "register_source",
    "PAPER_RATIOS",
    "TASKS",
    "TaskData",
    "build_task",
    "check_ratio",
    "lt_counts",
    "minority_count",
    "load_task",
]


def load_task(
    name: str, task: str, ratio: float, seed: int, *, data_root=None, image_size=None, n_major=None, classes=None
) -> TaskData:
    """One call from names to a TaskData (loads the source each time; the harness caches sources)."""
    src = get_source(name, data_root=data_root, image_size=image_size)
    return build_task(src.load(), name, src.pairs, task, ratio, seed, n_major=n_major, classes=classes)
