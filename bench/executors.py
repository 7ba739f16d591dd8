"""Where the runs of a grid execute: in this process, in worker processes over devices, or on SLURM.

Whatever the executor, each run writes its own record atomically into the same results folder, so
resume, `bench status` and `bench report` need not know how a grid was run; a worker or job that
dies loses only the run it was in, and the next `bench run` of the same grid does the rest.
"""

from __future__ import annotations

import json
import os
import queue
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from methods import load_plugins

from . import store
from .errors import BenchError
from .progress import make_progress
from .runner import DataCache, pending, plain_output, run_one
from .spec import RunSpec


@dataclass
class RunOptions:
    """Settings that change how runs execute, not what they compute (so not part of the run key)."""

    eval_batch_size: int = 1024
    compile: bool = False
    data_root: str | None = None
    image_size: int | None = None
    plain: bool | None = None
    threads: int | None = None  # torch CPU threads per run (None: torch's default)
    command: str = ""  # the command line, kept in every record
    save_features: bool = False  # also write OUT/features/<key>.npz (pooled layer4 test features)
    plugins: tuple[str, ...] = ()  # modules registering methods, imported in every worker process too


def execute(
    spec: RunSpec, cache: DataCache, device: torch.device, opts: RunOptions, out: Path, on_progress=None
) -> dict:
    """Run one spec and write its record: the body every executor shares."""
    src, data = cache.get(spec.dataset)
    features = Path(out) / "features" / f"{spec.key}.npz" if opts.save_features else None
    rec = run_one(spec, src, data, device, opts.eval_batch_size, on_progress, opts.compile, opts.command, features)
    store.write_record(Path(out), rec)
    return rec


def run_local(specs: list[RunSpec], out: Path, device: torch.device, opts: RunOptions, force=False) -> list[dict]:
    """One run after another in this process."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cache = DataCache(opts.data_root, opts.image_size)
    todo = pending(specs, out, force)
    written = []
    plain = plain_output() if opts.plain is None else opts.plain
    with make_progress(len(todo), len(specs) - len(todo), plain) as prog:
        for spec in todo:
            prog.start_run(spec.label(), spec.steps)
            rec = execute(spec, cache, device, opts, out, prog.step)
            written.append(rec)
            prog.end_run(rec)
    return written


def run_specs(spec_dicts: list[dict], out: str, device: str, opts: dict) -> list[tuple[str, str]]:
    """Run a shard of specs (skipping finished ones) in the calling process: a SLURM array task's body."""
    o = RunOptions(**opts)
    load_plugins(o.plugins)
    if o.threads:
        torch.set_num_threads(o.threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    cache = DataCache(o.data_root, o.image_size)
    done = []
    for d in spec_dicts:
        spec = RunSpec.from_dict(d)
        if store.is_done(Path(out), spec.key):
            done.append((spec.key, "skipped"))
            continue
        rec = execute(spec, cache, dev, o, Path(out))
        done.append((spec.key, rec["status"]))
        print(f"{spec.label()}: {rec['status']}", flush=True)
    return done


# ---- a pool of worker processes over the visible devices ------------------------------------------


def _pool_worker(device: str, threads: int, tasks, results, out: str, opts: dict) -> None:
    torch.set_num_threads(threads)
    o = RunOptions(**opts)
    load_plugins(o.plugins)
    cache = DataCache(o.data_root, o.image_size)
    dev = torch.device(device)
    while True:
        item = tasks.get()
        if item is None:
            return
        rec = execute(RunSpec.from_dict(item), cache, dev, o, Path(out))
        results.put(rec)


def visible_devices() -> list[str]:
    n = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(n)] if n else ["cpu"]


def run_pool(
    specs: list[RunSpec], out: Path, opts: RunOptions, devices: list[str], workers_per_device: int = 1, force=False
) -> list[dict]:
    """`workers_per_device` processes per device pull runs from one queue (several small runs can
    share a GPU). On a machine without GPUs, CPU worker processes stand in for devices."""
    import multiprocessing as mp

    todo = pending(specs, out, force)
    if not todo:
        print(f"grid: nothing to do, {len(specs)} already done")
        return []
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    n_workers = max(1, min(len(todo), len(devices) * workers_per_device))
    threads = opts.threads or max(1, (os.cpu_count() or 1) // n_workers)
    for spec in todo:
        tasks.put(asdict(spec))
    for _ in range(n_workers):
        tasks.put(None)
    procs = [
        ctx.Process(
            target=_pool_worker,
            args=(devices[i % len(devices)], threads, tasks, results, str(out), asdict(opts)),
            daemon=True,
        )
        for i in range(n_workers)
    ]
    for p in procs:
        p.start()
    print(f"pool: {n_workers} worker processes on {', '.join(sorted(set(devices)))}, {threads} CPU threads each")
    written = []
    plain = plain_output() if opts.plain is None else opts.plain
    with make_progress(len(todo), len(specs) - len(todo), plain) as prog:
        while len(written) < len(todo):
            try:
                rec = results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            written.append(rec)
            prog.end_run(rec)
    for p in procs:
        p.join(timeout=10)
    lost = len(todo) - len(written)
    if lost:
        dead = [p.exitcode for p in procs if p.exitcode not in (0, None)]
        print(
            f"warning: {lost} run(s) did not finish (worker exit codes {dead}); finished records are kept, "
            "run the same command again to complete the grid"
        )
    return written


# ---- SLURM through submitit ------------------------------------------------------------------------


@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 60
    gpus_per_task: int = 0
    cpus_per_task: int = 2
    mem_gb: int = 8
    array_parallelism: int = 16
    runs_per_task: int = 4
    extra: dict = field(default_factory=dict)  # other sbatch options, e.g. {"account": "lab"}
    wait: bool = True
    log_dir: str | None = None


def jobs_file(out: Path) -> Path:
    return Path(out) / ".slurm" / "jobs.json"


def run_slurm(specs: list[RunSpec], out: Path, opts: RunOptions, slurm: SlurmOptions, force=False) -> list[str]:
    """Split the pending runs into shards and submit them as one job array; returns the job ids.
    With `wait`, poll until every job has ended, printing progress from the records."""
    try:
        import submitit
    except ImportError:
        raise BenchError("--executor slurm needs submitit: pip install submitit") from None
    todo = pending(specs, out, force)
    if not todo:
        print(f"grid: nothing to submit, {len(specs)} already done")
        return []
    shards = [[asdict(s) for s in todo[i : i + slurm.runs_per_task]] for i in range(0, len(todo), slurm.runs_per_task)]
    log_dir = Path(slurm.log_dir or Path(out) / ".slurm" / "logs")
    executor = submitit.AutoExecutor(folder=str(log_dir), cluster="slurm")
    params = dict(
        timeout_min=slurm.time_min,
        cpus_per_task=slurm.cpus_per_task,
        mem_gb=slurm.mem_gb,
        slurm_array_parallelism=slurm.array_parallelism,
        name="fsc-bench",
    )
    if slurm.gpus_per_task:
        params["gpus_per_node"] = slurm.gpus_per_task
    if slurm.partition:
        params["slurm_partition"] = slurm.partition
    if slurm.extra:
        params["slurm_additional_parameters"] = dict(slurm.extra)
    executor.update_parameters(**params)
    device = "auto" if slurm.gpus_per_task else "cpu"
    opts_d = asdict(opts) | {"threads": opts.threads or slurm.cpus_per_task}
    try:
        jobs = executor.map_array(
            run_specs, shards, [str(out)] * len(shards), [device] * len(shards), [opts_d] * len(shards)
        )
    except Exception as e:  # sbatch missing or refusing: one line
        raise BenchError(
            f"SLURM submission failed ({type(e).__name__}: {str(e).strip().splitlines()[-1][:300]}); "
            "check `sinfo` and the --slurm-* options"
        ) from None
    ids = [j.job_id for j in jobs]
    path = jobs_file(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(path.read_text()) if path.is_file() else []
    history.append(
        {
            "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "job_ids": ids,
            "keys": [s.key for s in todo],
            "log_dir": str(log_dir),
        }
    )
    path.write_text(json.dumps(history, indent=1))
    print(
        f"submitted {len(todo)} runs as a job array of {len(ids)} tasks: {ids[0].split('_')[0]} "
        f"(logs in {log_dir}); `python -m bench status --out {out}` shows progress"
    )
    if slurm.wait:
        wait_for_jobs(jobs, todo, out)
    return ids


def wait_for_jobs(jobs, todo: list[RunSpec], out: Path, poll_s: float = 2.0, limit_s: float | None = None) -> None:
    """Poll until every job has ended (bounded by `limit_s`), showing finished records as they land."""
    from .status import squeue_states

    t0 = time.perf_counter()
    seen = 0
    while True:
        # submitit learns a job's end from its result file or sacct; clusters without accounting
        # have no sacct, so an array with no task left in squeue has ended too.
        done_states = [j.done() for j in jobs]
        if not all(done_states) and time.perf_counter() - t0 > 5 and not squeue_states([j.job_id for j in jobs]):
            done_states = [True]
        finished = sum(store.record_path(out, s.key).is_file() for s in todo)
        if finished != seen:
            print(f"slurm: {finished}/{len(todo)} runs recorded", flush=True)
            seen = finished
        if all(done_states):
            break
        if limit_s is not None and time.perf_counter() - t0 > limit_s:
            print(f"stopped waiting after {limit_s:.0f} s; jobs keep running, see `bench status`")
            return
        time.sleep(poll_s)
    missing = [s for s in todo if not store.is_done(out, s.key)]
    if missing:
        print(
            f"warning: {len(missing)} run(s) have no finished record (a job failed or timed out); "
            "run the same command again to resubmit only those"
        )
