"""Deferred re-weighting (Cao et al., NeurIPS 2019): class-balanced weights from a point in training on.

Before `start` (a fraction of the run's step budget; 0.8 = the authors' epoch 160 of 200) every class
weighs 1; from then on the weights are Cui et al.'s effective-number weights with beta = 0.9999,
normalised to sum to the number of classes. The reduction follows the authors' code (PyTorch's
cross_entropy(weight=...): divide by the batch's summed weights). Composes with any criterion:
`drw` alone is CE-DRW, `ldam+drw` is LDAM-DRW.

The learning rate: the authors' step schedule cuts the rate 100x at the switch (epoch 160 of 200) and
100x more at epoch 180, so the DRW phase trains at 0.01x of the peak rate for its first half and
0.0001x for its second. `lr_schedule=authors` (the default) puts the same two levels, relative to the
run's peak rate, over the DRW phase in place of the run's cosine schedule; `lr_schedule=run` keeps the
cosine schedule (0.10x of the peak at 0.8 of the run, 0.036x on average after it): what the suite did
before the field existed (such records show `drw.lr_schedule=run`). Before the switch the run's schedule
applies: under the default cosine that is not the authors' constant peak rate, and `ce` / `ldam` keep the
cosine throughout, so `ldam` vs `ldam+drw` then differs in schedule as well as weights; `--schedule step`
gives every method of the run the authors' rates for the whole run (scripts/compare_authors.py compares
both with their `adjust_learning_rate`, results/reference_checks.md).

Compared with: the authors' (kaidic/LDAM-DRW) `per_cls_weights` and step schedule: the same weights, the
same reduction, the learning-rate levels above (tests/test_baselines.py, tests/test_faithful.py).
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
    legacy = {"lr_schedule": "run"}
    search_space = {"start": (0.5, 0.67, 0.8)}
    start: float = hp(0.8, ge=0, le=1)
    beta: float = hp(0.9999, ge=0, lt=1)
    reduction: Literal["weight_sum", "batch"] = "weight_sum"
    lr_schedule: Literal["authors", "run"] = "authors"

    def setup(self, ctx: TrainContext) -> None:
        self.weight = class_balanced_weights(ctx.class_counts, self.beta).to(ctx.device)

    def weights(self, state: TrainState):
        return (self.weight if state.progress >= self.start else None), self.reduction

    def lr_factor(self, state: TrainState, factor: float) -> float:
        if self.lr_schedule == "run" or state.progress < self.start:
            return factor
        second_cut = self.start + (1 - self.start) / 2  # the authors' epoch 180 between 160 and 200
        return AUTHORS_LR_LEVELS[0] if state.progress < second_cut else AUTHORS_LR_LEVELS[1]


AUTHORS_LR_LEVELS = (0.01, 0.0001)  # of the peak rate, in the DRW phase's first and second half
