"""A fixed stratified train/test split for sources that ship without one."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

# The split never changes with a run's seed: every run of every method sees the same test set.
SPLIT_SEED = 20250101


def stratified_split(labels: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), stratified by label, sorted, deterministic."""
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=SPLIT_SEED, shuffle=True)
    return np.sort(train), np.sort(test)


def grouped_split(labels: np.ndarray, groups: list[str], classes: list[str], by: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with every group on one side, about a fifth of the photos in test, stratified by
    class as far as the groups allow (scikit-learn's StratifiedGroupKFold, the first of 5 folds as test,
    fixed seed). A class whose photos all fall on one side is an error naming the class and its groups."""
    from sklearn.model_selection import StratifiedGroupKFold

    from .base import DataError

    g = np.asarray(groups)
    n_groups = len(set(groups))
    if n_groups < 2:
        raise DataError(f"--split-by {by}: every photo has the same {by}; two or more are needed to split")
    folds = StratifiedGroupKFold(n_splits=min(5, n_groups), shuffle=True, random_state=SPLIT_SEED)
    train, test = next(folds.split(np.zeros(len(labels)), labels, g))
    for c, name in enumerate(classes):
        on = {side for side, idx in (("train", train), ("test", test)) if (labels[idx] == c).any()}
        if on != {"train", "test"}:
            mine = sorted(set(g[labels == c]))
            raise DataError(
                f"--split-by {by}: class {name!r} is in {len(mine)} {by}(s) ({', '.join(mine[:3])}"
                f"{', ...' if len(mine) > 3 else ''}), all on the {'train' if 'train' in on else 'test'} side; "
                f"it needs photos from at least two {by}s to appear in both train and test"
            )
    return np.sort(train), np.sort(test)
