"""Supervised contrastive loss (Khosla et al., NeurIPS 2020) as a joint auxiliary term.

The original is two-stage (`supcon2`): the encoder is pre-trained with SupCon alone on two views of
each image, then a linear classifier is trained on frozen features. `supcon` is the joint variant
the paper's comparison needs as an end-to-end baseline: CE + lam * SupCon on an L2-normalised
projection head (Linear-ReLU-Linear, 128-d) over the pooled layer4 features, one view per image.
The loss itself is pytorch-metric-learning's `SupConLoss`, with one difference from Khosla et al.'s
definition, named here because it matters under imbalance: the library returns 0 for a batch without a
pair of different classes, where the paper's loss is positive and pulls the batch together (its minimum
over a one-class batch is a collapsed batch). At 1:0.01 about half the batches of 64 hold no minority
image, so about half the steps carry no contrastive gradient (`tests/test_methods.py` pins this).

Compared with: it is pytorch-metric-learning's `SupConLoss` (tests/test_methods.py checks the call).
Named differences from Khosla et al.'s code (HobbitLong/SupContrast, losses.py): theirs multiplies the loss
by temperature / base_temperature (0.1 / 0.07 in their recipe; the library's is 0.7x theirs, which the
weight `lam` absorbs), and theirs counts an anchor with no positive in the batch as 0 in the mean where the
library leaves it out; with two views (`supcon2`) every anchor has a positive, its other view, but a
one-class batch still gives 0 (docs/methods.md, "departures named").
"""

from __future__ import annotations

import torch.nn.functional as F
from pytorch_metric_learning import losses
from torch import nn

from .base import Auxiliary, TrainContext, full_precision, hp, register


@register
class SupCon(Auxiliary):
    name = "supcon"
    summary = "CE + lam * supervised contrastive loss on a projection head (joint, one view; see supcon2)"
    paper = "Khosla et al., Supervised contrastive learning, NeurIPS 2020"
    search_space = {"lam": (0.1, 0.3, 1.0)}
    lam: float = hp(1.0, ge=0)
    temperature: float = hp(0.1, gt=0)
    proj_dim: int = hp(128, ge=1)

    @property
    def taps(self) -> tuple[str, ...]:
        return ("layer4",)

    def setup(self, ctx: TrainContext) -> None:
        d = ctx.feature_dims["layer4"]
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, self.proj_dim)).to(ctx.device)
        self.loss_fn = losses.SupConLoss(temperature=self.temperature)

    def parameters(self):
        return list(self.head.parameters())

    def __call__(self, feats, labels):
        z = F.normalize(self.head(full_precision(feats["layer4"])), dim=1)
        return self.lam * self.loss_fn(z, labels)
