"""Issue 25's new baselines (Weight Balancing, Balanced Contrastive Learning, the Square-root Sampling
Branch): each loss against its paper's formula written here independently (loops, numpy, float64), and
each method's stages, hooks and evaluation on tiny training runs. The side-by-side runs of the authors'
code are scripts/compare_authors.py (results/reference_checks.md)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import methods as M
from bench.executors import RunOptions, run_local
from methods import parse_method
from methods.bcl import balanced_contrastive_loss
from methods.ssb import SquareRootBranchClassifier, ssb_probabilities
from methods.wb import MaxNorm

from .conftest import numeric_gradient, tiny_specs

ROOT = Path(__file__).resolve().parents[1]


def run_one(tmp_path, method, steps=24, **kw):
    [spec] = tiny_specs([method], steps=steps, **kw)
    [rec] = run_local([spec], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    assert rec["status"] == "ok", rec.get("error")
    return rec


# ---- Balanced Contrastive Learning ---------------------------------------------------------------


def bcl_reference(z: np.ndarray, prototypes: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Zhu et al., Eq. 6-7, anchor by anchor: features are the 2B views and the C prototypes; for anchor a
    the denominator is sum over classes j of (1/|j|) sum_{k in j, k != a} exp(f_a.f_k / T), |j| the
    number of features of class j other than a; the loss is minus the mean over a's positives of
    log(exp(f_a.f_p / T) / denominator), averaged over the 2B anchors."""
    feats = np.concatenate([z, prototypes])
    t = np.concatenate([labels, labels, np.arange(len(prototypes))])
    total = 0.0
    for a in range(len(z)):
        others = [k for k in range(len(feats)) if k != a]
        denominator = 0.0
        for j in range(len(prototypes)):
            members = [k for k in others if t[k] == j]
            denominator += sum(math.exp(feats[a] @ feats[k] / temperature) for k in members) / len(members)
        positives = [k for k in others if t[k] == t[a]]
        total += -np.mean([feats[a] @ feats[p] / temperature - math.log(denominator) for p in positives])
    return total / len(z)


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("classes,b", [(2, 5), (3, 4), (5, 3)])
def test_bcl_loss_is_the_papers_class_averaged_formula_in_value_and_gradient(classes, b):
    rng = np.random.default_rng(classes)
    z, p = unit_rows(rng.normal(size=(2 * b, 6))), unit_rows(rng.normal(size=(classes, 6)))
    y = rng.integers(0, classes, size=b)
    zt = torch.tensor(z, requires_grad=True)
    loss = balanced_contrastive_loss(zt, torch.tensor(p), torch.tensor(y), 0.1)
    assert loss.item() == pytest.approx(bcl_reference(z, p, y, 0.1), rel=1e-12)
    loss.backward()
    numeric = numeric_gradient(lambda v: bcl_reference(v, p, y, 0.1), z)
    assert np.allclose(zt.grad.numpy(), numeric, atol=1e-6)


def test_bcl_class_averaging_differs_from_plain_supcon_by_the_class_counts():
    """A hand case: one anchor class with many features and one rare class. With the class sizes in the
    denominator removed (every |j| = 1) the loss is SupCon with prototypes; BCL down-weights the frequent
    class's negatives, so for an anchor of the rare class it is smaller."""
    z = unit_rows(np.array([[1.0, 0.0], [1.0, 0.1], [0.9, 0.2], [0.0, 1.0], [0.1, 1.0], [0.2, 0.9]]))
    # B = 3: labels (0, 0, 1); views 1 are rows 0-2, views 2 rows 3-5 (class 0 rows point along x)
    z = np.concatenate([z[[0, 1, 3]], z[[2, 0, 4]]])
    y = np.array([0, 0, 1])
    p = unit_rows(np.array([[1.0, 0.05], [0.05, 1.0]]))
    value = balanced_contrastive_loss(torch.tensor(z), torch.tensor(p), torch.tensor(y), 1.0).item()
    assert value == pytest.approx(bcl_reference(z, p, y, 1.0), rel=1e-12)


def test_bcl_trains_ce_on_the_plain_view_and_contrasts_the_two_strong_views(tmp_path, monkeypatch):
    from methods import bcl as bcl_module

    seen_rows, strong_calls = [], []
    la = M.REGISTRY["la"]
    original_losses, original_augment = la.class_losses, bcl_module.strong_augment

    def spy_losses(self, logits):
        seen_rows.append(len(logits))
        return original_losses(self, logits)

    def spy_augment(x, gen, min_scale=0.2):
        strong_calls.append(min_scale)
        return original_augment(x, gen, min_scale)

    monkeypatch.setattr(la, "class_losses", spy_losses)
    monkeypatch.setattr(bcl_module, "strong_augment", spy_augment)
    rec = run_one(tmp_path, "bcl", steps=6)
    assert rec["timings"]["stages"] == [{"name": "train", "steps": 6, "train_images": 6 * 32 * 3}]
    assert set(seen_rows) == {32}  # the criterion saw one view of the batch of 32, not three
    assert strong_calls == [0.08] * 12  # two strong views per step, torchvision's crop scale
    assert all({"la", "bcl_contrast"} <= set(h) for h in rec["history"])
    assert rec["spec"]["hparams"] == {"bcl": {"beta": 0.35, "temperature": 0.07, "proj_dim": 128, "scale": 30.0}}


def test_bcl_prototypes_come_from_the_cosine_classifier_and_train_it():
    comp = M.parse_method("bcl")
    from bench.models import build_model

    model = build_model(2, 1, 28, 0.125)
    comp.adapt_model(model)
    from methods.ldam import CosineClassifier

    assert isinstance(model.fc, CosineClassifier) and comp.stager.term.classifier is model.fc
    comp.setup(M.TrainContext([90, 10], model.feature_dims, torch.device("cpu"), 0, batch_prior=[0.9, 0.1]))
    feats = {"layer4": torch.randn(3 * 4, model.feature_dims["layer4"])}
    loss = comp.stager.term(feats, torch.tensor([0, 1, 0, 0] * 3))
    loss.backward()
    assert model.fc.weight.grad is not None and model.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("spec", ["os+bcl", "bcl+la", "bcl+ldam", "crt+bcl"])
def test_bcl_refuses_a_second_prior_correction_or_classifier(spec):
    with pytest.raises(M.MethodError, match="twice|two methods of role"):
        M.parse_method(spec)


def test_bcl_refuses_another_criterion_in_one_line(tmp_path, capsys):
    with pytest.raises(M.MethodError, match="brings its own loss"):
        M.parse_method("bcl+focal").stages()
    from bench.cli import main

    args = ["run", "--dataset", "synthetic", "--preset", "tiny", "--methods", "bcl+focal", "--out", str(tmp_path)]
    assert main(args) == 2  # refused before any run, not as failed records
    assert "brings its own loss" in capsys.readouterr().err and not list(tmp_path.glob("*.json"))


# ---- Weight Balancing ----------------------------------------------------------------------------


def wb_loss_reference(z: np.ndarray, y: np.ndarray, counts, beta: float) -> float:
    """Alshammari et al.'s stage-two loss as their code defines it: p = softmax(z); per entry (i, j) the
    binary cross-entropy of p_ij against [j == y_i], times the class-balanced weight of y_i
    ((1 - beta) / (1 - beta^n), normalised to sum to C), averaged over the B x C entries."""
    w = (1 - beta) / (1 - beta ** np.asarray(counts, dtype=np.float64))
    w = w / w.sum() * len(counts)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    t = np.eye(z.shape[1])[y]
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    return float((w[y][:, None] * bce).mean())


def test_wb_stage_two_loss_is_the_authors_class_balanced_bce_on_softmax_in_value_and_gradient():
    counts = [4000, 300, 20]
    rng = np.random.default_rng(3)
    z, y = rng.normal(0, 2, size=(10, 3)), rng.integers(0, 3, size=10)
    loss_fn = M.parse_method("wb").stager.stages(M.parse_method("wb"))[1].criterion
    loss_fn.setup(M.TrainContext(counts, {}, torch.device("cpu"), 0))
    loss_fn.weight = loss_fn.weight.double()
    zt = torch.tensor(z, requires_grad=True)
    loss = loss_fn(zt, torch.tensor(y))
    assert loss.item() == pytest.approx(wb_loss_reference(z, y, counts, 0.9999), rel=1e-6)  # weights: float32
    loss.backward()
    numeric = numeric_gradient(lambda v: wb_loss_reference(v, y, counts, 0.9999), z)
    assert np.allclose(zt.grad.numpy(), numeric, rtol=1e-5, atol=1e-8)


def test_maxnorm_scales_only_the_rows_above_the_threshold_onto_it():
    """Norms 1, 2, 5 at the start: limit = 1 + 0.1 (5 - 1) = 1.4. After a step to norms 1, 3, 1.2 the
    projection leaves rows 1 and 3 and scales row 2 to norm 1.4, keeping its direction."""
    fc = torch.nn.Linear(2, 3)
    model = torch.nn.Module()
    model.fc = fc
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]))
        projection = MaxNorm(0.1)
        projection.start(model)
        assert projection.limit.item() == pytest.approx(1.4)
        fc.weight.copy_(torch.tensor([[0.6, 0.8], [0.0, 3.0], [1.2, 0.0]]))
        bias = fc.bias.clone()
        projection(model)
    assert torch.allclose(fc.weight, torch.tensor([[0.6, 0.8], [0.0, 1.4], [1.2, 0.0]]))
    assert torch.equal(fc.bias, bias)  # the bias is not constrained


def test_wb_trains_with_its_weight_decays_and_ends_inside_the_maxnorm_ball(tmp_path, monkeypatch):
    decays, ends = [], []
    original_sgd = torch.optim.SGD

    def spy_sgd(params, **kw):
        opt = original_sgd(params, **kw)
        decays.extend(g["weight_decay"] for g in opt.param_groups)
        return opt

    from methods import wb as wb_module

    original_call = wb_module.MaxNorm.__call__

    def spy_call(self, model):
        original_call(self, model)
        ends.append((model.fc.weight.detach().norm(dim=1).max().item(), self.limit.item()))

    monkeypatch.setattr(torch.optim, "SGD", spy_sgd)
    monkeypatch.setattr(wb_module.MaxNorm, "__call__", spy_call)
    rec = run_one(tmp_path, "wb", steps=40)
    assert [s["steps"] for s in rec["timings"]["stages"]] == [39, 1]
    assert decays == [5e-3, 0.1]
    assert len(ends) == 1 and ends[0][0] <= ends[0][1] + 1e-6
    assert all("cb_softmax_bce" in h for h in rec["history"] if h["stage"] == "classifier")


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_wb_projects_once_per_epoch_as_the_authors_or_after_every_step_when_asked(tmp_path, monkeypatch, every):
    """Issue 37 item 1: the authors' utils/trainval.py calls pgdFunc.PGD(model) once per epoch, after its last
    batch; the suite projected after every step of stage two. Now `wb.project=epoch` (the default) projects
    at each pass's end and after the stage's last step; `wb.project=step` keeps the old arithmetic."""
    from methods import wb as wb_module

    calls = []
    original_call = wb_module.MaxNorm.__call__

    def spy_call(self, model):
        calls.append(1)
        original_call(self, model)

    monkeypatch.setattr(wb_module.MaxNorm, "__call__", spy_call)
    rec = run_one(tmp_path, "wb", steps=40, overrides={"wb": {"share": "0.5", "project": every}})
    n = rec["timings"]["stages"][1]["steps"]
    per_epoch = sum(rec["counts"]["train"]) // rec["timings"]["batch_size"]  # full batches per pass (drop-last)
    assert n == 20 and 1 < per_epoch < n  # several passes, the last one cut short by the budget
    assert len(calls) == (n if every == "step" else math.ceil(n / per_epoch))
    # the default (the suite's per-step arithmetic, the records' own) is left out of the key; the authors' is in it
    assert rec["spec"]["hparams"]["wb"].get("project") == (None if every == "step" else "epoch")


def test_wb_at_its_default_projection_keeps_the_committed_records_keys():
    """`wb.project` was added after os+wb records were committed (and raced): at its default, the arithmetic
    those records were made with, a run's key must be theirs, or every grid would train them again; the
    authors' schedule is a new key. The run is built back with the value the key left out."""
    from bench.runner import method_of
    from bench.spec import RunSpec

    path = ROOT / "results" / "runs" / "0be82f946139803c.json"  # os+wb, animals fine 1:0.01, quick, seed 0
    spec = json.loads(path.read_text())["spec"]
    assert spec["method"] == "os+wb" and "project" not in spec["hparams"]["wb"]
    planned = RunSpec.from_dict(spec | {"hparams": parse_method("os+wb").key_hparams()})
    assert planned.key == path.stem
    assert method_of(planned).stager.project == "step"
    authors = parse_method("os+wb", {"wb": {"project": "epoch"}}).key_hparams()
    assert authors["wb"]["project"] == "epoch"
    assert RunSpec.from_dict(spec | {"hparams": authors}).key != path.stem


@pytest.mark.parametrize("spec,ok", [("os+wb", True), ("wb+la", False), ("crt+wb", False), ("wb+pla", False)])
def test_wb_composes_with_a_sampler_but_not_a_second_prior_correction(spec, ok):
    if ok:
        M.parse_method(spec)
    else:
        with pytest.raises(M.MethodError, match="twice|two methods of role"):
            M.parse_method(spec)


# ---- Square-root Sampling Branch -----------------------------------------------------------------


def test_ssb_prediction_takes_frequent_classes_from_the_instance_branch_and_the_rest_from_sqrt():
    """Cunha et al.'s prediction model: softmax of each branch, masked by the class's frequency bin, added."""
    zi, zs = np.array([[2.0, 0.0, -1.0]]), np.array([[0.0, 1.0, 1.0]])
    mask = np.array([1.0, 0.0, 0.0])  # class 0 has at least `many_shot` images
    soft = lambda v: np.exp(v) / np.exp(v).sum()  # noqa: E731
    expected = soft(zi[0]) * mask + soft(zs[0]) * (1 - mask)  # 0.8438, 0.4223, 0.4223
    got = ssb_probabilities(torch.tensor(zi), torch.tensor(zs), torch.tensor(mask))[0].numpy()
    assert np.allclose(got, expected) and np.allclose(expected, [0.8437947, 0.4223188, 0.4223188], atol=1e-6)


def test_ssb_branch_trains_the_sqrt_head_only_then_joins_the_two():
    fc = torch.nn.Linear(4, 2)
    head = SquareRootBranchClassifier(fc, torch.tensor([True, False]))
    x = torch.randn(5, 4)
    assert torch.equal(head(x), head.sqrt(x))  # while stage two trains
    head.joined = True
    joined = head(x).exp()
    assert torch.allclose(joined[:, 0], torch.softmax(fc(x), 1)[:, 0])
    assert torch.allclose(joined[:, 1], torch.softmax(head.sqrt(x), 1)[:, 1])


def test_ssb_run_keeps_the_backbone_and_instance_head_and_uses_square_root_batches(tmp_path, monkeypatch):
    from methods import ssb as ssb_module

    snapshots = []
    original_add = ssb_module.SquareRootSamplingBranch._add_branch

    def spy_add(self, model):
        snapshots.append(({k: v.clone() for k, v in model.state_dict().items()}, model))
        original_add(self, model)

    monkeypatch.setattr(ssb_module.SquareRootSamplingBranch, "_add_branch", spy_add)
    rec = run_one(tmp_path, "ssb", steps=28, overrides={"ssb": {"many_shot": "100"}})
    assert [s["name"] for s in rec["timings"]["stages"]] == ["representation", "sqrt_branch"]
    assert [s["steps"] for s in rec["timings"]["stages"]] == [20, 8]  # 0.286 of 28
    [(before, model)] = snapshots
    after = model.state_dict()
    for k, v in before.items():  # bn=eval: weights and BatchNorm statistics of the first stage kept
        key = "fc.instance." + k[3:] if k.startswith("fc.") else k
        assert torch.equal(v, after[key]), k
    assert model.fc.joined and model.fc.instance_mask.tolist() == [1.0, 0.0]  # 120 and 30 training images


def test_ssb_sqrt_stage_samples_classes_in_proportion_to_the_square_root_of_their_counts():
    [_, branch] = M.parse_method("ssb").stages()
    assert branch.sampler.batch_prior([900, 100]) == pytest.approx([30 / 40, 10 / 40])
    assert not branch.bn_training  # the authors' frozen base model runs with training=False


@pytest.mark.parametrize("spec,ok", [("os+ssb", True), ("ssb+la", False), ("ssb+wb", False)])
def test_ssb_composes_with_a_sampler_but_not_a_second_prior_correction(spec, ok):
    if ok:
        M.parse_method(spec)
    else:
        with pytest.raises(M.MethodError, match="twice|two methods of role"):
            M.parse_method(spec)
