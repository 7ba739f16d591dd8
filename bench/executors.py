"""Where the runs of a grid execute: in this process, in worker processes over devices, or on SLURM.

Whatever the executor, each run writes its own record atomically into the same results folder, so
resume, `bench status` and `bench report` need not know how a grid was run; a worker or job that
dies loses only the run it was in, and the next `bench run` of the same grid does the rest.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from methods import load_plugins

from . import store
from .envinfo import now
from .errors import BenchError
from .progress import PROGRESS_EVERY_S, TERMINAL_EVERY_S, make_progress
from .runner import DataCache, pending, plain_output, run_stack
from .saved_model import model_path
from .spec import RunSpec
from .status import jobs_file, squeue_states
from .worker_boot import boot


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
    save_models: bool = False  # also write OUT/models/<key>.pt (the trained model, bench/saved_model.py)
    plugins: tuple[str, ...] = ()  # modules registering methods, imported in every worker process too
    skip_unreadable: bool = False  # folder source: leave unreadable photos out (listed in each record)
    split_by: str | None = None  # folder source: keep each location / camera / sequence in one split


@dataclass(frozen=True)
class WorkerPlan:
    """How many processes train at once where, with how many CPU threads each."""

    kind: str  # the device kind the runs compute on: cpu | cuda
    devices: list[str]  # pool: the devices its workers are spread over
    per_device: int  # pool: workers per device
    threads: int  # torch CPU threads per run (part of a CPU run's numerics)


def plan_workers(executor: str, device_flag: str, device, threads, workers_per_gpu, slurm_gpus) -> WorkerPlan:
    """On a CPU one thread per run by default (the thread count changes the arithmetic and is part of the
    key) and one worker per core; on GPUs one worker per device by default, the cores split among them."""
    cores = os.cpu_count() or 1
    if executor == "pool":
        devices = visible_devices() if device_flag == "auto" else [device_flag]
    else:
        devices = [str(device)]
    kind = ("cuda" if slurm_gpus else "cpu") if executor == "slurm" else torch.device(devices[0]).type
    if kind == "cpu":
        threads = threads or 1
        per_device = workers_per_gpu or max(1, cores // threads)
    else:
        per_device = workers_per_gpu or 1
        threads = threads or max(1, cores // (len(devices) * per_device))
    return WorkerPlan(kind, devices, per_device, threads)


@dataclass
class Outcome:
    """What one `bench run` call did with its grid."""

    written: list[dict] = field(default_factory=list)  # records this call wrote (ok or failed)
    already_done: int = 0  # finished before this call
    claimed: list[str] = field(default_factory=list)  # keys another live process was running
    lost: list[str] = field(default_factory=list)  # keys left without a record (the grid did not finish)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.written if r["status"] != "ok"]


def execute(
    specs: list[RunSpec], cache: DataCache, device: torch.device, opts: RunOptions, out: Path, on_progress=None,
    force=False,
) -> tuple[list[dict], list[str]]:  # fmt: skip
    """Claim the runs of a stack, train them together and write the records of those claimed: the body
    every executor shares. Returns (records written, keys another process holds or finished since this
    grid was planned). A stack trains whole: its members held or finished elsewhere train beside the
    others (so every member's arithmetic is its key's) and their records are not written here.
    `on_progress(key, step, total, loss)` follows each claimed run."""
    held, elsewhere = {}, []
    for spec in specs:
        claim = store.claim(Path(out), spec.key)
        if claim is not None and not force and store.is_done(Path(out), spec.key):  # finished meanwhile
            store.release(claim)
            claim = None
        if claim is None:
            elsewhere.append(spec.key)
        else:
            held[spec.key] = claim
    if not held:
        return [], elsewhere
    renewed = [time.monotonic()]

    def progress(key):
        def step(done, total, loss):  # renews the claims' leases as training goes on
            if time.monotonic() - renewed[0] >= store.RENEW_S:
                renewed[0] = time.monotonic()
                for claim in held.values():
                    store.renew(claim)
            if on_progress and key in held:
                on_progress(key, done, total, loss)

        return step

    written = []
    try:
        src, data = cache.get(specs[0].dataset)
        features = [Path(out) / "features" / f"{s.key}.npz" if opts.save_features else None for s in specs]
        models = [model_path(Path(out), s.key) if opts.save_models else None for s in specs]
        records = run_stack(
            specs, src, data, device, opts.eval_batch_size, [progress(s.key) for s in specs], opts.compile,
            opts.command, features, models,
        )  # fmt: skip
        for rec in records:
            if rec["key"] in held:
                store.write_record(Path(out), rec)
                written.append(rec)
    finally:
        for claim in held.values():
            store.release(claim)
    return written, elsewhere


def died_record(spec: RunSpec, how: str, command: str = "") -> dict:
    """The failed record of a run whose process died under it (a native crash: no Python exception)."""
    return {
        "key": spec.key,
        "spec": asdict(spec),
        "status": "failed",
        "error": f"the process running it died ({how}): a native crash in torch or a kill; the grid went on, "
        "and the same command again retries it",
        "date": now(),
        "command": command,
        "wall_s": None,
    }


def _plan(stacks: list, out, force) -> tuple[list[list[RunSpec]], set[str], int]:
    """The stacks with a run still to do, the keys still to do (a stack's finished members train again,
    unwritten), and how many runs are done (a plain spec is a stack of one)."""
    stacks = [stack if isinstance(stack, list) else [stack] for stack in stacks]
    todo = {s.key for s in pending([s for stack in stacks for s in stack], out, force)}
    runs = sum(len(stack) for stack in stacks)
    return [stack for stack in stacks if any(s.key in todo for s in stack)], todo, runs - len(todo)


def run_local(stacks: list, out: Path, device: torch.device, opts: RunOptions, force=False) -> Outcome:
    """One stack (`plan_stacks`; a plain spec is a stack of one) after another in this process (a native crash ends this
    process: the pool executor turns one into a failed record instead)."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cache = DataCache(opts.data_root, opts.image_size, opts.skip_unreadable, opts.split_by)
    stacks, todo, done_before = _plan(stacks, out, force)
    result = Outcome(already_done=done_before)
    plain = plain_output() if opts.plain is None else opts.plain
    labels = {s.key: s.label() for stack in stacks for s in stack}
    with make_progress(len(todo), done_before, plain) as prog:
        for stack in stacks:
            mine = [s.key for s in stack if s.key in todo]
            for key in mine:
                prog.start_run(labels[key], stack[0].steps)

            def progress(key, step, total, loss):
                prog.step(step, total, loss, labels[key])

            written, elsewhere = execute(stack, cache, device, opts, out, progress, force)
            for key in elsewhere:
                if key in mine:
                    result.claimed.append(key)
                    prog.skip(labels[key], "run or finished by another process")
            for rec in written:
                result.written.append(rec)
                prog.end_run(rec)
    return result


def run_specs(spec_dicts: list[dict], out: str, device: str, opts: dict) -> list[tuple[str, str]]:
    """Run a shard of specs (skipping finished ones) in the calling process: a SLURM array task's body."""
    o = RunOptions(**opts)
    load_plugins(o.plugins)
    if o.threads:
        torch.set_num_threads(o.threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    cache = DataCache(o.data_root, o.image_size, o.skip_unreadable, o.split_by)
    done = []
    for d in spec_dicts:
        spec = RunSpec.from_dict(d)
        if store.is_done(Path(out), spec.key):
            done.append((spec.key, "skipped"))
            continue
        written, _ = execute([spec], cache, dev, o, Path(out))
        status = written[0]["status"] if written else "claimed elsewhere"
        done.append((spec.key, status))
        print(f"{spec.label()}: {status}", flush=True)
    return done


# ---- a pool of worker processes over the visible devices ------------------------------------------


def _pool_worker(
    wid: int, device: str, threads: int, tasks, results, out: str, opts: dict, parent: int, force: bool
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent stops a worker with SIGTERM: it just ends
    try:  # start-up: a failure here would fail every run alike, so it is reported once, not retried forever
        torch.set_num_threads(threads)
        o = RunOptions(**opts)
        load_plugins(o.plugins)
        cache = DataCache(o.data_root, o.image_size, o.skip_unreadable, o.split_by)
        dev = torch.device(device)
    except Exception as e:
        results.put(("startup_failed", wid, f"{type(e).__name__}: {e}"))
        return
    while os.getppid() == parent:
        item = tasks.get()
        if item is None:
            return
        stack = [RunSpec.from_dict(d) for d in item]
        results.put(("started", wid, [s.key for s in stack if force or not store.is_done(Path(out), s.key)]))
        last: dict[str, float] = {}
        every = PROGRESS_EVERY_S if o.plain is not False else TERMINAL_EVERY_S  # bars on a terminal move often

        def progress(key, step, total, loss, last=last, every=every):
            if time.monotonic() - last.setdefault(key, time.monotonic()) >= every:
                last[key] = time.monotonic()
                results.put(("progress", wid, key, step, total, loss))

        try:
            written, elsewhere = execute(stack, cache, dev, o, Path(out), progress, force)
        except store.RecordWriteError as e:  # a full disk, a read-only folder: the grid cannot go on
            results.put(("fatal", wid, str(e)))
            return
        for key in elsewhere:
            results.put(("claimed", wid, key))
        for rec in written:
            results.put(("done", wid, rec))


def visible_devices() -> list[str]:
    n = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(n)] if n else ["cpu"]


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def run_pool(
    stacks: list,
    out: Path,
    opts: RunOptions,
    devices: list[str],
    workers_per_device: int = 1,
    force=False,
) -> Outcome:
    """`workers_per_device` processes per device pull stacks (runs, unless --stack) from one queue
    (several small runs can share a GPU; on a machine without GPUs, CPU worker processes stand in for
    devices). A worker that dies in a stack (a native crash) leaves a failed record for each of its runs
    with its reason and is replaced."""
    stacks, todo, done_before = _plan(stacks, out, force)
    if not todo:
        print(f"grid: nothing to do, {done_before} already done")
        return Outcome(already_done=done_before)
    pool = _Pool(stacks, todo, out, opts, devices, workers_per_device, force)
    try:
        with make_progress(len(todo), done_before, pool.plain) as pool.prog:
            pool.run()
    finally:
        pool.stop()
    if pool.fatal:
        raise pool.fatal[0](pool.fatal[1])
    pool.result.already_done = done_before
    pool.result.lost = sorted(todo - pool.finished)
    return pool.result


class _Pool:
    """The pool's parent side: its worker processes, the runs each holds, and what came back."""

    def __init__(self, stacks, todo: set[str], out: Path, opts: RunOptions, devices, workers_per_device, force):
        import multiprocessing as mp

        self.ctx = mp.get_context("spawn")
        self.todo, self.out, self.opts, self.devices, self.force = todo, out, opts, devices, force
        self.plain = plain_output() if opts.plain is None else opts.plain
        self.tasks, self.results = self.ctx.Queue(), self.ctx.Queue()
        n_workers = max(1, min(len(stacks), len(devices) * workers_per_device))
        self.threads = opts.threads or max(1, (os.cpu_count() or 1) // n_workers)
        self.by_key = {s.key: s for stack in stacks for s in stack}
        for stack in stacks:
            self.tasks.put([asdict(s) for s in stack])
        for _ in range(n_workers):
            self.tasks.put(None)
        self.result, self.prog = Outcome(), None
        self.running: dict[int, list[str]] = {}  # worker -> keys of the runs it holds
        self.started: set[int] = set()  # workers that reached a run (past start-up)
        self.startup_failures = 0  # a worker that fails before its first run is replaced once, then the grid stops
        self.finished: set[str] = set()
        self.fatal = None  # (exception class, message): ends the grid
        self.procs = {wid: self.start(wid) for wid in range(n_workers)}
        print(
            f"pool: {n_workers} worker processes on {', '.join(sorted(set(devices)))}, {self.threads} CPU threads each"
        )

    def start(self, wid: int):
        p = self.ctx.Process(
            target=boot,
            args=(
                f"{__name__}:_pool_worker",
                os.getpid(),
                wid,
                self.devices[wid % len(self.devices)],
                self.threads,
                self.tasks,
                self.results,
                str(self.out),
                asdict(self.opts) | {"plain": self.plain},  # resolved here: a worker's stdout is not a terminal
                os.getpid(),
                self.force,
            ),
            daemon=True,
        )
        p.start()
        return p

    def respawn(self, dead: int) -> None:
        new = max([*self.procs, dead, *self.running]) + 1
        self.procs[new] = self.start(new)  # takes the stop marker the dead worker left

    def failed_at_startup(self, wid: int, why: str) -> None:
        self.startup_failures += 1
        if self.startup_failures > 1:
            self.fatal = (
                BenchError,
                f"pool workers fail at start-up ({why}); no run was trained by them; fix that and run "
                "the same command again (finished records are kept)",
            )
        elif len(self.finished) < len(self.todo):
            self.respawn(wid)  # one retry

    def run(self) -> None:
        while len(self.finished) < len(self.todo) and self.fatal is None:
            try:
                msg = self.results.get(timeout=1.0)
            except queue.Empty:
                self.check_workers()
                if self.fatal is None and not any(p.is_alive() for p in self.procs.values()):
                    return
                continue
            self.handle(msg)

    def check_workers(self) -> None:
        """A worker that died: record the runs it was in as failed, start another."""
        for wid, p in list(self.procs.items()):
            if p.is_alive() or p.exitcode == 0:
                continue
            del self.procs[wid]
            if wid not in self.started:
                self.failed_at_startup(wid, f"a worker died before its first run: {_signal_name(p.exitcode)}")
                continue
            for key in self.running.pop(wid, []):
                if key not in self.finished and not store.is_done(self.out, key):
                    rec = died_record(self.by_key[key], _signal_name(p.exitcode), self.opts.command)
                    store.write_record(self.out, rec)
                    store.release(store.claims_dir(self.out) / key)
                    self.result.written.append(rec)
                    self.finished.add(key)
                    self.prog.end_run(rec)
            if len(self.finished) < len(self.todo):
                self.respawn(wid)

    def _ends(self, wid: int, key: str) -> bool:
        """Whether `key` is a run of this grid not yet finished; if so it is finished now."""
        if key not in self.todo or key in self.finished:
            return False
        self.running[wid] = [k for k in self.running.get(wid, []) if k != key]
        self.finished.add(key)
        return True

    def handle(self, msg: tuple) -> None:
        kind, wid = msg[0], msg[1]
        if kind == "startup_failed":
            self.procs.pop(wid, None)
            self.failed_at_startup(wid, msg[2])
        elif kind == "started":
            self.started.add(wid)
            self.running[wid] = [k for k in msg[2] if k in self.todo and k not in self.finished]
            for key in self.running[wid]:
                self.prog.start_run(self.by_key[key].label(), self.by_key[key].steps)
        elif kind == "progress":
            self.prog.worker_step(self.by_key[msg[2]].label(), *msg[3:])
        elif kind == "done" and self._ends(wid, msg[2]["key"]):
            self.result.written.append(msg[2])
            self.prog.end_run(msg[2])
        elif kind == "claimed" and self._ends(wid, msg[2]):
            self.result.claimed.append(msg[2])
            self.prog.skip(self.by_key[msg[2]].label(), "run or finished by another process")
        elif kind == "fatal":
            self.fatal = (store.RecordWriteError, msg[2])

    def stop(self) -> None:
        for p in self.procs.values():
            if p.is_alive():
                p.terminate()
        for p in self.procs.values():
            p.join(timeout=10)
        # the claims of the runs the stopped workers were in die with them (issue 37: Ctrl-C and SIGTERM left
        # them for the next launch to find stale); a claim another process holds is not ours to release
        for wid, p in self.procs.items():
            for key in self.running.get(wid, []):
                path = store.claims_dir(self.out) / key
                holder = store.read_claim(path)
                if key not in self.finished and holder and holder["pid"] == p.pid and not p.is_alive():
                    store.release(path)


def run_grid(settings, stacks: list[list[RunSpec]]) -> Outcome | None:
    """Run the planned stacks with the executor `settings` (bench/settings.py) names; None when the runs
    were submitted to SLURM without waiting for them."""
    s, out = settings, settings.out
    if s.executor == "local":
        return run_local(stacks, out, s.device, s.options, force=s.force)
    if s.executor == "pool":
        return run_pool(stacks, out, s.options, s.workers.devices, s.workers.per_device, force=s.force)
    specs = [spec for stack in stacks for spec in stack]
    todo = pending(specs, out, s.force)
    run_slurm(specs, out, s.options, s.slurm, force=s.force)
    if not s.slurm.wait:
        return None
    recs = {r["key"]: r for _, r in store.iter_records(out) if r}
    return Outcome(
        written=[recs[t.key] for t in todo if t.key in recs],
        already_done=len(specs) - len(todo),
        lost=[t.key for t in todo if t.key not in recs],
    )


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
