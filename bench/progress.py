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

PROGRESS_EVERY_S = 20.0  # a progress line at least this often inside a run, outside a terminal


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
        self.label, self.last = label, time.perf_counter()

    def step(self, done: int, total: int, loss: float):
        """A line every PROGRESS_EVERY_S inside a run, so a log never goes silent for a whole run."""
        if time.perf_counter() - self.last >= PROGRESS_EVERY_S:
            self.last = time.perf_counter()
            self.worker_step(self.label, done, total, loss)

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
    def __init__(self, total: int, skipped: int):
        self.console = Console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.grid = self.progress.add_task(f"grid ({skipped} already done)", total=total)
        self.run = self.progress.add_task("run", total=1, visible=False)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def start_run(self, label: str, steps: int):
        self.label = label
        self.progress.reset(self.run, total=steps, description=f"  {label}", visible=True)

    def step(self, done: int, total: int, loss: float):
        self.progress.update(self.run, completed=done, description=f"  {self.label} loss {loss:.4f}")

    def worker_step(self, label: str, done: int, total: int, loss: float):
        self.progress.update(self.run, description=f"  {label}: step {done}/{total}, loss {loss:.4f}")

    def skip(self, label: str, why: str):
        self.progress.console.print(f"{label}: skipped, {why}")
        self.progress.advance(self.grid)

    def end_run(self, rec: dict):
        self.progress.console.print(escape(f"{run_label(rec)}: {summary_line(rec)}"))
        self.progress.advance(self.grid)


def make_progress(total: int, skipped: int, plain: bool):
    return (PlainProgress if plain or not sys.stdout.isatty() else RichProgress)(total, skipped)
