"""`python -m bench perf --frozen-cache`: what the frozen-trunk cache buys, in runs per hour.

The same runs (a few methods, `--tune head` and `last:1` from a shipped pretrained start, `--augment none`,
which the cache needs) train twice in one process, alternating run by run so that any drift of the machine
falls on both: once with the frozen part computed every step, once computed once per stage
(bench/train.py `FrozenCache`). One CPU thread, as the grids' workers use. Kept: the wall time of each run
(training and evaluation), the runs per hour of each mode, and how far the two modes' balanced accuracies
lie apart (they compute the same thing in batches of another size: equal up to float32 summation order).
"""

from __future__ import annotations

import statistics
import time

import torch
from tabulate import tabulate

from .envinfo import environment, now
from .spec import PRESETS, TRAIN_FLAGS, RunSpec, numerics

CACHE_METHODS = ("ce", "os", "os+fsc", "crt")  # plain, a sampler, an auxiliary loss on taps, two stages
STARTS_OF = {"animals": "animals-other8", "fashion": "fashion-other8"}


def frozen_cache_speed(
    dataset: str = "animals",
    ratio: float = 0.01,
    tunes: tuple[str, ...] = ("head", "last:1"),
    methods: tuple[str, ...] = CACHE_METHODS,
    steps: int = 240,
    repeats: int = 1,
    log=print,
) -> dict:
    from datasets import build_task
    from methods import parse_method

    from .runner import DataCache
    from .settings import weights_digest
    from .train import pick_device, train_and_evaluate

    torch.set_num_threads(1)
    device = pick_device("cpu")
    start = STARTS_OF[dataset]
    src, data = DataCache(None, None).get(dataset)
    task = build_task(data, dataset, src.pairs, "fine", ratio, 0)
    p = PRESETS["quick"]
    base = {k: p[k] for k in TRAIN_FLAGS} | {"steps": steps, "augment": "none"}
    rows = []
    for tune in tunes:
        for method in methods:
            comp = parse_method(method)
            spec = RunSpec(
                dataset=dataset, task="fine", classes=None, ratio=ratio, n_major=None, seed=0, data_seed=0,
                method=comp.name, hparams=comp.hparams(), weights=start, weights_sha256=weights_digest(start),
                numerics=numerics("cpu", "auto", 1), **(base | {"tune": tune}),
            )  # fmt: skip
            times = {False: [], True: []}
            accs = {}
            for _ in range(repeats):
                for cached in (False, True):
                    t0 = time.perf_counter()
                    res = train_and_evaluate(spec, task, parse_method(method), device, cache_frozen=cached)
                    times[cached].append(time.perf_counter() - t0)
                    accs[cached] = res["metrics"]["balanced_acc"]
            row = {
                "tune": tune,
                "method": method,
                "uncached_s": statistics.median(times[False]),
                "cached_s": statistics.median(times[True]),
                "acc_uncached": accs[False],
                "acc_cached": accs[True],
            }
            rows.append(row)
            log(
                f"{tune:7s} {method:7s} every step {row['uncached_s']:6.1f} s, cached {row['cached_s']:6.1f} s; "
                f"balanced accuracy {accs[False]:.3f} / {accs[True]:.3f}"
            )
    summary = {}
    for tune in tunes:
        mine = [r for r in rows if r["tune"] == tune]
        plain, cached = sum(r["uncached_s"] for r in mine), sum(r["cached_s"] for r in mine)
        summary[tune] = {
            "runs_per_hour_uncached": 3600 * len(mine) / plain,
            "runs_per_hour_cached": 3600 * len(mine) / cached,
            "speedup": plain / cached,
            "max_acc_diff": max(abs(r["acc_cached"] - r["acc_uncached"]) for r in mine),
        }
    return {
        "kind": "frozen_cache",
        "date": now(),
        "env": environment(device),
        "preset": "quick",
        "dataset": dataset,
        "ratio": ratio,
        "start": start,
        "steps": steps,
        "repeats": repeats,
        "methods": list(methods),
        "rows": rows,
        "summary": summary,
    }


def render_frozen_cache(r: dict) -> list[str]:
    env = r["env"]
    table = [
        [
            tune,
            f"{s['runs_per_hour_uncached']:.0f}",
            f"{s['runs_per_hour_cached']:.0f}",
            f"**{s['speedup']:.2f}x**",
            f"{s['max_acc_diff']:.3f}",
        ]
        for tune, s in r["summary"].items()
    ]
    return [
        f"## Frozen-trunk cache: {env['device']}",
        "",
        f"- {r['date']}, torch {env['torch']}; {', '.join(r['methods'])} on {r['dataset']}/fine 1:{r['ratio']:g} "
        f"from `{r['start']}`, {r['steps']} steps, `--augment none`; one thread, one process, the two modes "
        f"alternating run by run ({r['repeats']} repeat(s)); wall time per run includes evaluation",
        f"- command: `{r.get('command', 'python -m bench perf --frozen-cache')}`",
        "",
        tabulate(
            table,
            headers=[
                "--tune",
                "runs/hour, frozen part every step",
                "runs/hour, cached",
                "speed-up",
                "largest Δ bal. acc.",
            ],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
        "The cache applies only where the frozen part sees each image the same way every step: `--augment none`, "
        "no image transform (mixup, remix) and no augmented views (supcon's pre-training stage), one run per "
        "model (not a stack), the suite's resnet18. Each record's `timings.frozen_cache` says per stage whether it "
        "was on and, if not, why. The accuracy column is the largest difference of one run's balanced accuracy "
        "between the modes (the same arithmetic in batches of another size).",
        "",
    ]
