"""Feature Similarity Contrastive loss (FSC), the method of the paper this suite is built around.

For each tapped layer l: h_i = global-average-pooled features of image i; S_ij = cos(h_i, h_j);
T_ij = 1 if c_i == c_j else 0; L_l = mean over all B*B entries (diagonal included) of (S - T)^2.
The term added to the criterion is lam * sum_l L_l. After a ReLU the pooled features are
non-negative, so S >= 0 and T = 0 is reached only by disjoint activation patterns; that is the
paper's definition and the default. `centre=True` is a named variant that subtracts the batch mean
of the features before the cosine, so different classes can reach negative similarity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Auxiliary, register

LAYERS = ("layer1", "layer2", "layer3", "layer4")


def fsc_layer_loss(h: torch.Tensor, targets: torch.Tensor, centre: bool = False) -> torch.Tensor:
    h = h.float()
    if centre:
        h = h - h.mean(dim=0, keepdim=True)
    z = F.normalize(h, dim=1, eps=1e-8)
    sim = z @ z.T
    target = (targets[:, None] == targets[None, :]).to(sim.dtype)
    return F.mse_loss(sim, target)


@register
class FSC(Auxiliary):
    name = "fsc"
    summary = "CE + lam * sum over layers of MSE(feature cosine-similarity matrix, label-equality matrix)"
    lam: float = 1.0
    layers: tuple[str, ...] = ("layer3", "layer4")
    centre: bool = False

    def __post_init__(self):
        self.layers = tuple(self.layers)
        bad = [layer for layer in self.layers if layer not in LAYERS]
        if bad or not self.layers:
            raise ValueError(f"layers must be a non-empty subset of {','.join(LAYERS)}, got {','.join(self.layers)}")

    @property
    def taps(self) -> tuple[str, ...]:
        return self.layers

    def __call__(self, feats, targets):
        return self.lam * sum(fsc_layer_loss(feats[layer], targets, self.centre) for layer in self.layers)
