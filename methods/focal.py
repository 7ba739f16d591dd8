"""Softmax focal loss (Lin et al., ICCV 2017), multi-class form: -(1 - p_t)^gamma log p_t."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Criterion, register


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float, weight: torch.Tensor | None = None):
    logp = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
    loss = -((1 - logp.exp()) ** gamma) * logp
    if weight is not None:
        w = weight[targets]
        return (loss * w).sum() / w.sum()  # the same normalisation as cross_entropy(weight=...)
    return loss.mean()


@register
class Focal(Criterion):
    """gamma = 2.0 is the value Lin et al. found best (Table 1a of the paper) and the usual default.
    gamma = 0 is exactly cross-entropy."""

    name = "focal"
    summary = "softmax focal loss, down-weights well-classified examples"
    gamma: float = 2.0

    def __post_init__(self):
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma}")

    def __call__(self, logits, targets):
        return focal_loss(logits, targets, self.gamma)
