"""Reading run records for a report: every *.json under the runs folder, each run key once.

A file that cannot be used (not UTF-8, not JSON, a finished record without the numbers a board
needs) is listed as unreadable with its path and reason and skipped; the same record found twice
(say a copy in a subfolder) counts once, and two different records under one key are an error that
names both files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import store
from ..errors import BenchError
from .model import Board, aggregate


# What a finished record must hold for a board: (dotted path, expected type).
@dataclass
class Collected:
    boards: list[Board]
    ok: list[dict]
    failed: list[dict]
    unreadable: list[tuple[Path, str]]  # (file, why)
    figures: list[Path] = field(default_factory=list)
    summary_blocks: dict[str, str] = field(
        default_factory=dict
    )  # the README's generated tables and "v:" values, by name
    race_grid: str = ""  # the racing plan as a grid file (bench/report/racegrid.py)


def collect(runs_dir: Path) -> Collected:
    ok, failed, unreadable = [], [], []
    seen: dict[str, tuple[Path, dict]] = {}
    for path in store.record_files(runs_dir):
        rec, why = store.load_record(path)
        if rec is None:
            unreadable.append((path, why))
            continue
        if rec["key"] in seen:
            first, other = seen[rec["key"]]
            if other != rec:
                raise BenchError(f"two different records for run {rec['key']}: {first} and {path}; keep one of them")
            continue  # the same record twice (a copy): counted once
        seen[rec["key"]] = (path, rec)
        (ok if rec.get("status") == "ok" else failed).append(rec)
    return Collected(aggregate(ok), ok, failed, unreadable)
