"""A user's own photos: one sub-folder per class (torchvision ImageFolder conventions).

`DIR/train/<class>/*` + `DIR/test/<class>/*` is used as given; otherwise `DIR/<class>/*` is split
80/20, stratified, with a fixed seed. Images are resized (shorter side, then centre crop) to a
square RGB of `image_size` pixels and cached as one tensor file whose name is a hash of the
folder's content (relative paths, sizes, mtimes) and the size, so the second run starts at once
and any changed, added or removed photo makes it re-read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from rich.progress import track
from torchvision.datasets import ImageFolder
from torchvision.transforms import functional as TF

from .base import Availability, DataError, Source, SourceData, cache_dir, register_source
from .split import stratified_split

DEFAULT_SIZE = 64


def _scan(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and (path, label) samples of an ImageFolder tree, with one-line errors."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; pass --data-root DIR with one sub-folder per class")
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(subdirs) < 2:
        raise DataError(f"{root} has {len(subdirs)} class folder(s); it needs at least two (DIR/<class>/image.jpg)")
    try:
        ds = ImageFolder(str(root), allow_empty=False)
    except FileNotFoundError as e:  # torchvision: "Found no valid file for the classes X"
        raise DataError(f"{root}: {e}; put images (.jpg, .png, ...) in every class folder or remove it") from None
    return ds.classes, ds.samples


def _fingerprint(files: list[str], size: int) -> str:
    h = hashlib.sha256(f"size={size}".encode())
    for f in sorted(files):
        st = os.stat(f)
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _decode(samples: list[tuple[str, int]], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.empty((len(samples), 3, size, size), dtype=torch.uint8)
    for i, (path, _) in enumerate(track(samples, description="decoding photos", transient=True)):
        try:
            with Image.open(path) as im:
                img = TF.pil_to_tensor(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot read image {path} ({type(e).__name__}); remove or replace it") from None
        img = TF.center_crop(TF.resize(img, size, antialias=True), [size, size])
        x[i] = img
    y = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return x, y


@register_source
class Folder(Source):
    name = "folder"
    description = "your photos: --data-root DIR with DIR/<class>/* (or DIR/train/<class>, DIR/test/<class>)"
    licence = "yours"
    pairs = {}

    def _root(self) -> Path:
        if not self.data_root:
            raise DataError("dataset 'folder' needs --data-root DIR (one sub-folder of images per class)")
        return Path(self.data_root).expanduser().resolve()

    def availability(self) -> Availability:
        if not self.data_root:
            return Availability(False, "pass --data-root DIR")
        return Availability(self._root().is_dir(), str(self._root()))

    def load(self) -> SourceData:
        root, size = self._root(), self.image_size or DEFAULT_SIZE
        presplit = (root / "train").is_dir() and (root / "test").is_dir()
        if presplit:
            classes, train_s = _scan(root / "train")
            test_classes, test_s = _scan(root / "test")
            if test_classes != classes:
                raise DataError(
                    f"{root}/train and {root}/test have different class folders: {classes} vs {test_classes}"
                )
            samples = train_s + test_s
        else:
            classes, samples = _scan(root)
        key = _fingerprint([p for p, _ in samples], size)
        cache = cache_dir() / "folder" / f"{key}.pt"
        cached = None
        if cache.is_file():
            try:
                cached = torch.load(cache, weights_only=True)
            except Exception:  # a damaged cache is rebuilt, never trusted
                cached = None
        if cached is None:
            x, y = _decode(samples, size)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            torch.save({"x": x, "y": y, "meta": json.dumps({"root": str(root), "classes": classes})}, tmp)
            tmp.replace(cache)
        else:
            x, y = cached["x"], cached["y"]
        if presplit:
            n_train = len(train_s)
            tr, te = np.arange(n_train), np.arange(n_train, len(samples))
        else:
            counts = np.bincount(y.numpy(), minlength=len(classes))
            if counts.min() < 2:
                raise DataError(
                    f"class {classes[int(counts.argmin())]!r} in {root} has {counts.min()} image(s); "
                    "each class needs at least 2 to split into train and test"
                )
            tr, te = stratified_split(y.numpy(), test_fraction=0.2)
        return SourceData(
            x[tr].contiguous(), y[tr], x[te].contiguous(), y[te], classes=classes, origin=f"{root} (cache {cache.name})"
        )
