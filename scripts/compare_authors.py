"""Run the baselines' reference code beside the suite's on the same random inputs (issue 25), and their
training schedules beside the suite's (issue 37: how often a projection or a re-weighting happens, the
learning rate at each step).

The authors' files are read from snapshots of their repositories (not vendored: nothing of theirs
enters the suite) and imported from a temporary folder; each check prints the largest absolute
difference of the value and of the gradient, in float64 (float32 where their code casts to it). The
markdown it prints is committed as results/reference_checks.md.

    python scripts/compare_authors.py --wb DIR --bcl DIR --ldam DIR [--bags DIR] > results/reference_checks.md

DIR is a git directory or work tree of ShadeAlsha/LTR-weight-balancing, FlamieZhu/Balanced-
Contrastive-Learning, kaidic/LDAM-DRW and alcunha/bagoftricks4cameratraps (TensorFlow: its square-root
branch is compared by formula in tests/test_new_baselines.py; this script only records the commit read).
Schedules: Weight Balancing's `train_model` (utils/trainval.py) runs as it is on a toy loader beside the
suite's harness on a toy task, and the projections' positions are compared; LDAM-DRW's
`adjust_learning_rate` and its DRW switch (cifar_train.py, read out of the script with `ast`: the file
imports tensorboardX and parses arguments) give the rate and the weights per epoch beside the suite's.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import importlib.util
import platform
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.envinfo import cpu_name  # noqa: E402
from methods.base import TrainContext  # noqa: E402
from methods.bcl import balanced_contrastive_loss  # noqa: E402
from methods.la import LogitAdjusted  # noqa: E402
from methods.wb import MaxNorm, SoftmaxBCEClassBalanced  # noqa: E402

# Every registered method: the reference it is checked against, what was compared and where, and its named
# departures (docs/methods.md has the reasons). "this script" rows are in the table above; tests/... are
# formulas worked independently of the suite's code. tests/test_reference_checks.py fails when a built-in
# method is missing here.
EVERY_METHOD = {
    "bcl": ("FlamieZhu/Balanced-Contrastive-Learning: BalSCL, LogitAdjust", "this script (loss and gradient); "
            "tests/test_new_baselines.py (Eq. 6-7)", "128-d projection; the classification view gets crop and flip"),
    "cb": ("Cui et al.'s formula and code (TensorFlow)", "tests/test_methods.py (weights, reductions); "
           "tests/test_faithful.py (sigmoid focal base to 1e-10)",
           "none (the batch reduction as theirs; weight_sum named)"),
    "cbs": ("Kang et al.'s class-aware sampling (q = 0)",
            "tests/test_baselines.py::test_class_aware_probabilities_and_epochs", "none"),
    "ce": ("torch.nn.functional.cross_entropy", "the library itself", "none"),
    "crt": ("facebookresearch/classifier-balancing (stage two, model.train())",
            "tests/test_stages.py (frozen backbone, BatchNorm mode)", "the stage is 10% of the step budget"),
    "drw": ("kaidic/LDAM-DRW: cifar_train.py", "this script (switch epoch, rate per epoch; weighted loss); "
            "tests/test_faithful.py", "the rate before the switch: the suite's cosine, theirs 1.0 (named)"),
    "focal": ("kaidic/LDAM-DRW: FocalLoss (softmax focal)", "this script; tests/test_methods.py (gamma 0 = CE)",
              "not RetinaNet's alpha-balanced sigmoid form"),
    "fsc": ("the paper's equations (../shared/paper.md; no public code)", "tests/test_methods.py::test_fsc_matches_an_"
            "independent_computation", "none known"),
    "la": ("Menon et al.'s formula; BCL's LogitAdjust", "this script (LogitAdjust); tests/test_baselines.py", "none"),
    "ldam": ("kaidic/LDAM-DRW: LDAMLoss", "this script (loss and gradient); tests/test_baselines.py (margins)",
             "none (the scale lives in the model, the loss subtracts s * m_c)"),
    "lws": ("facebookresearch/classifier-balancing", "tests/test_stages.py; tests/test_faithful.py (defaults)",
            "the stage is 5% of the step budget"),
    "mixup": ("Zhang et al.'s rule (facebookresearch/mixup-cifar10)", "tests/test_baselines.py::test_mixup_by_hand",
              "none"),
    "opl": ("kahnchana/opl: loss.py", "run side by side in round two (equal); tests/test_baselines.py::test_opl_by_"
            "hand", "no abs, as loss.py (their training code takes it; equal on the suite's ReLU features)"),
    "os": ("imbalanced-learn RandomOverSampler", "the library itself; tests/test_methods.py::test_os_epoch_is_class_"
           "balanced_and_redrawn", "none"),
    "pb": ("Kang et al.'s progressively balanced sampling", "tests/test_faithful.py::test_pb_reaches_class_balanced_"
           "sampling_in_its_last_epoch", "none (t = linspace(0, 1, E) as theirs)"),
    "pla": ("Menon et al.'s post-hoc adjustment", "tests/test_faithful.py::test_pla_subtracts_tau_log_prior_by_hand",
            "none"),
    "remix": ("Chou et al.'s rule", "tests/test_baselines.py::test_remix_rule_by_hand; tests/test_faithful.py",
              "none"),
    "smote": ("imbalanced-learn SMOTE", "the library itself; tests/test_baselines.py", "on pixels"),
    "sqrt": ("Kang et al.'s class-aware sampling (q = 1/2)", "tests/test_baselines.py::test_class_aware_probabilities_"
             "and_epochs", "none"),
    "ssb": ("alcunha/bagoftricks4cameratraps (TensorFlow 2.5, not runnable here)", "by formula: tests/test_new_"
            "baselines.py", "their AdamW at 1e-5 with RandAugment; here the preset's SGD and augmentation"),
    "supcon": ("Khosla et al. via pytorch-metric-learning's SupConLoss", "tests/test_methods.py::test_supcon_uses_"
               "pytorch_metric_learning", "0.7x Khosla's scale; anchors without a positive left out of the mean "
               "(named)"),
    "supcon2": ("Khosla et al. (HobbitLong/SupContrast views)", "tests/test_stages.py; tests/test_faithful.py (views)",
                "as supcon; crops clip where torchvision resamples (named)"),
    "taunorm": ("Kang et al.'s tau-normalisation", "tests/test_stages.py::test_taunorm_divides_each_class_weight_by_"
                "its_norm_to_the_tau", "none"),
    "wb": ("ShadeAlsha/LTR-weight-balancing", "this script (loss, projection, projection schedule)",
           "the default projects after every step, theirs once per epoch (wb.project=epoch); rate and momentum"),
}  # fmt: skip

WB_EPOCHS, WB_BATCHES = 10, 12  # the schedule check's fine-tune: 10 epochs of 12 batches (theirs is 10 epochs)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def load(repo: Path, path: str, tmp: Path, name: str) -> types.ModuleType:
    """Import one file of the snapshot at HEAD as module `name`."""
    target = tmp / f"{name}.py"
    target.write_text(git(repo, "show", f"HEAD:{path}"))
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max())


def check_wb(repo: Path, tmp: Path) -> list[tuple]:
    reg = load(repo, "utils/regularizers.py", tmp, "wb_regularizers")
    cbl = load(repo, "utils/class_balanced_loss.py", tmp, "wb_class_balanced_loss")
    rows = []
    g = torch.Generator().manual_seed(0)
    counts = [4500, 300, 45, 5]
    c = len(counts)
    ctx = TrainContext(class_counts=counts, feature_dims={}, device=torch.device("cpu"), seed=0)
    ours = SoftmaxBCEClassBalanced(beta=0.9999)
    ours.setup(ctx)
    worst_v = worst_g = 0.0
    for trial in range(20):
        # float32: their loss casts its targets and weights to float32
        z = (torch.randn(64, c, generator=g) * (1 + trial)).requires_grad_()
        y = torch.randint(0, c, (64,), generator=g)
        zt = z.detach().clone().requires_grad_()
        ref = cbl.CB_loss(y, zt, counts, c, "softmax", 0.9999, 2.0, "cpu")
        ref.backward()
        mine = ours(z, y)
        mine.backward()
        worst_v, worst_g = max(worst_v, diff(mine, ref)), max(worst_g, diff(z.grad, zt.grad))
    rows.append(
        (
            "wb",
            "stage-two loss: CB_loss(..., 'softmax', beta 0.9999)",
            "20 batches of 64, 4 classes (float32)",
            worst_v,
            worst_g,
        )
    )

    worst = 0.0
    for _ in range(20):
        theirs_model = types.SimpleNamespace(encoder=types.SimpleNamespace(fc=nn.Linear(16, c).double()))
        ours_model = types.SimpleNamespace(fc=nn.Linear(16, c).double())
        with torch.no_grad():
            w0 = (
                torch.randn(c, 16, generator=g, dtype=torch.float64)
                * torch.rand(c, 1, generator=g, dtype=torch.float64)
                * 3
            )
            theirs_model.encoder.fc.weight.copy_(w0)
            ours_model.fc.weight.copy_(w0)
            pgd = reg.MaxNorm_via_PGD(thresh=0.1)
            pgd.setPerLayerThresh(theirs_model)
            mine = MaxNorm(0.1)
            mine.start(ours_model)
            for _ in range(5):  # a few "optimiser steps", each followed by the projection
                step = torch.randn(c, 16, generator=g, dtype=torch.float64) * 0.5
                theirs_model.encoder.fc.weight.add_(step)
                ours_model.fc.weight.add_(step)
                pgd.PGD(theirs_model)
                mine(ours_model)
                worst = max(worst, diff(ours_model.fc.weight, theirs_model.encoder.fc.weight))
    rows.append(
        ("wb", "MaxNorm projection (MaxNorm_via_PGD, thresh 0.1) after 5 steps", "20 classifiers 4 x 16", worst, None)
    )
    return rows


def check_bcl(repo: Path, tmp: Path) -> list[tuple]:
    con = load(repo, "loss/contrastive.py", tmp, "bcl_contrastive")
    # Their LogitAdjust builds its prior with torch.cuda.FloatTensor; on this CPU-only machine that
    # constructor is pointed at the CPU one for the comparison (the arithmetic is unchanged).
    cuda_float = torch.cuda.FloatTensor
    torch.cuda.FloatTensor = torch.FloatTensor
    try:
        la = load(repo, "loss/logitadjust.py", tmp, "bcl_logitadjust")
    finally:
        torch.cuda.FloatTensor = cuda_float
    rows = []
    g = torch.Generator().manual_seed(1)
    worst_v = worst_g = 0.0
    for trial in range(20):
        c, b, d = (2, 3, 5)[trial % 3], 16 + trial, 8
        counts = [1000 // (k + 1) ** 2 for k in range(c)]
        z = torch.nn.functional.normalize(torch.randn(2 * b, d, generator=g, dtype=torch.float64), dim=1)
        p = torch.nn.functional.normalize(torch.randn(c, d, generator=g, dtype=torch.float64), dim=1)
        y = torch.randint(0, c, (b,), generator=g)
        z1, p1 = z.clone().requires_grad_(), p.clone().requires_grad_()
        z2, p2 = z.clone().requires_grad_(), p.clone().requires_grad_()
        ref = con.BalSCL(counts, temperature=0.07)(p2, torch.stack([z2[:b], z2[b:]], dim=1), y)
        ref.backward()
        mine = balanced_contrastive_loss(z1, p1, y, 0.07)
        mine.backward()
        worst_v = max(worst_v, diff(mine, ref))
        worst_g = max(worst_g, diff(z1.grad, z2.grad), diff(p1.grad, p2.grad))
    rows.append(
        ("bcl", "BalSCL(temperature 0.07) on 2 views + prototypes", "20 batches, 2-5 classes", worst_v, worst_g)
    )

    worst_v = worst_g = 0.0
    for trial in range(10):
        counts = [5000, 50] if trial % 2 else [3000, 400, 12]
        c = len(counts)
        z = torch.randn(32, c, generator=g, dtype=torch.float64) * 5
        y = torch.randint(0, c, (32,), generator=g)
        ours = LogitAdjusted(tau=1.0)
        ours.setup(TrainContext(counts, {}, torch.device("cpu"), 0, batch_prior=[n / sum(counts) for n in counts]))
        ours.log_prior = ours.log_prior.double()
        theirs = la.LogitAdjust.__new__(la.LogitAdjust)
        nn.Module.__init__(theirs)
        prior = torch.tensor(counts, dtype=torch.float64) / sum(counts)
        theirs.m_list, theirs.weight = torch.log(prior).view(1, -1), None
        z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
        mine, ref = ours(z1, y), theirs(z2, y)
        mine.backward()
        ref.backward()
        worst_v, worst_g = max(worst_v, diff(mine, ref)), max(worst_g, diff(z1.grad, z2.grad))
    rows.append(
        ("bcl", "classification loss: LogitAdjust(tau 1) = the suite's la", "10 batches of 32", worst_v, worst_g)
    )
    return rows


def check_ldam(repo: Path, tmp: Path) -> list[tuple]:
    """LDAM-DRW's losses.py: `LDAMLoss` (without and with DRW's class-balanced weights) and `FocalLoss`
    against the suite's `ldam` and `focal` criteria, in float32 (their margins are float32)."""
    from methods import parse_method
    from methods.cb import class_balanced_weights

    real = torch.cuda.FloatTensor
    torch.cuda.FloatTensor = torch.FloatTensor  # their loss builds its tensors as CUDA tensors; run it on the CPU
    try:
        losses = load(repo, "losses.py", tmp, "ldam_losses")
        g = torch.Generator().manual_seed(0)
        counts = [5000, 500, 50, 5]
        c = len(counts)
        ctx = TrainContext(class_counts=counts, feature_dims={}, device=torch.device("cpu"), seed=0)
        ldam = parse_method("ldam").criterion
        ldam.setup(ctx)
        weight = class_balanced_weights(counts, 0.9999).float()
        rows = []
        for weighted in (False, True):
            theirs_loss = losses.LDAMLoss(counts, max_m=0.5, s=30, weight=weight if weighted else None)
            worst_v = worst_g = 0.0
            for _ in range(20):
                cos = (torch.rand(64, c, generator=g) * 2 - 1).requires_grad_()  # a cosine classifier's outputs
                y = torch.randint(0, c, (64,), generator=g)
                cos_t = cos.detach().clone().requires_grad_()
                ref = theirs_loss(cos_t, y)
                ref.backward()
                mine = ldam(30 * cos, y, weight if weighted else None, "weight_sum" if weighted else None)
                mine.backward()
                worst_v, worst_g = max(worst_v, diff(mine, ref)), max(worst_g, diff(cos.grad, cos_t.grad))
            what = "LDAMLoss(max_m 0.5, s 30" + (", weight = DRW's class-balanced weights)" if weighted else ")")
            rows.append(("ldam" + ("+drw" if weighted else ""), what, "20 batches of 64, 4 classes (float32)",
                         worst_v, worst_g))  # fmt: skip
        for gamma in (1.0, 2.0):
            focal = parse_method("focal", {"focal": {"gamma": str(gamma)}}).criterion
            worst_v = worst_g = 0.0
            for trial in range(20):
                z = (torch.randn(64, c, generator=g) * (1 + trial / 5)).requires_grad_()
                y = torch.randint(0, c, (64,), generator=g)
                zt = z.detach().clone().requires_grad_()
                ref = losses.FocalLoss(gamma=gamma)(zt, y)
                ref.backward()
                mine = focal(z, y)
                mine.backward()
                worst_v, worst_g = max(worst_v, diff(mine, ref)), max(worst_g, diff(z.grad, zt.grad))
            rows.append(("focal", f"FocalLoss(gamma {gamma:g})", "20 batches of 64, 4 classes (float32)", worst_v,
                         worst_g))  # fmt: skip
    finally:
        torch.cuda.FloatTensor = real
    return rows


def wb_authors_projections(repo: Path, tmp: Path) -> list[int]:
    """After which optimiser steps the authors' `train_model` calls `pgdFunc.PGD`: their loop run as it is,
    on a toy classifier and loader (WB_EPOCHS epochs of WB_BATCHES batches)."""
    if importlib.util.find_spec("skimage") is None:  # `from skimage import io, transform` at their top, unused here
        stub = types.ModuleType("skimage")
        stub.io, stub.transform = types.ModuleType("skimage.io"), types.ModuleType("skimage.transform")
        sys.modules["skimage"] = stub
    trainval = load(repo, "utils/trainval.py", tmp, "wb_trainval")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(WB_BATCHES * 8, 16, generator=g), torch.arange(WB_BATCHES * 8) % 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True)

    class Toy(nn.Module):  # their code reads model.encoder.fc
        def __init__(self):
            super().__init__()
            self.encoder = nn.Module()
            self.encoder.fc = nn.Linear(16, 4)

        def forward(self, v):
            return self.encoder.fc(v)

    model, steps, calls = Toy(), [0], []
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    opt.register_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    pgd = types.SimpleNamespace(PGD=lambda m: calls.append(steps[0]))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=100)
    with contextlib.redirect_stdout(sys.stderr):  # their progress lines; stdout is the markdown
        trainval.train_model({"train": loader}, model, nn.CrossEntropyLoss(), opt, sched, pgdFunc=pgd,
                             num_epochs=WB_EPOCHS, work_dir=str(tmp), print_each=10**6)  # fmt: skip
    return calls


def wb_suite_projections(project: str) -> tuple[list[int], int]:
    """After which of stage two's optimiser steps the suite's `wb` projects, on the synthetic task with stage
    two lasting WB_EPOCHS passes of WB_BATCHES batches; and the number of stage-two steps."""
    import methods.wb as wb_module
    from bench.executors import RunOptions, run_local
    from bench.runner import DataCache, GridRequest, expand
    from bench.spec import PRESETS, TRAIN_FLAGS, numerics
    from bench.train import _Run

    events: list[tuple[str, int]] = []
    plain_call, plain_after = wb_module.MaxNorm.__call__, _Run.after_step

    def spy_call(self, model):
        events.append(("project", 0))
        plain_call(self, model)

    def spy_after(self, k, step, loss, parts):
        events.append((self.stage.name, step))
        plain_after(self, k, step, loss, parts)

    train = {k: PRESETS["tiny"][k] for k in TRAIN_FLAGS} | {
        "model": "resnet18", "weights": None, "preset": "tiny", "numerics": numerics("cpu", "auto", 1)
    }  # fmt: skip
    cache = DataCache(None, None)
    probe = expand(GridRequest(["synthetic"], ["fine"], ["wb"], [1.0], [0], train=train), cache)
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(sys.stderr):  # a tiny run: the task's size
        [first] = run_local(probe, Path(out), torch.device("cpu"), RunOptions(plain=True)).written
    n_train = sum(first["counts"]["train"])
    batch = n_train // WB_BATCHES  # so that one pass over the sampler is WB_BATCHES full batches
    stage_two = WB_EPOCHS * WB_BATCHES
    train |= {"batch_size": batch, "steps": 2 * stage_two, "warmup_steps": 0}
    req = GridRequest(["synthetic"], ["fine"], ["wb"], [1.0], [0], train=train,
                      overrides={"wb": {"share": "0.5", "project": project}})  # fmt: skip
    [spec] = expand(req, cache)
    wb_module.MaxNorm.__call__, _Run.after_step = spy_call, spy_after
    try:
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(sys.stderr):
            [rec] = run_local([spec], Path(out), torch.device("cpu"), RunOptions(plain=True)).written
    finally:
        wb_module.MaxNorm.__call__, _Run.after_step = plain_call, plain_after
    assert rec["status"] == "ok", rec.get("error")
    done, calls = 0, []
    for kind, _ in events:  # a projection comes before its step's after_step
        if kind == "classifier":
            done += 1
        elif kind == "project":
            calls.append(done + 1)
    return calls, rec["timings"]["stages"][1]["steps"]


def check_wb_schedule(repo: Path, tmp: Path) -> list[tuple]:
    theirs = wb_authors_projections(repo, tmp)
    rows = []
    for project in ("epoch", "step"):
        ours, n = wb_suite_projections(project)
        extra = sorted(set(ours) - set(theirs))
        missing = sorted(set(theirs) - set(ours))
        rows.append(
            (
                "wb",
                f"MaxNorm schedule, `wb.project={project}`{' (default)' if project == 'step' else ''}: after "
                f"which steps of a {WB_EPOCHS}-epoch fine-tune it projects (authors: {theirs}; suite: "
                f"{ours if len(ours) <= 12 else f'every step 1-{n}'})",
                f"train_model run as it is, {WB_EPOCHS} x {WB_BATCHES} batches; the suite's harness, the same shape",
                f"{len(extra)} extra, {len(missing)} missing",
                None,
            )
        )
    return rows


def _function_from(repo: Path, path: str, name: str):
    """Function `name` of the snapshot's file `path`, compiled alone (the file's imports and argument parsing
    are not run)."""
    tree = ast.parse(git(repo, "show", f"HEAD:{path}"))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace: dict = {}
    exec(compile(ast.Module([node], []), f"{path}:{name}", "exec"), namespace)
    return namespace[name]


def _drw_switch_expression(repo: Path):
    """The right-hand side of `idx = epoch // 160` in cifar_train.py's DRW branch, as a function of epoch."""
    tree = ast.parse(git(repo, "show", "HEAD:cifar_train.py"))
    node = next(
        n for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and [t.id for t in n.targets if isinstance(t, ast.Name)] == ["idx"]
    )  # fmt: skip
    code = compile(ast.Expression(node.value), "cifar_train.py:idx", "eval")
    return lambda epoch: eval(code, {"epoch": epoch})


def check_drw_schedule(repo: Path) -> list[tuple]:
    """LDAM-DRW's learning rate and DRW switch per epoch (200 epochs) beside the suite's `ldam+drw` at the
    standard preset (2400 steps = 200 'epochs' of 12 steps, 10 warm-up steps), read at each epoch's middle step."""
    from bench.spec import PRESETS
    from bench.train import lr_factor
    from methods import parse_method
    from methods.base import TrainState

    adjust = _function_from(repo, "cifar_train.py", "adjust_learning_rate")
    switch = _drw_switch_expression(repo)
    total, warmup, epochs = PRESETS["standard"]["steps"], PRESETS["standard"]["warmup_steps"], 200
    per_epoch = total // epochs
    drw = parse_method("ldam+drw").reweighting
    drw.setup(TrainContext(class_counts=[5000, 50], feature_dims={}, device=torch.device("cpu"), seed=0))
    theirs, ours, on_theirs, on_ours = [], [], [], []
    for e in range(epochs):
        opt = types.SimpleNamespace(param_groups=[{}])
        adjust(opt, e, types.SimpleNamespace(lr=1.0))
        theirs.append(opt.param_groups[0]["lr"])
        k = e * per_epoch + per_epoch // 2
        state = TrainState(k, total)
        ours.append(drw.lr_factor(state, lr_factor(k, warmup, total)))
        on_theirs.append(switch(e) == 1)
        on_ours.append(drw.weights(state)[0] is not None)
    stepped = []  # the suite's `--schedule step`, for every method of a comparison
    for e in range(epochs):
        k = e * per_epoch + per_epoch // 2
        stepped.append(drw.lr_factor(TrainState(k, total), lr_factor(k, warmup, total, "step")))
    before = [abs(a - b) for a, b, on in zip(theirs, ours, on_theirs) if not on]
    after = [abs(a - b) for a, b, on in zip(theirs, ours, on_theirs) if on]
    first_theirs, first_ours = on_theirs.index(True), on_ours.index(True)
    return [
        (
            "drw",
            f"DRW switch: the first epoch with class-balanced weights (authors {first_theirs}, suite {first_ours})",
            "200 epochs; the suite at 2400 steps = 200 x 12",
            float(abs(first_theirs - first_ours)),
            None,
        ),
        (
            "drw",
            "learning-rate factor of the peak, epochs before the switch (authors: 1.0 after 5 warm-up epochs; the "
            f"suite: its warm-up + cosine, {ours[159]:.3f} at epoch 159)",
            "adjust_learning_rate(epoch) vs the suite's factor at the epoch's middle step",
            max(before),
            None,
        ),
        (
            "drw",
            "learning-rate factor of the peak, epochs from the switch (0.01, then 0.0001 from epoch 180)",
            "the same",
            max(after),
            None,
        ),
        (
            "drw",
            "learning-rate factor with `--schedule step` (ldam+drw; ce and ldam get the same without the "
            "re-weighting), epochs 5-199 (their warm-up is 5 epochs, the preset's 10 steps)",
            "the same, every epoch after the warm-up",
            max(abs(a - b) for a, b in list(zip(theirs, stepped))[5:]),
            None,
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wb", type=Path, required=True)
    ap.add_argument("--bcl", type=Path, required=True)
    ap.add_argument("--ldam", type=Path, required=True)
    ap.add_argument("--bags", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = check_wb(args.wb, Path(tmp)) + check_bcl(args.bcl, Path(tmp))
        rows += check_ldam(args.ldam, Path(tmp))
        rows += check_wb_schedule(args.wb, Path(tmp)) + check_drw_schedule(args.ldam)
    print("# The baselines against their authors' code: arithmetic and schedules\n")
    print(
        f"Made by `python scripts/compare_authors.py` on {datetime.date.today()}, {cpu_name()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}; float64 unless a row says otherwise, "
        "random inputs (fixed seeds).\n"
    )
    print("| repository | commit read |\n|---|---|")
    for name, repo in (
        ("ShadeAlsha/LTR-weight-balancing", args.wb),
        ("FlamieZhu/Balanced-Contrastive-Learning", args.bcl),
        ("kaidic/LDAM-DRW", args.ldam),
    ):
        print(f"| {name} | {git(repo, 'rev-parse', 'HEAD').strip()} |")
    if args.bags:
        print(
            f"| alcunha/bagoftricks4cameratraps (TensorFlow; by formula, tests/test_new_baselines.py) | "
            f"{git(args.bags, 'rev-parse', 'HEAD').strip()} |"
        )
    print(
        "\n| method | what | inputs | max abs difference, value | max abs difference, gradient |\n|---|---|---|---|---|"
    )
    for method, what, inputs, v, gr in rows:
        value = v if isinstance(v, str) else f"{v:.1e}"
        print(f"| {method} | {what} | {inputs} | {value} | {'-' if gr is None else f'{gr:.1e}'} |")
    print("\n## Every method\n\n| method | reference | compared (where) | named departures |\n|---|---|---|---|")
    for method, (reference, where, departures) in sorted(EVERY_METHOD.items()):
        print(f"| {method} | {reference} | {where} | {departures} |")


if __name__ == "__main__":
    main()
