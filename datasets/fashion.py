"""Fashion-MNIST (MIT, Zalando Research): 10 classes, 60k train / 10k test, 28x28 grey.

Looked for in this order: `--data-root DIR`, the Debian package's path (`apt-get install
dataset-fashion-mnist`), then a torchvision download into the cache where there is internet.
Whatever the origin, the IDX files are read by torchvision's own FashionMNIST class.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import torch
from torchvision.datasets import FashionMNIST

from .base import Availability, DataError, Source, SourceData, cache_dir, register_source

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
HOW_TO_GET = (
    "Fashion-MNIST not found: pass --data-root DIR holding its IDX files, or `apt-get install "
    "dataset-fashion-mnist`, or run once where the internet is reachable so torchvision downloads it"
)


def _idx_dir(d: Path) -> Path | None:
    """`d` or a torchvision layout below it that holds all four IDX files (plain or .gz)."""
    for cand in (d, d / "FashionMNIST" / "raw"):
        if all((cand / f).is_file() or (cand / f"{f}.gz").is_file() for f in IDX_FILES):
            return cand
    return None


@register_source
class Fashion(Source):
    name = "fashion"
    description = "Fashion-MNIST, 10 classes, 6000 train / 1000 test each, 28x28 grey"
    licence = "MIT (Zalando Research)"
    pairs = {"fine": ("T-shirt/top", "Shirt"), "coarse": ("T-shirt/top", "Trouser")}

    def _candidates(self) -> list[Path]:
        c = [Path(self.data_root)] if self.data_root else []
        return c + [DEBIAN_DIR, cache_dir() / "fashion"]

    def availability(self) -> Availability:
        for d in self._candidates():
            found = _idx_dir(d)
            if found:
                return Availability(True, str(found))
        return Availability(False, "apt-get install dataset-fashion-mnist, or --data-root, or a download")

    def load(self) -> SourceData:
        if self.data_root and _idx_dir(Path(self.data_root)) is None:
            raise DataError(f"--data-root {self.data_root} holds no Fashion-MNIST IDX files ({', '.join(IDX_FILES)})")
        found = next((f for f in map(_idx_dir, self._candidates()) if f), None)
        root = cache_dir() / "fashion"
        if found is None:
            try:  # the third way: torchvision's download, where the internet is reachable
                FashionMNIST(str(root), train=True, download=True)
                FashionMNIST(str(root), train=False, download=True)
            except Exception as e:
                raise DataError(f"{HOW_TO_GET} (download failed: {type(e).__name__})") from None
            found = root / "FashionMNIST" / "raw"
        elif found != root / "FashionMNIST" / "raw":
            _stage(found, root / "FashionMNIST" / "raw")
        try:
            train = FashionMNIST(str(root), train=True, download=False)
            test = FashionMNIST(str(root), train=False, download=False)
        except Exception as e:
            raise DataError(f"corrupt Fashion-MNIST files under {found} ({e}); reinstall or re-download them") from None
        return SourceData(
            train_x=train.data.unsqueeze(1).contiguous(),
            train_y=train.targets.to(torch.int64),
            test_x=test.data.unsqueeze(1).contiguous(),
            test_y=test.targets.to(torch.int64),
            classes=list(train.classes),
            origin=str(found),
        )


def _stage(src: Path, raw: Path) -> None:
    """Decompress IDX files into torchvision's raw layout (once; re-done if the source is newer)."""
    raw.mkdir(parents=True, exist_ok=True)
    for f in IDX_FILES:
        plain, gz, dst = src / f, src / f"{f}.gz", raw / f
        origin = plain if plain.is_file() else gz
        if dst.is_file() and dst.stat().st_mtime >= origin.stat().st_mtime:
            continue
        tmp = dst.with_suffix(".tmp")
        opener = open if origin == plain else gzip.open
        try:
            with opener(origin, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        except (OSError, EOFError) as e:
            tmp.unlink(missing_ok=True)
            raise DataError(f"corrupt Fashion-MNIST file {origin} ({e}); reinstall dataset-fashion-mnist") from None
        tmp.replace(dst)
