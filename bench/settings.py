"""What a `bench run` command asks for, resolved from the preset and flags and validated in one place.

`RunSettings.from_args` turns argparse's namespace into the grid request (what to compute: it decides
the run keys) and the execution (how: executor, devices, workers, threads, stack, output folder). Every
bad value is refused here, in one line naming the fix, before any data is read or any run starts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from datasets import check_ratio
from methods import REGISTRY

from .errors import BenchError
from .executors import RunOptions, SlurmOptions, WorkerPlan, plan_workers
from .runner import NATURAL, GridRequest
from .spec import PRESETS, TRAIN_FLAGS, named_budget, numerics, recorded_preset
from .train import pick_device

MAX_STEPS = 10_000_000  # a larger --steps is a typo, not a budget (issue 37: 2^63 steps were claimed and trained)
MAX_RUNS_UNASKED = 10_000  # a bigger grid needs --yes (a typo such as --seeds 100000 costs days)


def csv_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def budgets_of(raw: str) -> list[int]:
    try:
        budgets = [int(x) for x in csv_list(raw)]
    except ValueError:
        raise BenchError(f"--steps takes step counts such as 1200 or 240,600,1200, got {raw!r}") from None
    if not budgets:
        raise BenchError("--steps names no budget; e.g. --steps 1200")
    return list(dict.fromkeys(budgets))


def sweeps_of(items: list[str], methods: list[str] = ()) -> dict[str, dict[str, list[str]]]:
    """--sweep values; 'auto' adds the search space each part of `methods` declares (Method.search_space)."""
    out: dict[str, dict[str, list[str]]] = {}
    for item in items:
        if item.strip() == "auto":
            for part in sorted({n.strip() for m in methods for n in m.split("+")}):
                for param, values in getattr(REGISTRY.get(part), "search_space", {}).items():
                    out.setdefault(part, {})[param] = [str(v) for v in values]
            continue
        for method, params in overrides_of([item], "--sweep").items():
            for param, values in params.items():
                vals = [v.strip() for v in values.split("|") if v.strip()]
                if not vals:
                    raise BenchError(f"--sweep {item!r} has no values; separate them with '|'")
                out.setdefault(method, {})[param] = vals
    return out


def key_values(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not (eq and k.strip()):
            raise BenchError(f"--slurm-option {item!r} must look like KEY=VALUE, e.g. account=mylab")
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def overrides_of(items: list[str], flag: str = "--set") -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        left, eq, value = item.partition("=")
        method, dot, param = left.partition(".")
        if not (eq and dot and method and param):
            raise BenchError(f"{flag} {item!r} must look like METHOD.PARAM=VALUE, e.g. {flag} fsc.lam=0.5")
        out.setdefault(method.strip(), {})[param.strip()] = value.strip()
    return out


def weights_digest(weights: str | None, model: str = "resnet18") -> str | None:
    """The SHA-256 of a --weights file (part of the run key: a path names a file, its content is what counts);
    for `imagenet`, of the file the library's own cache holds for the model (fetched there if missing)."""
    from .backbones import LIBRARY_START, library_weights_file
    from .starts import weights_file

    path = library_weights_file(model, weights) if weights == LIBRARY_START else weights_file(weights)
    if path is None:
        return None
    from datasets.base import sha256_of

    try:
        digest = sha256_of(path)
        side = path.with_name(path.name + ".json")  # its pretrained config, if any
        return digest + (":" + sha256_of(side)[:16] if side.is_file() else "")
    except OSError as e:
        raise BenchError(f"--pretrained {weights}: cannot read it ({e.strerror})") from None


def expand_methods(names: list[str], validation: bool = True) -> list[str]:
    """'all' stands for every registered method, each on its own; 'X+all' for X composed with every
    registered method where the composition is allowed and new (e.g. 'os+all': os+fsc, os+crt, ... but
    not os+la, which corrects for the prior twice, nor os+cbs, two samplers). Without a validation split
    (`validation=False`) 'all' leaves out the methods that choose a value on one (taunorm), saying so;
    named explicitly, such a method is refused with the fix."""
    from methods import MethodError, parse_method

    out, left_out = [], []

    def wanted(name: str) -> bool:
        comp = parse_method(name)
        if not validation and comp.posthoc and comp.posthoc.needs_validation():
            left_out.append(name)
            return False
        return True

    for n in names:
        if n == "all":
            out += [m for m in sorted(REGISTRY) if wanted(m)]
        elif n.endswith("+all"):
            base = n[: -len("+all")]
            base_name = parse_method(base).name
            for other in sorted(REGISTRY):
                try:
                    comp = parse_method(f"{base}+{other}")
                except MethodError:
                    continue
                if comp.name != base_name and wanted(comp.name):
                    out.append(comp.name)
        else:
            out.append(n)
    if left_out:
        print(
            f"note: 'all' leaves out {', '.join(sorted(set(left_out)))}: it chooses a value on a validation split "
            "and this grid holds none (add --val-per-class N to include it)"
        )
    return list(dict.fromkeys(out))


@dataclass
class RunSettings:
    """A `bench run` command resolved and validated in one place: what to compute (the grid request,
    whose training settings and numerics go into every run key) and how to execute it (not in the key)."""

    request: GridRequest
    out: Path
    executor: str  # pool | local | slurm
    device: torch.device  # the local executor's device
    workers: WorkerPlan
    stack: int
    force: bool
    options: RunOptions
    slurm: SlurmOptions | None

    @classmethod
    def from_args(cls, a) -> RunSettings:
        train, budgets = _training(a)
        _check_counts(a)
        request = _request(a, train, budgets)
        try:
            device = pick_device(a.device)
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as e:
            raise BenchError(
                f"--device {a.device} is not usable here ({str(e).splitlines()[0]}); try --device cpu"
            ) from None
        executor = "pool" if a.executor == "gpus" else a.executor
        workers = plan_workers(executor, a.device, device, a.threads, a.workers_per_gpu, a.slurm_gpus_per_task)
        # Everything that changes the arithmetic goes into the key (see spec.numerics).
        request.train["numerics"] = numerics(workers.kind, request.train["precision"], workers.threads)
        options = RunOptions(
            eval_batch_size=PRESETS[a.preset]["eval_batch_size"],
            compile=a.compile,
            data_root=a.data_root,
            image_size=a.image_size,
            plain=True if a.plain else None,
            threads=workers.threads,
            command=a.command_line,
            save_features=a.save_features,
            save_models=a.save_model,
            plugins=tuple(a.plugin),
            skip_unreadable=a.skip_unreadable,
            split_by=a.split_by,
        )
        return cls(request, Path(a.out), executor, device, workers, a.stack, a.force, options, _slurm(a, executor))

    def describe(self, runs: int, stacks: int) -> str:
        """The line that says what this command will do, printed before any run starts."""
        req = self.request
        return (
            f"preset {named_budget(req.train) or req.train['preset']}: "
            + ", ".join(f"{k}={v}" for k, v in req.train.items() if v is not None)
            + (f" (budgets {','.join(map(str, req.budgets))})" if len(req.budgets) > 1 else "")
            + f"; ratios {','.join(r if r == NATURAL else f'{r:g}' for r in req.ratios)}; "
            + f"seeds {','.join(map(str, req.seeds))}; "
            + f"{runs} runs"
            + (f" in {stacks} stacks of up to {self.stack}" if self.stack > 1 else "")
            + f"; executor {self.executor}"
            + (f", device {self.device}" if self.executor == "local" else "")
            + f"; numerics {req.train['numerics']}"
        )


def check_tune(tune: str) -> str:
    """--tune's value, or BenchError naming the choices (whether the model has the stages it names is
    checked on the model, before any run: bench/runner.py `check_model`)."""
    from .models import check_tune_syntax

    try:
        check_tune_syntax(tune)
    except ValueError as e:
        raise BenchError(f"--tune {tune}: {e}") from None
    return tune


def _training(a) -> tuple[dict, list[int]]:
    """The preset's training settings with the single flags that override them, and the step budgets."""
    preset = PRESETS[a.preset]
    train = {k: preset[k] for k in TRAIN_FLAGS}
    budgets = budgets_of(a.steps) if a.steps is not None else [preset["steps"]]
    for k in TRAIN_FLAGS:
        v = getattr(a, k, None)
        if v is not None:
            train[k] = v
    train["steps"] = budgets[0]  # the first budget; each one is its own run (GridRequest.budgets)
    if min(budgets) < 1 or train["batch_size"] < 2:
        raise BenchError("--steps must be >= 1 and --batch-size >= 2")
    if max(budgets) > MAX_STEPS:
        raise BenchError(f"--steps {max(budgets)} is more than {MAX_STEPS:,} steps (years on any machine); a typo?")
    for flag in ("lr", "width"):
        if not (math.isfinite(train[flag]) and train[flag] > 0):
            raise BenchError(f"--{flag} must be a finite number > 0, got {train[flag]}")
    from .backbones import check_model_name, is_library_model

    check_model_name(a.model)
    if is_library_model(a.model):  # a library backbone has its own widths: the width field is left at 1
        if getattr(a, "width", None) is not None:
            raise BenchError(f"--width scales the suite's resnet18 only; --model {a.model} has its own widths")
        train["width"] = 1.0
    check_tune(train["tune"])
    weights = a.weights
    if preset.get("start") == "shipped" and not weights:  # the transfer preset: the dataset's shipped start
        from .starts import shipped_start

        weights = shipped_start(csv_list(a.dataset), a.preset)
    if train["val_per_class"] < 0:
        raise BenchError(f"--val-per-class is a count of images (>= 0), got {train['val_per_class']}")
    # a budget preset (standard, transfer) records the preset it is a budget of: its runs share the study's keys
    train.update(
        model=a.model,
        weights=weights,
        preset=recorded_preset(a.preset),
        weights_sha256=weights_digest(weights, a.model),
    )
    return train, budgets


def _check_counts(a) -> None:
    """Counts and sizes that must be positive, refused in one line before anything runs."""
    if a.n_major is not None and a.n_major < 1:
        raise BenchError(f"--n-major is a count of images (>= 1), got {a.n_major}")
    if a.data_seed is not None and a.data_seed < 0:
        raise BenchError(f"--data-seed must be >= 0, got {a.data_seed}")
    if a.image_size is not None and not 8 <= a.image_size <= 1024:
        raise BenchError(f"--image-size must be between 8 and 1024 pixels, got {a.image_size}")
    cores = os.cpu_count() or 1
    if a.threads is not None and not 1 <= a.threads <= cores:
        raise BenchError(f"--threads must be between 1 and this machine's {cores} cores, got {a.threads}")
    if a.workers_per_gpu is not None and a.workers_per_gpu < 1:
        raise BenchError("--workers-per-gpu must be >= 1")
    if a.seeds is not None and a.seeds < 1:
        raise BenchError(f"--seeds is a count of seeds (>= 1), got {a.seeds}")
    if a.stack < 1:
        raise BenchError(f"--stack is a count of runs (>= 1), got {a.stack}")
    if a.stack > 1 and (a.compile or a.executor == "slurm"):
        raise BenchError("--stack applies to the pool and local executors without --compile; drop one of them")


def _request(a, train: dict, budgets: list[int]) -> GridRequest:
    """The grid: datasets x tasks x methods (with their --set and --sweep values) x ratios x seeds x budgets."""
    preset = PRESETS[a.preset]
    # `natural`: the data's own imbalance (bench/runner.py `natural_ratio`), the default for a user's folder
    default = [NATURAL] if csv_list(a.dataset) == ["folder"] else list(preset["ratios"])
    ratios = [x if x == NATURAL else check_ratio(x) for x in csv_list(a.ratios)] if a.ratios else default
    seeds = list(range(a.seeds)) if a.seeds else list(preset["seeds"])
    methods = expand_methods(csv_list(a.methods), validation=bool(train["val_per_class"]))
    if not methods:
        raise BenchError("--methods names no method; e.g. --methods ce,os,os+fsc (see `python -m bench list`)")
    sweeps = sweeps_of(a.sweep, methods)
    combos = math.prod(len(v) for params in sweeps.values() for v in params.values())
    estimate = (
        len(methods)
        * combos
        * len(csv_list(a.dataset))
        * len(csv_list(a.task))
        * len(ratios)
        * len(seeds)
        * len(budgets)
    )
    if estimate > MAX_RUNS_UNASKED and not a.yes:
        raise BenchError(
            f"this grid has up to {estimate} runs; pass --yes to run more than {MAX_RUNS_UNASKED} (or fewer --seeds)"
        )
    return GridRequest(
        datasets=csv_list(a.dataset),
        tasks=csv_list(a.task),
        methods=methods,
        ratios=ratios,
        seeds=seeds,
        overrides=overrides_of(a.set),
        sweeps=sweeps,
        classes=tuple(csv_list(a.classes)) if a.classes else None,
        n_major=a.n_major,
        data_seed=a.data_seed,
        data_root=a.data_root,
        image_size=a.image_size,
        train=train,
        budgets=budgets,
    )


def _slurm(a, executor: str) -> SlurmOptions | None:
    if executor != "slurm":
        return None
    return SlurmOptions(
        partition=a.slurm_partition,
        time_min=a.slurm_time,
        gpus_per_task=a.slurm_gpus_per_task,
        cpus_per_task=a.slurm_cpus_per_task,
        mem_gb=a.slurm_mem_gb,
        array_parallelism=a.slurm_array_parallelism,
        runs_per_task=a.slurm_runs_per_task,
        extra=key_values(a.slurm_option),
        wait=not a.slurm_no_wait,
    )
