"""LDAM: label-distribution-aware margin loss (Cao et al., NeurIPS 2019).

The class-c logit is lowered by a margin m_c proportional to n_c^(-1/4) before cross-entropy, the
largest margin being `max_m` (0.5); as in the authors' CIFAR code the classifier is a cosine
classifier (normalised features and weights) scaled by s = 30. Here the scale is part of the model
(its logits are s * cos), so post-hoc tools see logits of the usual size; the loss subtracts
s * m_c, which is the authors' s * (cos - m_c). Deferred re-weighting is the `drw` method:
`ldam+drw` is LDAM-DRW.

Compared with: the authors' `LDAMLoss` (kaidic/LDAM-DRW) run on the same random inputs: the same loss
and gradient to 1e-6 (round two); the margins worked by hand in tests/test_baselines.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Criterion, TrainContext, hp, register


class CosineClassifier(nn.Module):
    """s * cos(feature, class weight): normalised features times normalised weight columns."""

    def __init__(self, in_features: int, out_features: int, scale: float):
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The authors' initialisation: uniform, then each column renormalised to unit norm.
        with torch.no_grad():
            self.weight.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, x):
        return self.scale * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


def ldam_margins(counts: list[int], max_m: float) -> torch.Tensor:
    m = torch.tensor(counts, dtype=torch.float64) ** -0.25
    return (m * (max_m / m.max())).to(torch.float32)


@register
class LDAM(Criterion):
    name = "ldam"
    summary = "label-distribution-aware margins ~ n_c^(-1/4) on a scaled cosine classifier (+drw: LDAM-DRW)"
    paper = "Cao et al., Learning imbalanced datasets with label-distribution-aware margin loss, NeurIPS 2019"
    changes_classifier = True
    search_space = {"max_m": (0.25, 0.5, 1.0)}
    max_m: float = hp(0.5, gt=0)
    s: float = hp(30.0, gt=0)

    def adapt_model(self, model: nn.Module) -> None:
        model.fc = CosineClassifier(model.fc.in_features, model.fc.out_features, self.s)

    def setup(self, ctx: TrainContext) -> None:
        self.margins = ldam_margins(ctx.class_counts, self.max_m).to(ctx.device)

    def class_losses(self, logits):
        # Candidate label c lowers only logit c by s * m_c: a (B, C, C) stack, one row per candidate.
        shifted = logits[:, None, :] - self.s * torch.diag(self.margins)[None]
        return torch.logsumexp(shifted, dim=2) - shifted.diagonal(dim1=1, dim2=2)
