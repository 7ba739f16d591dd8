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


def load_record(path: Path) -> tuple[dict | None, str | None]:
    """(record, None) or (None, why it cannot be used): missing, a directory, not UTF-8, not JSON,
    or JSON that is not a record. Never raises for a bad file."""
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except IsADirectoryError:
        return None, "a directory, not a record file"
    except OSError as e:
        return None, f"cannot be read ({e.strerror or type(e).__name__})"
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as e:  # json.JSONDecodeError
        return None, f"not valid JSON ({str(e).splitlines()[0][:80]})"
    if not isinstance(rec, dict) or not isinstance(rec.get("spec"), dict) or not isinstance(rec.get("key"), str):
        return None, "JSON without a run key and spec"
    return rec, None


def read_record(path: Path) -> dict | None:
    """The record at `path`, or None when it is missing or unreadable (the caller decides what that means)."""
    return load_record(path)[0]


def is_done(out: Path, key: str) -> bool:
    rec = read_record(record_path(out, key))
    return rec is not None and rec.get("status") == "ok"


def record_files(out: Path):
    """Every *.json under `out`, recursively, sorted by path; folders whose name starts with '.' (grid
    manifests, SLURM bookkeeping) hold no records and are skipped."""
    out = Path(out)
    for path in sorted(out.rglob("*.json")):
        if not any(part.startswith(".") for part in path.relative_to(out).parts):
            yield path


def iter_records(out: Path):
    """(path, record or None) for every record file under `out` (see `record_files`)."""
    for path in record_files(out):
        yield path, read_record(path)
