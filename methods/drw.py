"""Deferred re-weighting (Cao et al., NeurIPS 2019): class-balanced weights from a point in training on.

Before `start` (a fraction of the run's step budget; 0.8 = the authors' epoch 160 of 200) every class
weighs 1; from then on the weights are Cui et al.'s effective-number weights with beta = 0.9999,
normalised to sum to the number of classes. The reduction follows the authors' code (PyTorch's
cross_entropy(weight=...): divide by the batch's summed weights). Composes with any criterion:
`drw` alone is CE-DRW, `ldam+drw` is LDAM-DRW.
"""

from __future__ import annotations

from typing import Literal

from .base import Reweighting, TrainContext, TrainState, hp, register
from .cb import class_balanced_weights


@register
class DRW(Reweighting):
    name = "drw"
    summary = "deferred re-weighting: class-balanced weights switched on at a fraction of the budget"
    paper = "Cao et al., NeurIPS 2019 (LDAM-DRW); weights of Cui et al., CVPR 2019"
    start: float = hp(0.8, ge=0, le=1)
    beta: float = hp(0.9999, ge=0, lt=1)
    reduction: Literal["weight_sum", "batch"] = "weight_sum"

    def setup(self, ctx: TrainContext) -> None:
        self.weight = class_balanced_weights(ctx.class_counts, self.beta).to(ctx.device)

    def weights(self, state: TrainState):
        return (self.weight if state.progress >= self.start else None), self.reduction
