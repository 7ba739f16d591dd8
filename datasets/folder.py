"""A user's own photos: one sub-folder per class (torchvision's ImageFolder conventions).

`DIR/train/<class>/*` + `DIR/test/<class>/*` is used as given; otherwise `DIR/<class>/*` is split
80/20, stratified, with a fixed seed. Images are resized (shorter side, then centre crop) to a
square RGB of `image_size` pixels and cached as one tensor file.

What a real photo folder holds, handled on purpose:
- symbolic links to folders are not followed, at the top (a class folder `wolf -> dog` would put the
  same photos under two labels) or below (a link back to a parent would read photos twice and leak test
  images into training); they are listed in the data notes;
- a dangling link, a link loop, a file that is not an image, or a decompression bomb (a PNG of
  20000 x 20000 pixels) stops loading with one line naming the file, unless `skip_unreadable`
  (`--skip-unreadable`), which leaves such files out and lists them in every run record;
- the cache is keyed by the content of every photo (not by names and dates), its size and the skip
  policy, and it is verified when read (its labels must be the folder's): a damaged or foreign cache
  is rebuilt, never trusted. The same digest goes into each run's key, so two folders never share runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.progress import track
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import functional as TF

from .base import Availability, DataError, Source, SourceData, cache_dir, register_source
from .split import grouped_split, stratified_split

DEFAULT_SIZE = 64
METADATA = (
    "metadata.csv"  # DIR/metadata.csv: file (relative to DIR), optional label, location / camera / sequence / datetime
)
GROUPS = ("location", "camera", "sequence")
NEAR = 6  # perceptual-hash bits (of 64) within which two photos count as near-duplicates
MIN_SIZE, MAX_SIZE = 8, 1024
FEW_TEST_IMAGES = 20  # fewer test images of a class than this makes its accuracy a coarse number


def _scan(root: Path) -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """Class names, (path, label) samples and notes of an ImageFolder tree, with one-line errors.
    Folders are walked without following symbolic links."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; pass --data-root DIR with one sub-folder per class")
    entries = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    # a link to a folder is not followed at the top either: `wolf -> dog` would put dog photos under two labels
    notes = [f"not followed: folder link {d}" for d in entries if d.is_symlink()]
    classes = [d.name for d in entries if not d.is_symlink()]
    if len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s); it needs at least two (DIR/<class>/image.jpg)")
    samples = []
    for label, cls in enumerate(classes):
        found = 0
        for dirpath, dirnames, filenames in os.walk(root / cls, followlinks=False):
            for d in sorted(dirnames):
                if os.path.islink(os.path.join(dirpath, d)):
                    notes.append(f"not followed: folder link {os.path.join(dirpath, d)}")
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if f.lower().endswith(IMG_EXTENSIONS) and not f.startswith("."):
                    samples.append((os.path.join(dirpath, f), label))
                    found += 1
        if not found:
            raise DataError(
                f"{root / cls}: no valid file for class {cls!r}; put images (.jpg, .png, ...) in it or remove it"
            )
    return classes, samples, notes


def _digest(samples: list[tuple[str, int]], root: Path, size: int, skip: bool) -> tuple[str, list[str]]:
    """A digest of every photo's bytes, relative path and label (+ size and skip policy), and the files
    that could not be read (a dangling link, a loop, no permission)."""
    h = hashlib.sha256(f"size={size};skip={skip}".encode())
    unreadable = []
    for path, label in samples:
        try:
            with open(path, "rb") as f:
                content = hashlib.sha256(f.read()).hexdigest()
        except OSError as e:
            unreadable.append(f"{path} ({e.strerror or type(e).__name__})")
            content = "unreadable"
        h.update(f"{os.path.relpath(path, root)}|{label}|{content}\n".encode())
    return h.hexdigest()[:24], unreadable


def decode_photo(path: str, size: int, mode: str = "RGB") -> torch.Tensor:
    """One photo as the folder source reads it: `mode` (RGB; L for a one-channel model), the shorter side
    resized to `size`, the centre square cropped; uint8 (C, size, size). `bench predict` reads photos so."""
    with Image.open(path) as im:  # PIL refuses decompression bombs (Image.MAX_IMAGE_PIXELS)
        img = TF.pil_to_tensor(im.convert(mode))
    return TF.center_crop(TF.resize(img, size, antialias=True), [size, size])


def _decode(samples: list[tuple[str, int]], size: int, skip: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    kept, images, skipped = [], [], []
    for path, label in track(samples, description="decoding photos", transient=True):
        try:
            images.append(decode_photo(path, size))
        except Exception as e:  # PIL raises OSError, DecompressionBombError, ValueError, ...
            why = f"{path} ({type(e).__name__})"
            if not skip:
                raise DataError(
                    f"cannot read image {why}; remove or replace it, or pass --skip-unreadable to leave such files out"
                ) from None
            skipped.append(why)
            continue
        kept.append(label)
    x = torch.stack(images) if images else torch.empty((0, 3, size, size), dtype=torch.uint8)
    return x, torch.tensor(kept, dtype=torch.int64), skipped


def _read_cache(path: Path, digest: str, expected_labels: torch.Tensor | None):
    """The cached tensors if the file is ours and agrees with the folder, else None."""
    try:
        cached = torch.load(path, weights_only=True)
        meta = json.loads(cached["meta"])
        x, y = cached["x"], cached["y"]
    except Exception:
        return None
    if meta.get("digest") != digest or len(x) != len(y) or x.dtype != torch.uint8:
        return None
    if expected_labels is not None and not torch.equal(y, expected_labels):
        return None  # labels that are not the folder's (a swapped or tampered cache)
    return x, y, meta.get("skipped", [])


@register_source
class Folder(Source):
    name = "folder"
    description = "your photos: --data-root DIR with DIR/<class>/* (or DIR/train/<class>, DIR/test/<class>)"
    licence = "yours"
    pairs = {}

    def __init__(
        self, data_root: str | None = None, image_size: int | None = None, skip_unreadable: bool = False,
        split_by: str | None = None,
    ):  # fmt: skip
        super().__init__(data_root, image_size)
        self.skip_unreadable, self.split_by = skip_unreadable, split_by
        if image_size is not None and not MIN_SIZE <= image_size <= MAX_SIZE:
            raise DataError(f"--image-size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {image_size}")

    def _root(self) -> Path:
        if not self.data_root:
            raise DataError("dataset 'folder' needs --data-root DIR (one sub-folder of images per class)")
        return Path(self.data_root).expanduser().resolve()

    def availability(self) -> Availability:
        if not self.data_root:
            return Availability(False, "pass --data-root DIR")
        return Availability(self._root().is_dir(), str(self._root()))

    def load(self) -> SourceData:
        root, size, skip = self._root(), self.image_size or DEFAULT_SIZE, self.skip_unreadable
        presplit = (root / "train").is_dir() and (root / "test").is_dir()
        if presplit:
            classes, train_s, notes = _scan(root / "train")
            test_classes, test_s, test_notes = _scan(root / "test")
            if test_classes != classes:
                raise DataError(
                    f"{root}/train and {root}/test have different class folders: {classes} vs {test_classes}"
                )
            samples, notes = train_s + test_s, notes + test_notes
        else:
            classes, samples, notes = _scan(root)
        digest, unreadable = _digest(samples, root, size, skip)
        if unreadable and not skip:
            raise DataError(
                f"cannot read {unreadable[0]}" + (f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else "")
                + "; remove or fix it, or pass --skip-unreadable to leave such files out"
            )  # fmt: skip
        cache = cache_dir() / "folder" / f"{digest}.pt"
        labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
        cached = _read_cache(cache, digest, labels if not skip else None) if cache.is_file() else None
        if cached is None:
            x, y, skipped = _decode(samples, size, skip)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            meta = {"root": str(root), "classes": classes, "digest": digest, "skipped": skipped}
            torch.save({"x": x, "y": y, "meta": json.dumps(meta)}, tmp)
            tmp.replace(cache)
        else:
            x, y, skipped = cached
        skipped_paths = {s.rsplit(" (", 1)[0] for s in skipped}
        kept_samples = [(p, label) for p, label in samples if p not in skipped_paths]
        notes += [f"skipped unreadable: {s}" for s in skipped]
        if presplit:
            n_train = sum(1 for p, _ in kept_samples if Path(p).is_relative_to(root / "train"))
            tr, te = np.arange(n_train), np.arange(n_train, len(kept_samples))
        else:
            counts = np.bincount(y.numpy(), minlength=len(classes))
            if counts.min() < 2:
                raise DataError(
                    f"class {classes[int(counts.argmin())]!r} in {root} has {counts.min()} image(s); "
                    "each class needs at least 2 to split into train and test"
                )
        meta = read_metadata(root, [p for p, _ in kept_samples], classes, [lb for _, lb in kept_samples])
        if self.split_by:
            if presplit:
                raise DataError(f"--split-by {self.split_by}: {root} is split already (train/, test/); drop one")
            tr, te = grouped_split(y.numpy(), group_column(meta, self.split_by, root), classes, self.split_by)
            notes.append(f"split by {self.split_by}: every {self.split_by} of {root / METADATA} in one split")
        elif not presplit:
            tr, te = stratified_split(y.numpy(), test_fraction=0.2)
        files = [os.path.relpath(p, root) for p, _ in kept_samples]
        data = SourceData(
            x[tr].contiguous(),
            y[tr],
            x[te].contiguous(),
            y[te],
            classes=classes,
            origin=f"{root} (cache {cache.name})",
            train_files=[files[i] for i in tr],
            test_files=[files[i] for i in te],
        )
        # the run key's digest: the photos, and how they were split (the metadata and the grouping)
        data.digest = digest if not self.split_by else hashlib.sha256(
            f"{digest}|{self.split_by}|{meta['sha256']}".encode()).hexdigest()  # fmt: skip
        if dup := near_duplicates(x[tr], x[te], [kept_samples[i][0] for i in tr], [kept_samples[i][0] for i in te]):
            notes.append(dup)
        train_n = np.bincount(data.train_y.numpy(), minlength=len(classes))
        test_n = np.bincount(data.test_y.numpy(), minlength=len(classes))
        notes.append("split: " + ", ".join(f"{c} {a} train / {b} test" for c, a, b in zip(classes, train_n, test_n)))
        notes += [
            f"warning: class {c!r} has {b} test images (< {FEW_TEST_IMAGES}): its accuracy moves in steps "
            f"of {1 / b:.2f}"
            for c, b in zip(classes, test_n)
            if 0 < b < FEW_TEST_IMAGES
        ]
        data.notes = notes
        return data


def read_metadata(root: Path, paths: list[str], classes: list[str], labels: list[int]) -> dict:
    """DIR/metadata.csv (optional): a row per photo, `file` relative to DIR, `label` (checked against the
    photo's class folder where given) and any of location, camera, sequence, datetime. Returns the columns
    per photo in `paths` order ({} without the file) and the file's digest; a row naming a missing file, a
    label that contradicts the folder, or a file listed twice is one line."""
    path = root / METADATA
    if not path.is_file():
        return {"sha256": "", "columns": {}}
    import csv

    raw = path.read_bytes()
    try:
        rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV ({e}); write it as UTF-8 with a header row") from None
    if not rows or "file" not in rows[0]:
        raise DataError(
            f"{path}: needs a header with a `file` column (and any of label, {', '.join(GROUPS)}, datetime)"
        )
    index = {str(Path(p).resolve()): i for i, p in enumerate(paths)}
    by_photo: dict[int, dict] = {}
    for n, row in enumerate(rows, 2):
        f = str((root / (row.get("file") or "")).resolve())
        if f not in index:
            raise DataError(
                f"{path} line {n}: {row.get('file')!r} is not a photo of {root} (missing, unreadable or outside "
                "a class folder); fix the row or remove it"
            )
        i = index[f]
        if i in by_photo:
            raise DataError(f"{path} line {n}: {row['file']!r} is listed twice")
        if row.get("label") and row["label"] != classes[labels[i]]:
            raise DataError(
                f"{path} line {n}: label {row['label']!r} but the photo is in the {classes[labels[i]]!r} folder"
            )
        by_photo[i] = row
    columns = {c: [by_photo.get(i, {}).get(c) or None for i in range(len(paths))] for c in (*GROUPS, "datetime")}
    return {"sha256": hashlib.sha256(raw).hexdigest(), "columns": columns}


def group_column(meta: dict, by: str, root: Path) -> list[str]:
    """The `by` column for every photo, or one line naming what is missing."""
    col = meta["columns"].get(by)
    if not col:
        raise DataError(f"--split-by {by}: {root / METADATA} is missing; write one with columns file,{by}")
    missing = [i for i, g in enumerate(col) if g is None]
    if missing:
        raise DataError(
            f"--split-by {by}: {len(missing)} photo(s) have no {by} in {root / METADATA}; add rows for them"
        )
    return col


def near_duplicates(train_x: torch.Tensor, test_x: torch.Tensor, train_paths, test_paths) -> str | None:
    """A warning when training and test photos are near-identical (perceptual hashes, imagehash's pHash,
    within NEAR of 64 bits): frames of one burst on both sides make every method look better than it is."""
    import imagehash

    def hashes(x: torch.Tensor) -> np.ndarray:
        out = np.empty((len(x), 64), dtype=bool)
        for i, img in enumerate(x):
            arr = img.permute(1, 2, 0).numpy()
            out[i] = imagehash.phash(Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr)).hash.ravel()
        return out

    if not len(train_x) or not len(test_x):
        return None
    a, b = hashes(train_x), hashes(test_x)
    pairs, example = 0, None
    for j in range(len(b)):  # Hamming distance of every training hash to this test hash
        d = (a != b[j]).sum(axis=1)
        hit = np.flatnonzero(d <= NEAR)
        if hit.size:
            pairs += 1
            example = example or (train_paths[hit[0]], test_paths[j])
    if not pairs:
        return None
    return (
        f"warning: {pairs} test photo(s) have a near-identical training photo (perceptual hash within {NEAR}/64 "
        f"bits), e.g. {example[0]} and {example[1]}: frames of one burst or camera on both sides inflate every "
        "method's accuracy; write DIR/metadata.csv and pass --split-by location|camera|sequence"
    )
