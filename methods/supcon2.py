"""Two-stage supervised contrastive learning, as Khosla et al. (NeurIPS 2020) train it.

Stage one ("contrastive", 1 - share of the budget) trains the encoder with pytorch-metric-learning's
SupConLoss alone (no classification loss) on a projection head, with two augmented views of every
image in each batch, so every anchor has at least its other view as a positive. Stage two
("classifier", share) freezes the encoder, re-initialises the linear classifier and trains it with
the composition's criterion and sampler (CE over every index by default; `os+supcon2` oversamples
in both stages). The joint single-view variant is `supcon`.
"""

from __future__ import annotations

from .base import Stage, Stages, TrainContext, hp, register
from .decoupling import reset_classifier
from .supcon import SupCon


@register
class SupCon2(Stages):
    name = "supcon2"
    summary = "two-stage SupCon: contrastive pre-training on two views, then a classifier on frozen features"
    paper = "Khosla et al., Supervised contrastive learning, NeurIPS 2020"
    temperature: float = hp(0.1, gt=0)
    proj_dim: int = hp(128, ge=1)
    share: float = hp(0.1, gt=0, lt=1)

    def __post_init__(self):
        self.term = SupCon(lam=1.0, temperature=self.temperature, proj_dim=self.proj_dim)

    def setup(self, ctx: TrainContext) -> None:
        self.term.setup(ctx)

    def stages(self, comp):
        return [
            Stage(
                "contrastive",
                1 - self.share,
                sampler=comp.sampler,
                criterion=None,
                transform=comp.transform,
                auxiliaries=[self.term, *comp.auxiliaries],
                views=2,
            ),
            Stage(
                "classifier",
                self.share,
                sampler=comp.sampler,
                criterion=comp.criterion,
                reweighting=comp.reweighting,
                trainable=lambda m: list(m.fc.parameters()),
                on_start=reset_classifier,
            ),
        ]
