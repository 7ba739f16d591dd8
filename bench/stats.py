"""Paired comparison of two methods over seeds (same seed = same training subset and test set)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Paired:
    n: int
    mean: float  # mean of (method - reference) over the shared seeds
    lo: float  # 95% Student-t interval of that mean
    hi: float
    p: float  # two-sided Wilcoxon signed-rank p-value (exact for small n)

    def fmt(self) -> str:
        return f"{self.mean:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}] p={self.p:.3g} (n={self.n})"


def paired_difference(method: dict[int, float], reference: dict[int, float]) -> Paired | None:
    """None when fewer than two seeds are shared."""
    seeds = sorted(set(method) & set(reference))
    if len(seeds) < 2:
        return None
    d = np.array([method[s] - reference[s] for s in seeds], dtype=np.float64)
    n, mean = len(d), float(d.mean())
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n))
    p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return Paired(n=n, mean=mean, lo=mean - half, hi=mean + half, p=p)


@dataclass(frozen=True)
class Ranking:
    """Friedman test over cells (task x ratio) of one dataset, with Nemenyi post-hoc p-values."""

    methods: list[str]
    cells: list[str]
    mean_rank: dict[str, float]  # 1 = best
    statistic: float
    p: float
    nemenyi: object  # pandas DataFrame of pairwise p-values


def rank_methods(scores: dict[str, dict[str, float]]) -> Ranking | None:
    """`scores[cell][method]`, higher is better. A complete block design: the cells where every
    method ran (else all cells, with the methods common to them); None with < 3 methods or < 2 cells."""
    import pandas as pd
    import scikit_posthocs as sp

    everyone = set().union(*scores.values()) if scores else set()
    cells = sorted(c for c in scores if set(scores[c]) == everyone)
    if len(cells) < 2:  # no two cells where every method ran: use the methods common to all cells
        cells = sorted(scores)
    if not cells:
        return None
    methods = sorted(set.intersection(*(set(scores[c]) for c in cells)))
    if len(methods) < 3 or len(cells) < 2:
        return None
    table = pd.DataFrame([[scores[c][m] for m in methods] for c in cells], index=cells, columns=methods)
    friedman = stats.friedmanchisquare(*(table[m].to_numpy() for m in methods))
    ranks = table.rank(axis=1, ascending=False).mean()
    nemenyi = sp.posthoc_nemenyi_friedman(table.to_numpy())
    nemenyi.index = nemenyi.columns = methods
    return Ranking(
        methods=methods,
        cells=cells,
        mean_rank={m: float(ranks[m]) for m in methods},
        statistic=float(friedman.statistic),
        p=float(friedman.pvalue),
        nemenyi=nemenyi,
    )
