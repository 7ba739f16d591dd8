"""Class-balanced loss (Cui et al., CVPR 2019): weights by the effective number of samples.

The reduction is a named hyper-parameter because the two conventions differ where it matters:
`batch` divides the weighted sum of the batch's losses by the batch size, as Cui et al.'s own code
does (TensorFlow's softmax_cross_entropy with per-example weights); `weight_sum` divides by the
batch's summed weights, as PyTorch's cross_entropy(weight=...) and the LDAM-DRW code do. At 1:0.01
about half the batches of 64 hold no minority image: under `weight_sum` such a batch is plain
cross-entropy, under `batch` it is down-weighted by the majority's small weight. The paper's
(`batch`) is the default; records made before the field existed used `weight_sum` and are shown
as `cb [cb.reduction=weight_sum]`.
"""

from __future__ import annotations

from typing import Literal

import torch

from .base import Criterion, TrainContext, hp, register
from .focal import focal_class_losses


def class_balanced_weights(counts: list[int], beta: float) -> torch.Tensor:
    """w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to the number of classes."""
    n = torch.tensor(counts, dtype=torch.float64)
    w = (1 - beta) / (1 - beta**n)
    return (w / w.sum() * len(counts)).to(torch.float32)


@register
class ClassBalanced(Criterion):
    name = "cb"
    summary = "class-balanced re-weighting by effective number of samples, on CE (or focal)"
    paper = "Cui et al., Class-balanced loss based on effective number of samples, CVPR 2019"
    corrects_prior = True
    legacy = {"reduction": "weight_sum"}  # how records made before the field existed were computed
    beta: float = hp(0.9999, ge=0, lt=1)
    base: Literal["ce", "focal"] = "ce"
    gamma: float = hp(2.0, ge=0)  # used only when base == 'focal'
    reduction: Literal["batch", "weight_sum"] = "batch"

    def setup(self, ctx: TrainContext) -> None:
        self.weight = class_balanced_weights(ctx.class_counts, self.beta).to(ctx.device)

    def class_weights(self):
        return self.weight

    def class_losses(self, logits):
        if self.base == "focal":
            return focal_class_losses(logits, self.gamma)
        return -torch.log_softmax(logits, dim=1)
