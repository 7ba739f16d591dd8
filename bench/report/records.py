"""Reading run records for a report: every *.json under the runs folder, each run key once.

A file that cannot be used (not UTF-8, not JSON, a finished record without the numbers a board
needs) is listed as unreadable with its path and reason and skipped; the same record found twice
(say a copy in a subfolder) counts once, and two different records under one key are an error that
names both files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .. import store
from ..errors import BenchError
from .model import Board, aggregate

# What a finished record must hold for a board: (dotted path, expected type).
REQUIRED = (
    ("spec.dataset", str),
    ("spec.task", str),
    ("spec.method", str),
    ("spec.ratio", (int, float)),
    ("spec.seed", int),
    ("spec.hparams", dict),
    ("counts.classes", list),
    ("metrics.per_class_acc", list),
    ("metrics.balanced_acc", (int, float)),
    ("metrics.macro_f1", (int, float)),
)


@dataclass
class Collected:
    boards: list[Board]
    ok: list[dict]
    failed: list[dict]
    unreadable: list[tuple[Path, str]]  # (file, why)
    figures: list[Path] = field(default_factory=list)
    summary_blocks: dict[str, str] = field(default_factory=dict)  # the README's generated tables and "v:" values, by name


def _get(rec: dict, dotted: str):
    for part in dotted.split("."):
        rec = rec[part]
    return rec


def record_problem(rec: dict) -> str | None:
    """Why a finished record cannot go on a board, or None."""
    for dotted, tp in REQUIRED:
        try:
            value = _get(rec, dotted)
        except (KeyError, TypeError):
            return f"finished record without {dotted}"
        if not isinstance(value, tp) or isinstance(value, bool):
            return f"finished record whose {dotted} is not a {getattr(tp, '__name__', 'number')}"
    if len(rec["metrics"]["per_class_acc"]) != len(rec["counts"]["classes"]):
        return "finished record whose per-class accuracies do not match its classes"
    values = [*rec["metrics"]["per_class_acc"], rec["metrics"].get("balanced_acc", 0.0)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return "finished record with a non-finite accuracy (NaN is stored as null): redo it with --force"
    return None


def collect(runs_dir: Path) -> Collected:
    ok, failed, unreadable = [], [], []
    seen: dict[str, tuple[Path, dict]] = {}
    for path in store.record_files(runs_dir):
        rec, why = store.load_record(path)
        if rec is None:
            unreadable.append((path, why))
            continue
        if rec.get("status") == "ok":
            why = record_problem(rec)
            if why:
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
