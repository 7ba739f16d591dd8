"""The leaderboards on the console: rich tables on a terminal, plain text in a pipe or a log."""

from __future__ import annotations

from rich.markup import escape
from tabulate import tabulate

from . import tables as T
from .model import Board


def print_console(boards: list[Board], n_failed: int = 0, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for b in boards:
        t = T.console_rows(b)
        if console.is_terminal:
            table = Table(title=escape(b.title), caption=escape(T.console_order(b)), show_lines=False)
            for h in t.head:
                table.add_column(escape(h))
            for r in t.rows:  # labels such as 'os+fsc [fsc.lam=0.1]' are text, not rich markup
                table.add_row(*(escape(x) for x in r))
            console.print(table)
        else:  # a log: one line per method and ratio, never wrapped into a narrow column
            table = tabulate(t.rows, headers=t.head, tablefmt="simple", disable_numparse=True)
            print(f"\n{b.title}\n{T.console_order(b)}\n{table}")
    if n_failed:
        console.print(f"[red]{n_failed} failed run(s)[/red], not averaged: see the report's failed list")


def print_summary(boards: list[Board], n_failed: int = 0) -> None:
    """`bench report`'s console output without --verbose: one line per board (its tables are in the files)."""
    print(f"{len(boards)} boards (each one's tables: leaderboard.md and boards/; every board here: --verbose):")
    for b in boards:
        seeds = max((len(c.seeds) for c in b.cells.values()), default=0)
        print(f"  {b.slug}: {len(b.methods)} methods, ratios {len(b.ratios)}, up to {seeds} seeds")
    if n_failed:
        print(f"{n_failed} failed run(s), not averaged: see the report's failed list")
