"""Cross-entropy: the default criterion of every composition.

Compared with: PyTorch's `cross_entropy`, which it computes (the Criterion base class reduces its
per-class loss matrix as `cross_entropy(weight=...)` does; `focal` at gamma 0 equals it, tests/test_methods.py).
"""

from __future__ import annotations

import torch.nn.functional as F

from .base import Criterion, register


@register
class CE(Criterion):
    name = "ce"
    summary = "cross-entropy on logits (the default criterion)"

    def class_losses(self, logits):
        return -F.log_softmax(logits, dim=1)
