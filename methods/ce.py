"""Cross-entropy: the default criterion of every composition."""

from __future__ import annotations

import torch.nn.functional as F

from .base import Criterion, register


@register
class CE(Criterion):
    name = "ce"
    summary = "cross-entropy on logits (the default criterion)"

    def class_losses(self, logits):
        return -F.log_softmax(logits, dim=1)
