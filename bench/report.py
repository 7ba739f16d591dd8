"""Run records -> leaderboards (markdown, CSV, console), the paper's ablation table and figure.

Only records with status 'ok' are averaged; failed ones are counted and listed; a cell with no
finished run is shown as missing. Runs are grouped into boards by dataset, task, classes and the
training settings, so runs of different presets or models are never averaged together.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tabulate import tabulate

from methods import MethodError, parse_method

from . import store
from .spec import LATE_DEFAULTS, PRESETS, TRAIN_FLAGS, record_numerics
from .stats import paired_difference, rank_methods

MISSING = "—"
# Per-run numbers beyond per-class accuracy, read where a record has them (older records lack some).
# The minority is the last class.
EXTRA_METRICS = {
    "roc_auc": lambda m: m["roc_auc"],
    "bal_acc_la": lambda m: m["balanced_acc_logit_adjusted"],  # after test-time logit adjustment
    "l4_silhouette": lambda m: m["separation"]["layer4"]["silhouette"],
    "l4_cross_cos": lambda m: m["separation"]["layer4"]["cross_class_cos"],
    "val_bal": lambda m: m["val"]["balanced_acc"],  # on the held-out validation set, for selection only
}
PAIRED_METRICS = ("min_acc", "roc_auc", "l4_silhouette")  # compared against --reference in the report
METRIC_TITLES = {
    "min_acc": "minority acc.",
    "roc_auc": "ROC-AUC",
    "bal_acc_la": "balanced acc. after logit adjustment",
    "l4_silhouette": "layer4 silhouette",
    "l4_cross_cos": "layer4 cross-class cosine",
}
ABLATION = ("ce", "os", "fsc", "os+fsc")
# The effect of adding the FSC loss, without and with oversampling: (with, without) pairs.
FSC_CONTRASTS = (("fsc", "ce"), ("os+fsc", "os"))
# Spec fields that define a board (everything but what varies inside it).
BOARD_FIELDS = (
    "dataset",
    "task",
    "classes",
    "n_major",
    "model",
    "image_size",
    "weights",
    *TRAIN_FLAGS,
    "preset",
    "suite_version",
    "weights_sha256",
    "numerics",  # rebuilt from the recorded environment for records made before the field existed
)


@dataclass
class Stat:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (ddof=1); NaN with a single seed."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else float("nan")

    def fmt(self, digits: int = 3) -> str:
        if not self.values:
            return MISSING
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f}±{self.std:.{digits}f}"


@dataclass
class Cell:
    """All seeds of one (board, method, ratio)."""

    per_class: list[Stat]
    balanced_acc: Stat
    macro_f1: Stat
    seeds: list[int]
    base: str = ""  # the composition without hyper-parameters, e.g. 'fsc' for 'fsc [fsc.lam=0.3]'
    extra: dict[str, dict[int, float]] = field(default_factory=dict)  # EXTRA_METRICS name -> {seed: value}
    keys: dict[int, str] = field(default_factory=dict)  # seed -> run key (names the run's feature file)

    def by_seed(self, class_index: int) -> dict[int, float]:
        return dict(zip(self.seeds, self.per_class[class_index].values))

    def metric_by_seed(self, name: str) -> dict[int, float]:
        """'min_acc' or an EXTRA_METRICS name, for the seeds whose records have it."""
        return self.by_seed(-1) if name == "min_acc" else self.extra.get(name, {})

    def stat(self, name: str) -> Stat:
        return Stat([v for _, v in sorted(self.metric_by_seed(name).items())])


@dataclass
class Board:
    """One leaderboard: a dataset, task, class list and training setting."""

    setting: dict
    classes: list[str]
    cells: dict[tuple[str, float], Cell] = field(default_factory=dict)

    @property
    def title(self) -> str:
        s = self.setting
        classes = " vs ".join(self.classes) if len(self.classes) <= 3 else f"{len(self.classes)} classes"
        train = f"preset {s['preset']}, width {s['width']}, {s['steps']} steps x {s['batch_size']}"
        held = f", validation hold-out {s['val_per_class']}/class" if s.get("val_per_class") else ""
        return f"{s['dataset']} / {s['task']} ({classes}) — {train}{held}; {s['numerics']}"

    @property
    def group(self) -> tuple[str, str]:
        """A file-name slug and a title for the dataset and training setting (tasks share them):
        the preset, plus each training flag that differs from the preset's default (say a validation
        hold-out), so that boards of different settings get their own ranking and figures."""
        s = self.setting
        defaults = PRESETS.get(s["preset"], {})
        extra = {k: s.get(k) for k in TRAIN_FLAGS if k in defaults and s.get(k) != defaults[k]}
        slug = "_".join([s["dataset"], s["preset"], *(f"{k.replace('_', '-')}{v}" for k, v in extra.items())])
        title = ", ".join([s["dataset"], f"preset {s['preset']}", *(f"{k}={v}" for k, v in extra.items())])
        return f"{slug}_{numerics_tag(s['numerics'])}", f"{title}, {s['numerics']}"

    @property
    def methods(self) -> list[str]:
        return sorted({m for m, _ in self.cells})

    @property
    def ratios(self) -> list[float]:
        return sorted({r for _, r in self.cells}, reverse=True)

    def ranked_methods(self) -> list[str]:
        """By minority (last class) accuracy at the most extreme ratio, best first."""
        extreme = min(self.ratios)

        def score(m):
            c = self.cells.get((m, extreme))
            return -c.per_class[-1].mean if c else float("inf")

        return sorted(self.methods, key=lambda m: (score(m), m))


@dataclass
class Collected:
    boards: list[Board]
    ok: list[dict]
    failed: list[dict]
    unreadable: list[Path]
    figures: list[Path] = field(default_factory=list)


def numerics_tag(value: str) -> str:
    """A file-name tag for a numerics string: 'cpu fp32 threads=1 torch=2.14.1' -> 'cpu-fp32-t1-torch2.14.1'."""
    return "-".join(p.replace("threads=", "t").replace("torch=", "torch") for p in value.split())


def method_label(rec: dict) -> str:
    """The composition name, plus the hyper-parameters that differ from the registered defaults."""
    spec = rec["spec"]
    try:
        comp = parse_method(spec["method"])
        defaults = comp.hparams()
        legacy = {m.name: m.legacy for m in comp.parts}
    except MethodError:  # a method registered by a plug-in that this process does not know
        defaults, legacy = {}, {}
    # A hyper-parameter added after the record was made: the record used its legacy value, if any.
    hparams = {
        m: {**{k: v for k, v in legacy.get(m, {}).items() if k not in hp}, **hp} for m, hp in spec["hparams"].items()
    }
    diffs = [
        f"{m}.{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
        for m, hp in sorted(hparams.items())
        for k, v in sorted(hp.items())
        if defaults.get(m, {}).get(k) != v
    ]
    return spec["method"] + (f" [{' '.join(diffs)}]" if diffs else "")


def collect(runs_dir: Path) -> Collected:
    ok, failed, unreadable = [], [], []
    for path, rec in store.iter_records(runs_dir):
        if rec is None:
            unreadable.append(path)
        elif rec.get("status") == "ok" and "metrics" in rec:
            ok.append(rec)
        else:
            failed.append(rec)
    return Collected(aggregate(ok), ok, failed, unreadable)


def aggregate(records: list[dict]) -> list[Board]:
    groups: dict[str, dict] = {}
    values: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        spec = rec["spec"]
        setting = {k: spec.get(k, LATE_DEFAULTS.get(k)) for k in BOARD_FIELDS} | {"numerics": record_numerics(rec)}
        classes = rec["counts"]["classes"]
        bkey = json.dumps([setting, classes], sort_keys=True)
        groups.setdefault(bkey, {"setting": setting, "classes": classes})
        values[bkey][(method_label(rec), float(spec["ratio"]))].append(rec)
    boards = []
    for bkey in sorted(groups):
        b = Board(groups[bkey]["setting"], groups[bkey]["classes"])
        for (m, r), recs in values[bkey].items():
            recs = sorted(recs, key=lambda x: x["spec"]["seed"])
            n_cls = len(b.classes)
            b.cells[(m, r)] = Cell(
                per_class=[Stat([x["metrics"]["per_class_acc"][i] for x in recs]) for i in range(n_cls)],
                balanced_acc=Stat([x["metrics"]["balanced_acc"] for x in recs]),
                macro_f1=Stat([x["metrics"]["macro_f1"] for x in recs]),
                seeds=[x["spec"]["seed"] for x in recs],
                base=recs[0]["spec"]["method"],
                extra={name: _by_seed(recs, get) for name, get in EXTRA_METRICS.items()},
                keys={x["spec"]["seed"]: x["key"] for x in recs},
            )
        boards.append(b)
    return boards


def _by_seed(recs: list[dict], get) -> dict[int, float]:
    out = {}
    for x in recs:
        try:
            out[x["spec"]["seed"]] = float(get(x["metrics"]))
        except (KeyError, IndexError, TypeError):
            pass
    return out


def ratio_label(r: float) -> str:
    return f"1:{r:g}"


def _method_by_ratio(b: Board, head: str, cell) -> tuple[list[str], list[list[str]]]:
    """Rows of ranked methods, a column per ratio (`head` formats its title), `cell(Cell)` each value."""
    rows = [
        [m] + [cell(b.cells[(m, r)]) if (m, r) in b.cells else MISSING for r in b.ratios] for m in b.ranked_methods()
    ]
    return ["method"] + [head.format(ratio_label(r)) for r in b.ratios], rows


def leaderboard_rows(b: Board) -> tuple[list[str], list[list[str]]]:
    """Each cell 'min a±s / maj a±s (n=k)' (minority = last class, majority = first)."""
    return _method_by_ratio(
        b, "{}", lambda c: f"min {c.per_class[-1].fmt()} / maj {c.per_class[0].fmt()} (n={len(c.seeds)})"
    )


def summary_rows(b: Board) -> tuple[list[str], list[list[str]]]:
    return _method_by_ratio(b, "{} bal.acc / macro-F1", lambda c: f"{c.balanced_acc.fmt()} / {c.macro_f1.fmt()}")


def ablation_rows(b: Board, n_extreme: int = 3) -> tuple[list[str], list[list[str]]] | None:
    """The paper's Table 1: ce / os / fsc / os+fsc at the most extreme ratios, accuracy per class."""
    present = [m for m in ABLATION if m in b.methods]
    if len(present) < 2:
        return None
    ratios = sorted(b.ratios)[:n_extreme]
    head = ["method", "oversampling", "FSC loss"] + [f"{ratio_label(r)} {c}" for r in ratios for c in b.classes]
    rows = []
    for m in present:
        row = [m, "yes" if "os" in m.split("+") else "no", "yes" if "fsc" in m.split("+") else "no"]
        for r in ratios:
            c = b.cells.get((m, r))
            row += [c.per_class[i].fmt() if c else MISSING for i in range(len(b.classes))]
        rows.append(row)
    return head, rows


def select_on_validation(b: Board) -> dict[tuple[str, float], str]:
    """For each composition swept over hyper-parameters and each ratio, the configuration with the
    best mean validation balanced accuracy over the seeds that every configuration has (a sweep cut
    short must not favour a configuration for its easier seeds). It reads validation numbers only,
    never the test ones."""
    chosen = {}
    for r in b.ratios:
        by_base: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
        for (label, ratio), c in b.cells.items():
            if ratio == r and c.extra.get("val_bal"):
                by_base[c.base][label] = c.extra["val_bal"]
        for base, candidates in by_base.items():
            shared = set.intersection(*(set(v) for v in candidates.values()))
            if len(candidates) > 1 and shared:
                mean = {label: float(np.mean([v[s] for s in shared])) for label, v in candidates.items()}
                chosen[(base, r)] = max(mean, key=lambda label: (mean[label], label))
    return chosen


def selection_rows(b: Board) -> tuple[list[str], list[list[str]]] | None:
    """Test accuracy of the validation-selected configuration, marked as such, with its name."""
    chosen = select_on_validation(b)
    if not chosen:
        return None
    rows = []
    for base in sorted({base for base, _ in chosen}):
        row = [f"{base} (selected on validation)"]
        for r in b.ratios:
            label = chosen.get((base, r))
            c = b.cells.get((label, r)) if label else None
            row.append(f"min {c.per_class[-1].fmt()} / maj {c.per_class[0].fmt()} — {label}" if c else MISSING)
        rows.append(row)
    return ["method"] + [ratio_label(r) for r in b.ratios], rows


def paired_cell(b: Board, method: str, reference: str, ratio: float, metric: str):
    """stats.Paired of `method` − `reference` in `metric` at `ratio`, or None without two shared seeds."""
    c, ref = b.cells.get((method, ratio)), b.cells.get((reference, ratio))
    return paired_difference(c.metric_by_seed(metric), ref.metric_by_seed(metric)) if c and ref else None


def paired_rows(b: Board, reference: str, metric: str = "min_acc") -> tuple[list[str], list[list[str]]] | None:
    """Each method's paired difference in `metric` ('min_acc' or an EXTRA_METRICS name) against
    `reference`, per ratio, over the seeds both have."""
    if not any(m == reference for m, _ in b.cells):
        return None
    head = ["method"] + [f"{ratio_label(r)}: {METRIC_TITLES.get(metric, metric)} − {reference}" for r in b.ratios]
    rows = []
    for m in b.ranked_methods():
        if m == reference:
            continue
        pds = [paired_cell(b, m, reference, r, metric) for r in b.ratios]
        rows.append([m] + [pd.fmt() if pd else MISSING for pd in pds])
    if all(v == MISSING for row in rows for v in row[1:]):
        return None
    return head, rows


def fsc_effect_rows(boards: list[Board], contrasts=FSC_CONTRASTS) -> tuple[list[str], list[list[str]]] | None:
    """One table across boards: per board and ratio, each contrast's paired difference in minority
    accuracy and ROC-AUC, so that 'does FSC help, and where' is answered in one place."""
    pairs = [(a, ref, metric) for a, ref in contrasts for metric in ("min_acc", "roc_auc")]
    rows = []
    for b in boards:
        for r in sorted(b.ratios):
            pds = [paired_cell(b, a, ref, r, metric) for a, ref, metric in pairs]
            if any(pds):
                where = f"{b.group[1]}, {b.setting['task']}"
                rows.append([where, ratio_label(r)] + [pd.fmt() if pd else MISSING for pd in pds])
    if not rows:
        return None
    head = ["board", "ratio"] + [f"{a} − {ref}: {METRIC_TITLES[metric]}" for a, ref, metric in pairs]
    return head, rows


def diagnosis_rows(b: Board) -> tuple[list[str], list[list[str]]] | None:
    """Threshold-free and prior-corrected numbers: ROC-AUC, the minority accuracy after test-time
    logit adjustment, and the layer4 separation of the test features, each with its own n."""

    def fmt(c: Cell, name: str) -> str:
        st = c.stat(name)
        return f"{st.fmt()} ({st.n})" if st.n else MISSING

    if not any(c.extra.get("roc_auc") for c in b.cells.values()):
        return None
    return _method_by_ratio(
        b,
        "{} AUC / bal. acc. LA / l4 silhouette / l4 cross-cos",
        lambda c: " / ".join(fmt(c, name) for name in ("roc_auc", "bal_acc_la", "l4_silhouette", "l4_cross_cos")),
    )


@dataclass
class NamedRanking:
    slug: str
    title: str
    ranking: object  # stats.Ranking


def rankings(boards: list[Board]) -> list[NamedRanking]:
    """Per dataset and training setting: methods ranked by mean balanced accuracy over every
    (task, ratio) cell. Boards of different settings are never pooled (a method's score in one
    would overwrite its score in the other)."""
    groups: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(dict)
    for b in boards:
        g = groups[b.group]
        for (m, r), c in b.cells.items():
            g.setdefault(f"{b.setting['task']} {ratio_label(r)}", {})[m] = c.balanced_acc.mean
    out = []
    for (slug, title), scores in sorted(groups.items()):
        ranking = rank_methods(scores)
        if ranking:
            out.append(NamedRanking(slug, title, ranking))
    return out


def ranking_markdown(nr: NamedRanking) -> str:
    rk = nr.ranking
    rows = [[m, f"{rk.mean_rank[m]:.2f}"] for m in sorted(rk.methods, key=rk.mean_rank.get)]
    return (
        f"\n## Ranking across all cells: {nr.title}\n\n"
        f"Mean rank of balanced accuracy (1 = best) over {len(rk.cells)} cells (task x ratio) where every "
        f"method ran; Friedman chi² = {rk.statistic:.2f}, p = {rk.p:.3g}. The critical-difference diagram "
        f"(`figures/cd_{nr.slug}.png`) joins methods that the Nemenyi post-hoc test does not separate at 0.05.\n\n"
        + tabulate(rows, headers=["method", "mean rank"], tablefmt="github", disable_numparse=True)
        + "\n"
    )


def csv_rows(boards: list[Board]) -> list[dict]:
    out = []
    for b in boards:
        for (m, r), c in sorted(b.cells.items()):
            row = {
                "dataset": b.setting["dataset"],
                "task": b.setting["task"],
                "preset": b.setting["preset"],
                "width": b.setting["width"],
                "steps": b.setting["steps"],
                "method": m,
                "ratio": r,
                "n_seeds": len(c.seeds),
                "seeds": " ".join(map(str, c.seeds)),
            }
            for i, cls in enumerate(b.classes):
                row[f"acc_class{i}"] = cls
                row[f"acc_class{i}_mean"] = round(c.per_class[i].mean, 6)
                row[f"acc_class{i}_std"] = round(c.per_class[i].std, 6) if c.per_class[i].n > 1 else ""
            row.update(
                balanced_acc_mean=round(c.balanced_acc.mean, 6),
                balanced_acc_std=round(c.balanced_acc.std, 6) if c.balanced_acc.n > 1 else "",
                macro_f1_mean=round(c.macro_f1.mean, 6),
                macro_f1_std=round(c.macro_f1.std, 6) if c.macro_f1.n > 1 else "",
            )
            out.append(row)
    return out


def provenance(col: Collected) -> list[str]:
    devices = sorted({r.get("env", {}).get("device", "?") for r in col.ok + col.failed})
    dates = sorted(r.get("date", "") for r in col.ok + col.failed if r.get("date"))
    lines = [f"Records read: {len(col.ok)} finished, {len(col.failed)} failed, {len(col.unreadable)} unreadable."]
    if dates:
        lines.append(f"Dates: {dates[0]} to {dates[-1]}.")
    lines += [f"Machine: {d}" for d in devices]
    commands = sorted({r.get("command", "") for r in col.ok if r.get("command")})
    lines += [f"Command: `{c}`" for c in commands[:10]]
    return lines


def _section(md: io.StringIO, intro: str, table: tuple[list[str], list[list[str]]] | None) -> None:
    """An introducing sentence and its table, or nothing when there is no table."""
    if table:
        md.write(
            f"\n{intro}\n\n" + tabulate(table[1], headers=table[0], tablefmt="github", disable_numparse=True) + "\n"
        )


def markdown(col: Collected, reference: str = "os") -> str:
    md = io.StringIO()
    md.write(
        "# Leaderboards\n\nPer-class accuracy on the balanced test set, mean±standard deviation over seeds "
        "(n = seeds). `min` is the minority (last) class, `maj` the majority (first) class. Methods are "
        "ordered by minority accuracy at the most extreme ratio. Generated by `python -m bench report`.\n\n"
    )
    for line in provenance(col):
        md.write(f"- {line}\n")
    _section(
        md,
        "## The effect of the FSC loss, all boards\n\nAdding the FSC loss without oversampling (`fsc − ce`) and "
        "with it (`os+fsc − os`), paired by seed (same seed = same training subset): mean difference "
        "[95% t-interval], two-sided Wilcoxon signed-rank p (n seeds).",
        fsc_effect_rows(col.boards),
    )
    for b in col.boards:
        md.write(f"\n## {b.title}\n\n")
        head, rows = leaderboard_rows(b)
        md.write(tabulate(rows, headers=head, tablefmt="github") + "\n\n")
        head, rows = summary_rows(b)
        md.write("Balanced accuracy / macro-F1:\n\n" + tabulate(rows, headers=head, tablefmt="github") + "\n")
        _section(md, "Ablation (the paper's Table 1), per-class accuracy at the most extreme ratios:", ablation_rows(b))
        _section(
            md,
            "Configurations selected per ratio by mean validation balanced accuracy (a validation set held out of "
            "the training pool; test numbers are never read to choose), with their test accuracy:",
            selection_rows(b),
        )
        _section(
            md,
            "Bias or representation? ROC-AUC of the minority score (threshold-free), balanced accuracy after "
            "subtracting the log training prior from the logits (logit adjustment at test time: the fix for a "
            "classifier trained on the imbalanced distribution, as ce, fsc, focal and supcon are; os and cb, "
            "which re-balance already, are corrected twice by it), and the silhouette (cosine) and mean "
            "cross-class cosine similarity of the pooled layer4 test features; mean±sd (n seeds whose records "
            "have the number):",
            diagnosis_rows(b),
        )
        for metric in PAIRED_METRICS:
            _section(
                md,
                f"Paired by seed against `{reference}` (same seed = same training subset): mean difference in "
                f"{METRIC_TITLES[metric]} [95% t-interval], two-sided Wilcoxon signed-rank p. With n seeds the "
                "smallest possible p is 2/2^n (0.25 for n=3, 0.0625 for n=5).",
                paired_rows(b, reference, metric),
            )
    for nr in rankings(col.boards):
        md.write(ranking_markdown(nr))
    if col.failed:
        md.write(f"\n## Failed runs ({len(col.failed)}), not averaged\n\n")
        rows = [[r.get("key", "?"), _label(r), r.get("error", "?")] for r in col.failed]
        md.write(tabulate(rows, headers=["key", "run", "error"], tablefmt="github") + "\n")
    if col.unreadable:
        md.write(f"\n## Unreadable record files ({len(col.unreadable)})\n\n")
        md.writelines(f"- `{p}`\n" for p in col.unreadable)
    return md.getvalue()


def _label(rec: dict) -> str:
    s = rec.get("spec", {})
    return f"{s.get('dataset')}/{s.get('task')} r={s.get('ratio')} {s.get('method')} seed={s.get('seed')}"


def write_csv(rows: list[dict], path: Path) -> None:
    if not rows:
        path.write_text("")
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def print_console(col: Collected, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for b in col.boards:
        head, rows = leaderboard_rows(b)
        t = Table(title=b.title, show_lines=False)
        for h in head:
            t.add_column(h)
        for r in rows:
            t.add_row(*r)
        console.print(t)
    if col.failed:
        console.print(f"[red]{len(col.failed)} failed run(s)[/red], not averaged: see the report's failed list")


EMBEDDED = ("ce", "os", "os+fsc")


def embedding_figures(boards: list[Board], runs_dir: Path, fig_dir: Path) -> list[Path]:
    """Per board, the most extreme ratio and smallest seed at which ce, os and os+fsc (default
    hyper-parameters) all saved features: their t-SNE side by side."""
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
            z = np.load(path)
            panels.append((m, z["layer4"], z["labels"]))
        slug, setting = b.group
        title = f"{setting}, {b.setting['task']}, 1:{r:g}, seed {seed}: t-SNE of pooled layer4 test features"
        written.append(embeddings(panels, b.classes, title, fig_dir / f"tsne_{slug}_{b.setting['task']}.png"))
    return written


def paired_figures(boards: list[Board], reference: str, fig_dir: Path) -> list[Path]:
    """Per board that has `reference`: the paired differences of minority accuracy and ROC-AUC."""
    from .figures import paired_differences

    written = []
    for b in boards:
        panels = []
        for metric in ("min_acc", "roc_auc"):
            for r in b.ratios:
                rows = [(m, paired_cell(b, m, reference, r, metric)) for m in b.ranked_methods() if m != reference]
                rows = [(m, pd) for m, pd in rows if pd]
                if rows:
                    panels.append((METRIC_TITLES[metric], ratio_label(r), rows))
        if panels:
            slug = f"{b.group[0]}_{b.setting['task']}"
            written += paired_differences(panels, reference, b.title, fig_dir / f"paired_{slug}")
    return written


def report(runs_dir: Path, out_dir: Path, console=None, reference: str = "os") -> Collected:
    from .figures import accuracy_vs_ratio, critical_difference

    col = collect(runs_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "leaderboard.md").write_text(markdown(col, reference))
    write_csv(csv_rows(col.boards), out_dir / "leaderboard.csv")
    figs = accuracy_vs_ratio(col.boards, out_dir / "figures")
    figs += embedding_figures(col.boards, runs_dir, out_dir / "figures")
    figs += paired_figures(col.boards, reference, out_dir / "figures")
    for nr in rankings(col.boards):
        figs += critical_difference(
            nr.ranking, f"{nr.title}: mean rank of balanced accuracy", out_dir / "figures" / f"cd_{nr.slug}"
        )
    print_console(col, console)
    col.figures = figs
    return col
