"""K runs trained as one stack (bench/stacking.py through bench/train.py's one loop) against the same runs
trained alone: every role of method, a failing run, and the arithmetic that K decides."""

import json

import pytest
import torch

import methods as M
from bench.cli import main
from bench.models import build_model
from bench.stacking import stacked_forward, trunk_problem
from bench.train import NonFiniteLoss, train_and_evaluate, train_stack
from datasets import load_task
from methods import parse_method

from .conftest import tiny_specs

# At least one method of every role, and the hooks the harness offers: sampler (os), transform (mixup),
# criterion (focal, la), reweighting (drw), auxiliary (fsc), stages (crt: re-initialised classifier
# stage; supcon2: two views; wb: weight decay per stage and a projection; ssb: frozen BatchNorm and a
# classifier joined at the end), a replaced classifier (ldam), several augmentations per view (bcl) and
# post-hoc (taunorm with its tau fixed).
ROLES = ["os", "mixup", "focal", "la", "drw", "fsc", "crt", "supcon2", "wb", "ssb", "ldam", "bcl", "taunorm"]
SETS = {"taunorm": {"choose": "fixed"}}


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _runs(method, seeds=(0, 1), steps=12):
    specs = tiny_specs(
        [method], seeds=seeds, steps=steps, overrides={m: dict(v) for m, v in SETS.items() if m in method}
    )
    tasks = [load_task("synthetic", s.task, s.ratio, s.data_seed) for s in specs]
    return specs, tasks


def _methods(specs):
    return [parse_method(s.method, {m: dict(h) for m, h in s.hparams.items()}) for s in specs]


def test_the_stacked_forward_is_each_models_forward():
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model(2, 1, 16, 0.125).eval())
    x = [torch.randn(4, 1, 16, 16) for _ in models]
    with torch.no_grad():
        logits, feats = stacked_forward(models, x, ("layer3",), torch.contiguous_format)
        for i, (m, xi) in enumerate(zip(models, x)):
            alone, f = m(xi, ("layer3",))
            assert torch.allclose(logits[i], alone, atol=1e-5)
            assert torch.allclose(feats[i]["layer3"], f["layer3"], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ROLES)
def test_a_stacked_run_equals_the_run_alone_in_float64(name, float64):
    """In float64 a stack differs from its runs alone only in the order of sums inside the grouped
    kernels, far below what 12 SGD steps amplify: the records are the same (losses to the 6 decimals a
    record keeps, every metric). In float32 such differences grow through training like any other (a
    1-thread and a 2-thread run differ as much), so a stacked run's numerics name its K."""
    specs, tasks = _runs(name)
    alone = [train_and_evaluate(s, t, m, torch.device("cpu")) for s, t, m in zip(specs, tasks, _methods(specs))]
    together = train_stack(specs, tasks, _methods(specs), torch.device("cpu"))
    for spec, a, b in zip(specs, alone, together):
        assert isinstance(b, dict), (spec.label(), b)
        assert a["history"] == b["history"], spec.label()
        for key in ("per_class_acc", "balanced_acc", "macro_f1", "confusion", "test_outcome", "posthoc"):
            assert a["metrics"].get(key) == b["metrics"].get(key), (spec.label(), key)
        assert a["metrics"]["roc_auc"] == pytest.approx(b["metrics"]["roc_auc"], abs=1e-12)
        assert a["convergence"] == b["convergence"]
        assert b["timings"]["stack"] == len(specs) and "stack" not in a["timings"]


class _NanForSeedOne(M.Auxiliary):
    """Test-only: a loss that becomes NaN from the fourth step in the run of seed 1."""

    name = "_nan_seed1"

    def setup(self, ctx):
        self.seed = ctx.seed

    def on_step(self, state):
        self.step = state.step

    def __call__(self, feats, labels):
        bad = self.seed == 1 and self.step >= 3
        return torch.tensor(float("nan") if bad else 0.0)


@pytest.fixture
def nan_for_seed_one():
    M.register(_NanForSeedOne)
    yield
    M.unregister(_NanForSeedOne.name)


@pytest.mark.slow
def test_a_failing_run_fails_alone_and_leaves_the_others_arithmetic_untouched(nan_for_seed_one):
    """Seed 1 of a stack of three turns NaN: it alone comes back failed, and seeds 0 and 2 are the very
    numbers (float32, bit for bit) they have in a stack of three where nothing fails."""
    bad_specs, tasks = _runs("_nan_seed1", seeds=(0, 1, 2))
    good_specs, _ = _runs("ce", seeds=(0, 1, 2))
    bad = train_stack(bad_specs, tasks, _methods(bad_specs), torch.device("cpu"))
    good = train_stack(good_specs, tasks, _methods(good_specs), torch.device("cpu"))
    assert isinstance(bad[1], NonFiniteLoss) and "by step" in str(bad[1])
    for i in (0, 2):
        assert isinstance(bad[i], dict)
        assert [h["loss"] for h in bad[i]["history"]] == [h["loss"] for h in good[i]["history"]]
        assert bad[i]["metrics"]["per_class_acc"] == good[i]["metrics"]["per_class_acc"]
        assert bad[i]["metrics"]["roc_auc"] == good[i]["metrics"]["roc_auc"]
    with pytest.raises(NonFiniteLoss):  # alone, the failure ends the run as it always did
        train_and_evaluate(bad_specs[1], tasks[1], _methods(bad_specs[1:])[0], torch.device("cpu"))


def test_a_run_does_not_depend_on_the_others_in_its_stack():
    """Groups never mix: seed 0 stacked with seed 1 or with seed 2 gives the same float32 numbers."""
    specs, tasks = _runs("os+fsc", seeds=(0, 1, 2), steps=6)
    with_1 = train_stack(specs[:2], tasks[:2], _methods(specs[:2]), torch.device("cpu"))[0]
    with_2 = train_stack(
        [specs[0], specs[2]], [tasks[0], tasks[2]], _methods([specs[0], specs[2]]), torch.device("cpu")
    )[0]
    assert with_1["history"] == with_2["history"]
    assert with_1["metrics"]["roc_auc"] == with_2["metrics"]["roc_auc"]


def test_runs_that_cannot_share_a_loop_are_refused():
    (ce,), tasks = _runs("ce", seeds=(0,))
    (crt,), _ = _runs("crt", seeds=(0,))
    with pytest.raises(ValueError, match="cannot train as one stack: their stages"):
        train_stack([ce, crt], tasks * 2, _methods([ce, crt]), torch.device("cpu"))


def test_a_model_with_another_trunk_is_named():
    model = build_model(2, 1, 16, 0.125)
    assert trunk_problem(model) is None
    model.layer2 = torch.nn.Sequential(torch.nn.Dropout())
    assert "layer2.0 is a Dropout" in trunk_problem(model)


def _records(out):
    return {r["spec"]["seed"]: r for r in (json.loads(p.read_text()) for p in out.glob("*.json"))}


@pytest.mark.parametrize("executor", ["local", pytest.param("pool", marks=pytest.mark.slow)])
def test_bench_run_stack_writes_one_record_per_run_and_resumes_by_key(tmp_path, executor):
    grid = ["run", "--dataset", "synthetic", "--task", "fine", "--methods", "os+fsc", "--ratios", "0.25"]
    grid += ["--preset", "tiny", "--steps", "6", "--seeds", "3", "--plain", "--executor", executor]
    out = tmp_path / "runs"
    assert main([*grid, "--stack", "2", "--out", str(out)]) == 0
    recs = _records(out)
    assert sorted(recs) == [0, 1, 2] and all(r["status"] == "ok" for r in recs.values())
    assert recs[0]["spec"]["numerics"].endswith(" stack=2") and recs[1]["timings"]["stack"] == 2
    assert "stack" not in recs[2]["spec"]["numerics"] and "stack" not in recs[2]["timings"]  # alone
    # seed 2 trained alone is the run a plain grid makes: the same key, the same numbers
    assert main([*grid, "--seeds", "3", "--out", str(tmp_path / "plain")]) == 0
    plain = _records(tmp_path / "plain")
    assert plain[2]["key"] == recs[2]["key"] and plain[2]["history"] == recs[2]["history"]
    assert plain[0]["key"] != recs[0]["key"]
    # a lost member is trained again inside its whole stack: the same key gives the same numbers
    (out / f"{recs[1]['key']}.json").unlink()
    before = (out / f"{recs[0]['key']}.json").stat().st_mtime_ns
    assert main([*grid, "--stack", "2", "--out", str(out)]) == 0
    again = _records(out)
    assert again[1]["history"] == recs[1]["history"] and again[1]["metrics"] == recs[1]["metrics"]
    assert (out / f"{recs[0]['key']}.json").stat().st_mtime_ns == before  # the finished member is not rewritten


def test_stack_flags_are_checked(capsys):
    assert main(["run", "--stack", "0"]) == 2 and "--stack is a count" in capsys.readouterr().err
    assert main(["run", "--stack", "2", "--compile"]) == 2 and "drop one of them" in capsys.readouterr().err


@pytest.mark.slow
def test_perf_grid_states_both_modes_and_their_ratio(tmp_path, capsys):
    argv = ["perf", "--grid", "--dataset", "synthetic", "--preset", "tiny", "--seeds", "2", "--stack", "2"]
    assert main([*argv, "--steps", "4", "--results", str(tmp_path)]) == 0
    [saved] = (tmp_path / "perf").glob("grid_*.json")
    r = json.loads(saved.read_text())
    pool, stacked = r["modes"]["pool"], r["modes"]["stacked"]
    assert pool["runs"] == stacked["runs"] == 8 and r["stack"] == 2
    assert r["speedup"] == pytest.approx(stacked["runs_per_hour"] / pool["runs_per_hour"], rel=1e-2)
    text = (tmp_path / "PERF.md").read_text()
    assert f"**{r['speedup']:.2f}x**" in text and "python -m bench perf --grid" in text
