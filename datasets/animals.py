"""Animal silhouettes from PyPI `animal-shape-mnist` (MIT): 10 classes x 1000 images, 28x28 grey.

The package ships gzipped pickles and no train/test split. Pickles can run code when loaded, so
their SHA-256 is checked against the values pinned below before anything is unpickled.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch

from .base import Availability, DataError, Source, SourceData, register_source, sha256_of
from .split import stratified_split

PACKAGE = "animal_shape_mnist"
FILES = {
    "data": ("animal_data_version_3.gz", "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce"),
    "labels": ("animal_label_version_3.gz", "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57"),
}
# Label k is the k-th name in the package description's (alphabetical) list.
CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "Animal Shape"


def load_verified_pickle(path: Path, expected_sha256: str):
    """Unpickle `path` only if its SHA-256 matches; otherwise a one-line DataError."""
    if not path.is_file():
        raise DataError(
            f"missing data file {path}; reinstall it: pip install --force-reinstall animal-shape-mnist==0.39"
        )
    digest = sha256_of(path)
    if digest != expected_sha256:
        raise DataError(
            f"checksum mismatch for {path} (sha256 {digest[:12]}..., expected {expected_sha256[:12]}...); "
            "refusing to unpickle it: pip install --force-reinstall animal-shape-mnist==0.39"
        )
    with gzip.open(path, "rb") as f:
        return pickle.load(f)


@register_source
class Animals(Source):
    name = "animals"
    description = "animal silhouettes, 10 classes x 1000, 28x28 grey (PyPI animal-shape-mnist, embedded)"
    licence = "MIT (animal-shape-mnist 0.39)"
    pairs = {"fine": ("horse", "dog"), "coarse": ("horse", "elephant")}
    test_per_class = 200

    def availability(self) -> Availability:
        d = _package_dir()
        if d is None:
            return Availability(False, "pip install animal-shape-mnist==0.39")
        return Availability(all((d / f).is_file() for f, _ in FILES.values()), str(d))

    def load(self) -> SourceData:
        d = _package_dir()
        if d is None:
            raise DataError("package animal-shape-mnist is not installed: pip install animal-shape-mnist==0.39")
        images = load_verified_pickle(d / FILES["data"][0], FILES["data"][1])
        labels = load_verified_pickle(d / FILES["labels"][0], FILES["labels"][1])
        images = np.asarray(images, dtype=np.uint8)
        labels = np.asarray(labels, dtype=np.int64)
        if images.shape != (10000, 28, 28) or labels.shape != (10000,):
            raise DataError(f"unexpected animal data shape {images.shape}; reinstall animal-shape-mnist==0.39")
        # 1000 per class -> 800 train / 200 test per class, fixed whatever the run seed.
        train, test = stratified_split(labels, test_fraction=0.2)
        x = torch.from_numpy(images).unsqueeze(1)
        y = torch.from_numpy(labels)
        return SourceData(
            train_x=x[train].contiguous(),
            train_y=y[train],
            test_x=x[test].contiguous(),
            test_y=y[test],
            classes=list(CLASSES),
            origin=str(d),
        )
