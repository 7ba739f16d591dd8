"""Small generated images that a CNN can learn in a few steps; for fast tests only.

Class k is a bright square at a class-specific position on noise. Classes 0 and 1 differ only by a
small shift of the square (a 'fine' pair); class 2 is far away (a 'coarse' pair).
"""

from __future__ import annotations

import torch

from .base import Availability, Source, SourceData, register_source

POSITIONS = [(2, 2), (2, 5), (9, 9), (9, 2)]


def make_images(n_per_class: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for k, (r, c) in enumerate(POSITIONS):
        x = torch.randint(0, 90, (n_per_class, 1, size, size), generator=g, dtype=torch.uint8)
        jitter = torch.randint(-1, 2, (n_per_class, 2), generator=g)
        for i in range(n_per_class):
            rr, cc = r + int(jitter[i, 0]) + 1, c + int(jitter[i, 1]) + 1
            x[i, :, rr : rr + 4, cc : cc + 4] = 230
        xs.append(x)
        ys.append(torch.full((n_per_class,), k, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)


@register_source
class Synthetic(Source):
    name = "synthetic"
    description = "generated squares on noise, 4 classes x 120 train / 30 test, 16x16 grey (tests only)"
    licence = "generated"
    pairs = {"fine": ("a", "b"), "coarse": ("a", "c")}

    def availability(self) -> Availability:
        return Availability(True, "generated in memory")

    def load(self) -> SourceData:
        size = self.image_size or 16
        trx, trY = make_images(120, size, seed=0)
        tex, teY = make_images(30, size, seed=1)
        return SourceData(trx, trY, tex, teY, classes=["a", "b", "c", "d"], origin="generated")
