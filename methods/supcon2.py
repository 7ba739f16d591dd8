"""Two-stage supervised contrastive learning, as Khosla et al. (NeurIPS 2020) train it.

Stage one ("contrastive", 1 - share of the budget) trains the encoder with pytorch-metric-learning's
SupConLoss alone (no classification loss) on a projection head, with two augmented views of every
image in each batch, so every anchor has at least its other view as a positive. Stage two
("classifier", share) freezes the encoder, re-initialises the linear classifier and trains it with
the composition's criterion and sampler (CE over every index by default; `os+supcon2` oversamples
in both stages). The joint single-view variant is `supcon`.

The two views get Khosla et al.'s strong augmentation (`augment=strong`, the default; their
SimCLR-style transform): a random resized crop (scale 0.2-1, aspect 3/4-4/3), a horizontal flip, with
probability 0.8 a colour jitter (brightness, contrast and saturation factors in [0.6, 1.4], applied in
that fixed order) and with probability 0.2 grey-scale. Named differences: the jitter's hue shift (0.1)
is left out, and on one-channel images saturation and grey-scale do nothing. `augment=crop_flip` is
the harness's own crop with padding and flip: what the suite did before the field existed (such
records show `supcon2.augment=crop_flip`).

Compared with: Khosla et al.'s SupContrast recipe (two views, SupCon alone, then a linear classifier
on the frozen encoder); the loss is pytorch-metric-learning's (see `supcon`); the named differences of the
augmentation are above.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from .base import Stage, Stages, TrainContext, hp, register
from .decoupling import reset_classifier
from .supcon import SupCon


@register
class SupCon2(Stages):
    name = "supcon2"
    summary = "two-stage SupCon: contrastive pre-training on two views, then a classifier on frozen features"
    paper = "Khosla et al., Supervised contrastive learning, NeurIPS 2020"
    legacy = {"augment": "crop_flip"}
    search_space = {"temperature": (0.07, 0.1, 0.2)}
    temperature: float = hp(0.1, gt=0)
    proj_dim: int = hp(128, ge=1)
    share: float = hp(0.1, gt=0, lt=1)
    augment: Literal["strong", "crop_flip"] = "strong"

    def __post_init__(self):
        self.term = SupCon(lam=1.0, temperature=self.temperature, proj_dim=self.proj_dim)

    def setup(self, ctx: TrainContext) -> None:
        self.term.setup(ctx)

    def stages(self, comp):
        return [
            Stage(
                "contrastive",
                1 - self.share,
                sampler=comp.sampler,
                criterion=None,
                transform=comp.transform,
                auxiliaries=[self.term, *comp.auxiliaries],
                views=2,
                augment=strong_augment if self.augment == "strong" else None,
            ),
            Stage(
                "classifier",
                self.share,
                sampler=comp.sampler,
                criterion=comp.criterion,
                reweighting=comp.reweighting,
                trainable=lambda m: list(m.fc.parameters()),
                on_start=reset_classifier,
            ),
        ]


def strong_augment(x: torch.Tensor, gen: torch.Generator, min_scale: float = 0.2) -> torch.Tensor:
    """Khosla et al.'s view augmentation for a whole uint8 batch (B, C, H, W), each image with its own
    random draws from `gen`; returns floats on the 0-255 scale (see the module docstring). `min_scale`:
    the smallest crop area (torchvision's RandomResizedCrop default 0.08 is BCL's)."""
    b, c, h, w = x.shape
    dev = x.device
    u = lambda *shape: torch.rand(*shape, device=dev, generator=gen)  # noqa: E731
    x = x.to(torch.get_default_dtype())  # float32, or float64 where a test computes in it
    # Random resized crop: area fraction s in [min_scale, 1], log-uniform aspect r in [3/4, 4/3]; the
    # crop's sides (as fractions of the image) are sqrt(s r) and sqrt(s / r), clipped to the image.
    s = min_scale + (1 - min_scale) * u(b)
    r = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u(b))
    cw, ch = (s * r).sqrt().clamp(max=1), (s / r).sqrt().clamp(max=1)
    cx, cy = (2 * u(b) - 1) * (1 - cw), (2 * u(b) - 1) * (1 - ch)  # centre, in [-1, 1] coordinates
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = cw * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    grid = F.affine_grid(theta, (b, c, h, w), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # Colour jitter with probability 0.8, factors in [0.6, 1.4]: brightness, contrast, saturation.
    jitter = (u(b) < 0.8).float().view(b, 1, 1, 1)
    factor = lambda: 1 + jitter * (0.8 * u(b).view(b, 1, 1, 1) - 0.4)  # noqa: E731
    x = (x * factor()).clamp(0, 255)
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (mean + factor() * (x - mean)).clamp(0, 255)
    if c == 3:
        g = _grey(x)
        x = (g + factor() * (x - g)).clamp(0, 255)
        x = torch.where((u(b) < 0.2).view(b, 1, 1, 1), _grey(x).expand_as(x), x)
    return x


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of an RGB batch (torchvision's rgb_to_grayscale weights); a one-channel batch as it is."""
    if x.shape[1] != 3:
        return x
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
