"""Expand a grid into run specs, run the pending ones, write one record per run.

Finished keys are skipped (unless forced), so an interrupted grid resumes where it stopped. A run
that fails (NaN loss, out of memory, any exception) is recorded as failed with its error and the
grid goes on; Ctrl-C stops at once and leaves every finished record in place.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from datasets import SourceData, build_task, get_source
from datasets.tasks import resolve_classes
from methods import MethodError, parse_method

from . import store
from .compat import record_hparams
from .envinfo import environment, now
from .errors import BenchError
from .spec import RunSpec, numerics, numerics_threads, with_stack
from .train import train_stack


@dataclass
class GridRequest:
    """What the user asked for, after presets and flags are resolved."""

    datasets: list[str]
    tasks: list[str]
    methods: list[str]
    ratios: list[float]
    seeds: list[int]
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    sweeps: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # {method: {param: [values]}}
    classes: tuple[str, ...] | None = None
    n_major: int | None = None
    data_seed: int | None = None  # None: the run seed
    data_root: str | None = None
    image_size: int | None = None
    skip_unreadable: bool = False
    train: dict = field(default_factory=dict)  # width, steps, batch_size, lr, ... and preset name
    budgets: list[int] = field(default_factory=list)  # step budgets, each its own run (default: train['steps'])


class DataCache:
    """Each source is loaded once per process, however many runs use it."""

    def __init__(
        self, data_root: str | None, image_size: int | None, skip_unreadable: bool = False, split_by: str | None = None
    ):
        self.data_root, self.image_size, self.skip_unreadable, self._loaded = data_root, image_size, skip_unreadable, {}
        self.split_by = split_by

    def get(self, name: str):
        if name not in self._loaded:
            extra = {"skip_unreadable": self.skip_unreadable, "split_by": self.split_by} if name == "folder" else {}
            src = get_source(name, data_root=self.data_root, image_size=self.image_size, **extra)
            self._loaded[name] = (src, src.load())
        return self._loaded[name]


def sweep_overrides(method: str, base: dict, sweeps: dict) -> list[dict[str, dict[str, str]]]:
    """Every combination of the swept values of the parts of `method`, on top of the --set ones."""
    axes = [(m, p, vals) for m in method.split("+") for p, vals in sweeps.get(m, {}).items()]
    combos = []
    for values in itertools.product(*(vals for _, _, vals in axes)):
        o = {m: dict(v) for m, v in base.items()}
        for (m, p, _), v in zip(axes, values):
            o.setdefault(m, {})[p] = v
        combos.append(o)
    return combos


def check_model(cache: DataCache, req: GridRequest) -> None:
    """Build the first task's model once (with --pretrained loaded, --tune applied), so a bad backbone,
    start or tuning mode is one line before any run; a start's provenance is checked against every task."""
    from .models import build_model

    src, data = cache.get(req.datasets[0])
    classes = resolve_classes(
        req.datasets[0], data, src.pairs, req.tasks[0], list(req.classes) if req.classes else None
    )
    size = data.train_x.shape[2]
    t = req.train
    model = build_model(
        len(classes), data.train_x.shape[1], size, t["width"], t["weights"], t["model"], cache.image_size is not None
    )
    model.frozen_modules(t["tune"])  # a last:N the model has no N stages for is refused here
    frozen = model.frozen_taps(t["tune"])
    for m in req.methods if frozen else ():  # a feature term on frozen layers shapes nothing the classifier uses
        for part in parse_method(m, req.overrides).parts:
            taps = set(getattr(part, "taps", ()) or ())
            if part.role == "auxiliary" and taps and taps <= frozen:
                print(
                    f"warning: {m}: {part.name} reads {', '.join(sorted(taps))}, which --tune {t['tune']} freezes: "
                    "its term cannot change the layers it reads (it trains at most its own head)",
                    file=sys.stderr,
                )
    try:  # a library backbone whose total stride is larger than the images fails on its first batch
        with torch.no_grad():
            model.eval()(torch.zeros(2, *data.train_x.shape[1:]), ("layer1", "layer2", "layer3", "layer4"))
    except RuntimeError as e:
        raise BenchError(
            f"--model {t['model']} cannot take this data's {size} px images ({str(e).splitlines()[0][:120]}); "
            "pass a larger --image-size (e.g. 64)"
        ) from None
    weights = t["weights"]
    from .pretrain import check_provenance
    from .starts import weights_file

    path = weights_file(weights)
    for ds in req.datasets if path is not None else ():
        src, data = cache.get(ds)
        for task in req.tasks:
            names = resolve_classes(ds, data, src.pairs, task, list(req.classes) if req.classes else None)
            if path is not None:
                check_provenance(path, ds, names)


NATURAL = "natural"  # --ratios natural: the data's own imbalance


def natural_ratio(data, ds: str, pairs: dict, task: str, classes, n_major, val_per_class: int) -> float:
    """The minority:majority ratio of the training images as the data has them (after the validation
    hold-out and --n-major), so that the task takes every minority image: `--ratios natural`."""
    from datasets.tasks import minority_count

    if task == "lt":
        raise BenchError("--ratios natural applies to two-class tasks (fine, coarse); lt draws a profile of ratios")
    names = resolve_classes(ds, data, pairs, task, classes)
    counts = [int((data.train_y == data.classes.index(c)).sum()) - val_per_class for c in names]
    head = min(counts[0], n_major) if n_major else counts[0]
    if counts[1] > head:
        raise BenchError(
            f"--ratios natural: {names[1]!r} (the rare class, second of --classes) has more training images "
            f"({counts[1]}) than {names[0]!r} ({head}); name the common class first"
        )
    exact = counts[1] / head
    short = float(f"{exact:.4g}")  # a readable label where it gives the same count
    return short if minority_count(short, head)[0] == counts[1] else exact


def expand(req: GridRequest, cache: DataCache) -> list[RunSpec]:
    """All specs of the grid, validated up front: a bad name fails before any run starts."""
    used = {n for m in req.methods for n in m.split("+")}
    for flag, given in (("--set", req.overrides), ("--sweep", req.sweeps)):
        unused = set(given) - used
        if unused:
            raise BenchError(f"{flag} names {', '.join(sorted(unused))}, which no method of --methods uses")
    composites = {}
    for m in req.methods:
        for overrides in sweep_overrides(m, req.overrides, req.sweeps):
            c = parse_method(m, overrides)
            try:  # a stages method refuses a composition it cannot train (MethodError) before any run starts
                c.stages()
            except MethodError:
                raise
            except Exception:  # a plug-in whose stages need its run's setup: checked when the run starts
                pass
            if c.posthoc and c.posthoc.needs_validation() and not req.train.get("val_per_class"):
                raise BenchError(
                    f"{m} chooses {c.posthoc.name}.{c.posthoc.choice} on a validation split and this grid holds none: "
                    f"pass --val-per-class N (e.g. 20), or --set {c.posthoc.name}.choose=fixed to use the "
                    f"{c.posthoc.name}.{c.posthoc.choice} value as it is"
                )
            composites[(c.name, json.dumps(c.hparams(), sort_keys=True))] = c
    ratios_of = {}
    for ds in req.datasets:
        src, data = cache.get(ds)
        for task in req.tasks:
            classes = list(req.classes) if req.classes else None
            resolve_classes(ds, data, src.pairs, task, classes)
            val = req.train.get("val_per_class", 0)
            ratios_of[(ds, task)] = [
                natural_ratio(data, ds, src.pairs, task, classes, req.n_major, val) if r == NATURAL else r
                for r in req.ratios
            ]
            if NATURAL in req.ratios:
                print(f"{ds}/{task}: --ratios natural is 1:{ratios_of[(ds, task)][req.ratios.index(NATURAL)]:g}")
            cells: dict[tuple, float] = {}
            for ratio in dict.fromkeys(ratios_of[(ds, task)]):  # counts, hold-out and majority cap, checked first
                t = build_task(
                    data, ds, src.pairs, task, ratio, 0, n_major=req.n_major, classes=classes,
                    val_per_class=req.train.get("val_per_class", 0),
                )  # fmt: skip
                print(f"{ds}/{task} 1:{ratio:g}: training images per class after the ratio: {count_line(t)}")
                same = cells.setdefault(tuple(t.train_counts), ratio)
                if same != ratio:  # a small folder: two ratios round to one training set
                    print(
                        f"warning: {ds}/{task} ratios 1:{same:g} and 1:{ratio:g} give the same training counts "
                        f"({count_line(t)}): the same cell twice under two names; use fewer ratios or more images",
                        file=sys.stderr,
                    )
    if (
        req.train.get("weights")
        or req.train.get("model", "resnet18") != "resnet18"
        or req.train.get("tune", "full") != "full"
    ):
        check_model(cache, req)
    # Seeds outermost: a grid cut short still covers every cell with the seeds it finished; within a
    # seed the smaller budgets first.
    budgets = req.budgets or [req.train["steps"]]
    specs = [
        RunSpec(
            dataset=ds,
            task=task,
            classes=req.classes,
            ratio=ratio,
            n_major=req.n_major,
            seed=seed,
            data_seed=seed if req.data_seed is None else req.data_seed,
            method=comp.name,
            hparams=comp.key_hparams(),
            image_size=req.image_size,
            data_digest=cache.get(ds)[1].digest,
            revisions=comp.revisions(),
            **(req.train | {"steps": steps}),
        )
        for seed in req.seeds
        for steps in budgets
        for ds in req.datasets
        for task in req.tasks
        for ratio in dict.fromkeys(ratios_of[(ds, task)])
        for comp in composites.values()
    ]
    unique = {s.key: s for s in specs}  # 'fsc' and 'ce+fsc' are one run
    return list(unique.values())


def plan_stacks(specs: list[RunSpec], k: int) -> list[list[RunSpec]]:
    """The grid's runs in stacks of up to `k` (bench/stacking.py): runs that share everything but the
    seed, in seed order. Each member's numerics names its stack's size (a stack of one is a run alone,
    with a plain run's key), so the same key always means the same arithmetic. A stack always trains
    whole: a resumed stack trains its finished members again beside the rest, without rewriting them."""
    if k <= 1:
        return [[s] for s in specs]
    groups: dict[str, list[RunSpec]] = {}
    for s in specs:
        groups.setdefault(replace(s, seed=0, data_seed=0).key, []).append(s)
    stacks = []
    for members in groups.values():
        members = sorted(members, key=lambda s: s.seed)
        for i in range(0, len(members), k):
            chunk = members[i : i + k]
            stacks.append([replace(s, numerics=with_stack(s.numerics or "", len(chunk))) for s in chunk])
    return stacks


def _prepare(spec: RunSpec, src, data: SourceData, device: torch.device, record: dict, stack: int):
    """The run's task and method, after the checks that its key still describes this code and data."""
    task = build_task(
        data,
        spec.dataset,
        src.pairs,
        spec.task,
        spec.ratio,
        spec.data_seed,
        n_major=spec.n_major,
        classes=list(spec.classes) if spec.classes else None,
        val_per_class=spec.val_per_class,
    )
    record["counts"] = task.counts_record()
    record["data"] = {"origin": data.origin, "mean": task.mean, "std": task.std} | (
        {"notes": data.notes} if data.notes else {}
    )
    if spec.data_digest and data.digest != spec.data_digest:
        raise RuntimeError(
            f"the data changed since the grid was planned (digest {data.digest}, key says {spec.data_digest})"
        )
    method = method_of(spec)
    record["method_source"] = method.sources()
    record["method_code"] = method.code()
    if (method.revisions() or None) != (spec.revisions or None):
        raise RuntimeError(
            f"the run's key names method revisions {spec.revisions} but this code has {method.revisions()}; "
            "plan the grid again with this code"
        )
    if spec.numerics:
        threads = numerics_threads(spec.numerics)
        if device.type == "cpu" and threads and threads != torch.get_num_threads():
            torch.set_num_threads(threads)  # the key says how many threads the arithmetic used
        here = numerics(device.type, spec.precision, torch.get_num_threads(), stack=stack)
        if here != spec.numerics:
            raise RuntimeError(
                f"this process computes with '{here}' but the run's key says '{spec.numerics}'; "
                "run it with the matching --device, --threads and --stack"
            )
    return task, method


def _failed(record: dict, e: BaseException, device: torch.device) -> None:
    if isinstance(e, torch.OutOfMemoryError) and device.type == "cuda":
        torch.cuda.empty_cache()
    record["status"] = "failed"
    record["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:500]
    record["traceback"] = "".join(traceback.format_exception(e, limit=6))


def run_stack(
    specs: list[RunSpec],
    src,
    data: SourceData,
    device: torch.device,
    eval_batch_size: int,
    on_progress: list | None = None,
    compile=False,
    command: str = "",
    features_paths: list | None = None,
    model_paths: list | None = None,
) -> list[dict]:
    """Train and evaluate a stack of runs (one run: a stack of one); always one record per run (status
    'ok' or 'failed'). A run that fails in training fails alone; one that cannot start fails its stack,
    whose runs only train together. `model_paths`: where each trained model is saved (bench/saved_model.py),
    or None."""
    records, tasks, methods = [], [], []
    t0 = time.perf_counter()
    for spec in specs:
        record = {"key": spec.key, "spec": asdict(spec), "date": now(), "env": environment(device), "command": command}
        try:
            task, method = _prepare(spec, src, data, device, record, len(specs))
            tasks.append(task)
            methods.append(method)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # any failure becomes a failed record; the grid goes on
            _failed(record, e, device)
        records.append(record)
    unable = next((r for r in records if r.get("status") == "failed"), None)
    try:
        if unable:
            raise RuntimeError(
                f"{unable['key']} of its stack could not start ({unable['error']}); a stack trains whole"
            )
        keep = any(model_paths or ())
        results = train_stack(
            specs, tasks, methods, device, eval_batch_size, on_progress, compile, features_paths, keep_models=keep
        )
        for i, (record, result) in enumerate(zip(records, results)):
            if isinstance(result, BaseException):
                _failed(record, result, device)
                continue
            model = result.pop("model", None)
            if model is not None and model_paths[i] is not None:
                _save_model(model_paths[i], model, specs[i], tasks[i], methods[i], result["metrics"], device)
                record["saved_model"] = str(model_paths[i])
            record.update(result)
            record["status"] = "ok"
    except KeyboardInterrupt:
        raise
    except Exception as e:
        for record in records:
            if record.get("status") != "failed":
                _failed(record, e, device)
    for record in records:
        record["wall_s"] = round((time.perf_counter() - t0) / len(specs), 3)
    return records


def _save_model(path: Path, model, spec: RunSpec, task, method, metrics: dict, device: torch.device) -> None:
    """The trained model with what classifying a photo again needs (its input normalisation as training used
    it: bench/train.py `input_statistics`)."""
    from .saved_model import save
    from .spec import resolved_precision
    from .train import input_statistics

    mean, std = input_statistics(task, model.pretrained_cfg, task.train_x.shape[1])
    save(Path(path), model, spec, task, method, metrics, mean, std, resolved_precision(spec.precision, device))


def changed_sources(done: list[tuple[RunSpec, dict]]) -> dict[str, int]:
    """{method part: finished runs} whose record was made by other code of that part than this code (an
    edited method whose key did not change: it is skipped as done, so the user is told). A record's
    `method_code` (the code without docstrings and comments) is compared where it has one, so editing a
    method's documentation warns of nothing; older records compare their source file's digest."""
    changed: dict[str, int] = {}
    current: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    for spec, rec in done:
        made_code, made_file = rec.get("method_code"), rec.get("method_source")
        if not (made_code or made_file):
            continue  # a record from before sources were recorded: nothing to compare
        if spec.method not in current:
            try:
                comp = method_of(spec)
                current[spec.method] = (comp.code(), comp.sources())
            except MethodError:
                current[spec.method] = ({}, {})
        code, files = current[spec.method]
        made, now = (made_code, code) if made_code else (made_file, files)
        for part, digest in made.items():
            if now.get(part, digest) != digest:
                changed[part] = changed.get(part, 0) + 1
    return changed


def method_of(spec: RunSpec):
    """The composition a run's spec names, with its hyper-parameters; one its key leaves out (added to a
    method after records existed, and at the value they were computed with) is that `legacy` value."""
    legacy = parse_method(spec.method).legacy()
    return parse_method(spec.method, {m: dict(hp) for m, hp in record_hparams(spec.hparams, legacy).items()})


def count_line(task) -> str:
    """'horse 800, dog 8' (or the counts alone beyond four classes): what a run of the task trains on."""
    if len(task.classes) <= 4:
        return ", ".join(f"{c} {n}" for c, n in zip(task.classes, task.train_counts))
    return ", ".join(map(str, task.train_counts)) + f" ({len(task.classes)} classes)"


def pending(specs: list[RunSpec], out: Path, force: bool) -> list[RunSpec]:
    """The specs still to run. A record file that cannot be read is named and its run redone; a folder
    that has a record's name is named and its run skipped (no record can be written there). Finished
    runs whose method source changed since are named (they are kept and skipped)."""
    todo, done = [], []
    for s in specs:
        path = store.record_path(out, s.key)
        if path.is_dir():  # a record can be written over a pipe or socket (rename), not over a folder
            print(f"warning: {path} is a folder, not a record file (remove it); {s.label()} skipped", file=sys.stderr)
            continue
        if force:
            todo.append(s)
            continue
        rec, why = store.load_record(path)
        if rec is None and path.exists():
            print(f"warning: unreadable record {path} ({why}); run {s.label()} is redone", file=sys.stderr)
        if not (rec is not None and rec.get("status") == "ok"):
            todo.append(s)
        else:
            done.append((s, rec))
    for part, n in sorted(changed_sources(done).items()):
        print(
            f"warning: {n} finished run(s) of this grid were made by another version of the source of method "
            f"'{part}' (edited since); they are kept and skipped. If the edit changes its numbers, raise "
            f"its `revision` (a new run key), or pass --force to redo them",
            file=sys.stderr,
        )
    return todo


def plain_output() -> bool:
    return bool(os.environ.get("CI")) or not sys.stdout.isatty()
