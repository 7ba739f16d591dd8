"""Class-balanced loss (Cui et al., CVPR 2019): weights by the effective number of samples.

The reduction is a named hyper-parameter because the two conventions differ where it matters:
`batch` divides the weighted sum of the batch's losses by the batch size, as Cui et al.'s own code
does (TensorFlow's softmax_cross_entropy with per-example weights); `weight_sum` divides by the
batch's summed weights, as PyTorch's cross_entropy(weight=...) and the LDAM-DRW code do. At 1:0.01
about half the batches of 64 hold no minority image: under `weight_sum` such a batch is plain
cross-entropy, under `batch` it is down-weighted by the majority's small weight. The paper's
(`batch`) is the default; records made before the field existed used `weight_sum` and are shown
as `cb [cb.reduction=weight_sum]`.

`base=focal` is Cui et al.'s class-balanced focal loss, which is sigmoid-based: for every class j a
binary cross-entropy on logit z_j with target [j == y], times the modulator (1 - p_t)^gamma
(p_t = sigmoid(z_j) for the label's class, 1 - sigmoid(z_j) for the others), summed over classes,
weighted by the sample's class weight and divided by the number of samples (their `focal_loss`, whose
normaliser is the count of positive labels = B). gamma = 1 as in their CIFAR script. Compared on random
inputs with that formula (tests/test_baselines.py); not copied: their sigmoid models also start the
classifier bias at -log(C - 1) and exempt it from weight decay, which the suite does not.
`base=softmax_focal` is the softmax focal loss with class-balanced weights (revision 0 of `base=focal`,
with gamma 2: such records show `(rev 0)`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

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
    search_space = {"beta": (0.99, 0.999, 0.9999)}
    beta: float = hp(0.9999, ge=0, lt=1)
    base: Literal["ce", "focal", "softmax_focal"] = "ce"
    gamma: float = hp(1.0, ge=0)  # the focal bases only
    reduction: Literal["batch", "weight_sum"] = "batch"

    def method_revision(self) -> int:
        return 1 if self.base == "focal" else 0  # base=focal was softmax focal before revision 1

    def unused_hparams(self):
        return ("gamma",) if self.base == "ce" else ()

    def setup(self, ctx: TrainContext) -> None:
        self.weight = class_balanced_weights(ctx.class_counts, self.beta).to(ctx.device)

    def class_weights(self):
        return self.weight

    def class_losses(self, logits):
        if self.base == "focal":
            return sigmoid_focal_class_losses(logits, self.gamma)
        if self.base == "softmax_focal":
            return focal_class_losses(logits, self.gamma)
        return -torch.log_softmax(logits, dim=1)


def sigmoid_focal_class_losses(logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B, C): entry (i, c) = sum_j (1 - p_t)^gamma BCE(z_ij, [j == c]), Cui et al.'s focal loss of
    sample i if its label were c. The modulator is written as exp(-gamma (t z + log(1 + e^-z))), which
    is finite for every z (their stable form)."""
    z = logits
    log1p_exp_neg = F.softplus(-z)  # log(1 + e^-z)
    # t = 0 for every class: BCE = z + log(1 + e^-z), modulator = exp(-gamma log(1 + e^-z)) = sigmoid(z)^gamma
    neg = torch.exp(-gamma * log1p_exp_neg) * (z + log1p_exp_neg)
    # t = 1 for the label's class: BCE = log(1 + e^-z), modulator = exp(-gamma (z + log(1 + e^-z)))
    pos = torch.exp(-gamma * (z + log1p_exp_neg)) * log1p_exp_neg
    return neg.sum(dim=1, keepdim=True) - neg + pos
