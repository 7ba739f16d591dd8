"""Class-balanced loss (Cui et al., CVPR 2019): weights by the effective number of samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Criterion, TrainContext, register
from .focal import focal_loss


def class_balanced_weights(counts: list[int], beta: float) -> torch.Tensor:
    """w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to the number of classes."""
    n = torch.tensor(counts, dtype=torch.float64)
    w = (1 - beta) / (1 - beta**n)
    return (w / w.sum() * len(counts)).to(torch.float32)


@register
class ClassBalanced(Criterion):
    name = "cb"
    summary = "class-balanced re-weighting by effective number of samples, on CE (or focal)"
    beta: float = 0.9999
    base: str = "ce"  # 'ce' or 'focal'
    gamma: float = 2.0  # used only when base == 'focal'

    def __post_init__(self):
        if not 0 <= self.beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {self.beta}")
        if self.base not in ("ce", "focal"):
            raise ValueError(f"base must be 'ce' or 'focal', got {self.base!r}")

    def setup(self, ctx: TrainContext) -> None:
        self.weight = class_balanced_weights(ctx.class_counts, self.beta).to(ctx.device)

    def __call__(self, logits, targets):
        if self.base == "focal":
            return focal_loss(logits, targets, self.gamma, weight=self.weight)
        return F.cross_entropy(logits.float(), targets, weight=self.weight)
