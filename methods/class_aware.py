"""Class-aware samplers: class-balanced (`cbs`), square-root (`sqrt`) and progressively balanced (`pb`).

Each draws an epoch of N indices (N = training images) with replacement: first a class with
probability p_c, then an image of that class uniformly. With p_c proportional to n_c^q, q = 1 is
instance-balanced sampling, q = 1/2 square-root sampling and q = 0 class-balanced sampling (Kang et
al., ICLR 2020, Eq. 1). Progressively balanced sampling moves from instance- to class-balanced as
training goes on: p_c(t) = (1 - t) p_c^IB + t p_c^CB (Kang et al., Eq. 2, where the paper writes t as the
epoch over the total; the authors' code takes t = np.linspace(0, 1, E)[epoch], from 0 at the first epoch to
1 at the last). Here, as in their code, t runs from 0 for the epoch drawn at the first step to 1 for the last
epoch of the budget:
t = step / (total steps - steps per epoch), capped at 1. Revision 0 used t = step / total steps, whose
last epoch peaked near 0.95 with the suite's ~20 epochs (such records show `(rev 0)`).

Compared with the authors' code (classifier-balancing's ClassAwareSampler): theirs visits the classes
in a reshuffled round-robin and takes 4 images per visit, cycling through each class's images without
replacement; here every draw is independent (with replacement). Both give each class the same expected
share; theirs has less batch-to-batch variance in the class mix. With a step budget the epoch length
(theirs: largest class x C) does not change the number of updates.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Sampler, TrainContext, TrainState, register


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
    revision = 1

    def setup(self, ctx: TrainContext) -> None:
        self._batch = max(1, ctx.batch_size)

    def on_step(self, state: TrainState) -> None:
        self._step, self._total = state.step, state.total_steps

    def progress(self, epoch_len: int) -> float:
        """t of the epoch drawn now: 0 at the first step, 1 for the last whole epoch of the budget."""
        step, total = getattr(self, "_step", 0), getattr(self, "_total", 1)
        epoch_steps = max(1, epoch_len // getattr(self, "_batch", 1))
        return min(1.0, step / max(1, total - epoch_steps))

    def epoch_indices(self, labels, epoch, rng):
        counts = np.bincount(labels, minlength=int(labels.max()) + 1)
        t = self.progress(len(labels))
        p = (1 - t) * class_probabilities(counts, 1.0) + t * class_probabilities(counts, 0.0)
        return class_aware_indices(labels, p, rng)

    def batch_prior(self, counts):
        # Averaged over the run (p moves linearly from the training prior to uniform).
        return (0.5 * class_probabilities(counts, 1.0) + 0.5 * class_probabilities(counts, 0.0)).tolist()
