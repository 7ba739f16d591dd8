"""The report's tables, built once from the analysed boards and rendered by every output format
(markdown, CSV, LaTeX, HTML, console). A table is a head and rows of strings; where a row is one
method of one board, `cells` keeps the Cell behind each value so the site can link to its runs."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from methods import REGISTRY

from .analysis import RACE, Analysis, candidates, family_seeds, family_wants, paired_cell, race_plans, verdict
from .model import METRIC_TITLES, MISSING, Board, Cell, Stat, ratio_label

ABLATION = ("ce", "os", "fsc", "os+fsc")
# The effect of adding the FSC loss, without and with oversampling: (with, without) pairs.
FSC_CONTRASTS = (("fsc", "ce"), ("os+fsc", "os"))
BINARY_PAIRED = ("min_acc", "roc_auc", "l4_silhouette")  # compared against the reference per board
MULTICLASS_PAIRED = ("bal_acc", "few", "macro_f1")


@dataclass
class Table:
    head: list[str]
    rows: list[list[str]]
    cells: list[list[Cell | None]] = field(default_factory=list)  # aligned with rows[i][1:], when known
    numeric_from: int = 1  # the first column that holds numbers (for sorting and bold-best)


def _method_by_ratio(b: Board, head: str, fmt) -> Table:
    """Rows of ranked methods, a column per ratio (`head` formats its title), `fmt(Cell)` each value."""
    rows, cells = [], []
    for m in b.ranked_methods():
        cs = [b.cells.get((m, r)) for r in b.ratios]
        rows.append([m] + [fmt(c) if c else MISSING for c in cs])
        cells.append(cs)
    return Table(["method"] + [head.format(ratio_label(r)) for r in b.ratios], rows, cells)


def leaderboard(b: Board) -> Table:
    """Binary: 'min a±s / maj a±s (n=k)' (minority = last class, majority = first). Multi-class:
    balanced accuracy (top-1 on the balanced test set) and the tail class."""
    if b.multiclass:
        return _method_by_ratio(
            b, "{} top-1 / tail", lambda c: f"{c.balanced_acc.fmt()} / tail {c.per_class[-1].fmt()} (n={len(c.seeds)})"
        )
    return _method_by_ratio(
        b, "{}", lambda c: f"min {c.per_class[-1].fmt()} / maj {c.per_class[0].fmt()} (n={len(c.seeds)})"
    )


def console_rows(b: Board, a: Analysis | None = None) -> Table:
    """The console's table: one short row per method and ratio, ratios from balanced to most imbalanced.
    With the analysis `a`, methods in the order of the board's decision at its most imbalanced ratio (those
    that may be the best first, each group by mean balanced accuracy) with that decision's word against the
    reference; without it, by the headline metric there."""
    binary = not b.multiclass
    extreme = min(b.ratios)
    d = a.decisions.get((b.slug, extreme)) if a else None
    order = decided_methods(b, d) if d else b.ranked_methods()
    head = ["method", "ratio", "bal. acc."] + (["minority", "majority"] if binary else ["top-1", "tail class"])
    head += ["seeds"] + (["best?", f"vs {d.reference} (BH)"] if d else [])
    rows, cells = [], []
    for m in order:
        for r in b.ratios:
            c = b.cells.get((m, r))
            if c is None:
                continue
            first = c.per_class[-1].fmt() if binary else c.balanced_acc.fmt()
            second = c.per_class[0].fmt() if binary else c.per_class[-1].fmt()
            row = [m, ratio_label(r), c.balanced_acc.fmt(), first, second, str(len(c.seeds))]
            if d:
                row += _versus(d, m) if r == extreme else ["", ""]
            rows.append(row)
            cells.append([c])
    return Table(head, rows, cells)


def _representative(d, m: str) -> str:
    """The method the decision speaks for `m` under (identical computations are collapsed into one)."""
    return next((k for k, others in d.aliases.items() if m in others), m)


def decided_methods(b: Board, d) -> list[str]:
    """The board's methods in the order of decision `d` at its ratio: the set that may hold the best first,
    then the rest, each by mean balanced accuracy."""
    r = min(b.ratios)

    def key(m):
        c = b.cells.get((m, r))
        return (_representative(d, m) not in d.may_be_best, -(c.balanced_acc.mean if c else -1.0), m)

    return sorted(b.methods, key=key)


def _versus(d, m: str) -> list[str]:
    """['yes' when m may be the best, else '', its verdict against the reference with the difference in
    balanced accuracy and the adjusted p]: the console's two decision columns."""
    m = _representative(d, m)
    best = "yes" if m in d.may_be_best else ""
    if m == d.reference:
        return [best, "reference"]
    pr, word = d.vs_reference.get(m), d.verdict.get(m, "not compared")
    return [best, word if pr is None else f"{word} {pr.mean:+.3f}, p {d.p_adj.get(m, float('nan')):.2g}"]


def console_order(b: Board, a: Analysis | None = None) -> str:
    extreme = ratio_label(min(b.ratios))
    d = a.decisions.get((b.slug, min(b.ratios))) if a is not None else None
    if d is not None:
        return (
            f"methods ordered by the decision at {extreme}: those that may be the best first (best?: Hsu's "
            "comparisons with the best), each group by mean balanced accuracy; mean±sd over seeds; "
            f"vs {d.reference}: the difference in balanced accuracy and its Benjamini-Hochberg-adjusted p"
        )
    what = "minority-class accuracy" if not b.multiclass else "top-1 accuracy"
    return f"methods ordered by mean {what} at {extreme}, best first; mean±sd over seeds"


def summary(b: Board) -> Table:
    return _method_by_ratio(b, "{} bal.acc / macro-F1", lambda c: f"{c.balanced_acc.fmt()} / {c.macro_f1.fmt()}")


def long_tail(b: Board, ratio: float) -> Table | None:
    """The long-tail protocol at one ratio: top-1 (= balanced accuracy on the balanced test set),
    many / medium / few-shot accuracy, macro-F1 and the tail class, mean±sd over seeds."""
    if not b.multiclass or ratio not in b.ratios:
        return None
    cols = ("bal_acc", "many", "medium", "few", "macro_f1")
    rows, cells = [], []
    for m in b.ranked_methods():
        c = b.cells.get((m, ratio))
        if not c:
            continue
        rows.append([m] + [c.stat(k).fmt() for k in cols] + [c.per_class[-1].fmt(), str(len(c.seeds))])
        cells.append([c] * (len(cols) + 2))
    head = ["method", "top-1", "many-shot", "medium-shot", "few-shot", "macro-F1", f"tail ({b.classes[-1]})", "n"]
    return Table(head, rows, cells)


def shot_note(b: Board, ratio: float) -> str:
    many, few = b.shot_thresholds()
    counts = next((c.train_counts for (m, r), c in b.cells.items() if r == ratio and c.train_counts), [])
    groups = {"many": 0, "medium": 0, "few": 0}
    for n in counts:
        groups["many" if n > many else "few" if n < few else "medium"] += 1
    return (
        f"Shot groups scaled to this board's head class ({max(counts) if counts else '?'} training images; the "
        f"OLTR convention is > 100 / 20-100 / < 20 where the head has 500): many > {many:g}, medium "
        f"{few:g}-{many:g}, few < {few:g} training images; at {ratio_label(ratio)}: {groups['many']} many, "
        f"{groups['medium']} medium, {groups['few']} few-shot classes (training counts {counts})."
    )


def ablation(b: Board, n_extreme: int = 3) -> Table | None:
    """The paper's Table 1: ce / os / fsc / os+fsc at the most extreme ratios, accuracy per class."""
    present = [m for m in ABLATION if m in b.methods]
    if len(present) < 2 or b.multiclass:
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
    return Table(head, rows, numeric_from=3)


def searched(b: Board, base: str) -> str:
    """The values a board's sweep of `base` tried, per hyper-parameter ('fsc.lam 0.1|0.3|1.0'), and whether
    they are the method's declared search space (`--sweep auto`) or values given on the command line."""
    tried: dict[str, set[str]] = {}
    for label, _ in b.cells:
        if b.cells[(label, _)].base != base:
            continue
        for key, value in re.findall(r"([\w+]+\.\w+)=([^\s\]]+)", label):
            tried.setdefault(key, set()).add(value)
    parts = []
    for key, values in sorted(tried.items()):
        part, field_name = key.split(".", 1)
        cls = REGISTRY.get(part)
        fields = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
        if field_name in fields:
            values = values | {str(fields[field_name].default)}  # the default's label carries no value
        declared = {str(v) for v in getattr(cls, "search_space", {}).get(field_name, ())}
        order = sorted(values, key=lambda v: (float(v) if re.fullmatch(r"[-+.\deE]+", v) else float("inf"), v))
        where = "the declared space" if declared and values == declared else "given by --sweep"
        parts.append(f"{key} {'|'.join(order)} ({where})")
    return "; ".join(parts) or "-"


def selection(a: Analysis, b: Board) -> Table | None:
    """Test accuracy of the validation-selected configuration, marked as such, with its name and, when it
    is not the default configuration, its paired test difference to the default in balanced accuracy
    (what the choice bought; the test numbers grade the choice, they never make it)."""
    chosen = a.selections.get(b.slug, {})
    if not chosen:
        return None
    rows = []
    for base in sorted({base for base, _ in chosen}):
        row = [f"{base} (selected on validation)"]
        for r in b.ratios:
            label = chosen.get((base, r))
            c = b.cells.get((label, r)) if label else None
            if not c:
                row.append(MISSING)
            elif b.multiclass:
                row.append(f"top-1 {c.balanced_acc.fmt()} — {label}")
            else:
                row.append(f"min {c.per_class[-1].fmt()} / maj {c.per_class[0].fmt()} — {label}")
            vs_default = paired_cell(b, label, base, r, "bal_acc") if c and label != base else None
            if vs_default:
                row[-1] += f"; bal. acc. − default {vs_default.fmt()}"
        rows.append(row + [searched(b, base)])
    return Table(["method"] + [ratio_label(r) for r in b.ratios] + ["values tried"], rows)


def paired(b: Board, reference: str, metric: str) -> Table | None:
    """Each method's paired difference in `metric` against `reference`, per ratio, over shared seeds."""
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
    return Table(head, rows)


def paired_metrics(b: Board) -> tuple[str, ...]:
    return MULTICLASS_PAIRED if b.multiclass else BINARY_PAIRED


def fsc_effect(boards: list[Board], contrasts=FSC_CONTRASTS) -> Table | None:
    """One table across boards: per board and ratio, each contrast's paired difference in the headline
    metric and ROC-AUC, so that 'does FSC help, and where' is answered in one place."""
    rows = []
    for b in boards:
        pairs = [(x, ref, metric) for x, ref in contrasts for metric in (b.headline, "roc_auc")]
        for r in sorted(b.ratios):
            pds = [paired_cell(b, x, ref, r, metric) for x, ref, metric in pairs]
            if any(pds):
                rows.append([b.label, ratio_label(r)] + [pd.fmt() if pd else MISSING for pd in pds])
    if not rows:
        return None
    headline = "minority acc. (top-1 on multi-class boards)"
    head = ["board", "ratio"] + [
        f"{x} − {ref}: {METRIC_TITLES[metric] if metric == 'roc_auc' else headline}"
        for x, ref in contrasts
        for metric in ("headline", "roc_auc")
    ]
    return Table(head, rows, numeric_from=2)


def diagnosis(b: Board) -> Table | None:
    """Threshold-free and corrected numbers: ROC-AUC, balanced accuracy after test-time logit
    adjustment and after class-balanced BatchNorm statistics, and the layer4 separation of the test
    features, each with its own n."""

    def fmt(c: Cell, name: str) -> str:
        st = c.stat(name)
        return f"{st.fmt()} ({st.n})" if st.n else MISSING

    if not any(c.extra.get("roc_auc") for c in b.cells.values()):
        return None
    names = ("roc_auc", "bal_acc_la", "bal_acc_bn", "l4_silhouette", "l4_cross_cos")
    return _method_by_ratio(
        b,
        "{} AUC / bal. acc. LA / bal. acc. BN / l4 silhouette / l4 cross-cos",
        lambda c: " / ".join(fmt(c, name) for name in names),
    )


def ranking_table(nr) -> Table:
    rk = nr.ranking
    return Table(
        ["method", "mean rank"], [[m, f"{rk.mean_rank[m]:.2f}"] for m in sorted(rk.methods, key=rk.mean_rank.get)]
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
                "val_per_class": b.held_out,
                "numerics": b.setting["numerics"],
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


WHICH_NOTE = (  # .format(margin=...)
    "Per board and ratio, over default configurations and, on boards with a validation hold-out, the "
    "configuration each swept method chose on validation; balanced accuracy on the balanced test set. "
    "Procedure (bench/stats.py): every method is compared with the reference by a paired t-test over seeds "
    "whose standard error also holds the test images' error that every seed shares (the image term of a "
    "two-way seeds x images layout, from the records' per-image outcomes; records without them: seeds only); "
    "an exploratory screen corrected with Benjamini-Hochberg over the methods of the board at that ratio (at "
    "most 5% of the 'better'/'worse' claims false; the declared confirmatory contrasts are decided apart, in "
    "their own table); 'better'/'worse' at an adjusted p < 0.05, else 'equivalent' when two one-sided tests put "
    "the difference inside ±{margin} (adjusted "
    "p < 0.05), else 'inconclusive'. 'May be the best': the methods that no other beats in a one-sided "
    "paired test beyond the exact one-sided Dunnett critical value for k − 1 comparisons (Hsu's multiple "
    "comparisons with the best): the true best is "
    "in this set with probability at least 0.95; a set of one is a clear winner. Methods that computed the "
    "same numbers on every seed (e.g. two that both predict only the majority class) count once, named "
    "together as 'a (= b, c)'. The best by mean is "
    "only a point estimate. Cost: the finished runs of the board at that ratio and their summed wall time."
)


def which_method(
    a: Analysis, reference: str | None = None, regime: str | None = None, boards: list[Board] | None = None
) -> Table | None:
    """The answer to 'which method should I use?', per board and ratio (see WHICH_NOTE); `regime` as in
    `Analysis.boards_of`, or the given `boards`."""
    reference = reference or a.reference
    rows = []
    for b in a.boards_of(regime) if boards is None else boards:
        for r in sorted(b.ratios):
            d = a.decisions.get((b.slug, r))
            if d is None or d.reference != reference:
                continue
            cands = candidates(b, r, a.selections.get(b.slug, {}))
            best = d.best_by_mean
            c = cands[best]
            headline = f"bal {c.balanced_acc.fmt()}" + (
                f", tail {c.per_class[-1].fmt()}" if b.multiclass else f", minority {c.per_class[-1].fmt()}"
            )
            k = len(d.may_be_best)
            evidence = {
                "too_few_seeds": "too few seeds to say",
                "clear": f"clear: only {d.may_be_best[0]} may be the best",
                "reference_may_be_best": f"{reference} may be the best, with {k - 1} others"
                if k > 1
                else f"{reference} may be the best (of {len(cands)} methods)",
                "reference_beaten": f"{reference} is beaten; {k} may be the best",
            }[verdict(d, cands, reference)]
            at_r = [c for (_, ratio), c in b.cells.items() if ratio == r]
            cost = f"{sum(len(c.seeds) for c in at_r)} runs, {sum(sum(c.wall_s.values()) for c in at_r) / 3600:.1f} h"
            rows.append(
                [
                    b.label,
                    ratio_label(r),
                    best,
                    headline,
                    ", ".join(map(d.name, d.may_be_best))
                    if k <= 8
                    else f"{k} methods: {', '.join(map(d.name, d.may_be_best[:8]))}, ...",
                    ", ".join(map(d.name, d.named("better"))) or "none",
                    ", ".join(map(d.name, d.named("equivalent"))) or "none",
                    f"worse: {', '.join(map(d.name, d.named('worse'))) or 'none'}; "
                    f"{len(d.named('inconclusive'))} inconclusive",
                    evidence,
                    cost,
                    _confirmed_cell(a, b, r),
                ]
            )
    if not rows:
        return None
    head = [
        "board",
        "ratio",
        "best by mean",
        "its test accuracy",
        "may be the best",
        f"better than {reference} (exploratory, BH)",
        f"equivalent to {reference} (±{a.margin:g})",
        "the others",
        "evidence",
        "cost",
        "confirmatory family",
    ]
    return Table(head, rows, numeric_from=3)


def _confirmed_cell(a: Analysis, b: Board, r: float) -> str:
    """The which-method row's word on the confirmatory family of that board and ratio (its own table has the rest)."""
    if (b.slug, r) not in a.confirmed:
        return "none declared"
    fam, results = a.confirmed[(b.slug, r)]
    decided = [x.name + f" {x.verdict}" for x in results if x.verdict in ("better", "worse")]
    mdes = [x.mde for x in results if x.mde is not None and x.verdict not in ("better", "worse")]
    return (
        f"{len(results)} contrasts ({fam['source'].split()[0]}), sequential Holm: "
        + (", ".join(decided) if decided else "none decided yet")
        + (f"; open ones detectable from {min(mdes):.3f}" if mdes else "")
    )


def seed_planning(a: Analysis) -> Table | None:
    """Inconclusive comparisons with the reference and the seeds that would decide a difference of 0.02
    balanced accuracy at 80% power at their observed spread (the correction's first step), where more seeds than
    the board has would change a verdict."""
    rows = []
    for b in a.boards:
        for r in sorted(b.ratios):
            d = a.decisions.get((b.slug, r))
            if not d:
                continue
            for m, need in sorted(d.seeds_needed.items()):
                pd = d.vs_reference[m]
                if need is not None and need > pd.n:
                    mde = d.mde.get(m)
                    rows.append([
                        b.label, ratio_label(r), m, pd.fmt(), f"{pd.sd:.3f}",
                        f"{mde:.3f}" if mde is not None else MISSING,
                        "not reachable" if need == float("inf") else str(need),
                    ])  # fmt: skip
    if not rows:
        return None
    head = [
        "board", "ratio", "method", "vs the reference", "sd of differences", "detectable now (80% power)",
        "seeds to find 0.02",
    ]  # fmt: skip
    return Table(head, rows, numeric_from=3)


def race_table(a: Analysis) -> Table | None:
    """Racing seeds, one row per board and ratio where some method should get more seeds (see
    analysis.race): who goes on to how many seeds, and who stopped where and why."""
    rows = []
    for p in race_plans(a):
        if not p.targets:
            continue
        by_target: dict[int, list[str]] = {}
        for m, t in p.targets.items():
            by_target.setdefault(t, []).append(m)
        rows.append(
            [
                p.board.label,
                ratio_label(p.ratio),
                "; ".join(f"to {t}: {', '.join(ms)}" for t, ms in sorted(by_target.items())),
                ", ".join(f"{m} ({n})" for m, n in sorted(p.stopped.items())) or "none",
            ]
        )
    if not rows:
        return None
    head = ["board", "ratio", "more seeds (to how many)", "stopped (seeds): excluded from the best"]
    return Table(head, rows, numeric_from=4)


RACE_NOTE = (
    f"Racing seeds (bench/report/analysis.py, `race`): every method gets {RACE[0]} seeds; a method that the "
    f"procedure above excludes from the set that may hold the best stops there; the others get {RACE[1]}, and "
    f"up to {RACE[2]} while the set holds more than one method and their comparison with the reference is "
    "inconclusive. Methods that computed the same numbers as another run once. `python -m bench report "
    "--race-grid FILE` writes the runs still to do as a grid file (`bench run --grid FILE`)."
)


def which_summary(a: Analysis, regime: str | None = None) -> Table | None:
    """The which-method answer in short, one row per board and ratio (the full table: `which_method`);
    `regime` as there."""
    full = which_method(a, regime=regime)
    if not full:
        return None
    keep = [0, 1, 2, 4, 5, 6, 8, 10]  # board, ratio, best by mean, may be the best, better, equivalent, evidence,
    # confirmatory family
    rows = []
    for row in full.rows:
        short = [row[i] for i in keep]
        may = short[3]
        short[3] = may if len(may) <= 60 else may.split(":")[0]  # 'k methods'
        rows.append(short)
    return Table([full.head[i] for i in keep], rows, numeric_from=3)


def _mean_sd(values: dict[int, float], digits: int = 3) -> str:
    return Stat([v for _, v in sorted(values.items())]).fmt(digits) if values else MISSING


def review_queue(a: Analysis, b: Board) -> Table | None:
    """The review queue of board b (bench/review.py), one row per candidate and ratio over the seeds whose
    records keep per-image probabilities: balanced accuracy on those seeds, calibration (ECE before and
    after temperature scaling on the validation images, NLL, Brier), selective prediction (AURC, accuracy
    at 90% coverage), and the camera-trap numbers at the board's recall target, with the paired verdict on
    the common images reviewed against the reference (fewer is better)."""
    rows, cells = [], []
    for r in sorted(b.ratios):
        rb = a.reviews.get((b.slug, r))
        if rb is None:
            continue
        d = rb.decision
        order = sorted(rb.reviews, key=lambda m: (m != a.reference, -_mean(b, m, r, rb)))
        for m in order:
            c = b.cells.get((m, r))
            get = lambda f, rb=rb, m=m: _mean_sd(rb.values(m, f))  # noqa: E731
            if m == a.reference or d is None or m not in d.verdict:
                versus = "reference" if m == a.reference else MISSING
            else:
                word = {"better": "fewer", "worse": "more", "equivalent": "equivalent", "inconclusive": "inconclusive"}
                versus = f"{word[d.verdict[m]]} (adjusted p {d.p_adj[m]:.2g})"
            rows.append([
                m, ratio_label(r), str(len(rb.reviews[m])),
                _mean_sd({s: c.extra["bal_acc"][s] for s in rb.reviews[m] if s in c.extra.get("bal_acc", {})}),
                get(lambda x: x.ece), get(lambda x: x.ece_ts), get(lambda x: x.classwise_ece), get(lambda x: x.nll),
                get(lambda x: x.brier),
                get(lambda x: x.aurc), get(lambda x: x.acc_at[0.9]),
                get(lambda x: x.rare.get("common_share")), get(lambda x: x.rare.get("review_share")),
                get(lambda x: x.rare.get("confident_miss")), versus,
            ])  # fmt: skip
            cells.append([c] * 14)
    if not rows:
        return None
    pct = f"{a.review_target:.0%}"
    head = [
        "method", "ratio", "seeds with probabilities", "bal. acc.", "ECE", "ECE after temp. scaling", "class-wise ECE",
        "NLL",
        "Brier", "AURC", "acc. at 90% coverage", f"common images reviewed to catch {pct} of rare",
        "review share at training proportions", "rare called common at conf. > 0.9",
        f"reviews vs {a.reference} (common images)",
    ]  # fmt: skip
    return Table(head, rows, cells, numeric_from=2)


def _mean(b: Board, m: str, r: float, rb) -> float:
    c = b.cells.get((m, r))
    vals = [c.extra["bal_acc"][s] for s in rb.reviews[m] if c and s in c.extra.get("bal_acc", {})]
    return sum(vals) / len(vals) if vals else float("-inf")


def review_contrast(a: Analysis, b: Board) -> list[str]:
    """Sentences naming, per ratio, a method that leads on accuracy but not on the review queue: the best
    balanced accuracy and the fewest common images reviewed (means over the seeds with probabilities)."""
    out = []
    for r in sorted(b.ratios):
        rb = a.reviews.get((b.slug, r))
        if rb is None or len(rb.reviews) < 2:
            continue
        acc = max(rb.reviews, key=lambda m: _mean(b, m, r, rb))
        share = {m: Stat(list(rb.values(m, lambda x: x.rare.get("common_share")).values())).mean for m in rb.reviews}
        fewest = min(share, key=share.get)
        if fewest != acc:
            out.append(
                f"At {ratio_label(r)}, `{acc}` has the best balanced accuracy but `{fewest}` asks a person to review "
                f"the fewest common images to catch {a.review_target:.0%} of the rare class ({share[fewest]:.1%} "
                f"against {share[acc]:.1%}; means over the seeds with probabilities)."
            )
    return out


REVIEW_NOTE = (
    "The review queue (bench/review.py), from each run's per-image probabilities (records since round four; "
    "seeds without them are left out, and `seeds with probabilities` says how many remain): a person accepts "
    "the confident predictions and reviews the rest. ECE: expected calibration error of the top-label "
    "confidence, 15 equal-width bins (torchmetrics), before and after one temperature fitted on the run's "
    "validation images (— without them); class-wise ECE (Kull et al. 2019); NLL and the multi-class Brier score; "
    "AURC: area under the "
    "risk-coverage curve (lower is better); accuracy of the 90% most confident images. The camera-trap "
    "numbers: to catch {target} of the rare (last) class's test images, a person reviews every image whose "
    "rare-class probability reaches the threshold that catches them; `common images reviewed` is the share of "
    "the common class's test images above it (the false alarms, whatever the rare class's frequency), and "
    "`review share` the share of all images flagged if the classes came in the training set's proportions. "
    "`rare called common at conf. > 0.9`: rare images no reviewer would see. The last column compares the "
    "common images reviewed with the reference's, paired by seed (seeds only), Holm-corrected over the "
    "board's methods at that ratio: fewer, more, or inconclusive."
)


def confirmatory(a: Analysis) -> Table | None:
    """The confirmatory families (declared in grid files before their runs), one row per board, ratio and
    contrast: the seeds it may use so far, the look that decided it or the latest reached, the paired
    difference in balanced accuracy [95% interval] there, the Holm-adjusted p against the look's level, the
    verdict, the minimum detectable effect at that look (80% power) and the seeds the race asks for next."""
    rows = []
    for b in a.boards:
        for r in sorted(b.ratios):
            if (b.slug, r) not in a.confirmed:
                continue
            fam, results = a.confirmed[(b.slug, r)]
            for res in results:
                n = len(family_seeds(fam, b, r, res.method, res.reference))
                excluded = res.method in (fam.get("selected") or {}).get("methods", ()) and n < len(
                    set(b.cells[(res.method, r)].seeds) if (res.method, r) in b.cells else ()
                )
                rows.append([
                    b.label, ratio_label(r), res.name,
                    f"{n}" + (" (picked on seeds excluded)" if excluded else ""),
                    str(res.look) if res.look else MISSING,
                    res.paired.fmt() if res.paired else MISSING,
                    f"{res.p_holm:.2g} vs {res.level:.2g}" if res.p_holm is not None else MISSING,
                    {"waiting": f"waiting for {res.next_look} seeds", "open": "open"}.get(res.verdict, res.verdict),
                    f"{res.mde:.3f}" if res.mde is not None else MISSING,
                    str(res.next_look) if res.next_look else MISSING,
                ])  # fmt: skip
    if not rows:
        return None
    head = [
        "board", "ratio", "contrast", "seeds usable", "look (seeds)", "difference in bal. acc. at the look",
        "Holm p vs the look's alpha", "verdict", "detectable at 80% power", "next look",
    ]  # fmt: skip
    return Table(head, rows, numeric_from=3)


CONFIRM_NOTE = (
    "The confirmatory family: contrasts declared in a grid file's `[confirmatory]` table before their runs "
    "(the paper's claims and the contenders the file names, with the rule that picked them), decided on "
    "balanced accuracy by bench/stats.py's sequential procedure: at each look (the first 5, 10 and 20 seeds of "
    "a contrast) the open contrasts are tested together, paired by seed with the test images' shared error, "
    "Holm-corrected at the alpha that look spends (O'Brien-Fleming-type, 0.05 over all looks); a decided "
    "contrast stops, the others race on. A contender picked on some seeds of a board is tested there on the "
    "other seeds only. `detectable`: the smallest true difference that look finds with 80% power: a contrast "
    "not decided is not a finding of 'no difference' beyond it. Every other comparison on the boards is "
    "exploratory (the which-method table)."
)


# Device seconds per training step on one NVIDIA H200 with four runs sharing it: the timed slice of the `paper`
# grid by scripts/gpu_check.sh on 2026-11-27 (results/gpu_check/README.md: 14 runs x 1500 steps in 99.2 s of
# wall time). A step at 28 px is launch-bound there (3.6% of the chip's dense peak, results/PERF.md), so a step
# of the narrower quick model is taken to cost the same: an estimate for these boards, not a measurement.
H200_S_PER_STEP = 99.2 / (14 * 1500)


def race_cost(a: Analysis) -> Table | None:
    """What each confirmatory race has cost and what its next look asks for, per board and ratio: the runs of
    the family's methods, their summed wall time (core-hours: one thread a run), the wall time at two runs at a
    time (this 2-core machine), the same runs' device time on one H200 (estimated, H200_S_PER_STEP), and the
    runs the next look needs with their core-hours at each method's mean time a run so far."""
    rows = []
    for (slug, r), (fam, results) in sorted(a.confirmed.items()):
        b = next(x for x in a.boards if x.slug == slug)
        methods = sorted({m for res in results for m in (res.method, res.reference)})
        cells = {m: b.cells[(m, r)] for m in methods if (m, r) in b.cells}
        runs = sum(len(c.seeds) for c in cells.values())
        spent = sum(sum(c.wall_s.values()) for c in cells.values())
        timed = sum(len(c.wall_s) for c in cells.values())
        per_run = {m: sum(c.wall_s.values()) / len(c.wall_s) for m, c in cells.items() if c.wall_s}
        fallback = spent / timed if timed else 0.0
        todo = {m: t - have for m, (have, t) in family_wants(fam, b, r, results).items() if t > have}
        next_s = sum(n * per_run.get(m, fallback) for m, n in todo.items())
        gpu_min = runs * b.setting["steps"] * H200_S_PER_STEP / 60
        rows.append([
            b.label, ratio_label(r), fam["source"], str(runs), f"{spent / 3600:.1f}", f"{spent / 7200:.1f}",
            f"{gpu_min:.0f}", f"{sum(todo.values())} runs, {next_s / 3600:.1f} core-h" if todo else "none",
        ])  # fmt: skip
    if not rows:
        return None
    head = [
        "board", "ratio", "family", "runs so far", "core-hours", "wall here, 2 at a time (h)",
        "one H200, estimated (min)", "the next look asks for",
    ]  # fmt: skip
    return Table(head, rows, numeric_from=3)


RACE_COST_NOTE = (
    "What the confirmatory races cost: per board, the runs of the family's methods so far and their summed wall "
    "time (one CPU thread a run, so core-hours; measured while two or three runs shared this machine's two "
    "cores), the wall time at two runs at a time, and an estimate of the same runs on one NVIDIA H200: their "
    "steps at the device time a step took in the GPU check's timed grid slice with four runs sharing the chip "
    "(results/gpu_check/README.md; a step at 28 px is launch-bound there, so the quick model's narrower step is "
    "taken to cost the same). The last column: the runs the race's next look still needs, at each method's mean "
    "time a run so far."
)
