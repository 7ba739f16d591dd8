"""Feature Similarity Contrastive loss (FSC), the method of the paper this suite is built around.

For each tapped layer l: h_i = global-average-pooled features of image i; S_ij = cos(h_i, h_j);
T_ij = 1 if c_i == c_j else 0; L_l = mean over all B*B entries (diagonal included) of (S - T)^2.
The term added to the criterion is lam * sum_l L_l. After a ReLU the pooled features are
non-negative, so S >= 0 and T = 0 is reached only by disjoint activation patterns; that is the
paper's definition and the default. Two named variants, off by default:
- `centre=True` subtracts the batch mean of the features before the cosine, so different classes
  can reach negative similarity;
- `balance=pairs` averages the same-class and the different-class entries separately (diagonal
  excluded) and takes the mean of the two means: in a skewed batch the paper's mean over all B*B entries is
  dominated by majority-majority pairs (at 1:0.01, a batch of 64 holds 0.6 minority images on
  average, so about 98% of its entries are same-class).

Compared with: the paper's formula (the KCC 2025 paper publishes no code): an independent
computation in tests/test_methods.py and the balanced-pairs variant by hand in tests/test_baselines.py.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from .base import Auxiliary, full_precision, hp, register

LAYERS = ("layer1", "layer2", "layer3", "layer4")


def fsc_layer_loss(h: torch.Tensor, targets: torch.Tensor, centre: bool = False, balance: str = "none") -> torch.Tensor:
    h = full_precision(h)
    if centre:
        h = h - h.mean(dim=0, keepdim=True)
    z = F.normalize(h, dim=1, eps=1e-8)
    sim = z @ z.T
    same = targets[:, None] == targets[None, :]
    if balance == "none":
        return F.mse_loss(sim, same.to(sim.dtype))
    off_diag = ~torch.eye(len(targets), dtype=torch.bool, device=sim.device)
    pos, neg = same & off_diag, ~same
    # The mean over an empty set (a batch of one class has no different-class pair) counts as 0.
    pos_term = ((sim - 1) ** 2 * pos).sum() / pos.sum().clamp_min(1)
    neg_term = (sim**2 * neg).sum() / neg.sum().clamp_min(1)
    return (pos_term + neg_term) / 2


@register
class FSC(Auxiliary):
    name = "fsc"
    summary = "CE + lam * sum over layers of MSE(feature cosine-similarity matrix, label-equality matrix)"
    paper = "Feature Similarity Contrastive learning, KCC 2025 (the paper this suite is built around)"
    search_space = {"lam": (0.1, 0.3, 1.0)}
    lam: float = hp(1.0, ge=0)
    layers: tuple[str, ...] = ("layer3", "layer4")
    centre: bool = False
    balance: Literal["none", "pairs"] = "none"

    def __post_init__(self):
        self.layers = tuple(self.layers)
        bad = [layer for layer in self.layers if layer not in LAYERS]
        if bad or not self.layers:
            raise ValueError(f"layers must be a non-empty subset of {','.join(LAYERS)}, got {','.join(self.layers)}")

    @property
    def taps(self) -> tuple[str, ...]:
        return self.layers

    def __call__(self, feats, labels):
        return self.lam * sum(fsc_layer_loss(feats[layer], labels, self.centre, self.balance) for layer in self.layers)
