"""Decoupled classifier learning (Kang et al., ICLR 2020): cRT, LWS and tau-normalisation.

All three keep the representation learned in the first stage (instance-balanced by default, or any
composed sampler and criterion: `os+crt`) and re-balance only the classifier:
- `crt`: the last `share` of the step budget freezes the backbone's weights, re-initialises the linear
  classifier and trains it with class-balanced sampling and CE;
- `lws`: the same second stage, but the classifier is kept and only a per-class scale f_c of its
  logits is learned (initialised to 1);
- `taunorm`: no second stage; at evaluation each class's weight vector is divided by its norm^tau
  and, as in the authors' code, the bias is dropped. tau is chosen on the validation split (the grid
  below), as Kang et al. choose it; a grid without one is refused unless `taunorm.choose=fixed`.

Compared with the authors' code (facebookresearch/classifier-balancing, its cRT and LWS configs):
- BatchNorm in the classifier stage: the authors keep `model.train()` and freeze the backbone through
  `requires_grad` only, so BatchNorm normalises with batch statistics and re-estimates its running
  statistics on the class-balanced batches. That is the default here (`bn=train`); `bn=eval` keeps
  the statistics of the first stage (what the suite did before: such records show `crt.bn=eval`).
- Budget: cRT re-trains for 10 of 100 epochs (share 0.1); the LWS configs train the scales for half
  that (share 0.05). Records made before with LWS at share 0.1 show `lws.share=0.1`.
- Each stage gets its own warm-up and cosine schedule (the authors' classifier stage: cosine from the
  peak rate without warm-up); named, not changed.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .base import MethodError, Posthoc, Stage, Stages, hp, register
from .ce import CE
from .class_aware import ClassBalancedSampling


def reset_classifier(model: nn.Module) -> None:
    for m in model.fc.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


class ScaledClassifier(nn.Module):
    """The trained classifier's logits times a learned per-class scale."""

    def __init__(self, fc: nn.Module, num_classes: int):
        super().__init__()
        self.inner = fc
        self.scale = nn.Parameter(torch.ones(num_classes, device=next(fc.parameters()).device))

    def forward(self, x):
        return self.inner(x) * self.scale


def _wrap_with_scale(model: nn.Module) -> None:
    model.fc = ScaledClassifier(model.fc, model.num_classes)


def balanced_classifier_stages(comp, share: float, name: str, trainable, on_start, bn: str) -> list[Stage]:
    """Kang et al.'s decoupling: the composition trains the representation for 1 - share of the budget,
    then the backbone's weights are frozen and `trainable` is learned with class-balanced sampling and
    CE; BatchNorm trains (`bn=train`, the authors') or keeps its statistics (`bn=eval`)."""
    return [
        comp.main_stage("representation", 1 - share),
        Stage(
            name,
            share,
            sampler=ClassBalancedSampling(),
            criterion=CE(),
            trainable=trainable,
            on_start=on_start,
            train_bn=bn == "train",
        ),
    ]


@register
class CRT(Stages):
    name = "crt"
    summary = "classifier re-training: freeze the backbone, re-initialise and retrain the classifier class-balanced"
    paper = "Kang et al., Decoupling representation and classifier for long-tailed recognition, ICLR 2020"
    rebalances_classifier = True
    legacy = {"bn": "eval"}  # records made before the field existed kept the first stage's statistics
    search_space = {"share": (0.05, 0.1, 0.2)}
    share: float = hp(0.1, gt=0, lt=1)
    bn: Literal["train", "eval"] = "train"

    def stages(self, comp):
        return balanced_classifier_stages(
            comp, self.share, "classifier", lambda m: list(m.fc.parameters()), reset_classifier, self.bn
        )


@register
class LWS(Stages):
    name = "lws"
    summary = "learnable weight scaling: freeze everything, learn a per-class logit scale class-balanced"
    paper = "Kang et al., Decoupling representation and classifier for long-tailed recognition, ICLR 2020"
    changes_classifier = True
    rebalances_classifier = True
    legacy = {"bn": "eval"}
    search_space = {"share": (0.025, 0.05, 0.1)}
    share: float = hp(0.05, gt=0, lt=1)
    bn: Literal["train", "eval"] = "train"

    def stages(self, comp):
        return balanced_classifier_stages(comp, self.share, "scales", lambda m: [m.fc.scale], _wrap_with_scale, self.bn)


TAU_GRID = tuple(round(0.1 * i, 1) for i in range(0, 21))  # 0, 0.1, ..., 2


@register
class TauNorm(Posthoc):
    name = "taunorm"
    summary = "tau-normalised classifier at evaluation: w_c / ||w_c||^tau, no bias (tau chosen on validation)"
    paper = "Kang et al., Decoupling representation and classifier for long-tailed recognition, ICLR 2020"
    changes_classifier = True
    corrects_prior = True  # renormalising the class weights undoes the prior's imprint on their norms
    choice = "tau"
    legacy = {"choose": "fixed"}  # records made before the field existed used tau = 1 without a split
    tau: float = hp(1.0, ge=0)
    choose: Literal["validation", "fixed"] = "validation"

    def grid(self):
        return TAU_GRID if self.choose == "validation" else (self.tau,)

    def needs_validation(self) -> bool:
        return self.choose == "validation"

    def apply(self, logits, features, model, value):
        fc = model.fc
        if not isinstance(fc, nn.Linear):
            raise MethodError(f"taunorm needs a linear classifier, this model's is {type(fc).__name__}")
        w = fc.weight.detach().float().to(features.device)
        return features.float() @ (w / w.norm(dim=1, keepdim=True) ** value).T
