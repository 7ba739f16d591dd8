"""Run the new baselines' reference code beside the suite's on the same random inputs (issue 25).

The authors' files are read from snapshots of their repositories (not vendored: nothing of theirs
enters the suite) and imported from a temporary folder; each check prints the largest absolute
difference of the value and of the gradient, in float64 (float32 where their code casts to it). The
markdown it prints is committed as results/reference_checks.md.

    python scripts/compare_authors.py --wb DIR --bcl DIR [--bags DIR] > results/reference_checks.md

DIR is a git directory or work tree of ShadeAlsha/LTR-weight-balancing, FlamieZhu/Balanced-
Contrastive-Learning and alcunha/bagoftricks4cameratraps (TensorFlow: its square-root branch is
compared by formula in tests/test_new_baselines.py; this script only records the commit read).
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wb", type=Path, required=True)
    ap.add_argument("--bcl", type=Path, required=True)
    ap.add_argument("--bags", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = check_wb(args.wb, Path(tmp)) + check_bcl(args.bcl, Path(tmp))
    print("# The new baselines against their authors' code\n")
    print(
        f"Made by `python scripts/compare_authors.py` on {datetime.date.today()}, {cpu_name()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}; float64 unless a row says otherwise, "
        "random inputs (fixed seeds).\n"
    )
    print("| repository | commit read |\n|---|---|")
    for name, repo in (
        ("ShadeAlsha/LTR-weight-balancing", args.wb),
        ("FlamieZhu/Balanced-Contrastive-Learning", args.bcl),
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
        print(f"| {method} | {what} | {inputs} | {v:.1e} | {'-' if gr is None else f'{gr:.1e}'} |")


if __name__ == "__main__":
    main()
