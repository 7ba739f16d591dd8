"""Class-aware samplers: class-balanced (`cbs`), square-root (`sqrt`) and progressively balanced (`pb`).

Each draws an epoch of N indices (N = training images) with replacement: first a class with
probability p_c, then an image of that class uniformly. With p_c proportional to n_c^q, q = 1 is
instance-balanced sampling, q = 1/2 square-root sampling and q = 0 class-balanced sampling (Kang et
al., ICLR 2020, Eq. 1). Progressively balanced sampling moves from instance- to class-balanced as
training goes on: p_c(t) = (1 - t) p_c^IB + t p_c^CB, with t the fraction of the step budget done
when the epoch is drawn (Kang et al. use t = epoch / total epochs).

Compared with the authors' code (classifier-balancing's ClassAwareSampler): theirs visits the classes
in a reshuffled round-robin and takes 4 images per visit, cycling through each class's images without
replacement; here every draw is independent (with replacement). Both give each class the same expected
share; theirs has less batch-to-batch variance in the class mix. With a step budget the epoch length
(theirs: largest class x C) does not change the number of updates.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Sampler, TrainState, register


def class_probabilities(counts, q: float) -> np.ndarray:
    w = np.asarray(counts, dtype=np.float64) ** q
    return w / w.sum()


def class_aware_indices(labels: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """len(labels) indices: a class drawn with probability p, then one of its images uniformly."""
    classes = rng.choice(len(p), size=len(labels), p=p)
    out = np.empty(len(labels), dtype=np.int64)
    for c in range(len(p)):
        slots = np.flatnonzero(classes == c)
        pool = np.flatnonzero(labels == c)
        if len(slots):
            out[slots] = pool[rng.integers(0, len(pool), size=len(slots))]
    return out


class ClassAware(Sampler):
    q: ClassVar[float] = 0.0  # the exponent of n_c; each registered subclass fixes it

    def epoch_indices(self, labels, epoch, rng):
        counts = np.bincount(labels, minlength=int(labels.max()) + 1)
        return class_aware_indices(labels, class_probabilities(counts, self.q), rng)

    def batch_prior(self, counts):
        return class_probabilities(counts, self.q).tolist()


@register
class ClassBalancedSampling(ClassAware):
    name = "cbs"
    summary = "class-balanced sampling: a class uniformly, then an image of it"
    paper = "Kang et al., Decoupling representation and classifier, ICLR 2020 (q = 0)"
    q = 0.0


@register
class SquareRootSampling(ClassAware):
    name = "sqrt"
    summary = "square-root sampling: class probability proportional to sqrt(n_c)"
    paper = "Kang et al., ICLR 2020 (q = 1/2); Mahajan et al., ECCV 2018"
    q = 0.5


@register
class ProgressivelyBalanced(Sampler):
    name = "pb"
    summary = "progressively balanced sampling: instance-balanced at the start, class-balanced at the end"
    paper = "Kang et al., Decoupling representation and classifier, ICLR 2020"

    def on_step(self, state: TrainState) -> None:
        self._t = state.progress

    def epoch_indices(self, labels, epoch, rng):
        counts = np.bincount(labels, minlength=int(labels.max()) + 1)
        t = getattr(self, "_t", 0.0)
        p = (1 - t) * class_probabilities(counts, 1.0) + t * class_probabilities(counts, 0.0)
        return class_aware_indices(labels, p, rng)

    def batch_prior(self, counts):
        # Averaged over the run (p moves linearly from the training prior to uniform).
        return (0.5 * class_probabilities(counts, 1.0) + 0.5 * class_probabilities(counts, 0.0)).tolist()
