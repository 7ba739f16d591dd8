"""Softmax focal loss (Lin et al., ICCV 2017), multi-class form: -(1 - p_t)^gamma log p_t.

Compared with: Lin et al.'s formula, worked by hand (tests/test_methods.py: gamma 0 is cross-entropy;
tests/test_baselines.py: finite gradients below gamma 1). Named deviation: the authors' RetinaNet loss is
sigmoid-based, for detection; this is the multi-class softmax form image classifiers use (Cui et al.'s
sigmoid form is `cb base=focal`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Criterion, hp, register


def focal_class_losses(logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B, C): -(1 - p_c)^gamma log p_c, sample i's focal loss if its label were c."""
    logp = F.log_softmax(logits, dim=1)
    q = 1 - logp.exp()
    if 0 < gamma < 1:  # d(q^gamma)/dq is infinite at q = 0 (p_c rounds to 1): NaN gradients without a floor
        q = q.clamp_min(torch.finfo(q.dtype).eps)
    return -(q**gamma) * logp


@register
class Focal(Criterion):
    """gamma = 2.0 is the value Lin et al. found best (Table 1a of the paper) and the usual default.
    gamma = 0 is exactly cross-entropy."""

    name = "focal"
    summary = "softmax focal loss, down-weights well-classified examples"
    paper = "Lin et al., Focal loss for dense object detection, ICCV 2017"
    search_space = {"gamma": (0.5, 1.0, 2.0)}
    gamma: float = hp(2.0, ge=0)

    def class_losses(self, logits):
        return focal_class_losses(logits, self.gamma)
