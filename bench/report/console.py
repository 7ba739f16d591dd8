"""The leaderboards on the console: rich tables on a terminal, plain text in a pipe or a log."""

from __future__ import annotations

from rich.markup import escape
from tabulate import tabulate

from . import tables as T
from .model import Board, ratio_label


def print_console(boards: list[Board], n_failed: int = 0, console=None, analysis=None, declared=None) -> None:
    """Each board's table in the order of the board's decision against `os` (when it has `os`), followed by
    what the decision says, in words; `analysis`: the boards' Analysis where the caller has it; `declared`: an
    Analysis of every record of the same boards with the confirmatory families (`bench run` passes it), whose
    declared contrasts among the board's methods are said after the table."""
    from rich.console import Console
    from rich.table import Table

    from .analysis import Analysis

    console = console or Console()
    a = analysis or (Analysis.of(boards) if boards else None)
    for b in boards:
        t = T.console_rows(b, a)
        if console.is_terminal:
            table = Table(title=escape(b.title), caption=escape(T.console_order(b, a)), show_lines=False)
            for h in t.head:
                table.add_column(escape(h))
            for r in t.rows:  # labels such as 'os+fsc [fsc.lam=0.1]' are text, not rich markup
                table.add_row(*(escape(x) for x in r))
            console.print(table)
        else:  # a log: one line per method and ratio, never wrapped into a narrow column
            table = tabulate(t.rows, headers=t.head, tablefmt="simple", disable_numparse=True)
            print(f"\n{b.title}\n{T.console_order(b, a)}\n{table}")
        words = decision_words(a, b) if a else ""
        if words:
            console.print(escape(words), soft_wrap=not console.is_terminal)
        if declared and (said := declared_words(declared, b)):
            console.print(escape(said), soft_wrap=not console.is_terminal)
    if n_failed:
        console.print(f"[red]{n_failed} failed run(s)[/red], not averaged: see the report's failed list")


REGIME_WORDS = {
    "standard": "the from-scratch regime (at least the standard budget), the README's exploratory screen; its "
    "declared contrasts are decided first in the transfer regime (the same command with --preset transfer)",
    "transfer": "the transfer regime (from a pretrained start), the practitioner's, where the README's declared "
    "contrasts are decided first",
    "short": "a short budget (the archive: which methods learn the rare class fastest, not where they end; the "
    "answer's regimes are --preset transfer and --preset standard)",
}


def decision_words(a, b: Board) -> str:
    """What board b's decision at its most imbalanced ratio says, in words, and where the full answer is."""
    r = min(b.ratios)
    d = a.decisions.get((b.slug, r))
    if d is None:
        return ""
    seeds = sorted({len(c.seeds) for (m, ratio), c in b.cells.items() if ratio == r})
    n = len(b.methods)
    better, worse = d.named("better"), d.named("worse")
    said = (
        f"At {ratio_label(r)}, with {'-'.join(map(str, (seeds[0], seeds[-1]))) if len(seeds) > 1 else seeds[0]} "
        f"seeds: {len(d.may_be_best)} of {n} methods may be the best ({', '.join(map(d.name, d.may_be_best))}); "
        f"better than {d.reference}: {', '.join(better) or 'none'}; worse: {', '.join(worse) or 'none'}; "
        f"{len(d.named('inconclusive'))} inconclusive (paired t-test with the test images' shared error, "
        f"Benjamini-Hochberg over the {len(d.vs_reference)} comparisons with {d.reference}: an exploratory screen). "
    )
    return said + (
        f"This is {REGIME_WORDS.get(b.regime, b.regime)}, for the methods asked. The suite's answer over every "
        "method, with its declared confirmatory contrasts, is the README's 'The answer so far'; every board is in "
        "results/leaderboard.md (`python -m bench report`)."
    )


def _verdict_phrase(res) -> str:
    if res.verdict in ("better", "worse"):
        return f"{res.verdict} (decided at the {res.look}-seed look)"
    if res.verdict == "not decided":
        mde = f"; it could detect {res.mde:.3f}" if res.mde is not None else ""
        return f"not decided at the last look{mde}"
    return f"{res.verdict}, the next look at {res.next_look} seeds"


def declared_words(declared, b: Board) -> str:
    """The declared confirmatory contrasts among board b's methods, as `declared` (an Analysis of every record
    of b's setting, with the families) decides them: the seeds a user asked for are often fewer than the race
    has run, and the decided answer must not read as 'inconclusive'."""
    said = []
    for (slug, r), (fam, results) in declared.confirmed.items():
        if slug != b.slug or r not in b.ratios:
            continue
        shown = [res for res in results if {res.method, res.reference} <= set(b.methods) and res.paired]
        if shown:
            said.append(
                f"Declared before its runs ({fam['source']}), at {ratio_label(r)} over every seed of this board in "
                "the records, not only those asked: "
                + "; ".join(f"{res.name} {res.paired.fmt()}: {_verdict_phrase(res)}" for res in shown)
                + "."
            )
    return " ".join(said)


def print_summary(boards: list[Board], n_failed: int = 0) -> None:
    """`bench report`'s console output without --verbose: one line per board (its tables are in the files)."""
    print(f"{len(boards)} boards (each one's tables: leaderboard.md and boards/; every board here: --verbose):")
    for b in boards:
        seeds = max((len(c.seeds) for c in b.cells.values()), default=0)
        print(f"  {b.slug}: {len(b.methods)} methods, ratios {len(b.ratios)}, up to {seeds} seeds")
    if n_failed:
        print(f"{n_failed} failed run(s), not averaged: see the report's failed list")
