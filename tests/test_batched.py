"""K runs trained as one grouped model (bench/batched.py) against the same K runs trained alone."""

import numpy as np
import pytest
import torch

from bench.batched import batchable, group_models, train_batched, ungroup
from bench.models import build_model
from bench.train import train_and_evaluate
from datasets import load_task
from methods import parse_method

from .conftest import tiny_specs

METHODS = ["ce", "os+fsc", "focal", "supcon", "mixup", "cbs+opl"]


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _runs(methods, seeds=(0, 1), steps=12):
    specs = [s for s in tiny_specs(methods, seeds=seeds, steps=steps)]
    tasks = [load_task("synthetic", s.task, s.ratio, s.data_seed) for s in specs]
    return specs, tasks


def test_grouping_and_ungrouping_keeps_every_model():
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model(2, 1, 16, 0.125))
    grouped = group_models(models).eval()
    for m in models:
        m.eval()
    x = [torch.randn(4, 1, 16, 16) for _ in models]
    with torch.no_grad():
        out, feats = grouped(torch.cat(x, 1), ("layer3",))
        for i, (m, xi) in enumerate(zip(models, x)):
            logits, f = m(xi, ("layer3",))
            assert torch.allclose(out[:, i], logits, atol=1e-5)
            assert torch.allclose(feats["layer3"].view(4, 3, -1)[:, i], f["layer3"], atol=1e-5)
    copies = [build_model(2, 1, 16, 0.125) for _ in models]
    ungroup(grouped, copies)
    for m, c in zip(models, copies):
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), c.state_dict().values()))


@pytest.mark.slow
def test_k_runs_as_one_grouped_model_equal_k_separate_runs_in_float64(float64):
    """In float64 the grouped model's arithmetic differs from the separate models' only in summation
    order, far below what 12 SGD steps amplify: the records are the same (losses to the 6 decimals a
    record keeps, every metric). In float32 the same order differences grow through training like any
    other (a 1-thread and a 2-thread run differ as much), so batched records carry their own numerics."""
    specs, tasks = _runs(METHODS)
    alone = [
        train_and_evaluate(s, t, parse_method(s.method, s.hparams), torch.device("cpu")) for s, t in zip(specs, tasks)
    ]
    together = train_batched(specs, tasks, [parse_method(s.method, s.hparams) for s in specs], torch.device("cpu"))
    assert len(together) == len(specs) == 2 * len(METHODS)
    for spec, a, b in zip(specs, alone, together):
        assert a["history"] == b["history"], spec.label()
        for key in ("per_class_acc", "balanced_acc", "macro_f1", "confusion"):
            assert a["metrics"][key] == b["metrics"][key], (spec.label(), key)
        assert a["metrics"]["roc_auc"] == pytest.approx(b["metrics"]["roc_auc"], abs=1e-12)
        assert b["timings"]["batched_with"] == len(specs)


@pytest.mark.slow
def test_in_float32_the_first_steps_agree_to_rounding():
    specs, tasks = _runs(["ce", "os+fsc"], steps=3)
    alone = [
        train_and_evaluate(s, t, parse_method(s.method, s.hparams), torch.device("cpu")) for s, t in zip(specs, tasks)
    ]
    together = train_batched(specs, tasks, [parse_method(s.method, s.hparams) for s in specs], torch.device("cpu"))
    for a, b in zip(alone, together):
        la, lb = np.array([h["loss"] for h in a["history"]]), np.array([h["loss"] for h in b["history"]])
        assert np.allclose(la, lb, rtol=1e-4), (la, lb)


@pytest.mark.parametrize("refused, why", [("crt", "stages"), ("ldam", "changes the classifier"), ("supcon2", "stages")])
def test_runs_that_cannot_share_a_model_are_refused(refused, why):
    specs, tasks = _runs(["ce", refused], seeds=(0,))
    comps = [parse_method(s.method, s.hparams) for s in specs]
    assert why in batchable(specs, tasks, comps)
    with pytest.raises(ValueError, match="cannot be batched"):
        train_batched(specs, tasks, comps, torch.device("cpu"))
