"""SMOTE (Chawla et al., JAIR 2002) on pixels, with imbalanced-learn.

Once before training, every class is brought up to the largest class's count with synthetic images,
each a random point on the segment between a real image and one of its k nearest same-class
neighbours (in pixel space); epochs then visit the enlarged set in a random order. With fewer than
k + 1 images in a class, k is lowered to (images - 1); a class of one image cannot be interpolated
and the run fails with that reason (use `os` there).

Compared with: it is imbalanced-learn's SMOTE on flattened pixels; tests/test_baselines.py checks that
every synthetic image lies between two images of its class and that k adapts.
"""

from __future__ import annotations

import numpy as np
import torch
from imblearn.over_sampling import SMOTE

from .base import MethodError, Sampler, hp, register


@register
class Smote(Sampler):
    name = "smote"
    summary = "SMOTE on pixels (imbalanced-learn): synthetic minority images interpolated between neighbours"
    paper = "Chawla et al., SMOTE: synthetic minority over-sampling technique, JAIR 2002"
    search_space = {"k_neighbors": (3, 5, 10)}
    k_neighbors: int = hp(5, ge=1)

    def prepare(self, x, y, rng):
        counts = np.bincount(y.numpy())
        smallest = int(counts[counts > 0].min())
        if smallest < 2:
            raise MethodError(
                f"smote needs at least 2 images of every class to interpolate between; class {int(counts.argmin())} "
                "has 1 (use os at this ratio)"
            )
        k = min(self.k_neighbors, smallest - 1)
        flat = x.reshape(len(x), -1).numpy().astype(np.float32)
        sm = SMOTE(k_neighbors=k, random_state=int(rng.integers(2**31 - 1)))
        xr, yr = sm.fit_resample(flat, y.numpy())
        xr = np.clip(np.rint(xr), 0, 255).astype(np.uint8).reshape(-1, *x.shape[1:])
        return torch.from_numpy(xr), torch.from_numpy(yr.astype(np.int64))

    def epoch_indices(self, labels, epoch, rng):
        return rng.permutation(len(labels))

    def batch_prior(self, counts):
        return [1.0 / len(counts)] * len(counts)
