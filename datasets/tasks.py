"""Imbalanced tasks built on a source: `coarse` / `fine` (binary, majority first) and `lt`.

Ratio r is minority:majority, 0 < r <= 1 (the paper's grid: 1, 0.1, 0.05, 0.01, 0.005, 0.001).
The training subset is drawn with the data seed, so seeds differ in which minority images they
see; the test set is balanced over the task's classes and comes from the source's test split,
so it never overlaps training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .base import DataError, SourceData
from .split import SPLIT_SEED

PAPER_RATIOS = (1.0, 0.1, 0.05, 0.01, 0.005, 0.001)
TASKS = ("fine", "coarse", "lt")


@dataclass
class TaskData:
    """Everything a training run needs, ready to move to a device in one copy per tensor."""

    train_x: torch.Tensor  # uint8 (N, C, H, W), contiguous
    train_y: torch.Tensor  # int64, 0..C-1 in task order (majority first)
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    train_counts: list[int]
    test_counts: list[int]
    mean: list[float]  # per channel, of the training subset, in [0, 1]
    std: list[float]
    notes: list[str] = field(default_factory=list)  # e.g. a clamped minority count
    val_x: torch.Tensor | None = None  # balanced validation set held out of the training pool
    val_y: torch.Tensor | None = None
    # each test / validation image's index in the source's test / training split: two runs of a task are
    # paired image by image through it
    test_index: np.ndarray | None = None
    val_index: np.ndarray | None = None

    def counts_record(self) -> dict:
        val = [int((self.val_y == k).sum()) for k in range(len(self.classes))] if self.val_y is not None else []
        return {
            "classes": self.classes,
            "train": self.train_counts,
            "test": self.test_counts,
            "val": val,
            "notes": self.notes,
        }


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def minority_count(ratio: float, n_major: int) -> tuple[int, str | None]:
    """max(1, round(r * n_major)), and a note when the clamp to 1 applied."""
    exact = ratio * n_major
    n = max(1, round_half_up(exact))
    note = None
    if exact < 1:
        note = f"minority count clamped to 1 (r * n_major = {ratio:g} * {n_major} = {exact:.3g})"
    return n, note


def check_ratio(ratio: float) -> float:
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise DataError(f"ratio {ratio!r} is not a number; use a value in (0, 1], e.g. 0.01") from None
    if not (0.0 < r <= 1.0) or math.isnan(r):
        raise DataError(f"ratio {ratio!r} is outside (0, 1]; it is minority:majority, e.g. 0.01 for 1:0.01")
    return r


def resolve_classes(src_name: str, data: SourceData, pairs: dict, task: str, classes: list[str] | None) -> list[str]:
    """The task's class names in order (majority first for binary tasks)."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    if task == "lt":
        chosen = classes or list(data.classes)
        if len(chosen) < 2:
            raise DataError(f"task 'lt' needs at least two classes, --classes names {len(chosen)}")
    elif classes:
        chosen = list(classes)
        if len(chosen) != 2:
            raise DataError(f"--classes for task {task!r} takes two names MAJ,MIN, got {len(chosen)}")
    elif task in pairs:
        chosen = list(pairs[task])
    else:
        raise DataError(
            f"dataset {src_name!r} has no built-in {task!r} pair; pass --classes MAJ,MIN "
            f"(classes: {', '.join(data.classes)})"
        )
    unknown = [c for c in chosen if c not in data.classes]
    if unknown:
        raise DataError(f"unknown class {unknown[0]!r} in dataset {src_name!r}; valid: {', '.join(data.classes)}")
    if len(set(chosen)) != len(chosen):
        raise DataError(f"--classes names a class twice: {','.join(chosen)}")
    return chosen


def lt_counts(n_max: int, ratio: float, n_classes: int) -> list[int]:
    """The CIFAR-LT exponential profile exactly as Cao et al. (2019) build it: n_i = int(n_max *
    r^(i/(C-1))), truncated, at least 1 (CIFAR-10-LT at r = 0.01: 5000, 2997, ..., 50, 12406 in all)."""
    if n_classes == 1:
        return [n_max]
    return [max(1, int(n_max * ratio ** (i / (n_classes - 1.0)))) for i in range(n_classes)]


def lt_subset(pools: list[np.ndarray], counts: list[int], seed: int) -> list[np.ndarray]:
    """The long-tailed subset as Cao et al.'s IMBALANCECIFAR draws it: numpy's legacy generator
    seeded with the data seed shuffles each class's indices in class order and keeps the first n_i.
    With the source's full class list in label order and data seed 0, this is the literature's
    CIFAR-10-LT / CIFAR-100-LT training set, image for image."""
    legacy = np.random.RandomState(seed)
    chosen = []
    for pool, n in zip(pools, counts):
        idx = np.array(pool, copy=True)
        legacy.shuffle(idx)
        chosen.append(np.sort(idx[:n]))
    return chosen


def build_task(
    data: SourceData,
    src_name: str,
    pairs: dict,
    task: str,
    ratio: float,
    seed: int,
    n_major: int | None = None,
    classes: list[str] | None = None,
    val_per_class: int = 0,
) -> TaskData:
    """`val_per_class` images of each class are held out of the training pool as a balanced
    validation set, the same for every seed (drawn with the fixed split seed), before the run's
    imbalanced subset is drawn from what is left; it never touches the test set."""
    ratio = check_ratio(ratio)
    names = resolve_classes(src_name, data, pairs, task, classes)
    src_ids = [data.classes.index(c) for c in names]
    train_y_np = data.train_y.numpy()
    test_y_np = data.test_y.numpy()
    pools = [np.flatnonzero(train_y_np == k) for k in src_ids]
    for name, pool in zip(names, pools):
        if len(pool) == 0:
            raise DataError(f"class {name!r} has no training images in dataset {src_name!r}")
    val_idx = np.zeros(0, dtype=np.int64)
    if val_per_class:
        if val_per_class < 0 or any(len(p) <= val_per_class for p in pools):
            raise DataError(
                f"--val-per-class {val_per_class} leaves no training images for some class "
                f"(smallest pool: {min(len(p) for p in pools)})"
            )
        split_rng = np.random.default_rng(SPLIT_SEED)
        held = [np.sort(split_rng.choice(p, size=val_per_class, replace=False)) for p in pools]
        pools = [np.setdiff1d(p, h) for p, h in zip(pools, held)]
        val_idx = np.concatenate(held)

    head = len(pools[0]) if task != "lt" else min(len(p) for p in pools)
    if n_major is not None:
        if n_major < 1:
            raise DataError(f"--n-major must be a positive count, got {n_major}")
        head = min(head, n_major)
    notes: list[str] = []
    if task == "lt":
        want = lt_counts(head, ratio, len(names))
    else:
        n_min, note = minority_count(ratio, head)
        want = [head, n_min]
        if note:
            notes.append(note)
    for name, pool, n in zip(names, pools, want):
        if n > len(pool):
            raise DataError(
                f"class {name!r} has {len(pool)} training images but the task needs {n}; "
                "lower the ratio or cap the majority with --n-major"
            )

    if task == "lt":
        chosen = lt_subset(pools, want, seed)
    else:
        rng = np.random.default_rng(seed)
        chosen = [np.sort(rng.choice(pool, size=n, replace=False)) for pool, n in zip(pools, want)]
    train_idx = np.concatenate(chosen)
    remap = {src: i for i, src in enumerate(src_ids)}
    train_y = torch.tensor([remap[int(v)] for v in train_y_np[train_idx]], dtype=torch.int64)
    train_x = data.train_x[torch.from_numpy(train_idx)].contiguous()

    # Balanced test set: the first n_test images (source order) of each class.
    test_pools = [np.flatnonzero(test_y_np == k) for k in src_ids]
    n_test = min(len(p) for p in test_pools)
    if n_test == 0:
        raise DataError(f"a class of task {task!r} has no test images in dataset {src_name!r}")
    test_idx = np.concatenate([p[:n_test] for p in test_pools])
    test_y = torch.tensor([remap[int(v)] for v in test_y_np[test_idx]], dtype=torch.int64)
    test_x = data.test_x[torch.from_numpy(test_idx)].contiguous()

    val_y = torch.tensor([remap[int(v)] for v in train_y_np[val_idx]], dtype=torch.int64)
    val_x = data.train_x[torch.from_numpy(val_idx)].contiguous()

    xf = train_x.to(torch.float32).div_(255)
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return TaskData(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        classes=names,
        train_counts=[int(n) for n in want],
        test_counts=[n_test] * len(names),
        mean=[round(float(m), 6) for m in mean],
        std=[round(float(s), 6) for s in std],
        notes=notes,
        val_x=val_x,
        val_y=val_y,
        test_index=test_idx,
        val_index=val_idx,
    )
