"""What the report concludes from the boards, computed once for every output format: the
configuration chosen on validation, paired differences, and rankings with their tests."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..stats import Paired, Ranking, paired_difference, rank_methods
from .model import Board, ratio_label


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


def paired_cell(b: Board, method: str, reference: str, ratio: float, metric: str) -> Paired | None:
    """`method` − `reference` in `metric` at `ratio`, paired by seed, or None without two shared seeds."""
    c, ref = b.cells.get((method, ratio)), b.cells.get((reference, ratio))
    return paired_difference(c.metric_by_seed(metric), ref.metric_by_seed(metric)) if c and ref else None


@dataclass
class NamedRanking:
    slug: str
    title: str
    ranking: Ranking
    min_seeds: int  # the fewest seeds behind any ranked cell

    @property
    def critical_difference(self) -> float:
        """Nemenyi's critical difference of mean ranks at alpha = 0.05 (Demšar 2006):
        q_0.05(k) sqrt(k (k + 1) / (6 N)), q from the studentized range distribution / sqrt(2)."""
        from scipy.stats import studentized_range

        k, n = len(self.ranking.methods), len(self.ranking.cells)
        q = studentized_range.ppf(0.95, k, np.inf) / math.sqrt(2)
        return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def rankings(boards: list[Board]) -> list[NamedRanking]:
    """Per dataset, training setting and numerics: methods ranked by mean balanced accuracy over every
    (task, ratio) cell. Boards of different settings are never pooled (a method's score in one
    would overwrite its score in the other)."""
    groups: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(dict)
    seeds: dict[tuple[str, str], dict[tuple[str, str], int]] = defaultdict(dict)
    for b in boards:
        g = groups[b.group]
        for (m, r), c in b.cells.items():
            cell = f"{b.setting['task']} {ratio_label(r)}"
            g.setdefault(cell, {})[m] = c.balanced_acc.mean
            seeds[b.group][(cell, m)] = len(c.seeds)
    out = []
    for (slug, title), scores in sorted(groups.items()):
        ranking = rank_methods(scores)
        if ranking:
            n = min(seeds[(slug, title)][(cell, m)] for cell in ranking.cells for m in ranking.methods)
            out.append(NamedRanking(slug, title, ranking, n))
    return out


@dataclass
class Analysis:
    """Everything the renderers need, computed once."""

    boards: list[Board]
    reference: str
    rankings: list[NamedRanking] = field(default_factory=list)
    selections: dict[str, dict[tuple[str, float], str]] = field(default_factory=dict)  # board slug -> chosen

    @classmethod
    def of(cls, boards: list[Board], reference: str = "os") -> Analysis:
        return cls(
            boards=boards,
            reference=reference,
            rankings=rankings(boards),
            selections={b.slug: select_on_validation(b) for b in boards},
        )
