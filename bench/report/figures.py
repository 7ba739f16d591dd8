"""The report's figures: the paper's Figure 3 (per-class accuracy against imbalance ratio), accuracy
against class frequency for long-tailed boards, paired differences, critical-difference diagrams,
t-SNE of test features, and example images of each task.

One palette keyed by method everywhere: a method has the same colour in every figure; its `os+`
variant shares the colour with a dashed line, a swept configuration a dotted one.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "fsc-bench"  # the same records give byte-identical SVG files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

# The methods of this suite in a fixed order, each with its own colour (tab20, then tab20b).
KNOWN = (
    "ce", "os", "fsc", "focal", "cb", "supcon", "la", "ldam", "ldam+drw", "drw", "cbs", "sqrt", "pb",
    "smote", "mixup", "remix", "opl", "crt", "lws", "taunorm", "pla", "supcon2", "wb", "bcl", "ssb",
)  # fmt: skip
# tab20's strong colours first, then its light ones, then tab20b: neighbours in KNOWN differ clearly.
_COLOURS = [plt.cm.tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))] + [plt.cm.tab20b(i) for i in range(20)]


def method_style(label: str) -> dict:
    """Colour and line style of a method label such as 'os+fsc [fsc.lam=0.1]', the same in every figure."""
    base, _, swept = label.partition(" [")
    parts = base.split("+")
    core = "+".join(p for p in parts if p != "os") or "os"
    if core in KNOWN:
        colour = _COLOURS[KNOWN.index(core)]
    else:
        colour = _COLOURS[len(KNOWN) + int(hashlib.sha1(core.encode()).hexdigest(), 16) % (40 - len(KNOWN))]
    linestyle = ":" if swept else "--" if ("os" in parts and core != "os") else "-"
    if not swept:
        return {"color": colour, "linestyle": linestyle, "marker": "o"}
    # A swept configuration: its method's hue, lighter or darker and with its own marker, so that the
    # configurations of one sweep can be told apart (and keep their look from figure to figure).
    h = int(hashlib.sha1(swept.encode()).hexdigest(), 16)
    shade = ((h % 7) - 3) / 7.5  # -0.4 .. +0.4
    towards = np.ones(3) if shade > 0 else np.zeros(3)
    rgb = np.array(matplotlib.colors.to_rgb(colour)) * (1 - abs(shade)) + towards * abs(shade)
    return {"color": tuple(rgb), "linestyle": linestyle, "marker": "osD^vPX*"[(h // 7) % 8]}


PAPER_METHODS = ("ce", "os", "fsc", "os+fsc")  # the paper's comparison
FIGURE_METHODS = 8  # at most this many lines in a figure: more cannot be told apart


def shown_methods(ranked: list[str], reference: str = "os", limit: int = FIGURE_METHODS) -> list[str]:
    """The methods a figure draws, in `ranked` order: the paper's four and the reference where they ran,
    then the best of the rest, `limit` in all (every method is in the tables)."""
    keep = [m for m in ranked if m in PAPER_METHODS or m == reference]
    keep += [m for m in ranked if m not in keep][: max(0, limit - len(keep))]
    return [m for m in ranked if m in keep]


def shown_phrase(shown: list[str], ranked: list[str]) -> str:
    if len(shown) == len(ranked):
        return ""
    return f"; {len(shown)} of {len(ranked)} methods: the paper's, the reference and the best (all in the tables)"


def plot_by_seed_count(ax, points, style: dict, label: str, band_alpha: float = 0.12) -> None:
    """`points` = [(x, Stat)]: markers at every point, one line per run of points with the same number of
    seeds (a 1-seed point is never joined to a 5-seed one), a ±1 sd band where there are two seeds or more."""
    runs, current = [], []
    for x, st in points:
        if current and current[-1][1].n != st.n:
            runs.append(current)
            current = []
        current.append((x, st))
    runs.append(current)
    for i, run in enumerate(r for r in runs if r):
        x = np.array([p for p, _ in run])
        mean = np.array([st.mean for _, st in run])
        std = np.array([st.std if st.n > 1 else 0 for _, st in run])
        ax.plot(x, mean, ms=4, lw=1.5, label=label if i == 0 else None, **style)
        ax.fill_between(x, mean - std, mean + std, alpha=band_alpha, color=style["color"], lw=0)


def save_png_svg(fig, path_stem: Path) -> list[Path]:
    """Write `fig` as PATH_STEM.png and .svg (appended, not with_suffix: a stem such as
    'cd_animals_quick_width0.5' has a dot of its own), close it, return the two paths."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("png", "svg"):
        p = path_stem.parent / f"{path_stem.name}.{ext}"
        fig.savefig(p, dpi=130, metadata={"Date": None} if ext == "svg" else None, bbox_inches="tight")
        written.append(p)
    plt.close(fig)
    return written


def _seeds_phrase(boards) -> str:
    n = sorted({len(c.seeds) for b in boards for c in b.cells.values()})
    if n == [1]:
        return "1 seed, no band"
    return f"mean ± std over {n[0]} seeds" if len(n) == 1 else f"mean ± std over {n[0]} to {n[-1]} seeds"


def _legend_outside(fig, ax_or_handles, n_labels: int) -> None:
    handles, labels = ax_or_handles.get_legend_handles_labels()
    ncol = 1 if n_labels <= 12 else 2
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), ncol=ncol, frameon=False, fontsize=8)


def accuracy_vs_ratio(boards, fig_dir: Path) -> list[Path]:
    """One figure per dataset and training setting (Board.group) of two-class boards: rows = tasks,
    columns = minority / majority class; x = ratio on a log axis, y = accuracy, a ±1 sd band."""
    by_fig = defaultdict(list)
    for b in boards:
        if len(b.ratios) >= 2 and not b.multiclass:
            by_fig[b.group].append(b)
    written = []
    for (slug, title), bs in sorted(by_fig.items()):
        bs = sorted(bs, key=lambda b: b.setting["task"], reverse=True)  # fine first
        fig, axes = plt.subplots(len(bs), 2, figsize=(10, 3.6 * len(bs)), squeeze=False, sharey=True)
        phrase = ""
        for row, b in enumerate(bs):
            ranked = b.ranked_methods()
            shown = shown_methods(ranked)
            phrase = phrase or shown_phrase(shown, ranked)
            for col, (cls_i, role) in enumerate(((len(b.classes) - 1, "minority"), (0, "majority"))):
                ax = axes[row][col]
                for m in shown:
                    pts = [(r, b.cells[(m, r)].per_class[cls_i]) for r in sorted(b.ratios) if (m, r) in b.cells]
                    plot_by_seed_count(ax, pts, method_style(m), m)
                ax.set_xscale("log")
                ax.set_xticks(sorted(b.ratios), [f"1:{r:g}" for r in sorted(b.ratios)], fontsize=7, rotation=35)
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_ylim(-0.02, 1.02)
                ax.set_title(f"{b.setting['task']}: {role} class '{b.classes[cls_i]}'", fontsize=10)
                ax.set_xlabel("imbalance ratio (minority : majority)")
                ax.grid(alpha=0.3, which="both")
                if col == 0:
                    ax.set_ylabel("test accuracy of the class")
        _legend_outside(fig, axes[0][0], len(shown_methods(bs[0].ranked_methods())))
        fig.suptitle(f"{title}: per-class accuracy vs imbalance ratio ({_seeds_phrase(bs)}{phrase})", fontsize=11)
        fig.tight_layout()
        written += save_png_svg(fig, fig_dir / f"accuracy_vs_ratio_{slug}")
    return written


def accuracy_vs_frequency(boards, fig_dir: Path) -> list[Path]:
    """Long-tailed boards: per-class test accuracy against the class's training count (log x), one
    line per method with a ±1 sd band over seeds, one panel per ratio."""
    written = []
    for b in boards:
        if not b.multiclass:
            continue
        ratios = sorted(b.ratios)
        fig, axes = plt.subplots(1, len(ratios), figsize=(5.5 * len(ratios), 4.2), squeeze=False, sharey=True)
        ranked = b.ranked_methods()
        shown = shown_methods(ranked)
        for ax, r in zip(axes[0], ratios):
            for m in shown:
                c = b.cells.get((m, r))
                if not c or not c.train_counts:
                    continue
                order = np.argsort(c.train_counts)
                x = np.array(c.train_counts)[order]
                mean = np.array([c.per_class[i].mean for i in order])
                std = np.array([c.per_class[i].std if c.per_class[i].n > 1 else 0 for i in order])
                style = method_style(m)
                ax.plot(x, mean, ms=3, lw=1.4, label=m, **style)
                ax.fill_between(x, mean - std, mean + std, alpha=0.1, color=style["color"], lw=0)
            many, few = b.shot_thresholds()
            for t in (few, many):
                ax.axvline(t, color="grey", lw=0.8, ls=":")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"1:{r:g} (imbalance {1 / r:g}); dotted: few / many-shot limits", fontsize=9)
            ax.set_xlabel("training images of the class (log)")
            ax.grid(alpha=0.3, which="both")
        axes[0][0].set_ylabel("test accuracy of the class")
        _legend_outside(fig, axes[0][0], len(shown))
        fig.suptitle(
            f"{b.title}: accuracy vs class frequency ({_seeds_phrase([b])}{shown_phrase(shown, ranked)})", fontsize=10
        )
        fig.tight_layout()
        written += save_png_svg(fig, fig_dir / f"accuracy_vs_frequency_{b.slug}")
    return written


def task_examples(sources: list[tuple[str, object, object]], path: Path, per_class: int = 8) -> Path:
    """A grid of training images of each built-in task's classes: one row per class, grouped by
    source, so a reader sees what 'coarse' and 'fine' mean. `sources` = [(name, Source, SourceData)]."""
    rows = []
    for name, src, data in sources:
        (maj, fine), coarse = src.pairs["fine"], src.pairs["coarse"][1]
        order = [(maj, "majority"), (fine, "fine minority"), (coarse, "coarse minority")]
        for cls, role in order:
            k = data.classes.index(cls)
            idx = (data.train_y == k).nonzero().flatten()[:per_class]
            rows.append((f"{name}: {cls}\n({role})", data.train_x[idx]))
    fig, axes = plt.subplots(len(rows), per_class, figsize=(per_class * 0.9 + 1.6, len(rows) * 1.0), squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(per_class):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(imgs):
                img = imgs[c].permute(1, 2, 0).numpy()
                ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Built-in tasks: fine = majority vs fine minority, coarse = majority vs coarse minority", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def critical_difference(named, title: str, path_stem: Path) -> list[Path]:
    """Critical-difference diagram (scikit-posthocs): mean ranks; bars join methods whose Nemenyi
    test does not separate them at alpha = 0.05. The title states the critical difference, the number
    of cells and the Friedman p. Not drawn when a cell holds a single seed."""
    import scikit_posthocs as sp

    rk = named.ranking
    if named.min_seeds < 2:
        return []
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.28 * len(rk.methods)))
    palette = {m: matplotlib.colors.to_hex(method_style(m)["color"]) for m in rk.methods}
    sp.critical_difference_diagram(
        {m: rk.mean_rank[m] for m in sorted(rk.methods)}, rk.nemenyi, ax=ax, color_palette=palette
    )
    ax.set_title(
        f"{title}\nFriedman p = {rk.p:.2g} over {len(rk.cells)} cells (task x ratio, each >= {named.min_seeds} "
        f"seeds); Nemenyi CD = {named.critical_difference:.2f} ranks at 0.05",
        fontsize=9,
    )
    fig.tight_layout()
    return save_png_svg(fig, path_stem)


def embeddings(panels: list[tuple[str, np.ndarray, np.ndarray]], classes: list[str], title: str, path: Path) -> Path:
    """t-SNE (scikit-learn) of pooled layer4 test features, one panel per method, minority on top."""
    from sklearn.manifold import TSNE

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (name, feats, labels) in zip(axes[0], panels):
        xy = TSNE(n_components=2, init="pca", random_state=0, perplexity=min(30, len(labels) - 1)).fit_transform(
            feats.astype(np.float32)
        )
        for k in range(len(classes)):  # later classes (the minority) are drawn last, on top
            m = labels == k
            ax.scatter(xy[m, 0], xy[m, 1], s=7, alpha=0.7, label=classes[k], color=plt.cm.tab10(k))
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=8, markerscale=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def paired_differences(
    panels: list[tuple[str, str, list[tuple[str, object, float]]]], reference: str, title: str, caption: str,
    path_stem: Path,
):  # fmt: skip
    """Forest plot of paired differences against `reference`: `panels` = [(metric title, ratio label,
    [(method, stats.Paired, the p the decision used)])], one column per ratio; a dot at the mean, a bar for
    the 95% interval, the p beside it (inside the frame); `caption` says which test and correction."""
    ratios = list(dict.fromkeys(r for _, r, _ in panels))
    methods = list(dict.fromkeys(name for _, _, rows in panels for name, _, _ in rows))
    ns = sorted({pd.n for _, _, rows in panels for _, pd, _ in rows})
    fig, axes = plt.subplots(
        1,
        len(ratios),
        figsize=(max(6.5, 4.8 * len(ratios)), 0.34 * len(methods) + 1.9),
        squeeze=False,
        layout="constrained",  # tight_layout let the two-line title overlap the panel titles of a tall figure
    )
    for metric, ratio, rows in panels:
        ax = axes[0][ratios.index(ratio)]
        lo = min(min(pd.lo for _, pd, _ in rows), 0)
        hi = max(max(pd.hi for _, pd, _ in rows), 0)
        span = hi - lo or 1.0
        for name, pd, p in rows:
            y = methods.index(name)
            ax.errorbar(
                pd.mean, y, xerr=[[pd.mean - pd.lo], [pd.hi - pd.mean]], fmt="o", ms=4, capsize=2,
                color=method_style(name.split(" (=")[0])["color"],
            )  # fmt: skip
            ax.annotate(f"p={p:.2g}", (pd.hi, y), xytext=(3, -3), textcoords="offset points", fontsize=7)
        ax.set_xlim(lo - 0.05 * span, hi + 0.3 * span)  # room for the p labels inside the frame
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(methods)), methods if ratios.index(ratio) == 0 else [""] * len(methods), fontsize=8)
        ax.set_ylim(len(methods) - 0.5, -0.5)
        ax.set_title(f"{ratio}: {metric} − {reference}", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.tick_params(axis="x", labelsize=7)
    n_text = f"{ns[0]} seeds" if len(ns) == 1 else f"{ns[0]}-{ns[-1]} seeds"
    text = textwrap.fill(f"paired by seed ({n_text}): {caption}", width=int(20 * fig.get_figwidth()))
    fig.suptitle(f"{title}\n{text}", fontsize=8)
    return save_png_svg(fig, path_stem)


def accuracy_vs_budget(study, fig_dir: Path) -> list[Path]:
    """A budget study (bench/report/budget.py): balanced accuracy against the step budget (log x), one
    line per method with a ±1 sd band over seeds; points of different seed counts are not joined."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ranked = study.methods()
    methods = shown_methods(ranked)
    for m in methods:
        pts = [(s, st) for s in study.budgets if (st := study.stat(m, s)) and st.n]
        plot_by_seed_count(ax, pts, method_style(m), m, band_alpha=0.1)
    ax.set_xscale("log")
    ax.set_xticks(study.budgets, [str(s) for s in study.budgets], fontsize=8)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training budget (optimiser steps, each its own cosine schedule)")
    ax.set_ylabel("balanced accuracy (test)")
    ax.grid(alpha=0.3, which="both")
    _legend_outside(fig, ax, len(methods))
    seeds = sorted({st.n for m in methods for s in study.budgets if (st := study.stat(m, s))})
    band = "1 seed, no band" if seeds == [1] else f"mean ± std over {seeds[0]}-{seeds[-1]} seeds"
    ax.set_title(f"{study.title}\naccuracy vs training budget ({band}{shown_phrase(methods, ranked)})", fontsize=9)
    fig.tight_layout()
    return save_png_svg(fig, fig_dir / study.slug)


def regimes_vs_budget(studies: list, title: str, path_stem: Path) -> list[Path]:
    """The transfer study's picture: one cell's budget studies side by side, one panel per regime (from
    scratch, then each pretrained start and tuning mode), balanced accuracy against the step budget, the
    same methods, colours and y axis in every panel: how far a start carries each method, and from which
    budget on each regime stops moving."""
    every = [m for st in studies for m in st.methods()]
    ranked = sorted(set(every), key=every.index)
    methods = shown_methods(ranked)
    budgets = sorted({b for st in studies for b in st.budgets})
    fig, axes = plt.subplots(1, len(studies), figsize=(3.3 * len(studies) + 1.8, 4.2), sharey=True, squeeze=False)
    for ax, st in zip(axes[0], studies):
        for m in methods:
            pts = [(b, x) for b in st.budgets if (x := st.stat(m, b)) and x.n]
            if pts:
                plot_by_seed_count(ax, pts, method_style(m), m, band_alpha=0.08)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [str(b) for b in budgets], fontsize=7)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("optimiser steps")
        ax.set_title(st.regime, fontsize=8)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("balanced accuracy (test)")
    handles = {lab: h for ax in axes[0] for h, lab in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               fontsize=8)  # fmt: skip
    fig.suptitle(f"{title}: accuracy vs budget per regime (mean ± sd over seeds)", fontsize=9)
    fig.tight_layout()
    return save_png_svg(fig, path_stem)


def review_queue(curves: dict[str, dict], title: str, target: float, path_stem: Path) -> list[Path]:
    """Two panels for the contenders of one board and ratio: the reliability diagram (accuracy against
    confidence in 15 equal-width bins, every seed's test images pooled; the diagonal is perfect calibration)
    and the risk-coverage curve (error rate of the most confident images against their share, the mean over
    seeds). `curves[method]` = {"conf": [...], "right": [...], "coverage": grid, "risk": mean risk, "n": seeds}."""
    fig, (rel, rc) = plt.subplots(1, 2, figsize=(10, 4.2))
    edges = np.linspace(0, 1, 16)
    for m, c in curves.items():
        style = method_style(m)
        conf, right = np.asarray(c["conf"]), np.asarray(c["right"], dtype=np.float64)
        which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, 14)
        filled = [b for b in range(15) if (which == b).any()]
        x = [conf[which == b].mean() for b in filled]
        y = [right[which == b].mean() for b in filled]
        label = f"{m} (n={c['n']})"
        rel.plot(x, y, ms=4, lw=1.3, label=label, **style)
        rc.plot(c["coverage"], c["risk"], lw=1.5, color=style["color"], linestyle=style["linestyle"])
    rel.plot([0, 1], [0, 1], color="grey", lw=0.8, linestyle=":")
    low = min((min(c["conf"]) for c in curves.values()), default=0.5)
    rel.set(xlim=(min(0.5, low), 1.0), ylim=(0, 1.02), xlabel="confidence (top class)", ylabel="accuracy",
            title="reliability (15 bins, seeds pooled)")  # fmt: skip
    rc.set(xlim=(0, 1), ylim=(0, None), xlabel="coverage (share of images accepted, most confident first)",
           ylabel="error rate of the accepted", title="risk-coverage (mean over seeds)")  # fmt: skip
    fig.suptitle(f"{title}: review queue (rare-class target {target:.0%} in the tables)", fontsize=9)
    _legend_outside(fig, rel, len(curves))
    fig.tight_layout()
    return save_png_svg(fig, path_stem)


VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red"}  # decided; anything else (open, not decided) grey


def confirmatory_contrasts(panels: list[tuple[str, list[tuple[str, object, str, str]]]], caption: str,
                           path_stem: Path) -> list[Path]:  # fmt: skip
    """The answer in one picture: per raced cell (a panel, `panels` = [(title, [(contrast, stats.Paired or
    None, verdict, words)])]), each declared contrast's paired difference at its deciding or latest look with its 95%
    interval, filled and coloured where decided (green better, red worse), hollow grey where not; `words` (the
    verdict and the seeds) beside it. A contrast before its first look (Paired None) shows its words only: a
    2-seed interval would say nothing and stretch the axis. One x axis for every panel, so effects compare
    across cells."""
    cols = min(len(panels), 2)
    rows_n = -(-len(panels) // cols)
    tall = max(len(rows) for _, rows in panels)
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.2 * cols, (0.3 * tall + 0.9) * rows_n + 0.9), sharex=True,
                             squeeze=False, layout="constrained")  # fmt: skip
    every = [pd for _, rows in panels for _, pd, _, _ in rows if pd is not None]
    lo = min([0.0, *(pd.lo for pd in every)])
    hi = max([0.0, *(pd.hi for pd in every)])
    span = hi - lo or 1.0
    for ax, (title, rows) in zip(axes.flat, panels):
        for y, (_, pd, verdict, words) in enumerate(rows):
            colour = VERDICT_COLOURS.get(verdict, "grey")
            if pd is None:
                ax.annotate(words, (0, y), xytext=(4, -3), textcoords="offset points", fontsize=7, color=colour)
                continue
            ax.errorbar(pd.mean, y, xerr=[[pd.mean - pd.lo], [pd.hi - pd.mean]], fmt="o", ms=5, capsize=2,
                        color=colour, mfc=colour if verdict in VERDICT_COLOURS else "white")  # fmt: skip
            ax.annotate(words, (pd.hi, y), xytext=(4, -3), textcoords="offset points", fontsize=7, color=colour)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(rows)), [row[0] for row in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        ax.set_xlim(lo - 0.05 * span, hi + 0.6 * span)  # room for the words inside the frame
        ax.tick_params(axis="x", labelsize=7, labelbottom=True)  # every panel its own scale's numbers
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("difference in balanced accuracy (method − reference)", fontsize=8)
    text = textwrap.fill(caption, width=int(19 * fig.get_figwidth()))
    fig.suptitle(f"The declared contrasts, raced to a decision\n{text}", fontsize=8)
    return save_png_svg(fig, path_stem)
