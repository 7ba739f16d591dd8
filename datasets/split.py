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
