"""Two-stage and post-hoc methods: the stage split, what is frozen and re-initialised, the tau-norm
arithmetic, the choice of tau on validation only, and the BatchNorm diagnostic."""

import dataclasses

import pytest
import torch

import methods as M
from bench.errors import BenchError
from bench.executors import RunOptions, run_local
from bench.models import build_model
from bench.train import split_budget

from .conftest import tiny_specs


def test_budget_is_split_by_share_and_sums_to_the_spec():
    assert split_budget(240, [0.9, 0.1]) == [216, 24]
    assert split_budget(12, [0.9, 0.1]) == [11, 1]
    assert split_budget(7, [1 / 3, 1 / 3, 1 / 3]) == [2, 2, 3]
    assert split_budget(12, [0.97, 0.03]) == [11, 1]  # rounding would leave the last stage empty
    assert split_budget(2, [0.99, 0.01]) == [1, 1]
    with pytest.raises(ValueError, match="too small"):
        split_budget(1, [0.5, 0.5])


def test_crt_and_lws_stages_freeze_the_backbone_and_touch_only_the_classifier():
    model = build_model(2, 1, 16, 0.125)
    crt = M.parse_method("os+crt").stages()
    assert [s.name for s in crt] == ["representation", "classifier"] and [s.share for s in crt] == [0.9, 0.1]
    assert crt[0].sampler.name == "os" and crt[1].sampler.name == "cbs" and crt[1].criterion.name == "ce"
    assert crt[0].trainable is None  # stage one trains everything
    assert [id(p) for p in crt[1].trainable(model)] == [id(model.fc.weight), id(model.fc.bias)]
    before = model.fc.weight.detach().clone()
    crt[1].on_start(model)
    assert not torch.equal(before, model.fc.weight)  # re-initialised
    lws = M.parse_method("lws").stages()
    w = model.fc.weight.detach().clone()
    lws[1].on_start(model)
    [scale] = lws[1].trainable(model)
    assert scale is model.fc.scale and scale.tolist() == [1.0, 1.0] and torch.equal(model.fc.inner.weight, w)
    h = torch.randn(3, model.fc.inner.in_features)
    with torch.no_grad():
        scale.copy_(torch.tensor([2.0, 0.5]))
    assert torch.allclose(model.fc(h), model.fc.inner(h) * torch.tensor([2.0, 0.5]))


@pytest.mark.parametrize("bn", ["train", "eval"])
def test_crt_run_changes_only_the_classifier_and_bn_statistics_as_asked(tmp_path, monkeypatch, bn):
    """Snapshot the model when the classifier stage starts. At the end every backbone weight is
    unchanged and the classifier has trained; BatchNorm's running statistics are re-estimated on the
    class-balanced batches with bn=train (Kang et al.'s code keeps model.train()) and kept with bn=eval."""
    from methods.decoupling import CRT

    snapshots = []
    original = CRT.stages

    def spying(self, comp):
        stages = original(self, comp)
        reset = stages[1].on_start
        stages[1].on_start = lambda m: (
            snapshots.append(({k: v.clone() for k, v in m.state_dict().items()}, m)),
            reset(m),
        )
        return stages

    monkeypatch.setattr(CRT, "stages", spying)
    [spec] = tiny_specs(["crt"], steps=20, overrides={"crt": {"bn": bn}})
    [rec] = run_local([spec], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    assert rec["status"] == "ok" and [s["steps"] for s in rec["timings"]["stages"]] == [18, 2]
    assert {h["stage"] for h in rec["history"]} == {"representation", "classifier"}
    [(before, model)] = snapshots
    after = model.state_dict()
    weights = [k for k in before if not k.startswith("fc.") and "running_" not in k and "num_batches" not in k]
    stats = [k for k in before if "running_" in k]
    assert weights and all(torch.equal(before[k], after[k]) for k in weights)
    assert stats and all(torch.equal(before[k], after[k]) for k in stats) == (bn == "eval")
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


def test_crt_default_is_the_authors_batchnorm_mode():
    [_, classifier] = M.parse_method("crt").stages()
    assert classifier.bn_training and not M.parse_method("crt", {"crt": {"bn": "eval"}}).stages()[1].bn_training
    assert M.parse_method("lws").stager.share == 0.05  # the authors' LWS configs: half of cRT's budget


def test_supcon2_pretrains_on_two_views_without_a_classification_loss(tmp_path):
    [spec] = tiny_specs(["supcon2"], steps=20)
    [rec] = run_local([spec], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    assert rec["status"] == "ok"
    first, second = rec["timings"]["stages"]
    assert first == {"name": "contrastive", "steps": 18, "train_images": 18 * 32 * 2}  # two views
    assert second["name"] == "classifier" and second["steps"] == 2
    contrastive = [h for h in rec["history"] if h["stage"] == "contrastive"]
    assert contrastive and all("supcon" in h and "ce" not in h for h in contrastive)
    assert all("ce" in h for h in rec["history"] if h["stage"] == "classifier")


def test_taunorm_divides_each_class_weight_by_its_norm_to_the_tau():
    """Kang et al.: w_c / ||w_c||^tau, bias dropped. Rows of norm 2 and 1, features (1, 1)."""
    model = torch.nn.Module()
    model.fc = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        model.fc.bias.fill_(5.0)
    tn = M.parse_method("taunorm").posthoc
    f = torch.tensor([[1.0, 1.0]])
    assert tn.apply(None, f, model, 1.0).tolist() == [[1.0, 1.0]]  # both rows unit norm
    assert tn.apply(None, f, model, 0.0).tolist() == [[2.0, 1.0]]  # tau 0: the weights, no bias
    assert tn.apply(None, f, model, 0.5).tolist()[0] == pytest.approx([2 / 2**0.5, 1.0])


def test_posthoc_value_is_chosen_on_validation_never_on_test(tmp_path):
    [spec] = tiny_specs(["pla"], steps=12)
    [rec] = run_local(
        [dataclasses.replace(spec, val_per_class=20)], tmp_path, torch.device("cpu"), RunOptions(plain=True)
    ).written
    ph = rec["metrics"]["posthoc"]
    assert ph["method"] == "pla" and ph["chosen_on"] == "validation"
    scores = {float(k): v for k, v in ph["val_balanced_acc"].items()}
    assert set(scores) == {0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}
    best = max(scores.values())
    assert scores[ph["tau"]] == best and min(abs(t - 1.0) for t, s in scores.items() if s == best) == abs(
        ph["tau"] - 1.0
    )
    assert "before_posthoc" in rec["metrics"]
    # taunorm chooses tau on validation, as Kang et al. do: a grid without a split is refused in one line,
    # and choose=fixed uses tau as it is
    with pytest.raises(BenchError, match="pass --val-per-class N .* or --set taunorm.choose=fixed"):
        tiny_specs(["taunorm"], steps=12)
    [spec] = tiny_specs(["taunorm"], steps=12, overrides={"taunorm": {"choose": "fixed"}})
    [rec] = run_local([spec], tmp_path / "b", torch.device("cpu"), RunOptions(plain=True)).written
    assert rec["metrics"]["posthoc"] == {"method": "taunorm", "tau": 1.0, "chosen_on": "default"}
    [spec] = tiny_specs(["taunorm"], steps=12, train_changes={"val_per_class": 20})
    [rec] = run_local([spec], tmp_path / "c", torch.device("cpu"), RunOptions(plain=True)).written
    assert (
        rec["metrics"]["posthoc"]["chosen_on"] == "validation"
        and len(rec["metrics"]["posthoc"]["val_balanced_acc"]) == 21
    )


def test_posthoc_choice_reads_no_test_labels(tmp_path, monkeypatch):
    """Poison the test labels seen by the choice: a choice that read them would change."""
    import bench.evaluation as T

    seen = []
    original = T.evaluate

    def spy(y, logits, counts):
        seen.append(len(y))
        return original(y, logits, counts)

    monkeypatch.setattr(T, "evaluate", spy)
    [spec] = tiny_specs(["pla"], steps=12)
    run_local([dataclasses.replace(spec, val_per_class=20)], tmp_path, torch.device("cpu"), RunOptions(plain=True))
    # 9 grid values scored on the 40 validation images, then test (60), before_posthoc (60), val (40), BN (60)
    assert seen[:9] == [40] * 9 and 60 not in seen[:9]


def test_balanced_batchnorm_diagnostic_leaves_the_model_alone(tmp_path):
    import contextlib

    from bench.evaluation import balanced_bn_metrics
    from bench.train import Normaliser
    from datasets import load_task

    task = load_task("synthetic", "fine", 0.25, 0)
    model = build_model(2, 1, 16, 0.125)
    model.train()
    norm = Normaliser(task.mean, task.std, torch.device("cpu"), channels_last=False)
    with torch.no_grad():
        model(norm(task.train_x[:64]))  # give BatchNorm some imbalanced statistics
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bn = balanced_bn_metrics(model, None, {}, task, norm, 32, 256, contextlib.nullcontext)
    assert set(bn) == {"per_class_acc", "balanced_acc", "macro_f1", "roc_auc", "images_per_class"}
    assert bn["images_per_class"] == 120  # min(largest class, 1024) images of each class
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    [spec] = tiny_specs(["ce"], steps=12)
    [rec] = run_local([spec], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    assert 0 <= rec["metrics"]["bn_balanced"]["balanced_acc"] <= 1
