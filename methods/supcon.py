"""Supervised contrastive loss (Khosla et al., NeurIPS 2020) as a joint auxiliary term.

The original is two-stage: the encoder is pre-trained with SupCon alone, then a linear classifier
is trained on frozen features. Here, as the paper's comparison needs an end-to-end baseline, it is
trained jointly: CE + lam * SupCon on an L2-normalised projection head (Linear-ReLU-Linear, 128-d)
over the pooled layer4 features. The loss itself is pytorch-metric-learning's `SupConLoss`.
"""

from __future__ import annotations

import torch.nn.functional as F
from pytorch_metric_learning import losses
from torch import nn

from .base import Auxiliary, TrainContext, register


@register
class SupCon(Auxiliary):
    name = "supcon"
    summary = "CE + lam * supervised contrastive loss on a projection head (joint, not two-stage)"
    lam: float = 1.0
    temperature: float = 0.1
    proj_dim: int = 128

    @property
    def taps(self) -> tuple[str, ...]:
        return ("layer4",)

    def setup(self, ctx: TrainContext) -> None:
        d = ctx.feature_dims["layer4"]
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, self.proj_dim)).to(ctx.device)
        self.loss_fn = losses.SupConLoss(temperature=self.temperature)

    def parameters(self):
        return list(self.head.parameters())

    def __call__(self, feats, targets):
        z = F.normalize(self.head(feats["layer4"].float()), dim=1)
        return self.lam * self.loss_fn(z, targets)
