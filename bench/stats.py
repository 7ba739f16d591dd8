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
