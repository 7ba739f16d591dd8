import gzip
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import datasets
from datasets import DataError, SourceData, build_task, get_source
from datasets.animals import FILES, load_verified_pickle
from datasets.tasks import PAPER_RATIOS, lt_counts

from .conftest import fashion_available


@pytest.fixture(scope="module")
def animals():
    src = get_source("animals")
    return src, src.load()


def test_animals_split_is_800_200_per_class_and_fixed(animals):
    src, data = animals
    assert data.train_x.shape == (8000, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert np.bincount(data.train_y.numpy()).tolist() == [800] * 10
    assert np.bincount(data.test_y.numpy()).tolist() == [200] * 10
    again = src.load()
    assert torch.equal(again.test_x, data.test_x) and torch.equal(again.train_y, data.train_y)


@pytest.mark.parametrize("task", ["fine", "coarse"])
def test_animals_exact_counts_on_the_paper_grid(animals, task):
    src, data = animals
    expected_minority = {1.0: 800, 0.1: 80, 0.05: 40, 0.01: 8, 0.005: 4, 0.001: 1}
    for r in PAPER_RATIOS:
        t = build_task(data, "animals", src.pairs, task, r, seed=0)
        assert t.classes == list(src.pairs[task])
        assert t.train_counts == [800, expected_minority[r]]
        assert np.bincount(t.train_y.numpy()).tolist() == t.train_counts
        assert t.test_counts == [200, 200]
        assert np.bincount(t.test_y.numpy()).tolist() == [200, 200]
        assert t.train_x.is_contiguous() and t.train_x.dtype == torch.uint8


@pytest.mark.skipif(
    not fashion_available(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)
def test_fashion_exact_counts_on_the_paper_grid():
    src = get_source("fashion")
    data = src.load()
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    for r, n_min in zip(PAPER_RATIOS, [6000, 600, 300, 60, 30, 6]):
        t = build_task(data, "fashion", src.pairs, "fine", r, seed=1)
        assert t.classes == ["T-shirt/top", "Shirt"]
        assert t.train_counts == [6000, n_min] and t.test_counts == [1000, 1000]


def test_same_seed_same_subset_and_seeds_differ(animals):
    src, data = animals
    a = build_task(data, "animals", src.pairs, "fine", 0.01, seed=3)
    b = build_task(data, "animals", src.pairs, "fine", 0.01, seed=3)
    c = build_task(data, "animals", src.pairs, "fine", 0.01, seed=4)
    assert torch.equal(a.train_x, b.train_x) and a.mean == b.mean
    minority = lambda t: t.train_x[t.train_y == 1]
    assert not torch.equal(minority(a), minority(c))
    assert torch.equal(a.test_x, c.test_x)  # the test set never depends on the seed


def _unique_source(n_train=50, n_test=20, classes=3) -> SourceData:
    """Images that encode their own id, so set membership can be checked exactly."""

    def make(n, offset):
        ids = torch.arange(offset, offset + n * classes)
        x = torch.zeros((len(ids), 1, 4, 4), dtype=torch.uint8)
        x[:, 0, 0, 0] = (ids % 256).to(torch.uint8)
        x[:, 0, 0, 1] = (ids // 256).to(torch.uint8)
        return x, torch.arange(classes).repeat_interleave(n)

    trx, trY = make(n_train, 0)
    tex, teY = make(n_test, 10_000)
    return SourceData(trx, trY, tex, teY, classes=["p", "q", "r"], origin="test")


def _ids(x):
    return set((x[:, 0, 0, 0].int() + 256 * x[:, 0, 0, 1].int()).tolist())


def test_train_and_test_are_disjoint_and_test_is_balanced():
    data = _unique_source()
    t = build_task(data, "u", {"fine": ("p", "q")}, "fine", 0.1, seed=0)
    assert _ids(t.train_x).isdisjoint(_ids(t.test_x))
    assert _ids(t.train_x) <= _ids(data.train_x) and _ids(t.test_x) <= _ids(data.test_x)
    assert np.bincount(t.test_y.numpy()).tolist() == [20, 20]
    lt = build_task(data, "u", {}, "lt", 0.1, seed=0)
    assert np.bincount(lt.test_y.numpy()).tolist() == [20, 20, 20]


def test_lt_profile_is_the_literatures():
    """The training-set sizes published for CIFAR-LT (Cao et al. 2019 and every paper since)."""
    assert lt_counts(5000, 0.01, 10) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(lt_counts(5000, 0.01, 10)) == 12406 and sum(lt_counts(5000, 0.1, 10)) == 20431
    assert sum(lt_counts(500, 0.01, 100)) == 10847 and sum(lt_counts(500, 0.1, 100)) == 19573
    data = _unique_source()
    t = build_task(data, "u", {}, "lt", 0.1, seed=0)
    assert t.train_counts == [50, 15, 5]  # int(50 * 0.1^0.5) = int(15.8)
    assert np.bincount(t.train_y.numpy()).tolist() == t.train_counts


def test_n_major_caps_and_clamped_minority_is_stated(animals):
    src, data = animals
    t = build_task(data, "animals", src.pairs, "fine", 0.001, seed=0, n_major=300)
    assert t.train_counts == [300, 1]
    assert any("clamped to 1" in n for n in t.notes)
    assert build_task(data, "animals", src.pairs, "fine", 0.01, seed=0, n_major=300).notes == []


def test_classes_option_chooses_any_pair(animals):
    src, data = animals
    t = build_task(data, "animals", src.pairs, "fine", 0.1, seed=0, classes=["cat", "cow"])
    assert t.classes == ["cat", "cow"] and t.train_counts == [800, 80]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task="medium"), "unknown task 'medium'"),
        (dict(classes=["horse", "unicorn"]), "unknown class 'unicorn'"),
        (dict(ratio=0.0), "outside (0, 1]"),
        (dict(ratio=1.5), "outside (0, 1]"),
        (dict(ratio=float("nan")), "outside (0, 1]"),
        (dict(classes=["horse"]), "takes two names"),
        (dict(n_major=0), "--n-major"),
    ],
)
def test_bad_task_requests_are_one_line_errors(animals, kwargs, message):
    src, data = animals
    args = dict(task="fine", ratio=0.1, seed=0)
    args.update(kwargs)
    with pytest.raises(DataError) as e:
        build_task(data, "animals", src.pairs, args.pop("task"), args.pop("ratio"), args.pop("seed"), **args)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(DataError, match="choose one of: animals, cifar10"):
        get_source("imagenet")


def test_checksum_mismatch_refuses_to_unpickle(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "animal_data_version_3.gz"
    with gzip.open(bad, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_verified_pickle(bad, FILES["data"][1])
    assert not marker.exists()
    with pytest.raises(DataError, match="missing data file"):
        load_verified_pickle(tmp_path / "nope.gz", FILES["data"][1])


def test_animals_load_fails_cleanly_when_pinned_hash_differs(monkeypatch):
    monkeypatch.setitem(FILES, "labels", (FILES["labels"][0], "0" * 64))
    with pytest.raises(DataError, match="refusing to unpickle"):
        get_source("animals").load()


# ---- folder -------------------------------------------------------------------------------------


def _write_images(root, counts, size=(40, 30), seed=0):
    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{i}.png")


def test_folder_loads_splits_and_resizes(tmp_path):
    _write_images(tmp_path / "photos", {"roe": 10, "water": 20})
    src = get_source("folder", data_root=str(tmp_path / "photos"), image_size=32)
    data = src.load()
    assert data.classes == ["roe", "water"]
    assert data.train_x.shape[1:] == (3, 32, 32) and data.train_x.dtype == torch.uint8
    assert np.bincount(data.train_y.numpy()).tolist() == [8, 16]
    assert np.bincount(data.test_y.numpy()).tolist() == [2, 4]
    t = build_task(data, "folder", src.pairs, "fine", 0.25, seed=0, classes=["water", "roe"])
    assert t.train_counts == [16, 4] and t.test_counts == [2, 2]
    with pytest.raises(DataError, match="--classes MAJ,MIN"):
        build_task(data, "folder", src.pairs, "fine", 0.25, seed=0)


def test_folder_uses_given_train_test_split(tmp_path):
    _write_images(tmp_path / "p" / "train", {"a": 6, "b": 5})
    _write_images(tmp_path / "p" / "test", {"a": 3, "b": 2}, seed=1)
    data = get_source("folder", data_root=str(tmp_path / "p"), image_size=16).load()
    assert np.bincount(data.train_y.numpy()).tolist() == [6, 5]
    assert np.bincount(data.test_y.numpy()).tolist() == [3, 2]


def test_folder_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    import datasets.folder as folder

    root = tmp_path / "photos"
    _write_images(root, {"a": 5, "b": 5})
    first = get_source("folder", data_root=str(root), image_size=16).load()
    cache = datasets.base.cache_dir() / "folder"
    assert len(list(cache.glob("*.pt"))) == 1

    def no_decode(*a, **k):
        raise AssertionError("decoded again although nothing changed")

    real_decode = folder._decode
    monkeypatch.setattr(folder, "_decode", no_decode)
    second = get_source("folder", data_root=str(root), image_size=16).load()
    assert torch.equal(first.train_x, second.train_x)

    monkeypatch.setattr(folder, "_decode", real_decode)
    _write_images(root, {"a": 6}, seed=5)  # rewrites a/0..4 and adds a/5
    third = get_source("folder", data_root=str(root), image_size=16).load()
    assert len(third.train_y) + len(third.test_y) == 11
    assert len(list(cache.glob("*.pt"))) == 2


@pytest.mark.parametrize(
    "layout, message",
    [
        (None, "does not exist"),
        ({"only": 3}, "needs at least two"),
        ({"a": 3, "empty": 0}, "no valid file"),
        ({"a": 3, "b": 1}, "at least 2"),
    ],
)
def test_folder_bad_input(tmp_path, layout, message):
    root = tmp_path / "photos"
    if layout is not None:
        for cls, n in layout.items():
            (root / cls).mkdir(parents=True)
            _write_images(root, {cls: n})
    with pytest.raises(DataError, match=message) as e:
        get_source("folder", data_root=str(root)).load()
    assert "\n" not in str(e.value)


def test_folder_corrupt_image_is_named(tmp_path):
    root = tmp_path / "photos"
    _write_images(root, {"a": 3, "b": 3})
    (root / "b" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="broken.jpg"):
        get_source("folder", data_root=str(root)).load()


# ---- CIFAR, through torchvision's own loader on tiny files in its format ---------------------------


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_loader_on_tiny_files_in_torchvision_format(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def batch(path, n):
        labels = (np.arange(n) % 10).tolist()
        data = rng.integers(0, 255, (n, 3072), dtype=np.uint8)
        with open(path, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)

    for i in range(1, 6):
        batch(base / f"data_batch_{i}", 20)
    batch(base / "test_batch", 30)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    # torchvision verifies every file against its md5 list: point the list at these files.
    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{i}", _md5(base / f"data_batch_{i}")] for i in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(base / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(base / "batches.meta")})
    src = get_source("cifar10", data_root=str(tmp_path))
    assert src.availability().available
    data = src.load()
    assert data.train_x.shape == (100, 3, 32, 32) and data.test_x.shape == (30, 3, 32, 32)
    assert data.classes == names
    t = build_task(data, "cifar10", src.pairs, "fine", 0.5, seed=0)
    assert t.classes == ["cat", "dog"] and t.train_counts == [10, 5] and t.test_counts == [3, 3]
    # A corrupted file fails torchvision's md5 check; without internet the error is one line.
    (base / "test_batch").write_bytes(b"garbage")
    monkeypatch.setattr(CIFAR10, "download", lambda self: (_ for _ in ()).throw(OSError("no network")))
    with pytest.raises(DataError, match="not found or corrupt"):
        get_source("cifar10", data_root=str(tmp_path)).load()


def test_fashion_missing_names_the_three_ways(tmp_path, monkeypatch):
    import datasets.fashion as fashion

    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(fashion.FashionMNIST, "download", lambda self: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(DataError) as e:
        get_source("fashion").load()
    msg = str(e.value)
    assert "--data-root" in msg and "apt-get install dataset-fashion-mnist" in msg and "download" in msg
    with pytest.raises(DataError, match="holds no Fashion-MNIST IDX files"):
        get_source("fashion", data_root=str(tmp_path)).load()


def test_fashion_corrupt_file_is_a_clear_error(tmp_path, monkeypatch):
    import datasets.fashion as fashion

    for f in fashion.IDX_FILES:
        (tmp_path / f"{f}.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="corrupt Fashion-MNIST file"):
        get_source("fashion", data_root=str(tmp_path)).load()
    assert os.environ["BENCH_CACHE"]


def test_validation_split_is_balanced_fixed_and_apart_from_train_and_test():
    data = _unique_source()
    a = build_task(data, "u", {"fine": ("p", "q")}, "fine", 0.1, seed=0, val_per_class=10)
    b = build_task(data, "u", {"fine": ("p", "q")}, "fine", 0.1, seed=1, val_per_class=10)
    assert np.bincount(a.val_y.numpy()).tolist() == [10, 10]
    assert torch.equal(a.val_x, b.val_x)  # the same validation set for every seed
    assert _ids(a.val_x).isdisjoint(_ids(a.train_x)) and _ids(a.val_x).isdisjoint(_ids(a.test_x))
    assert _ids(a.val_x) <= _ids(data.train_x)  # from the training pool, never the test split
    assert a.train_counts == [40, 4]  # the pool shrank by the held-out images
    assert a.counts_record()["val"] == [10, 10]
    with pytest.raises(DataError, match="leaves no training images"):
        build_task(data, "u", {"fine": ("p", "q")}, "fine", 0.1, seed=0, val_per_class=50)


def _cifar10_files(base: Path, per_class_train: int, per_class_test: int) -> None:
    """Tiny CIFAR-10 batch files in the original pickle format, labels in a shuffled order."""
    base.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def batch(path, labels):
        data = rng.integers(0, 255, (len(labels), 3072), dtype=np.uint8)
        data[:, 0] = np.arange(len(labels)) % 251  # a visible id in the first pixel
        with open(path, "wb") as f:
            pickle.dump({"data": data, "labels": [int(v) for v in labels]}, f)

    train = rng.permutation(np.repeat(np.arange(10), per_class_train))
    for i, part in enumerate(np.array_split(train, 5), start=1):
        batch(base / f"data_batch_{i}", part)
    batch(base / "test_batch", rng.permutation(np.repeat(np.arange(10), per_class_test)))
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)


def _point_torchvision_at(monkeypatch, base: Path) -> None:
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{i}", _md5(base / f"data_batch_{i}")] for i in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(base / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(base / "batches.meta")})


def test_cifar10_lt_is_built_as_the_literature_builds_it(tmp_path, monkeypatch):
    _cifar10_files(tmp_path / "cifar-10-batches-py", per_class_train=50, per_class_test=10)
    _point_torchvision_at(monkeypatch, tmp_path / "cifar-10-batches-py")
    src = get_source("cifar10", data_root=str(tmp_path))
    data = src.load()
    t = build_task(data, "cifar10", src.pairs, "lt", 0.1, seed=0)
    assert t.classes == data.classes and t.train_counts == lt_counts(50, 0.1, 10)
    assert t.train_counts[0] == 50 and t.train_counts[-1] == 5
    assert np.bincount(t.train_y.numpy()).tolist() == t.train_counts
    assert t.test_counts == [10] * 10 and len(t.test_y) == 100  # the full balanced test split
    # Cao et al.: np.random.seed(0); per class in label order, shuffle its indices, keep the first n_i.
    np.random.seed(0)
    expected = []
    for k, n in enumerate(t.train_counts):
        idx = np.flatnonzero(data.train_y.numpy() == k)
        np.random.shuffle(idx)
        expected.append(np.sort(idx[:n]))
    ids = lambda x: x[:, 0, 0, 0].tolist()  # noqa: E731
    assert ids(t.train_x) == ids(data.train_x[torch.from_numpy(np.concatenate(expected))])
    again = build_task(data, "cifar10", src.pairs, "lt", 0.1, seed=0)
    assert torch.equal(again.train_x, t.train_x)
    assert not torch.equal(build_task(data, "cifar10", src.pairs, "lt", 0.1, seed=1).train_x, t.train_x)


def test_cifar_archive_is_checked_against_its_published_md5_before_anything_is_unpickled(tmp_path, monkeypatch):
    import tarfile

    from torchvision.datasets import CIFAR10

    staging = tmp_path / "staging"
    _cifar10_files(staging / "cifar-10-batches-py", per_class_train=4, per_class_test=2)
    _point_torchvision_at(monkeypatch, staging / "cifar-10-batches-py")
    root = tmp_path / "root"
    root.mkdir()
    archive = root / CIFAR10.filename
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(CIFAR10, "download", lambda self: (_ for _ in ()).throw(OSError("no network")))
    # the published MD5 is not this archive's: nothing may be extracted or unpickled
    monkeypatch.setattr(pickle, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("unpickled")))
    with pytest.raises(DataError, match="not the published c58f30108f718f92721af3b95e74349a"):
        get_source("cifar10", data_root=str(root)).load()
    assert not (root / "cifar-10-batches-py").exists()
    monkeypatch.undo()
    _point_torchvision_at(monkeypatch, staging / "cifar-10-batches-py")
    monkeypatch.setattr(CIFAR10, "tgz_md5", _md5(archive))  # as if this were the published archive
    data = get_source("cifar10", data_root=str(root)).load()
    assert data.train_x.shape == (40, 3, 32, 32) and (root / "cifar-10-batches-py" / "test_batch").is_file()
