"""Run records on disk: one JSON file per run key, written atomically; read back for resume/report."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

DEFAULT_OUT = Path("results/runs")


def record_path(out: Path, key: str) -> Path:
    return Path(out) / f"{key}.json"


def _clean(o):
    """JSON has no NaN: store it as null so every reader can parse the record."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


def write_record(out: Path, record: dict) -> Path:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a record."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = record_path(out, record["key"])
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{record['key']}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_clean(record), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_record(path: Path) -> dict | None:
    """The record at `path`, or None when it is missing or unreadable (the caller decides what that means)."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and "key" in rec and "spec" in rec else None


def is_done(out: Path, key: str) -> bool:
    rec = read_record(record_path(out, key))
    return rec is not None and rec.get("status") == "ok"


def iter_records(out: Path):
    """(path, record or None) for every *.json under `out`, recursively, sorted by path; folders whose
    name starts with '.' (grid manifests, SLURM bookkeeping) are not records and are skipped."""
    out = Path(out)
    for path in sorted(out.rglob("*.json")):
        if not any(part.startswith(".") for part in path.relative_to(out).parts):
            yield path, read_record(path)
