"""CIFAR-10 and CIFAR-100 through torchvision (its on-disk format, its checksums, its download)."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from .base import Availability, DataError, Source, SourceData, cache_dir, register_source


class _Cifar(Source):
    tv_class: type = CIFAR10
    folder: str = ""

    def _root(self) -> str:
        return self.data_root or str(cache_dir() / "cifar")

    def availability(self) -> Availability:
        try:
            self.tv_class(self._root(), train=False, download=False)
            return Availability(True, self._root())
        except Exception:
            return Availability(False, f"torchvision download into {self._root()} (needs internet)")

    def load(self) -> SourceData:
        root = self._root()
        try:
            parts = [self.tv_class(root, train=t, download=False) for t in (True, False)]
        except RuntimeError:
            try:
                parts = [self.tv_class(root, train=t, download=True) for t in (True, False)]
            except Exception as e:
                raise DataError(
                    f"{self.name} not found or corrupt under {root} and the download failed ({type(e).__name__}); "
                    f"pass --data-root DIR holding {self.folder}/, or run where the internet is reachable"
                ) from None

        def to_tensors(ds):
            x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
            return x, torch.as_tensor(ds.targets, dtype=torch.int64)

        (trx, try_), (tex, tey) = map(to_tensors, parts)
        return SourceData(trx, try_, tex, tey, classes=list(parts[0].classes), origin=root)


@register_source
class Cifar10(_Cifar):
    name = "cifar10"
    description = "CIFAR-10, 10 classes, 5000 train / 1000 test each, 32x32 RGB (torchvision download)"
    licence = "no explicit licence; free for research (Krizhevsky 2009)"
    pairs = {"fine": ("cat", "dog"), "coarse": ("cat", "ship")}
    tv_class = CIFAR10
    folder = "cifar-10-batches-py"


@register_source
class Cifar100(_Cifar):
    name = "cifar100"
    description = "CIFAR-100, 100 classes, 500 train / 100 test each, 32x32 RGB (torchvision download)"
    licence = "no explicit licence; free for research (Krizhevsky 2009)"
    # fine: two classes of the superclass 'large carnivores'; coarse: a carnivore vs a vehicle.
    pairs = {"fine": ("leopard", "tiger"), "coarse": ("leopard", "pickup_truck")}
    tv_class = CIFAR100
    folder = "cifar-100-python"
