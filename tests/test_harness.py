"""The harness end to end on synthetic data: every registered method, records, resume, failures."""

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import methods as M
from bench import store
from bench.cli import main
from bench.executors import RunOptions, run_local
from bench.models import build_model
from bench.spec import numerics

from .conftest import tiny_specs, tiny_train

RECORD_FIELDS = {"key", "status", "spec", "counts", "data", "metrics", "history", "timings", "env", "date", "wall_s"}
COMPOSITIONS = ["os+fsc", "os+focal", "cb+fsc", "ldam+drw", "os+crt", "remix+drw", "mixup+supcon2", "smote+opl"]


# The suite runs on the CPU; scripts/gpu_check.sh sets BENCH_TEST_DEVICE=cuda to run it on a GPU.
DEVICE = torch.device(os.environ.get("BENCH_TEST_DEVICE", "cpu"))


def run(methods, out, **kw):
    specs = tiny_specs(methods, **kw)
    return run_local(specs, out, DEVICE, RunOptions(plain=True)).written


def test_every_method_trains_and_writes_a_full_record(method, tmp_path):
    """Parametrised by conftest.pytest_generate_tests over the registry as it stands once this module
    is imported, so methods registered by the tests themselves are trained too."""
    comp = M.parse_method(method)
    # a method that chooses a value on validation (taunorm) gets the split it asks for
    held = {"train_changes": {"val_per_class": 5}} if comp.posthoc and comp.posthoc.needs_validation() else {}
    [rec] = run([method], tmp_path, **held)
    assert rec["status"] == "ok", rec.get("error")
    assert RECORD_FIELDS <= set(rec)
    assert all(math.isfinite(h["loss"]) for h in rec["history"])
    assert rec["history"][-1]["step"] == tiny_train()["steps"]
    assert rec["spec"]["method"] == M.parse_method(method).name
    m = rec["metrics"]
    assert len(m["per_class_acc"]) == 2 and 0 <= m["balanced_acc"] <= 1 and len(m["confusion"]) == 2
    assert rec["counts"]["train"] == ([115, 29] if held else [120, 30])  # 5 per class held out of the pool
    on_disk = json.loads(store.record_path(tmp_path, rec["key"]).read_text())
    assert on_disk["metrics"]["per_class_acc"] == m["per_class_acc"]


@pytest.mark.skipif(DEVICE.type != "cpu", reason="bitwise determinism is promised on the CPU only")
def test_same_seed_same_record_on_cpu(tmp_path):
    a = run(["os+fsc"], tmp_path / "a")[0]
    b = run(["os+fsc"], tmp_path / "b")[0]
    assert a["key"] == b["key"]
    assert a["history"] == b["history"] and a["metrics"] == b["metrics"]
    c = run(["os+fsc"], tmp_path / "c", seeds=(1,))[0]
    assert c["history"] != a["history"]


def test_hparams_are_resolved_into_the_record(tmp_path):
    [rec] = run(["fsc"], tmp_path, overrides={"fsc": {"lam": "0.3", "layers": "layer2,layer4"}})
    assert rec["spec"]["hparams"] == {
        "fsc": {"lam": 0.3, "layers": ["layer2", "layer4"], "centre": False, "balance": "none"}
    }
    [default] = run(["fsc"], tmp_path)
    assert default["key"] != rec["key"]


def test_resume_runs_only_the_missing_record(tmp_path):
    first = run(["ce", "os"], tmp_path, ratios=(1.0, 0.25))
    assert len(first) == 4
    victim = first[2]
    store.record_path(tmp_path, victim["key"]).unlink()
    second = run(["ce", "os"], tmp_path, ratios=(1.0, 0.25))
    assert [r["key"] for r in second] == [victim["key"]]
    assert run(["ce", "os"], tmp_path, ratios=(1.0, 0.25)) == []  # nothing left to do


@dataclass
class ExplodingLoss(M.Criterion):
    """A criterion that returns NaN: the run must be recorded as failed, the grid must go on.
    Registered only inside its test (it must not join the test that trains every method)."""

    name = "test_nan"

    def class_losses(self, logits):
        return logits * float("nan")


def test_nan_loss_is_a_failed_record_and_the_grid_goes_on(tmp_path):
    M.register(ExplodingLoss)
    try:
        recs = run(["test_nan", "ce"], tmp_path)
    finally:
        M.unregister("test_nan")
    by = {r["spec"]["method"]: r for r in recs}
    assert by["test_nan"]["status"] == "failed" and "NonFiniteLoss" in by["test_nan"]["error"]
    assert by["ce"]["status"] == "ok"
    assert not store.is_done(tmp_path, by["test_nan"]["key"])


@M.register
@dataclass
class CenterPull(M.Auxiliary):
    """A method defined only here: pulls pooled layer2 features towards their class mean."""

    name = "test_centerpull"
    lam: float = 0.1

    @property
    def taps(self):
        return ("layer2",)

    def __call__(self, feats, targets):
        h = feats["layer2"].float()
        loss = 0
        for c in targets.unique():
            hc = h[targets == c]
            loss = loss + ((hc - hc.mean(0)) ** 2).sum(1).mean()
        return self.lam * loss


def test_a_method_defined_in_a_test_runs_through_the_cli(tmp_path, capsys):
    rc = main(
        [
            "run",
            "--dataset",
            "synthetic",
            "--methods",
            "test_centerpull,os+test_centerpull",
            "--preset",
            "tiny",
            "--ratios",
            "0.25",
            "--set",
            "test_centerpull.lam=0.2",
            "--out",
            str(tmp_path),
            "--plain",
            "--executor",
            "local",
        ]
    )
    assert rc == 0
    recs = [r for _, r in store.iter_records(tmp_path)]
    assert sorted(r["spec"]["method"] for r in recs) == ["os+test_centerpull", "test_centerpull"]
    assert all(r["status"] == "ok" and r["spec"]["hparams"]["test_centerpull"]["lam"] == 0.2 for r in recs)
    assert all("test_centerpull" in r["history"][0] for r in recs)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "ce,dropout"], "unknown method 'dropout'"),
        (["--methods", "os+os"], "names a method twice"),
        (["--ratios", "0"], "outside (0, 1]"),
        (["--ratios", "abc"], "not a number"),
        (["--task", "medium"], "unknown task"),
        (["--dataset", "imagenet"], "unknown dataset"),
        (["--set", "fsc.lam"], "METHOD.PARAM=VALUE"),
        (["--set", "focal.gamma=1", "--methods", "ce"], "no method of --methods uses"),
        (["--dataset", "folder", "--data-root", "/nonexistent/photos"], "does not exist"),
        (["--seeds", "0"], "count of seeds"),
        (["--val-per-class", "-5"], "--val-per-class is a count"),
        (["--threads", "0"], "--threads must be between 1 and"),
        (["--threads", "100000"], "--threads must be between 1 and"),
        (["--methods", "os+la"], "corrects for the class prior twice"),
        (["--methods", "fsc", "--set", "fsc.lam=-3"], "out of range"),
        (["--sweep", "fsc.lam=|", "--methods", "fsc"], "has no values"),
    ],
)
def test_bad_cli_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    rc = main(
        ["run", "--dataset", "synthetic", "--preset", "tiny", "--out", str(tmp_path), *argv]
        if "--dataset" not in argv
        else ["run", "--preset", "tiny", "--out", str(tmp_path), *argv]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(Path(tmp_path).glob("*.json")) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--concurrency", "abc"], "--concurrency and --batched take counts"),
        (["--batched", "1"], "--batched counts must be >= 2"),
        (["--repeats", "0"], "must be >= 1"),
        (["--grid", "--stack", "1"], "needs --seeds >= 2 and --stack >= 2"),
    ],
)
def test_bad_perf_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(["perf", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_weights_file_is_loaded(tmp_path):
    from bench.models import load_weights

    src = build_model(2, 1, 16, 0.125)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = build_model(3, 1, 16, 0.125)  # another head: fc is skipped, the trunk loaded
    info = load_weights(dst, str(tmp_path / "w.pt"))
    assert torch.equal(dst.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
    assert "fc.weight" in info["skipped"] and info["loaded"] > 50
    (tmp_path / "bad.pt").write_bytes(b"nope")

    def run_with(weights, out):
        argv = ["run", "--dataset", "synthetic", "--preset", "tiny", "--ratios", "1", "--methods", "ce"]
        return main([*argv, "--weights", str(weights), "--out", str(out), "--plain"])

    # a bad file is one line before any run (it used to be one failed record per run)
    assert run_with(tmp_path / "bad.pt", tmp_path / "runs") == 2
    assert list(store.iter_records(tmp_path / "runs")) == []
    assert run_with(tmp_path / "w.pt", tmp_path / "runs2") == 0
    [(_, rec)] = list(store.iter_records(tmp_path / "runs2"))
    w = rec["model_info"]["weights"]  # what was loaded is recorded, not thrown away
    assert w["loaded"] > 50 and w["skipped"] == [] and rec["spec"]["weights_sha256"]


@pytest.mark.slow
def test_pretrained_config_sets_stem_and_normalisation_and_the_key(tmp_path):
    """A weights file with a pretrained config (as timm's pretrained_cfg) gets the stem and input
    statistics it was trained with, and an ImageNet-style 3-channel conv1 is adapted for grey images."""
    import json

    src = build_model(10, 3, 96, 0.125)  # a 7x7 stem (images > 64 px), 3 input channels
    torch.save(src.state_dict(), tmp_path / "w.pt")
    cfg = {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3], "stem": "imagenet"}
    (tmp_path / "w.pt.json").write_text(json.dumps(cfg))
    argv = ["run", "--dataset", "synthetic", "--preset", "tiny", "--ratios", "1", "--methods", "ce", "--plain"]
    assert main([*argv, "--weights", str(tmp_path / "w.pt"), "--out", str(tmp_path / "a")]) == 0
    [(_, rec)] = list(store.iter_records(tmp_path / "a"))
    info = rec["model_info"]
    assert info["weights"]["pretrained_cfg"] == cfg and info["input_mean"] == [0.5] and info["input_std"] == [0.25]
    assert "conv1.weight: 3 input channels summed for 1-channel images" in info["weights"]["adapted"]
    assert "conv1.weight" not in info["weights"]["skipped"]  # the 7x7 stem of the 16 px images loaded
    (tmp_path / "w.pt.json").write_text(json.dumps(cfg | {"std": [0.3, 0.3, 0.3]}))
    assert main([*argv, "--weights", str(tmp_path / "w.pt"), "--out", str(tmp_path / "b")]) == 0
    [(_, other)] = list(store.iter_records(tmp_path / "b"))
    assert other["key"] != rec["key"]  # the config is part of what the key holds
    (tmp_path / "w.pt.json").write_text(json.dumps({"stem": "vit"}))
    assert main([*argv, "--weights", str(tmp_path / "w.pt"), "--out", str(tmp_path / "c")]) == 2


def test_taps_are_computed_only_when_asked():
    m = build_model(2, 1, 16, 0.125)
    _, feats = m(torch.randn(2, 1, 16, 16))
    assert feats == {}
    logits, feats = m(torch.randn(2, 1, 16, 16), ("layer1", "layer4"))
    assert set(feats) == {"layer1", "layer4"} and feats["layer1"].shape == (2, m.widths[0])
    assert build_model(2, 3, 96, 1.0).conv1.kernel_size == (7, 7)  # larger images keep the ImageNet stem


def test_augment_crops_and_flips_whole_batches():
    from bench.train import augment

    x = torch.arange(2 * 25, dtype=torch.uint8).view(2, 1, 5, 5)
    out = augment(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(2):  # each output is a shifted (maybe mirrored) window of the zero-padded input
        padded = torch.nn.functional.pad(x[i, 0], (2, 2, 2, 2))
        windows = [padded[r : r + 5, c : c + 5] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i, 0], w) or torch.equal(out[i, 0], w.flip(1)) for w in windows)


def test_precision_enters_the_key_only_when_not_the_default(tmp_path):
    [auto] = tiny_specs(["ce"])
    assert '"precision"' not in auto.canonical()  # keys of records made before the field existed hold
    bf16 = dataclasses.replace(auto, precision="bf16", numerics=numerics("cpu", "bf16", 1))
    assert bf16.key != auto.key and '"precision":"bf16"' in bf16.canonical()
    [rec] = run_local([bf16], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    assert rec["status"] == "ok" and rec["spec"]["precision"] == "bf16"
    assert all(math.isfinite(h["loss"]) for h in rec["history"])


def test_sweep_expands_every_combination_and_records_validation_metrics(tmp_path):
    specs = tiny_specs(
        ["fsc", "os+fsc", "ce"], sweeps={"fsc": {"lam": ["0.1", "1"], "layers": ["layer4", "layer3,layer4"]}}
    )
    by_method = {}
    for s in specs:
        by_method.setdefault(s.method, []).append(
            (s.hparams["fsc"]["lam"], tuple(s.hparams["fsc"]["layers"])) if "fsc" in s.hparams else None
        )
    assert (
        sorted(by_method["fsc"])
        == sorted(by_method["os+fsc"])
        == [(0.1, ("layer3", "layer4")), (0.1, ("layer4",)), (1.0, ("layer3", "layer4")), (1.0, ("layer4",))]
    )
    assert by_method["ce"] == [None]
    [spec] = tiny_specs(["ce"])
    [rec] = run_local([dataclasses.replace(spec, val_per_class=20)], tmp_path, DEVICE, RunOptions(plain=True)).written
    assert rec["counts"]["val"] == [20, 20] and 0 <= rec["metrics"]["val"]["balanced_acc"] <= 1
    assert rec["counts"]["train"] == [100, 25]
