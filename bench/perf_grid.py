"""`python -m bench perf --grid`: runs per hour of a fixed small grid, the pool alone against stacked runs.

The same grid (methods x seeds on one cell) runs twice in one command, side by side on an otherwise idle
machine: once as today's pool trains it (one run per worker process), once with the runs that differ only
in their seed trained K at a time as one stack (`bench run --stack K`, bench/stacking.py), the same workers
and threads. Each mode writes its records into its own temporary folder; what is kept is the wall time,
the runs per hour, and how far the two modes' balanced accuracies lie apart (stacked float32 arithmetic
is not a single run's: K enters the key).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from .envinfo import environment, now
from .spec import PRESETS, TRAIN_FLAGS, numerics

# One method of each kind the grids hold: plain, a sampler, a sampler with an auxiliary loss, two stages.
GRID_METHODS = ("ce", "os", "os+fsc", "crt")


def grid_throughput(
    dataset: str = "animals",
    task: str = "fine",
    ratio: float = 0.01,
    preset: str = "quick",
    methods: tuple[str, ...] = GRID_METHODS,
    seeds: int = 4,
    stack: int = 4,
    steps: int | None = None,
    device: torch.device | None = None,
    log=print,
) -> dict:
    from .executors import RunOptions, run_pool, visible_devices
    from .runner import DataCache, GridRequest, expand, plan_stacks

    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    p = PRESETS[preset]
    cpu = device.type == "cpu"
    workers = (os.cpu_count() or 1) if cpu else 4  # per device: 4 concurrent runs fill an H200 best (PERF.md)
    devices = ["cpu"] if cpu else visible_devices()
    train = {k: p[k] for k in TRAIN_FLAGS} | {"model": "resnet18", "weights": None, "preset": preset}
    train |= {"steps": steps or p["steps"], "numerics": numerics(device.type, p["precision"], 1 if cpu else None)}
    req = GridRequest([dataset], [task], list(methods), [ratio], list(range(seeds)), train=train)
    specs = expand(req, DataCache(None, None))
    modes = {"pool": plan_stacks(specs, 1), "stacked": plan_stacks(specs, stack)}
    result = {
        "kind": "grid",
        "date": now(),
        "env": environment(device),
        "dataset": dataset,
        "task": task,
        "ratio": ratio,
        "preset": preset,
        "steps": train["steps"],
        "methods": list(methods),
        "seeds": seeds,
        "stack": stack,
        "workers": len(devices) * workers,
        "threads_per_worker": 1 if cpu else None,
        "modes": {},
    }
    accuracy = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, stacks in modes.items():
            log(f"perf --grid: {name}: {len(specs)} runs in {len(stacks)} stacks on {len(devices) * workers} workers")
            opts = RunOptions(plain=True, threads=1 if cpu else None, eval_batch_size=p["eval_batch_size"])
            t0 = time.perf_counter()
            outcome = run_pool(stacks, Path(tmp) / name, opts, devices, workers, force=True)
            wall = time.perf_counter() - t0
            failed = [r["key"] for r in outcome.written if r["status"] != "ok"]
            if failed or len(outcome.written) != len(specs):
                raise RuntimeError(f"perf --grid: the {name} grid did not finish cleanly ({len(failed)} failed)")
            accuracy[name] = {
                (r["spec"]["method"], r["spec"]["seed"]): r["metrics"]["balanced_acc"] for r in outcome.written
            }
            result["modes"][name] = {
                "runs": len(specs),
                "wall_s": round(wall, 1),
                "runs_per_hour": round(len(specs) / wall * 3600, 1),
                "train_s_median": round(statistics.median(r["timings"]["train_s"] for r in outcome.written), 2),
                "balanced_acc_mean": round(statistics.mean(accuracy[name].values()), 4),
            }
            log(f"  {name}: {result['modes'][name]}")
    pool, stacked = result["modes"]["pool"], result["modes"]["stacked"]
    result["speedup"] = round(stacked["runs_per_hour"] / pool["runs_per_hour"], 3)
    result["max_abs_balanced_acc_difference"] = round(
        max(abs(accuracy["pool"][k] - accuracy["stacked"][k]) for k in accuracy["pool"]), 4
    )
    return result


def render_grid(r: dict) -> list[str]:
    """PERF.md's section for one `perf --grid` result."""
    pool, stacked = r["modes"]["pool"], r["modes"]["stacked"]
    rows = [
        ["runs per hour", f"{pool['runs_per_hour']:.0f}", f"{stacked['runs_per_hour']:.0f}"],
        ["wall time of the grid (s)", f"{pool['wall_s']:.0f}", f"{stacked['wall_s']:.0f}"],
        [
            "median training time per run (s; a stack's shared)",
            f"{pool['train_s_median']:.1f}",
            f"{stacked['train_s_median']:.1f}",
        ],  # fmt: skip
        ["mean balanced accuracy", f"{pool['balanced_acc_mean']:.3f}", f"{stacked['balanced_acc_mean']:.3f}"],
    ]
    env = r["env"]
    return [
        f"## Grid throughput: {env['device']}",
        "",
        f"- {r['date']}, torch {env['torch']}; {len(r['methods'])} methods ({', '.join(r['methods'])}) x "
        f"{r['seeds']} seeds on {r['dataset']}/{r['task']} 1:{r['ratio']:g}, preset {r['preset']} "
        f"({r['steps']} steps); {r['workers']} worker processes"
        + (f", {r['threads_per_worker']} thread each" if r.get("threads_per_worker") else ""),
        f"- command: `{r.get('command', 'python -m bench perf --grid')}`",
        "",
        tabulate(
            rows,
            headers=["", "pool (one run per worker)", f"stacked (K={r['stack']} seeds per model)"],
            tablefmt="github",
            disable_numparse=True,
        ),  # fmt: skip
        "",
        f"Stacked over pool, runs per hour: **{r['speedup']:.2f}x**. Largest difference of one run's balanced "
        f"accuracy between the two modes: {r['max_abs_balanced_acc_difference']:.3f} (float32: a stacked run's "
        "arithmetic is its own, and its key says so; the spread of the seeds, not a bias: compare the means).",
        "",
        verdict(r["speedup"]),
        "",
    ]


def verdict(speedup: float) -> str:
    """What the measured ratio means for a user choosing `--stack`."""
    if speedup < 1:
        return (
            "Here stacking is slower than one run per worker: on a CPU each run's convolutions already keep a "
            "core busy, and a grouped convolution is no faster per group than a dense one. Keep the default "
            "`--stack 1` on this machine; stacking is for devices whose kernels a single small run cannot fill (GPUs)."
        )
    return f"Here `--stack {'K'}` trains a grid {speedup:.2f}x as fast as one run per worker."
