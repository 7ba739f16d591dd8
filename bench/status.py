"""`python -m bench status`: done / failed / pending per grid, read from the records alone.

Every `bench run` leaves a manifest of its grid (the run keys and the command) in OUT/.grids/, and
SLURM submissions their job ids in OUT/.slurm/jobs.json, so no process has to stay alive to know
how far a grid has come.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tabulate import tabulate

from . import store


def jobs_file(out: Path) -> Path:
    """Where `--executor slurm` keeps its submitted job arrays (read back by `bench status`)."""
    return Path(out) / ".slurm" / "jobs.json"


def manifest_dir(out: Path) -> Path:
    return Path(out) / ".grids"


def write_manifest(out: Path, keys: list[str], labels: list[str], command: str) -> Path:
    """The grid's manifest, written through a temporary file of its own (concurrent launches of one
    grid on one folder each write theirs and the last rename wins, whole)."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:12]
    path = manifest_dir(out) / f"{digest}.json"
    text = json.dumps(
        {"command": command, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "keys": keys, "labels": labels}, indent=1
    )
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~store.umask())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:  # a full disk: no half-written manifest left behind
            Path(tmp).unlink(missing_ok=True)
        raise store.write_failure(path, e) from None
    return path


def read_manifest(path: Path) -> dict | None:
    """A manifest, or None (with a warning naming it) when it cannot be used."""
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(m, dict) and isinstance(m.get("keys"), list):
            return m
    except (OSError, ValueError):
        pass
    print(
        f"warning: unreadable grid manifest {path} (skipped; the next `bench run` of its grid rewrites it)",
        file=sys.stderr,
    )
    return None


def _states(out: Path) -> tuple[dict[str, str], dict[str, int], list[tuple[Path, str]]]:
    """{key: status} of the usable records, {key: earlier failed attempts kept in its record}, and
    (path, why) of the files that cannot be used."""
    states, attempts, unusable = {}, {}, []
    for path in store.record_files(out):
        rec, why = store.load_record(path)
        if rec is None:
            unusable.append((path, why))
            continue
        states[rec["key"]] = rec.get("status", "?")
        if rec.get("failed_attempts"):
            attempts[rec["key"]] = len(rec["failed_attempts"])
    return states, attempts, unusable


def claims_lines(out: Path) -> list[str]:
    """One line per claim file: who holds it, or why the next launch takes it over."""
    lines = []
    for key, holder, stale in store.held_claims(out):
        who = f"pid {holder['pid']} on {holder['host']}" if holder else "no readable holder"
        if stale:
            lines.append(f"claim {key}: stale ({stale}); the next `bench run` of its grid takes it over")
        else:
            lines.append(
                f"claim {key}: held by {who}; if that process is gone for good (another host: the claim lapses "
                f"{store.LEASE_S:.0f} s after its last renewal), release it with: rm {store.claims_dir(out) / key}"
            )
    return lines


def squeue_states(job_ids: list[str]) -> Counter:
    """Job-array task states from squeue (running / pending); empty when SLURM is not reachable."""
    if not job_ids or not shutil.which("squeue"):
        return Counter()
    arrays = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", ",".join(arrays), "-o", "%T"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return Counter()
    return Counter(line.strip() for line in out.splitlines() if line.strip())


def status(out: Path) -> int:
    if not Path(out).is_dir():
        print(f"error: {out} does not exist; pass the --out folder of a `bench run`", file=sys.stderr)
        return 2
    states, attempts, unusable = _states(out)
    rows = []
    for path in sorted(manifest_dir(out).glob("*.json")):
        m = read_manifest(path)
        if m is None:
            continue
        c = Counter(states.get(k, "pending") for k in m["keys"])
        rows.append(
            [
                m.get("created", "?"),
                len(m["keys"]),
                c.get("ok", 0),
                c.get("failed", 0),
                c.get("pending", 0),
                str(m.get("command", ""))[:90],
            ]
        )
    if rows:
        print(tabulate(rows, headers=["grid started", "runs", "done", "failed", "pending", "command"]))
    all_c = Counter(states.values())
    print(
        f"\nrecords in {out}: {all_c.get('ok', 0)} done, {all_c.get('failed', 0)} failed"
        + (
            f"; {sum(attempts.values())} earlier failed attempt(s) of {len(attempts)} run(s) kept in their "
            "records (`failed_attempts`)"
            if attempts
            else ""
        )
    )
    jobs = store_jobs(out)
    for sub in jobs:
        pending_keys = [k for k in sub["keys"] if states.get(k) != "ok"]
        q = squeue_states(sub["job_ids"])
        queue = ", ".join(f"{n} {s.lower()}" for s, n in sorted(q.items())) or "none in the queue"
        print(
            f"slurm array {sub['job_ids'][0].split('_')[0]} ({sub['submitted']}): {len(sub['keys'])} runs, "
            f"{len(sub['keys']) - len(pending_keys)} recorded done; tasks: {queue}"
        )
    for path, why in unusable:
        print(f"unusable record file {path}: {why} (skipped by run, report and status; remove or redo it)")
    for line in claims_lines(out):
        print(line)
    if not rows and not jobs:
        print("(no grid manifests here: grids run before manifests existed show only as records)")
    return 0


def store_jobs(out: Path) -> list[dict]:
    path = jobs_file(out)
    return json.loads(path.read_text()) if path.is_file() else []
