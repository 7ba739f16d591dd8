"""Data sources: the registry, the container they return, and the user-facing error.

A source turns files on disk (a package's data, a standard download, a user's photos) into
uint8 image tensors with a fixed train/test split. Imbalanced tasks are built on top of it by
`datasets.tasks`; a source knows nothing about ratios or seeds of runs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch


class DataError(ValueError):
    """Bad data or a bad data request; its message is one line that names the fix."""


@dataclass
class SourceData:
    """A source's full pool: uint8 images (N, C, H, W), int64 labels, a fixed train/test split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    origin: str  # where the files were read from, for the run record
    digest: str | None = None  # content digest where the content varies by machine (a user's folder)
    notes: list[str] = field(default_factory=list)  # what loading skipped or warns about, for the record
    # each image's file (relative to the data root) where the images are a user's files: `bench advise`
    # names them in its per-image predictions
    train_files: list[str] | None = None
    test_files: list[str] | None = None

    def __post_init__(self):
        for name in ("train_x", "test_x"):
            t = getattr(self, name)
            if t.dtype != torch.uint8 or t.ndim != 4:
                raise DataError(f"{name} must be uint8 (N, C, H, W), got {t.dtype} {tuple(t.shape)}")


@dataclass(frozen=True)
class Availability:
    available: bool
    where: str  # a path, or how it would be obtained


class Source:
    """A registered data source. Subclasses set `name`, `licence`, `pairs` and implement `load`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    licence: ClassVar[str] = ""
    # Built-in binary tasks, majority class first; the majority is shared, as in the paper.
    pairs: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, data_root: str | None = None, image_size: int | None = None):
        self.data_root = data_root
        self.image_size = image_size

    def load(self) -> SourceData:
        raise NotImplementedError

    def availability(self) -> Availability:
        raise NotImplementedError


SOURCES: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    if cls.name in SOURCES:
        raise ValueError(f"data source {cls.name!r} registered twice")
    SOURCES[cls.name] = cls
    return cls


def get_source(name: str, **kwargs) -> Source:
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(SOURCES))}")
    return SOURCES[name](**kwargs)


def cache_dir() -> Path:
    """Where decoded data is cached: $BENCH_CACHE, else $XDG_CACHE_HOME/fsc-bench, else ~/.cache."""
    root = os.environ.get("BENCH_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(xdg) / "fsc-bench"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
