"""`python -m bench report`: run records -> leaderboards (markdown, CSV, LaTeX, a static site) and figures.

The package's files follow the data: `records` reads the run records (each key once, bad files named
and skipped), `model` groups them into boards of cells, `analysis` draws the conclusions once
(validation selection, paired differences, rankings), `tables` builds every table, and `markdown`,
`latex`, `site`, `console` and `figures` render them. Only records with status 'ok' are averaged;
failed ones are listed. Nothing is written until every input has been read, and each output file is
replaced atomically, so a report that fails leaves the previous one intact.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import store
from ..errors import BenchError
from ..review import REVIEW_TARGET
from ..stats import MARGIN
from . import tables as T
from .analysis import Analysis, paired_cell, rankings, select_on_validation
from .console import print_console, print_summary
from .latex import board_latex
from .markdown import board_pages, markdown, summary_blocks, summary_md, summary_values
from .model import Board, aggregate, method_label, ratio_label
from .racegrid import race_grid_text
from .records import Collected, collect

__all__ = [
    "Analysis",
    "Board",
    "Collected",
    "aggregate",
    "collect",
    "markdown",
    "method_label",
    "paired_cell",
    "print_console",
    "rankings",
    "report",
    "select_on_validation",
]

EMBEDDED = ("ce", "os", "os+fsc")


def write_atomic(path: Path, text: str) -> Path:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise store.write_failure(path, e) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~store.umask())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise store.write_failure(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def csv_text(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def embedding_figures(boards: list[Board], runs_dir: Path, fig_dir: Path, warn=print) -> list[Path]:
    """Per board, the most extreme ratio and smallest seed at which ce, os and os+fsc (default
    hyper-parameters) all saved features: their t-SNE side by side. A feature file that cannot be
    read is named and skipped."""
    import numpy as np

    from .figures import embeddings

    written = []
    for b in boards:
        chosen = None
        for r in sorted(b.ratios):
            cells = [b.cells.get((m, r)) for m in EMBEDDED]
            if not all(cells):
                continue
            for seed in sorted(set.intersection(*(set(c.keys) for c in cells))):
                paths = [Path(runs_dir) / "features" / f"{c.keys[seed]}.npz" for c in cells]
                if all(p.is_file() for p in paths):
                    chosen = (r, seed, paths)
                    break
            if chosen:
                break
        if not chosen:
            continue
        r, seed, paths = chosen
        panels = []
        for m, path in zip(EMBEDDED, paths):
            try:
                with np.load(path, allow_pickle=False) as z:
                    feats, labels = z["layer4"], z["labels"]
                if feats.ndim != 2 or len(feats) != len(labels):
                    raise ValueError("arrays of mismatched shape")
            except Exception as e:  # truncated or crafted: skip this figure, keep the report
                warn(f"warning: unreadable feature file {path} ({type(e).__name__}); t-SNE of {b.slug} skipped")
                panels = None
                break
            panels.append((m, feats, labels))
        if panels:
            title = f"{b.label}, 1:{r:g}, seed {seed}: t-SNE of pooled layer4 test features"
            written.append(embeddings(panels, b.classes, title, fig_dir / f"tsne_{b.slug}.png"))
    return written


PAIRED_ROWS = 12  # at most this many methods in a paired figure (the rest are in the tables)


def paired_figures(a: Analysis, fig_dir: Path) -> list[Path]:
    """Per board: the decision's paired differences from the reference in balanced accuracy, one panel per
    ratio, with the intervals and the adjusted p-values the tables' verdicts used (bench/stats.py `decide`);
    at most PAIRED_ROWS methods (`shown_methods`: the paper's and the reference where they ran, then the largest
    mean differences)."""
    from .figures import paired_differences, shown_methods

    written = []
    for b in a.boards:
        panels, caption = [], ""
        for r in b.ratios:
            d = a.decisions.get((b.slug, r))
            if d is None or not d.vs_reference:
                continue
            by_mean = sorted(d.vs_reference, key=lambda m: -d.vs_reference[m].mean)
            shown = shown_methods(by_mean, a.reference, limit=PAIRED_ROWS)
            rows = [(d.name(m), d.vs_reference[m], d.p_adj[m]) for m in shown]
            panels.append(("balanced accuracy", ratio_label(r), rows))
            correction = {"bh": "Benjamini-Hochberg", "holm": "Holm"}[d.correction]
            with_test = any(pd.with_test for pd in d.vs_reference.values())
            caption = (
                f"95% interval over seeds{' and the test images' if with_test else ''}; p: paired t-test, "
                f"{correction}-adjusted over the {len(d.vs_reference)} comparisons at a ratio (as the tables)"
                + (f"; {len(shown)} of {len(d.vs_reference)} methods shown (all in the tables)"
                   if len(shown) < len(d.vs_reference) else "")
            )  # fmt: skip
        if panels:
            title = f"{b.label} ({b.setting['numerics']})"  # the numerics one line away, not in the label
            written += paired_differences(panels, a.reference, title, caption, fig_dir / f"paired_{b.slug}")
    return written


def confirmatory_figure(a: Analysis, fig_dir: Path) -> list[Path]:
    """The declared contrasts of every raced board and ratio in one figure (figures/confirmatory.png, the
    README's picture of the answer): each at the look that decided it, or the latest reached, as the
    confirmatory table has it; the transfer regime's cells first (the regime the answer comes from)."""
    from .figures import confirmatory_contrasts

    panels = []
    for b in sorted(a.boards, key=lambda b: b.regime != "transfer"):
        for r in sorted(b.ratios):
            if (b.slug, r) not in a.confirmed:
                continue
            _, results = a.confirmed[(b.slug, r)]
            rows = [
                (res.name, res.paired, res.verdict, f"{res.verdict} (n={res.paired.n})") if res.look
                else (res.name, None, res.verdict,
                      f"waiting for {res.next_look} seeds ({res.paired.n if res.paired else 0} so far)")
                for res in results
            ]  # fmt: skip
            if rows:
                panels.append((f"{b.label}, {ratio_label(r)}", rows))
    if not panels:
        return []
    caption = (
        "dot: mean paired difference over the contrast's usable seeds at its look (n), bar: its 95% interval "
        "(seeds and the test images' shared error, uncorrected); the verdict is Holm's over the contrasts open at "
        "that look, at the look's O'Brien-Fleming alpha (the confirmatory table in results/leaderboard.md)"
    )
    return confirmatory_contrasts(panels, caption, fig_dir / "confirmatory")


def review_figures(a: Analysis, fig_dir: Path) -> list[Path]:
    """Per board and ratio with per-image probabilities: the review-queue figure of its contenders (the
    reference, the paper's methods and the best by balanced accuracy, as the other figures choose them)."""
    from ..metrics import log_softmax, outcome_arrays
    from ..review import risk_coverage
    from .figures import review_queue, shown_methods

    grid = np.linspace(0.01, 1.0, 100)
    written = []
    for b in a.boards:
        for r in sorted(b.ratios):
            rb = a.reviews.get((b.slug, r))
            if rb is None:
                continue
            ranked = [m for m in b.ranked_methods() if m in rb.reviews]
            curves = {}
            for m in shown_methods(ranked, a.reference):
                cell, conf, right, risks = b.cells[(m, r)], [], [], []
                for s in sorted(rb.reviews[m]):
                    labels, logp, _ = outcome_arrays(cell.outcomes[s])
                    probs = np.exp(log_softmax(logp))
                    conf += probs.max(axis=1).tolist()
                    right += (probs.argmax(axis=1) == labels).tolist()
                    cov, risk = risk_coverage(probs, labels)
                    risks.append(np.interp(grid, cov, risk))
                curves[m] = {"conf": conf, "right": right, "coverage": grid, "risk": np.mean(risks, axis=0),
                             "n": len(risks)}  # fmt: skip
            tag = f"{b.slug}_{ratio_label(r).replace(':', '-')}"
            written += review_queue(curves, f"{b.title}, {ratio_label(r)}", a.review_target,
                                    fig_dir / f"review_{tag}")  # fmt: skip
    return written


def report(
    runs_dir: Path,
    out_dir: Path,
    console=None,
    reference: str = "os",
    figures: bool = True,
    site: bool = False,
    margin: float = MARGIN,
    review_target: float = REVIEW_TARGET,
    families: list[dict] | None = None,
    verbose: bool = True,
) -> Collected:
    """Read every record under `runs_dir`, then write leaderboard.md/.csv, latex/ and figures/ (and
    the static site with `site`) into `out_dir`. Raises BenchError, writing nothing, when there is no
    finished record."""
    from .budget import budget_studies, regime_groups
    from .figures import (
        accuracy_vs_budget,
        accuracy_vs_frequency,
        accuracy_vs_ratio,
        critical_difference,
        regimes_vs_budget,
    )

    col = collect(runs_dir)
    if not col.ok:  # nothing to put on a board: leave the last report as it was
        failed = (
            f" ({len(col.failed)} failed: `python -m bench status --out {runs_dir}` names them)" if col.failed else ""
        )
        raise BenchError(
            f"no finished run records in {runs_dir}{failed}; nothing written; run `python -m bench run` first"
        )
    a = Analysis.of(col.boards, reference, margin, review_target, families)
    md, table = markdown(col, a), csv_text(T.csv_rows(col.boards))  # everything computed before writing
    pages = board_pages(a)
    summary = summary_md(a)
    col.summary_blocks = summary_blocks(a) | summary_values(a)
    col.race_grid = race_grid_text(a)
    store.prepare_out(out_dir)
    write_atomic(out_dir / "leaderboard.md", md)
    for slug, page in pages.items():
        write_atomic(out_dir / "boards" / f"{slug}.md", page)
    for old in (out_dir / "boards").glob("*.md"):  # a board that no longer exists leaves no page behind
        if old.stem not in pages:
            old.unlink()
    write_atomic(out_dir / "leaderboard.csv", table)
    write_atomic(out_dir / "summary.md", summary)
    for b in col.boards:
        write_atomic(out_dir / "latex" / f"{b.slug}.tex", board_latex(b))
    figs: list[Path] = []
    if figures:
        fig_dir = out_dir / "figures"
        figs += accuracy_vs_ratio(col.boards, fig_dir)
        figs += accuracy_vs_frequency(col.boards, fig_dir)
        figs += embedding_figures(col.boards, runs_dir, fig_dir)
        figs += paired_figures(a, fig_dir)
        figs += confirmatory_figure(a, fig_dir)
        figs += review_figures(a, fig_dir)
        studies = budget_studies(col.boards)
        for study in studies:
            figs += accuracy_vs_budget(study, fig_dir)
        for slug, title, group in regime_groups(studies):
            figs += regimes_vs_budget(group, title, fig_dir / slug)
        for nr in a.rankings:
            figs += critical_difference(nr, f"{nr.title}: mean rank of balanced accuracy", fig_dir / f"cd_{nr.slug}")
    if site:
        from .site import build_site

        build_site(col, a, runs_dir, out_dir / "site", figs)
    if verbose:
        print_console(col.boards, len(col.failed), console, analysis=a)
    else:
        print_summary(col.boards, len(col.failed))
    col.figures = figs
    return col
