"""Executors for real: worker processes (standing in for GPUs on the CPU) and a real SLURM cluster."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench import store
from bench.cli import main
from bench.executors import RunOptions, run_local, run_pool

from .conftest import tiny_specs
from .slurm_cluster import Cluster, ClusterUnavailable

REPO = Path(__file__).resolve().parents[1]


def comparable(rec):
    return rec["spec"], rec["counts"], rec["metrics"], rec["history"]


def local_reference(specs, tmp_path):
    """The same specs run in this process with one thread: what every executor must reproduce."""
    threads = torch.get_num_threads()
    try:
        recs = run_local(specs, tmp_path / "local", torch.device("cpu"), RunOptions(plain=True, threads=1)).written
    finally:
        torch.set_num_threads(threads)
    return {r["key"]: r for r in recs}


@pytest.mark.slow
def test_pool_of_cpu_workers_matches_a_local_run(tmp_path):
    specs = tiny_specs(["ce", "os+fsc"], ratios=[1.0, 0.25])
    written = run_pool(
        specs, tmp_path / "pool", RunOptions(plain=True, threads=1), ["cpu"], workers_per_device=2
    ).written
    assert sorted(r["key"] for r in written) == sorted(s.key for s in specs)
    ref = local_reference(specs, tmp_path)
    for r in written:
        assert r["status"] == "ok" and comparable(r) == comparable(ref[r["key"]])


def _cmdline(pid: int) -> str:
    """A process's command line, or "" when it ended after it was listed (a short-lived helper)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _workers_of(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if "spawn_main" in _cmdline(k)]


@pytest.mark.slow
def test_killing_a_worker_loses_no_record_and_a_rerun_completes_the_grid(tmp_path):
    out = tmp_path / "runs"
    args = [
        "run",
        "--dataset",
        "synthetic",
        "--preset",
        "tiny",
        "--steps",
        "60",
        "--methods",
        "ce,os,fsc,os+fsc",
        "--ratios",
        "1,0.25",
        "--executor",
        "gpus",
        "--device",
        "cpu",
        "--workers-per-gpu",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
        "--plain",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*.json")):
        time.sleep(0.2)
    workers = _workers_of(proc.pid)
    assert len(workers) == 2 and list(out.glob("*.json")), "the grid did not start"
    os.kill(workers[0], signal.SIGKILL)
    log, _ = proc.communicate(timeout=180)
    # the run the killed worker was in is a failed record with the reason; the grid went on; exit 1
    recs = {p.name: store.read_record(p) for p in out.glob("*.json")}
    failed = [r for r in recs.values() if r["status"] != "ok"]
    assert len(recs) == 8 and len(failed) <= 1, log
    if failed:  # (the worker may have been between two runs when it was killed: then nothing was lost)
        assert "died (signal SIGKILL)" in failed[0]["error"]
        assert proc.returncode == 1 and "1 run(s) failed" in log, log
    else:
        assert proc.returncode == 0, log
    before = {n: json.dumps(r, sort_keys=True) for n, r in recs.items() if r["status"] == "ok"}
    assert main(args) == 0  # the same command again retries the failed run only
    after = {p.name: p.read_text() for p in out.glob("*.json")}
    assert len(after) == 8 and all(store.read_record(out / n)["status"] == "ok" for n in after)
    assert all(json.dumps(store.read_record(out / n), sort_keys=True) == text for n, text in before.items())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        c = Cluster(tmp_path_factory.mktemp("slurm")).start()
    except ClusterUnavailable as e:
        pytest.skip(f"a SLURM cluster cannot run here: {e}")
    yield c
    c.stop()


@pytest.mark.slow
def test_slurm_executor_runs_a_grid_through_the_real_scheduler(cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the array tasks import bench from this checkout
    out = tmp_path / "runs"
    specs = tiny_specs(["ce", "os", "os+fsc"], ratios=[1.0, 0.25])
    args = [
        "run",
        "--dataset",
        "synthetic",
        "--preset",
        "tiny",
        "--methods",
        "ce,os,os+fsc",
        "--ratios",
        "1,0.25",
        "--executor",
        "slurm",
        "--slurm-runs-per-task",
        "2",
        "--slurm-time",
        "10",
        "--slurm-mem-gb",
        "1",
        "--slurm-cpus-per-task",
        "1",
        "--slurm-no-wait",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    seen_in_queue = False
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("*.json"))) < len(specs):
        queue = cluster.squeue()
        if len(queue.strip().splitlines()) > 1:
            seen_in_queue = True
            with capsys.disabled():
                print("\n[slurm test] squeue:\n" + queue, flush=True)
        time.sleep(2)
    assert seen_in_queue, "no job ever showed in squeue"
    recs = {r["key"]: r for _, r in store.iter_records(out)}
    assert sorted(recs) == sorted(s.key for s in specs), f"records missing; logs in {out / '.slurm'}"
    ref = local_reference(specs, tmp_path)
    for key, r in recs.items():
        assert r["status"] == "ok" and comparable(r) == comparable(ref[key])
    assert main(["status", "--out", str(out)]) == 0
    status_out = capsys.readouterr().out
    assert "6 done, 0 failed" in status_out and "slurm array" in status_out
    with capsys.disabled():
        print(f"[slurm test] bench status:\n{status_out}", flush=True)
    # a second submission of the same grid submits nothing
    assert main(args) == 0
    assert "nothing to submit" in capsys.readouterr().out
