"""The leaderboard as a static site (`bench report --html`): an index with the "which method?" table,
every board and the rankings; a page per board with all its tables and figures; a page per run
(spec, per-class accuracy, confusion matrix, loss curve) linked from each cell. Self-contained: it
works from file:// without a server. Templates are Jinja2; sorting is tablesort (MIT, 5.7.1, shipped
in `static/`); the loss curve is an inline SVG polyline, so no chart library is needed.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..spec import named_budget
from . import tables as T
from .analysis import Analysis
from .markdown import provenance, run_label
from .model import METRIC_TITLES, Board, Cell, method_label, ratio_label
from .records import Collected

HERE = Path(__file__).parent
CURVE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def sortkey(text: str) -> str:
    """The number a table cell sorts by: a ratio '1:0.01' by its minority share (0.01), else its first
    number (a mean), else the text; missing sorts last."""
    ratio = re.match(r"\s*1:(\d*\.?\d+(?:e-?\d+)?)", str(text))
    if ratio:
        return ratio.group(1)
    m = re.search(r"[-+]?\d*\.\d+|[-+]?\d+", str(text))
    return m.group(0) if m else "-1e9"


@dataclass
class Value:
    text: str
    sort: float | str
    runs: list[tuple[int, str]] | None = None  # (seed, run key): a 'runs' cell of links


@dataclass
class Column:
    title: str


@dataclass
class Row:
    method: str
    values: list[Value]


@dataclass
class BoardTable:
    slug: str
    title: str
    columns: list[Column]
    rows: list[Row]
    label: str = ""  # the short identity (Board.label); the title holds the numerics


def board_table(b: Board) -> BoardTable:
    """Per ratio: the headline numbers with their spread, n, and the seeds as links to their runs."""
    if b.multiclass:
        stats = [
            ("top-1", lambda c: c.balanced_acc),
            ("tail", lambda c: c.per_class[-1]),
            ("macro-F1", lambda c: c.macro_f1),
        ]
    else:
        stats = [
            ("minority", lambda c: c.per_class[-1]),
            ("majority", lambda c: c.per_class[0]),
            ("balanced", lambda c: c.balanced_acc),
        ]
    columns = []
    for r in b.ratios:
        columns += [Column(f"{ratio_label(r)} {name}") for name, _ in stats] + [Column(f"{ratio_label(r)} runs")]
    rows = []
    for m in b.ranked_methods():
        values = []
        for r in b.ratios:
            c: Cell | None = b.cells.get((m, r))
            for _, get in stats:
                st = get(c) if c else None
                values.append(Value(st.fmt() if st else "—", round(st.mean, 6) if st else -1))
            runs = sorted(c.keys.items()) if c else []
            values.append(Value(str(len(runs)), len(runs), runs))
        rows.append(Row(m, values))
    return BoardTable(b.slug, b.title, columns, rows, b.label)


def loss_curve(history: list[dict], w: int = 640, h: int = 220) -> dict | None:
    """The logged losses as SVG polylines in a w x h box (x: step, y: loss, linear)."""
    if not history:
        return None
    names = sorted(
        {k for e in history for k in e if k not in ("step", "epoch", "stage")}, key=lambda k: (k != "loss", k)
    )
    # a part equal to the total at every step (a run with one loss term) adds nothing to the plot
    names = [k for k in names if k == "loss" or any(e.get(k) != e.get("loss") for e in history)]
    steps = [e["step"] for e in history]
    values = [e[k] for e in history for k in names if isinstance(e.get(k), int | float)]
    if not values:
        return None
    lo, hi = min(0.0, min(values)), max(values) or 1.0
    x0, x1, y0, y1 = 40, w - 10, 10, h - 20
    sx = lambda s: x0 + (x1 - x0) * (s - 0) / max(1, max(steps))  # noqa: E731
    sy = lambda v: y1 - (y1 - y0) * (v - lo) / ((hi - lo) or 1)  # noqa: E731
    series = []
    for i, k in enumerate(names):
        pts = [(sx(e["step"]), sy(e[k])) for e in history if isinstance(e.get(k), int | float)]
        series.append(
            {
                "name": k,
                "colour": CURVE_COLOURS[i % len(CURVE_COLOURS)],
                "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in pts),
            }
        )
    breaks, last = [], history[0].get("stage")
    for e in history:
        if e.get("stage") != last:
            breaks.append(round(sx(e["step"]), 1))
            last = e.get("stage")
    xticks = [(round(sx(s), 1), str(s)) for s in (0, max(steps) // 2, max(steps))]
    yticks = [(round(sy(v), 1) + 3, f"{v:.3g}") for v in (lo, (lo + hi) / 2, hi)]
    return {"w": w, "h": h, "series": series, "xticks": xticks, "yticks": yticks, "stage_breaks": breaks}


def _fmt(v, digits=3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) else "—"


def run_context(rec: dict, board: str | None) -> dict:
    m, counts = rec.get("metrics", {}), rec.get("counts", {})
    classes = counts.get("classes", [])
    per_class = []
    for i, cls in enumerate(classes):
        get = lambda key: _fmt(m.get(key, [None] * len(classes))[i]) if m.get(key) else "—"  # noqa: B023, E731
        per_class.append(
            {
                "cls": cls,
                "train": counts.get("train", ["?"] * len(classes))[i],
                "test": counts.get("test", ["?"] * len(classes))[i],
                "acc": get("per_class_acc"),
                "precision": get("precision"),
                "recall": get("recall"),
                "f1": get("f1"),
            }
        )
    ph = m.get("posthoc")
    summary = {
        "balanced_acc": _fmt(m.get("balanced_acc")),
        "macro_f1": _fmt(m.get("macro_f1")),
        "roc_auc": _fmt(m.get("roc_auc")),
        "la": _fmt(m.get("balanced_acc_logit_adjusted")),
        "bn": _fmt(m.get("bn_balanced", {}).get("balanced_acc")),
        "posthoc": ", ".join(f"{k}={v}" for k, v in ph.items() if k != "val_balanced_acc") if ph else "",
    }
    timing = {k: rec.get(k) for k in ("timings", "env", "command", "wall_s", "data") if k in rec}
    return {
        "rec": rec,
        "label": run_label(rec) + (f" — {method_label(rec)}" if rec.get("spec", {}).get("hparams") else ""),
        "board": board,
        "classes": classes,
        "per_class": per_class if m else [],
        "summary": summary,
        "confusion": m.get("confusion", []),
        "curve": loss_curve(rec.get("history", [])),
        "spec_json": json.dumps(rec.get("spec", {}), indent=1, sort_keys=True),
        "timing_json": json.dumps(timing, indent=1, sort_keys=True, default=str),
    }


def build_site(col: Collected, a: Analysis, runs_dir: Path, site: Path, figures: list[Path]) -> Path:
    """Write the site into `site` (replaced as a whole); return the index page."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["sortkey"] = sortkey
    tmp = site.with_name(site.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "static").mkdir(parents=True)
    for f in (HERE / "static").iterdir():
        shutil.copy2(f, tmp / "static" / f.name)
    (tmp / "figures").mkdir()
    pngs = [f for f in figures if f.suffix == ".png"]
    for f in pngs:
        shutil.copy2(f, tmp / "figures" / f.name)
    n = len(col.ok) + len(col.failed)
    common = {"n_records": n}

    board_of: dict[str, str] = {}
    tables = []
    for b in a.boards:
        bt = board_table(b)
        tables.append(bt)
        for c in b.cells.values():
            for key in c.keys.values():
                board_of[key] = b.slug
        sections = _board_sections(a, b)
        figs = [f"figures/{f.name}" for f in pngs if b.slug in f.stem or f.stem.endswith(b.group[0])]
        page = env.get_template("board.html").render(
            root="../", title=b.title, bt=bt, sections=sections, figures=figs, **common
        )
        (tmp / "boards").mkdir(exist_ok=True)
        (tmp / "boards" / f"{b.slug}.html").write_text(page, encoding="utf-8")

    rankings = []
    for nr in a.rankings:
        rk = nr.ranking
        fig = f"figures/cd_{nr.slug}.png"
        rankings.append(
            {
                "title": nr.title,
                "table": T.ranking_table(nr),
                "figure": fig if (tmp / fig).is_file() else None,
                "note": f"Mean rank of balanced accuracy over {len(rk.cells)} cells; Friedman p = {rk.p:.3g}; "
                f"Nemenyi critical difference {nr.critical_difference:.2f} ranks.",
            }
        )
    failed = [{"key": r.get("key"), "label": run_label(r), "error": r.get("error", "?")} for r in col.failed]
    answers, study, archive, answer_slugs = _front_page(a, {f.name for f in pngs})
    # the boards shown first: the answer's (the studies' and the short budgets' folded into the archive)
    index = env.get_template("index.html").render(
        root="",
        title="Leaderboards",
        provenance=provenance(col),
        answers=answers,
        decided=_decided(a, {f.name for f in pngs}),
        study=study,
        archive=archive,
        front_boards=[bt for bt in tables if bt.slug in answer_slugs],
        archive_boards=[bt for bt in tables if bt.slug not in answer_slugs],
        rankings=rankings,
        fsc_effect=T.fsc_effect(a.boards),
        which_note=T.WHICH_NOTE.format(margin=a.margin),
        reference=a.reference,
        failed=failed,
        **common,
    )
    (tmp / "index.html").write_text(index, encoding="utf-8")

    (tmp / "runs").mkdir()
    run_tpl = env.get_template("run.html")
    for rec in col.ok + col.failed:
        page = run_tpl.render(
            root="../", title=rec.get("key", "run"), **run_context(rec, board_of.get(rec.get("key"))), **common
        )
        (tmp / "runs" / f"{rec['key']}.html").write_text(page, encoding="utf-8")

    shutil.rmtree(site, ignore_errors=True)
    tmp.replace(site)
    return site / "index.html"


ANSWER_REGIMES = {  # the boards the answer is read from, in the front page's order (Board.regime): the
    # practitioner's regime first, where the declared contrasts are decided first (README, 'The answer so far')
    "transfer": "From a pretrained start (the practitioner's regime)",
    "standard": "From scratch at the standard budget",
}


def answer_boards(a: Analysis, regime: str) -> tuple[list[Board], list[Board]]:
    """A regime's boards split into the answer's (those trained exactly as the regime's preset: one per task,
    e.g. `--preset transfer`) and its studies' (other budgets or tuning modes of the same regime). A regime
    with no board of its preset shows all of its boards as the answer."""
    boards = a.boards_of(regime)
    preset = [b for b in boards if named_budget(b.setting) == regime]
    return (preset, [b for b in boards if b not in preset]) if preset else (boards, [])


def _front_page(a: Analysis, pngs: set[str]) -> tuple[list[dict], dict | None, dict | None, set[str]]:
    """The answer's which-method tables, one per regime with boards of its preset, each with the forest plot
    of each of its boards (the paired figure, where the report drew figures); the table of the regimes'
    other boards (the studies: other budgets and tuning modes), the short-budget archive's table, and the
    slugs of the boards the answer shows. Without any answer board (a first quick grid), the one table of
    every board is the answer."""
    answers, studied, shown = [], [], set()
    for regime, heading in ANSWER_REGIMES.items():
        boards, others = answer_boards(a, regime)
        table = T.which_method(a, boards=boards)
        if table is None:
            continue
        studied += others
        shown |= {b.slug for b in boards}
        forest = [
            {"slug": b.slug, "label": b.label, "figure": f"figures/paired_{b.slug}.png"}
            for b in boards
            if f"paired_{b.slug}.png" in pngs
        ]
        answers.append({"id": f"which-{regime}", "heading": heading, "table": table, "forest": forest})
    if not answers:
        table = T.which_method(a)
        every = [{"id": "which-method", "heading": "", "table": table, "forest": []}] if table else []
        return every, None, None, {b.slug for b in a.boards}
    study = T.which_method(a, boards=studied) if studied else None
    short = T.which_method(a, regime="short")
    return (
        answers,
        {"id": "which-study", "table": study, "n": len(studied)} if study else None,
        {"id": "which-short", "table": short} if short else None,
        shown,
    )


def _decided(a: Analysis, pngs: set[str]) -> dict | None:
    """The front page's first section where a confirmatory family has been raced: the answer's figure
    (figures/confirmatory.png, where the report drew figures) and, folded, the confirmatory table."""
    table = T.confirmatory(a)
    if table is None or "confirmatory.png" not in pngs:
        return None
    return {"figure": "figures/confirmatory.png", "table": table, "note": T.CONFIRM_NOTE}


def _board_sections(a: Analysis, b: Board) -> list[dict]:
    sections = []

    def add(title, table, note=""):
        if table:
            sections.append({"title": title, "table": table, "note": note})

    if b.multiclass:
        for r in b.ratios:
            add(f"Long-tail protocol at {ratio_label(r)}", T.long_tail(b, r), T.shot_note(b, r))
    add("Balanced accuracy / macro-F1", T.summary(b))
    add("Ablation (the paper's Table 1)", T.ablation(b))
    add(
        "Selected on validation",
        T.selection(a, b),
        "The configuration with the best validation balanced accuracy; test numbers are never read to choose.",
    )
    add(
        "Bias or representation?",
        T.diagnosis(b),
        "ROC-AUC, balanced accuracy after test-time logit adjustment and with class-balanced BatchNorm "
        "statistics, layer4 silhouette and cross-class cosine (n seeds).",
    )
    for metric in T.paired_metrics(b):
        add(
            f"Paired against {a.reference}: {METRIC_TITLES[metric]}",
            T.paired(b, a.reference, metric),
            "Mean difference [95% t-interval] and the two-sided p of the paired t-test that made it, uncorrected "
            "(n seeds); the which-method table corrects them for the board's comparisons.",
        )
    add(
        "Review queue",
        T.review_queue(a, b),
        " ".join([T.REVIEW_NOTE.format(target=f"{a.review_target:.0%}"), *T.review_contrast(a, b)]),
    )
    return sections
