"""Issue 25: where the suite departed from its authors' code, each mend against a value worked out
from the paper's or the authors' formula (written here independently, never the suite's code), and
the method revision that keeps records of two arithmetics apart."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import methods as M
from bench.executors import RunOptions, run_local
from bench.report.model import method_label
from bench.runner import pending
from bench.spec import chip_tag, numerics
from methods.drw import AUTHORS_LR_LEVELS
from methods.supcon2 import strong_augment

from .conftest import numeric_gradient, tiny_specs
from .test_baselines import FixedRng, criterion


def cui_focal_reference(logits: np.ndarray, labels: np.ndarray, alpha: np.ndarray, gamma: float) -> float:
    """Cui et al.'s `focal_loss` as their paper and code define it, in float64 numpy: per class j a
    sigmoid cross-entropy with target [j == y], times (1 - p_t)^gamma (p_t = p for the label, 1 - p
    otherwise), times the sample's class weight, summed and divided by the number of positive labels."""
    onehot = np.eye(logits.shape[1])[labels]
    p = 1 / (1 + np.exp(-logits))
    bce = -(onehot * np.log(p) + (1 - onehot) * np.log(1 - p))
    p_t = np.where(onehot == 1, p, 1 - p)
    weights = alpha[labels][:, None] * np.ones_like(logits)
    return float((weights * (1 - p_t) ** gamma * bce).sum() / onehot.sum())


@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.0])
def test_cb_focal_is_cuis_sigmoid_focal_loss_in_value_and_gradient(gamma):
    counts = [500, 40, 7]
    cb = criterion("cb", counts, {"cb": {"base": "focal", "gamma": str(gamma)}})
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=(9, 3))
    y = rng.integers(0, 3, size=9)
    alpha = cb.class_weights().double().numpy()
    expected = cui_focal_reference(z, y, alpha, gamma)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    loss = cb(zt, torch.tensor(y))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    loss.backward()
    numeric = numeric_gradient(lambda v: cui_focal_reference(v, y, alpha, gamma), z)  # of the reference formula
    assert np.allclose(zt.grad.numpy(), numeric, atol=1e-7)


def test_cb_defaults_follow_cui_and_the_old_softmax_focal_is_named():
    cb = M.parse_method("cb", {"cb": {"base": "focal"}}).criterion
    assert cb.gamma == 1.0 and cb.method_revision() == 1  # their CIFAR script's gamma; revised arithmetic
    assert M.parse_method("cb").criterion.method_revision() == 0  # the CE base did not change: same keys
    old = M.parse_method("cb", {"cb": {"base": "softmax_focal", "gamma": "2"}}).criterion
    z, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    old.setup(M.TrainContext(class_counts=[5, 3, 2], feature_dims={}, device=torch.device("cpu"), seed=0))
    p = torch.softmax(z, 1)[torch.arange(4), y]
    w = old.class_weights()[y]
    assert old(z, y).item() == pytest.approx((w * -((1 - p) ** 2) * p.log()).sum().item() / 4, rel=1e-5)


def test_pla_subtracts_tau_log_prior_by_hand():
    pla = M.parse_method("pla").posthoc
    pla.setup(M.TrainContext(class_counts=[30, 10], feature_dims={}, device=torch.device("cpu"), seed=0))
    z = torch.tensor([[2.0, 1.0], [0.0, -0.5]])
    for tau in (0.0, 1.0, 1.5):
        out = pla.apply(z, None, None, tau)
        expected = [
            [2.0 - tau * math.log(0.75), 1.0 - tau * math.log(0.25)],
            [-tau * math.log(0.75), -0.5 - tau * math.log(0.25)],
        ]
        assert out.flatten().tolist() == pytest.approx([v for row in expected for v in row], rel=1e-6)


def test_remix_at_its_kappa_boundary():
    """n_i / n_j >= kappa moves the label (>=, not >): counts 3:1 at kappa 3 is on the boundary."""
    remix = M.parse_method("remix").transform
    remix.setup(M.TrainContext(class_counts=[3, 1], feature_dims={}, device=torch.device("cpu"), seed=0))
    x, y = torch.zeros(2, 1, 1, 1), torch.tensor([0, 1])
    remix.rng = FixedRng(0.3, [1, 0])
    _, t = remix(x, y)
    assert t[0].tolist() == [0.0, 1.0]  # ratio exactly 3 = kappa, lam 0.3 < tau: the minority label
    near = M.parse_method("remix", {"remix": {"kappa": "3.01"}}).transform
    near.setup(M.TrainContext(class_counts=[3, 1], feature_dims={}, device=torch.device("cpu"), seed=0))
    near.rng = FixedRng(0.3, [1, 0])
    _, t = near(x, y)
    assert t[0].tolist() == pytest.approx([0.3, 0.7])  # just under kappa: mixup's label


def test_drw_cuts_the_rate_as_the_authors_do_and_the_old_schedule_is_a_named_choice():
    """Cao et al.: lr x0.01 from epoch 160 of 200 (the DRW switch), x0.0001 from 180."""
    stage = M.parse_method("ldam+drw").main_stage()
    state = lambda step: M.TrainState(step=step, total_steps=200)  # noqa: E731
    assert stage.lr_factor(state(100), 0.6) == 0.6  # before the switch: the run's schedule
    assert stage.lr_factor(state(160), 0.09) == AUTHORS_LR_LEVELS[0] == 0.01
    assert stage.lr_factor(state(179), 0.02) == 0.01
    assert stage.lr_factor(state(180), 0.02) == AUTHORS_LR_LEVELS[1] == 0.0001
    old = M.parse_method("ldam+drw", {"drw": {"lr_schedule": "run"}}).main_stage()
    assert old.lr_factor(state(190), 0.02) == 0.02
    # a record made before the field existed was computed with the run's schedule and says so
    rec = {
        "spec": {
            "method": "ldam+drw",
            "hparams": {
                "ldam": {"max_m": 0.5, "s": 30.0},
                "drw": {"start": 0.8, "beta": 0.9999, "reduction": "weight_sum"},
            },
        }
    }
    assert method_label(rec) == "ldam+drw [drw.lr_schedule=run]"


def test_drw_run_trains_at_the_authors_rates_after_the_switch(tmp_path, monkeypatch):
    """The harness sets the optimiser's rate from the stage's factor before every step."""
    rates = []
    original = torch.optim.SGD.step

    def spy(self, *a, **k):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    [spec] = tiny_specs(["drw"], steps=20)
    [rec] = run_local([spec], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    assert rec["status"] == "ok" and len(rates) == 20
    lr = spec.lr
    assert rates[16] == pytest.approx(lr * 0.01) and rates[17] == pytest.approx(lr * 0.01)  # steps 16-17: 0.8-0.9
    assert rates[18] == pytest.approx(lr * 0.0001) and rates[19] == pytest.approx(lr * 0.0001)
    assert rates[15] > lr * 0.05  # before the switch: the cosine schedule


@pytest.mark.parametrize("name", ["ce", "ldam", "ldam+drw"])
def test_schedule_step_puts_every_method_of_a_drw_comparison_on_the_authors_rates(tmp_path, monkeypatch, name):
    """Issue 37 item 1: under the suite's cosine, ldam+drw changes the rate at its switch where ce and ldam keep
    the cosine, so ldam vs ldam+drw confounds re-weighting and schedule. `--schedule step` gives every method the
    LDAM-DRW authors' rates for the whole run (1.0 until 80% of the budget, 0.01 until 90%, then 0.0001), so
    they differ by the re-weighting alone."""
    rates = []
    original = torch.optim.SGD.step

    def spy(self, *a, **k):
        rates.append(self.param_groups[0]["lr"] / spec.lr)
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    [spec] = tiny_specs([name], steps=20, train_changes={"schedule": "step", "warmup_steps": 2})
    [rec] = run_local([spec], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    assert rec["status"] == "ok" and rec["spec"]["schedule"] == "step"
    assert rates == pytest.approx([0.5, 1.0] + [1.0] * 14 + [0.01] * 2 + [0.0001] * 2)
    assert spec.key != tiny_specs([name], steps=20, train_changes={"warmup_steps": 2})[0].key


def test_supcon2_views_get_strong_augmentation():
    gen = torch.Generator().manual_seed(0)
    x = (torch.arange(2 * 3 * 16 * 16) % 251).to(torch.uint8).view(2, 3, 16, 16).repeat(4, 1, 1, 1)
    a = strong_augment(x, gen)
    assert a.shape == x.shape and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 255
    assert not torch.equal(a[0], a[2])  # the same image, two different draws
    b = strong_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)  # reproducible from the run's generator
    stages = M.parse_method("supcon2").stages()
    assert stages[0].augment is strong_augment and stages[1].augment is None
    assert M.parse_method("supcon2", {"supcon2": {"augment": "crop_flip"}}).stages()[0].augment is None


def test_opl_and_lws_defaults_are_the_authors():
    assert M.parse_method("opl").auxiliaries[0].lam == 1.0
    assert M.parse_method("lws").stager.share == 0.05


def test_pb_reaches_class_balanced_sampling_in_its_last_epoch():
    pb = M.parse_method("pb").sampler
    pb.setup(M.TrainContext(class_counts=[90, 10], feature_dims={}, device=torch.device("cpu"), seed=0,
                            total_steps=50, batch_size=10))  # fmt: skip
    labels = np.array([0] * 90 + [1] * 10)
    pb.on_step(M.TrainState(step=40, total_steps=50))  # the last whole epoch: 10 steps of 10
    assert pb.progress(len(labels)) == 1.0
    pb.on_step(M.TrainState(step=0, total_steps=50))
    assert pb.progress(len(labels)) == 0.0
    assert M.REGISTRY["pb"].revision == 1


# ---- method revisions, sources and the search spaces -----------------------------------------------------


class _RevisedCE(M.Criterion):
    name = "revised_ce"
    revision = 2

    def class_losses(self, logits):
        return -torch.log_softmax(logits, dim=1)


@pytest.fixture
def revised():
    """A method at revision 2, registered for one test only (the registry is shared by every test)."""
    M.register(_RevisedCE)
    yield "revised_ce"
    M.unregister("revised_ce")


def test_a_revision_enters_the_key_and_revision_zero_leaves_keys_alone(revised):
    [plain] = tiny_specs(["ce"])
    assert plain.revisions is None and "revisions" not in json.loads(plain.canonical())
    [spec] = tiny_specs([revised])
    assert spec.revisions == {"revised_ce": 2}
    older = dataclasses.replace(spec, revisions={"revised_ce": 1})
    assert older.key != spec.key


def test_a_report_never_averages_two_revisions_of_a_method():
    made = {"method": "pb", "hparams": {}}
    assert method_label({"spec": made}) == "pb (pb rev 0)"  # made before pb's revision 1
    assert method_label({"spec": made | {"revisions": {"pb": 1}}}) == "pb"


def test_a_record_names_its_method_source_and_a_changed_source_is_reported(tmp_path, capsys):
    [spec] = tiny_specs(["os"], steps=4)
    [rec] = run_local([spec], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    assert set(rec["method_source"]) == {"os", "ce"} and len(rec["method_source"]["os"]) == 12  # ce: its criterion
    assert pending([spec], tmp_path, force=False) == [] and "another version" not in capsys.readouterr().err
    path = tmp_path / f"{spec.key}.json"
    made = json.loads(path.read_text())
    assert made["method_code"] == M.parse_method("os").code()
    # the file changed but not its code (a docstring or a comment was edited): nothing to say
    path.write_text(json.dumps(made | {"method_source": {"os": "000000000000", "ce": "000000000000"}}))
    assert pending([spec], tmp_path, force=False) == [] and "another version" not in capsys.readouterr().err
    # the code changed
    path.write_text(json.dumps(made | {"method_code": {"os": "000000000000", "ce": made["method_code"]["ce"]}}))
    assert pending([spec], tmp_path, force=False) == []  # kept and skipped ...
    err = capsys.readouterr().err
    assert "1 finished run(s)" in err and "method 'os'" in err and "revision" in err  # ... but said
    # a record from before `method_code` compares the file's digest, as it did
    del made["method_code"]
    path.write_text(json.dumps(made | {"method_source": {"os": "000000000000"}}))
    assert pending([spec], tmp_path, force=False) == [] and "method 'os'" in capsys.readouterr().err


def test_the_code_digest_ignores_docstrings_comments_and_layout_but_not_code():
    from methods.base import code_digest_of_text

    plain = "def f(x):\n    return x + 1\n"
    documented = '"""Module."""\n\n\ndef f(x):  # one\n    """Add one."""\n    return (x +\n            1)\n'
    assert code_digest_of_text(plain) == code_digest_of_text(documented)
    assert code_digest_of_text(plain) != code_digest_of_text(plain.replace("+ 1", "+ 2"))


def test_sweep_auto_sweeps_what_each_method_declares(tmp_path, capsys):
    from bench.settings import sweeps_of as _sweeps

    assert _sweeps(["auto"], ["os+fsc", "la"]) == {
        "fsc": {"lam": ["0.1", "0.3", "1.0"]},
        "la": {"tau": ["0.5", "1.0", "2.0"]},
    }
    for name, cls in M.REGISTRY.items():
        for field, values in cls.search_space.items():
            default = {f.name: f.default for f in dataclasses.fields(cls)}[field]
            assert default in values, f"{name}.{field}: the default {default} is not in its search space"
            for v in values:
                M.parse_method(name, {name: {field: str(v)}})  # every value is valid


def test_the_chip_is_part_of_the_numerics():
    assert chip_tag("Intel(R) Xeon(R) Processor") == "Intel-Xeon-Processor"
    assert chip_tag("AMD EPYC 7B13 64-Core Processor") == "AMD-EPYC-7B13-64-Core-Processor"
    assert numerics("cpu", "auto", 1, "2.14.1", chip="AMD EPYC") == "cpu fp32 threads=1 torch=2.14.1 chip=AMD-EPYC"
    assert numerics("cpu", "auto", 1, "2.14.1", chip="") == "cpu fp32 threads=1 torch=2.14.1"  # old records
    assert "chip" not in numerics("cuda", "auto", None, "2.14.1")


def test_all_leaves_out_a_method_that_needs_a_validation_split_and_naming_it_is_refused(tmp_path, capsys):
    from bench.cli import main
    from bench.settings import expand_methods as _expand_methods

    assert "taunorm" not in _expand_methods(["all"], validation=False)
    assert "leaves out taunorm" in capsys.readouterr().out
    assert "taunorm" in _expand_methods(["all"], validation=True)
    argv = ["run", "--methods", "taunorm", "--dataset", "synthetic", "--preset", "tiny", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--val-per-class" in err and "taunorm.choose=fixed" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # refused before anything is written
