"""The paper's Figure 3: per-class accuracy against imbalance ratio, one line per method."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "fsc-bench"  # the same records give byte-identical SVG files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402


def save_png_svg(fig, path_stem: Path) -> list[Path]:
    """Write `fig` as PATH_STEM.png and .svg (appended, not with_suffix: a stem such as
    'cd_animals_quick_width0.5' has a dot of its own), close it, return the two paths."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("png", "svg"):
        p = path_stem.parent / f"{path_stem.name}.{ext}"
        fig.savefig(p, dpi=130, metadata={"Date": None} if ext == "svg" else None)
        written.append(p)
    plt.close(fig)
    return written


def accuracy_vs_ratio(boards, fig_dir: Path) -> list[Path]:
    """One figure per dataset and training setting (Board.group): rows = tasks, columns = majority /
    minority class; x = ratio on a log axis, y = accuracy, a band of ±1 standard deviation over seeds."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    by_fig = defaultdict(list)
    for b in boards:
        if len(b.ratios) >= 2 and len(b.classes) == 2:
            by_fig[b.group].append(b)
    written = []
    for (slug, title), bs in sorted(by_fig.items()):
        bs = sorted(bs, key=lambda b: b.setting["task"], reverse=True)  # fine first
        methods = sorted({m for b in bs for m in b.methods})
        colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
        fig, axes = plt.subplots(len(bs), 2, figsize=(10, 3.6 * len(bs)), squeeze=False, sharey=True)
        for row, b in enumerate(bs):
            for col, (cls_i, role) in enumerate(((len(b.classes) - 1, "minority"), (0, "majority"))):
                ax = axes[row][col]
                for m in b.ranked_methods():
                    pts = [(r, b.cells[(m, r)]) for r in sorted(b.ratios) if (m, r) in b.cells]
                    x = np.array([r for r, _ in pts])
                    mean = np.array([c.per_class[cls_i].mean for _, c in pts])
                    std = np.array([c.per_class[cls_i].std if c.per_class[cls_i].n > 1 else 0 for _, c in pts])
                    ax.plot(x, mean, marker="o", ms=3, lw=1.6, label=m, color=colours[m])
                    ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=colours[m], lw=0)
                ax.set_xscale("log")
                ax.set_xticks(sorted(b.ratios), [f"1:{r:g}" for r in sorted(b.ratios)], fontsize=8)
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_ylim(-0.02, 1.02)
                ax.set_title(f"{b.setting['task']}: {role} class '{b.classes[cls_i]}'", fontsize=10)
                ax.set_xlabel("imbalance ratio (minority : majority)")
                ax.grid(alpha=0.3, which="both")
                if col == 0:
                    ax.set_ylabel("test accuracy of the class")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), frameon=False)
        n_seeds = max(len(c.seeds) for b in bs for c in b.cells.values())
        fig.suptitle(
            f"{title}: per-class accuracy vs imbalance ratio (mean ± std over up to {n_seeds} seeds)",
            fontsize=11,
        )
        fig.tight_layout(rect=(0, 0.06, 1, 0.96))
        written += save_png_svg(fig, fig_dir / f"accuracy_vs_ratio_{slug}")
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


def critical_difference(ranking, title: str, path_stem: Path) -> list[Path]:
    """Critical-difference diagram (scikit-posthocs): mean ranks, bars join methods whose Nemenyi
    test does not separate them at alpha = 0.05."""
    import scikit_posthocs as sp

    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.25 * len(ranking.methods)))
    sp.critical_difference_diagram(ranking.mean_rank, ranking.nemenyi, ax=ax)
    ax.set_title(title, fontsize=10)
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
    panels: list[tuple[str, str, list[tuple[str, object]]]], reference: str, title: str, path_stem: Path
):
    """Forest plot of paired differences against `reference`: `panels` = [(metric title, ratio
    label, [(method, stats.Paired)])], laid out metric by row, ratio by column; a dot at the mean,
    a bar for the 95% interval, the Wilcoxon p beside it."""
    metrics = list(dict.fromkeys(m for m, _, _ in panels))
    ratios = list(dict.fromkeys(r for _, r, _ in panels))
    methods = list(dict.fromkeys(name for _, _, rows in panels for name, _ in rows))
    fig, axes = plt.subplots(
        len(metrics), len(ratios), figsize=(3.6 * len(ratios), 0.45 * len(methods) * len(metrics) + 1.6), squeeze=False
    )
    for metric, ratio, rows in panels:
        ax = axes[metrics.index(metric)][ratios.index(ratio)]
        for name, pd in rows:
            y = methods.index(name)
            ax.errorbar(pd.mean, y, xerr=[[pd.mean - pd.lo], [pd.hi - pd.mean]], fmt="o", ms=4, capsize=2, color="C0")
            ax.annotate(f"p={pd.p:.2g}", (pd.hi, y), xytext=(3, -3), textcoords="offset points", fontsize=7)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(methods)), methods if ratios.index(ratio) == 0 else [""] * len(methods), fontsize=8)
        ax.set_ylim(len(methods) - 0.5, -0.5)
        ax.set_title(f"{ratio}: {metric}", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"{title}: method − {reference}, paired by seed, mean and 95% interval", fontsize=10)
    fig.tight_layout()
    return save_png_svg(fig, path_stem)
