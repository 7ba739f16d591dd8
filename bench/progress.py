"""Progress of a grid: a rich display on a terminal, plain log lines under CI or in a pipe."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column

PROGRESS_EVERY_S = 20.0  # a progress line at least this often inside a run, outside a terminal
TERMINAL_EVERY_S = 0.5  # a pool worker's progress to a terminal's bars


def run_label(rec: dict) -> str:
    s = rec["spec"]
    return f"{s['dataset']}/{s['task']} r={s['ratio']:g} {s['method']} seed={s['seed']}"


def summary_line(rec: dict) -> str:
    if rec["status"] != "ok":
        return f"FAILED: {rec.get('error', '?')}"
    m = rec["metrics"]
    accs = " ".join(f"{c}={a:.3f}" for c, a in zip(rec["counts"]["classes"], m["per_class_acc"]))
    return f"{accs} bal={m['balanced_acc']:.3f} ({rec['wall_s']:.1f} s)"


class PlainProgress:
    def __init__(self, total: int, skipped: int):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        print(f"grid: {total} runs to do, {skipped} already done", flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def start_run(self, label: str, steps: int):
        self.label, self.last = label, {**getattr(self, "last", {}), label: time.perf_counter()}

    def step(self, done: int, total: int, loss: float, label: str | None = None):
        """A line every PROGRESS_EVERY_S inside a run (`label`: one of a stack's), so a log never goes
        silent for a whole run."""
        label = label or self.label
        if time.perf_counter() - self.last.get(label, 0.0) >= PROGRESS_EVERY_S:
            self.last[label] = time.perf_counter()
            self.worker_step(label, done, total, loss)

    def worker_step(self, label: str, done: int, total: int, loss: float):
        print(f"  ... {label}: step {done}/{total}, loss {loss:.4f}", flush=True)

    def skip(self, label: str, why: str):
        self.done += 1
        print(f"[{self.done}/{self.total}] {label}: skipped, {why}", flush=True)

    def end_run(self, rec: dict):
        self.done += 1
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total}] {run_label(rec)}: {summary_line(rec)} | eta {eta:.0f} s", flush=True)


class RichProgress:
    """A bar for the grid and one per run in progress (one per pool worker), each moving with the steps;
    the labels are cut to fit the terminal so that counts and times always show (80 columns included)."""

    def __init__(self, total: int, skipped: int, console: Console | None = None):
        self.console = console or Console()
        label_width = max(16, self.console.width - 50)
        self.progress = Progress(
            TextColumn(
                "{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=label_width)
            ),
            BarColumn(bar_width=12),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.grid = self.progress.add_task(f"grid ({skipped} already done)", total=total)
        self.runs: dict[str, list[int]] = {}  # label -> its bars (two budgets of one run may share a label)
        self.label = ""

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def start_run(self, label: str, steps: int):
        self.label = label
        self.runs.setdefault(label, []).append(self.progress.add_task(f"  {label}", total=steps))

    def step(self, done: int, total: int, loss: float, label: str | None = None):
        self.worker_step(label or self.label, done, total, loss)

    def worker_step(self, label: str, done: int, total: int, loss: float):
        for task in self.runs.get(label, [])[-1:]:
            self.progress.update(task, completed=done, total=total, description=f"  {label} loss {loss:.4f}")

    def _finish(self, label: str):
        if self.runs.get(label):
            self.progress.remove_task(self.runs[label].pop(0))
        self.progress.advance(self.grid)

    def skip(self, label: str, why: str):
        self.progress.console.print(escape(f"{label}: skipped, {why}"))
        self._finish(label)

    def end_run(self, rec: dict):
        self.progress.console.print(escape(f"{run_label(rec)}: {summary_line(rec)}"))
        self._finish(run_label(rec))


def make_progress(total: int, skipped: int, plain: bool):
    return (PlainProgress if plain or not sys.stdout.isatty() else RichProgress)(total, skipped)


def plain_progress(label: str, every: int = 10):
    """An on_progress callback for one long run outside a grid: a plain line at every `every`% of its steps."""
    shown = set()

    def on_progress(step: int, total: int, loss: float) -> None:
        pct = 100 * step // max(1, total)
        mark = pct // every
        if mark not in shown:
            shown.add(mark)
            print(f"  ... {label}: step {step}/{total}, loss {loss:.4f}", flush=True)

    return on_progress
