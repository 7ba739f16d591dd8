"""CIFAR-10 and CIFAR-100 through torchvision (its on-disk format, its checksums, its download).

The `lt` task on these sources is CIFAR-10-LT / CIFAR-100-LT exactly as Cao et al. (2019) build it
(`datasets.tasks.lt_counts`, `lt_subset`): n_i = int(n_max r^(i/(C-1))) training images of class i,
drawn by numpy's legacy generator seeded with the data seed (0 in the literature), and the full
balanced test split. `bench run --dataset cifar10 --task lt --ratios 0.01 --data-seed 0` trains on the
literature's CIFAR-10-LT (imbalance ratio 100).
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

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

    def _extract_archive(self, root: str) -> None:
        """Where the extracted folder is missing but the archive lies in `root` (copied by hand to a
        machine without internet), check the archive's published MD5 before extracting anything;
        torchvision then checks every extracted file against its own list before unpickling it."""
        archive = Path(root) / self.tv_class.filename
        if (Path(root) / self.folder).is_dir() or not archive.is_file():
            return
        digest = hashlib.md5(archive.read_bytes()).hexdigest()
        if digest != self.tv_class.tgz_md5:
            raise DataError(
                f"{archive} has MD5 {digest}, not the published {self.tv_class.tgz_md5}; refusing to open it: "
                "download it again from https://www.cs.toronto.edu/~kriz/cifar.html"
            )
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")

    def load(self) -> SourceData:
        root = self._root()
        self._extract_archive(root)
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
