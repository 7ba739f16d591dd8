"""Random oversampling (`os`) with imbalanced-learn's RandomOverSampler on sample indices.

Compared with: it is imbalanced-learn's sampler (its `sample_indices_`), redrawn every epoch with the
run's generator; tests/test_methods.py checks that an epoch is class-balanced and redrawn.
"""

from __future__ import annotations

import numpy as np
from imblearn.over_sampling import RandomOverSampler

from .base import Sampler, register


@register
class Oversample(Sampler):
    """Each epoch, every class is resampled with replacement up to the largest class's count
    (imbalanced-learn's 'not majority' strategy), drawn anew from the run's epoch generator;
    the epoch then visits the re-balanced index set in a random order."""

    name = "os"
    summary = "random oversampling of minority classes to the majority count, redrawn each epoch"
    paper = "random oversampling (imbalanced-learn RandomOverSampler)"

    def epoch_indices(self, labels: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
        ros = RandomOverSampler(random_state=int(rng.integers(2**31 - 1)))
        idx, _ = ros.fit_resample(np.arange(len(labels)).reshape(-1, 1), labels)
        return rng.permutation(idx.ravel())

    def batch_prior(self, counts):
        return [1.0 / len(counts)] * len(counts)
