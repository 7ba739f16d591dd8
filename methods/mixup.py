"""Mixup (Zhang et al., ICLR 2018) and Remix (Chou et al., ECCV 2020 workshops) as batch transforms.

Both mix each image of a batch with another image of the same batch (a random permutation),
x = lam x_i + (1 - lam) x_j, with one lam ~ Beta(alpha, alpha) per batch as in Zhang et al.'s code.
Mixup's soft target is lam y_i + (1 - lam) y_j. Remix keeps the mixed image but moves the label
towards the minority: when n_i / n_j >= kappa and lam < tau the target is y_j alone, when
n_i / n_j <= 1 / kappa and 1 - lam < tau it is y_i alone, otherwise as mixup (kappa = 3, tau = 0.5:
the paper's values). Auxiliary terms see the labels of the unmixed images i.

Compared with: Zhang et al.'s `mixup_data` (one lam per batch, a random permutation) and Chou et
al.'s Remix rule, worked by hand in tests/test_baselines.py (both transforms, and remix at its kappa
boundary in tests/test_faithful.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import TrainContext, Transform, hp, register


class _Mixing(Transform):
    def setup(self, ctx: TrainContext) -> None:
        self.rng = np.random.default_rng([ctx.seed, 0x5EED])  # its own stream: the sampler's is untouched
        self.num_classes = ctx.num_classes
        self.counts = torch.tensor(ctx.class_counts, dtype=torch.float32, device=ctx.device)

    def mix(self, x, y):
        lam = float(self.rng.beta(self.alpha, self.alpha))
        perm = torch.from_numpy(self.rng.permutation(len(y))).to(y.device)
        return lam * x + (1 - lam) * x[perm], y[perm], lam

    def soft(self, y, y2, lam_y: torch.Tensor):
        a = F.one_hot(y, self.num_classes).to(torch.get_default_dtype())
        b = F.one_hot(y2, self.num_classes).to(torch.get_default_dtype())
        return lam_y[:, None] * a + (1 - lam_y[:, None]) * b


@register
class Mixup(_Mixing):
    name = "mixup"
    summary = "mixup: convex combinations of image pairs and of their one-hot labels"
    paper = "Zhang et al., mixup: beyond empirical risk minimization, ICLR 2018"
    search_space = {"alpha": (0.2, 0.5, 1.0)}
    alpha: float = hp(1.0, gt=0)

    def __call__(self, x, y):
        x, y2, lam = self.mix(x, y)
        return x, self.soft(y, y2, torch.full((len(y),), lam, device=y.device))


@register
class Remix(_Mixing):
    name = "remix"
    summary = "remix: mixup whose label favours the minority image of an imbalanced pair"
    paper = "Chou et al., Remix: rebalanced mixup, ECCV 2020 workshops"
    search_space = {"alpha": (0.2, 0.5, 1.0)}
    alpha: float = hp(1.0, gt=0)
    kappa: float = hp(3.0, ge=1)
    tau: float = hp(0.5, ge=0, le=1)

    def __call__(self, x, y):
        x, y2, lam = self.mix(x, y)
        ratio = self.counts[y] / self.counts[y2]
        lam_y = torch.full((len(y),), lam, device=y.device)
        lam_y = torch.where((ratio >= self.kappa) & (lam < self.tau), torch.zeros_like(lam_y), lam_y)
        lam_y = torch.where((ratio <= 1 / self.kappa) & (1 - lam < self.tau), torch.ones_like(lam_y), lam_y)
        return x, self.soft(y, y2, lam_y)
