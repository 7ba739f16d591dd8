"""Balanced Contrastive Learning (Zhu et al., CVPR 2022): the nearest contrastive prior art to FSC.

One stage, three views of every image: the first (the harness's crop and flip) feeds a cosine
classifier (s = 30) trained with the logit-adjusted loss (Balanced Softmax, tau = 1); the other two
(strong SimCLR-style views, `strong_augment` with torchvision's crop scale 0.08-1) feed the balanced
supervised contrastive loss, weighted by `beta`:
  features: the 2B projected views (an MLP head with BatchNorm on the pooled layer4 features, over all
    three views' rows as in the authors' model) and C class prototypes (a second such head applied to
    the classifier's class weight vectors: "class-complement", every class in every batch), all
    L2-normalised;
  for anchor a (one of the 2B views) and every other feature k: s_ak = f_a . f_k / temperature;
  class-averaging: the denominator sums exp(s_ak) / |class of k|, where |class| counts that class's
    features in the batch (its views and its prototype), less one for the anchor's own class;
  loss_a = -mean over positives p (same class, not a) of [s_ap - log sum_k exp(s_ak) / |class of k|],
  averaged over the 2B anchors; total loss = LA-CE(first view) + beta * that.

Compared with the authors' code (FlamieZhu/Balanced-Contrastive-Learning: loss/contrastive.py BalSCL,
loss/logitadjust.py, models/resnext.py BCLModel, main.py), run side by side on the same inputs
(scripts/compare_authors.py, results/reference_checks.md): the contrastive loss and its gradient agree
to float rounding. Defaults are their main.py's (beta 0.35, temperature 0.07, alpha 1, LA tau 1, cosine
classifier). Named differences: the projection is 128-d (theirs 1024 for ResNet-50's 2048-d features;
the suite's ResNet-18 has far fewer channels); the classification view gets the harness's crop and
flip, not their RandAugment, so every method of a board trains on the same plain augmentation; the
strong views leave out the jitter's hue shift (as `supcon2` does).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .base import Auxiliary, MethodError, Stage, Stages, TrainContext, full_precision, hp, register
from .la import LogitAdjusted
from .ldam import CosineClassifier
from .supcon2 import strong_augment

CONTRASTIVE_VIEWS = 2


def balanced_contrastive_loss(
    z: torch.Tensor, prototypes: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The BCL loss (module docstring). z: (2B, d) normalised views, the B first views then the B second
    ones; prototypes: (C, d) normalised; labels: (B,) int."""
    n, num_classes = z.shape[0], prototypes.shape[0]
    classes = torch.arange(num_classes, device=z.device)
    t = torch.cat([labels.repeat(n // len(labels)), classes])
    f = torch.cat([z, prototypes])
    s = z @ f.T / temperature
    s = s - s.max(dim=1, keepdim=True).values.detach()  # for stability; cancels in the loss
    others = torch.ones_like(s, dtype=torch.bool)
    others[torch.arange(n), torch.arange(n)] = False
    positive = (t[:n, None] == t[None, :]) & others
    count = torch.bincount(t, minlength=num_classes).to(s.dtype)
    per_feature = count[t][None, :] - positive.to(s.dtype)  # the anchor leaves its own class's count
    denominator = (torch.exp(s) * others / per_feature).sum(dim=1, keepdim=True)
    log_prob = s - torch.log(denominator)
    return -((log_prob * positive).sum(dim=1) / positive.sum(dim=1)).mean()


def projection_head(d: int, out: int) -> nn.Module:
    """The authors' MLP head: Linear, BatchNorm, ReLU, Linear."""
    return nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(inplace=True), nn.Linear(d, out))


class BalancedContrast(Auxiliary):
    """beta * the balanced contrastive loss on the strong views; reads the classifier's weights for the
    prototypes (bound by `BCL.adapt_model`)."""

    name = "bcl_contrast"

    def __init__(self, beta: float, temperature: float, proj_dim: int, views: int):
        self.beta, self.temperature, self.proj_dim, self.views = beta, temperature, proj_dim, views
        self.classifier: CosineClassifier | None = None

    @property
    def taps(self) -> tuple[str, ...]:
        return ("layer4",)

    def setup(self, ctx: TrainContext) -> None:
        d = ctx.feature_dims["layer4"]
        self.head = projection_head(d, self.proj_dim).to(ctx.device)
        self.prototype_head = projection_head(d, self.proj_dim).to(ctx.device)

    def parameters(self):
        return [*self.head.parameters(), *self.prototype_head.parameters()]

    def __call__(self, feats, labels):
        b = len(labels) // self.views
        z = F.normalize(self.head(full_precision(feats["layer4"])), dim=1)[b:]  # the head sees every view
        prototypes = F.normalize(self.prototype_head(self.classifier.weight.T), dim=1)
        return self.beta * balanced_contrastive_loss(z, prototypes, labels[:b], self.temperature)


@register
class BCL(Stages):
    name = "bcl"
    summary = "balanced contrastive learning: LA loss + class-averaged SupCon with class prototypes, 3 views"
    paper = "Zhu et al., Balanced contrastive learning for long-tailed visual recognition, CVPR 2022"
    corrects_prior = True  # its classification loss is logit-adjusted
    changes_classifier = True  # a cosine classifier
    search_space = {"beta": (0.1, 0.35, 1.0), "temperature": (0.07, 0.1, 0.2)}
    beta: float = hp(0.35, ge=0)
    temperature: float = hp(0.07, gt=0)
    proj_dim: int = hp(128, ge=1)
    scale: float = hp(30.0, gt=0, help="the cosine classifier's scale s")

    def __post_init__(self):
        self.criterion = LogitAdjusted(tau=1.0)
        self.term = BalancedContrast(self.beta, self.temperature, self.proj_dim, 1 + CONTRASTIVE_VIEWS)

    def setup(self, ctx: TrainContext) -> None:
        self.criterion.setup(ctx)  # the stage's own parts are not parts of the composition
        self.term.setup(ctx)

    def adapt_model(self, model: nn.Module) -> None:
        model.fc = CosineClassifier(model.fc.in_features, model.fc.out_features, self.scale)
        self.term.classifier = model.fc

    def stages(self, comp):
        if comp.criterion.name != "ce" or comp.transform is not None or comp.reweighting is not None:
            raise MethodError("bcl brings its own loss and views: compose it only with a sampler or auxiliaries")
        strong = functools.partial(strong_augment, min_scale=0.08)
        return [
            Stage(
                "train",
                1.0,
                sampler=comp.sampler,
                criterion=self.criterion,
                auxiliaries=[self.term, *comp.auxiliaries],
                views=1 + CONTRASTIVE_VIEWS,
                augment=(None, *[strong] * CONTRASTIVE_VIEWS),
                criterion_views=1,
            )
        ]
