"""What the report concludes from the boards, computed once for every output format: the
configuration chosen on validation, paired differences, and rankings with their tests."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..metrics import decode_labels, outcome_arrays
from ..review import REVIEW_TARGET, Review, review
from ..spec import named_budget
from ..stats import (
    ALPHA,
    MARGIN,
    ContrastResult,
    Decision,
    Paired,
    Ranking,
    decide,
    image_shared_var,
    paired_difference,
    rank_methods,
    sequential_family,
)
from .model import Board, ratio_label


def select_on_validation(b: Board) -> dict[tuple[str, float], str]:
    """For each composition swept over hyper-parameters and each ratio, the configuration with the
    best mean validation balanced accuracy over the seeds that every configuration has (a sweep cut
    short must not favour a configuration for its easier seeds). It reads validation numbers only,
    never the test ones. A tie keeps the default configuration (the label without hyper-parameters),
    else the first label."""
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
                top = max(mean.values())
                tied = sorted(label for label, v in mean.items() if v == top)
                chosen[(base, r)] = base if base in tied else tied[0]
    return chosen


def cell_test_var(a, b, metric: str, seeds=None) -> float:
    """The test images' shared error in the mean difference a - b in `metric` (cells a and b), for the
    metrics that are means of per-class accuracies (balanced accuracy; the minority class): the image term
    of bench/stats.py's docstring, from the per-image outcomes of the seeds both cells ran (records since
    round three). 0 for the other metrics (ROC-AUC, feature statistics) and for records without per-image
    outcomes, whose intervals then hold the seeds' spread only (`has_outcomes` says which). `seeds`: those
    of the comparison, when not every seed the cells share."""
    if metric not in ("bal_acc", "min_acc") or not a.test_counts or not has_outcomes(a, b):
        return 0.0
    shared = sorted(set(a.seeds) & set(b.seeds) & (set(seeds) if seeds is not None else set(a.seeds)))
    classes = None if metric == "bal_acc" else [len(a.test_counts) - 1]
    decode = lambda o: (decode_labels(o["labels"]), decode_labels(o["predictions"]))  # noqa: E731
    try:
        return image_shared_var([decode(a.outcomes[s]) for s in shared], [decode(b.outcomes[s]) for s in shared],
                                classes)  # fmt: skip
    except ValueError:
        return 0.0  # tested on different images: seeds only


def has_outcomes(a, b) -> bool:
    """Whether every seed the two cells share has per-image outcomes in both (the image term is estimable)."""
    shared = set(a.seeds) & set(b.seeds)
    return bool(shared) and all(s in a.outcomes and s in b.outcomes for s in shared)


def paired_cell(b: Board, method: str, reference: str, ratio: float, metric: str) -> Paired | None:
    """`method` − `reference` in `metric` at `ratio`, paired by seed (and with the test set's sampling
    error where the metric has one), or None without two shared seeds."""
    c, ref = b.cells.get((method, ratio)), b.cells.get((reference, ratio))
    if not (c and ref):
        return None
    return paired_difference(c.metric_by_seed(metric), ref.metric_by_seed(metric), cell_test_var(c, ref, metric))


def candidates(b: Board, r: float, chosen: dict) -> dict[str, object]:
    """The cells that compete for 'best' at ratio r: default configurations, and on a swept board the
    configuration validation chose for each swept method."""
    cands = {}
    for (label, ratio), c in b.cells.items():
        if ratio != r:
            continue
        if (c.base, r) in chosen:
            if chosen[(c.base, r)] == label:
                cands[label] = c
        elif label == c.base:
            cands[label] = c
    return cands


def fingerprint(c) -> tuple:
    """What a cell computed, seed by seed: per-class accuracies, ROC-AUC and macro-F1 (and every test
    prediction where the records keep them). Two methods with one fingerprint are the same computation
    on this board (taunorm with a fixed tau = 1 on two classes is ce)."""
    auc, f1 = c.extra.get("roc_auc", {}), c.extra.get("macro_f1", {})
    return tuple(
        (s, tuple(round(c.by_seed(i)[s], 12) for i in range(len(c.per_class))), round(auc.get(s, -1.0), 12),
         round(f1.get(s, -1.0), 12), c.outcomes.get(s, {}).get("predictions"))
        for s in c.seeds
    )  # fmt: skip


def collapse_aliases(cands: dict, reference: str) -> tuple[dict, dict[str, list[str]]]:
    """One cell per fingerprint (the reference, else the shortest label, keeps it); {kept: [aliases]}.
    Aliases would otherwise enter Holm's family twice and be named twice."""
    groups: dict[tuple, list[str]] = {}
    for m, c in cands.items():
        groups.setdefault(fingerprint(c), []).append(m)
    kept, aliases = {}, {}
    for members in groups.values():
        first = reference if reference in members else min(members, key=lambda m: (len(m), m))
        kept[first] = cands[first]
        others = sorted(m for m in members if m != first)
        if others:
            aliases[first] = others
    return kept, aliases


def decision(b: Board, r: float, reference: str, chosen: dict, margin: float = MARGIN) -> Decision | None:
    """The decision procedure of bench/stats.py on balanced accuracy at ratio r of board b, over the
    candidates with identical computations collapsed (`collapse_aliases`)."""
    cands, aliases = collapse_aliases(candidates(b, r, chosen), reference)
    if reference not in cands:
        return None
    scores = {m: c.metric_by_seed("bal_acc") for m, c in cands.items()}
    d = decide(scores, reference, margin, test_var=lambda x, y: cell_test_var(cands[x], cands[y], "bal_acc"))
    if d:
        d.aliases = aliases
    return d


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

    @property
    def min_blocks(self) -> int:
        """The fewest cells (blocks) at which the critical difference is at most (k - 1) / 2 ranks, so
        that a method at either end of the ranking could be told from one in the middle. Below it the
        mean-rank places carry no evidence (Demšar 2006; Benavoli et al. 2016) and are not shown."""
        k, n = len(self.ranking.methods), len(self.ranking.cells)
        cd_one = self.critical_difference * math.sqrt(n)  # the critical difference at one block
        return max(2, math.ceil((cd_one / ((k - 1) / 2)) ** 2))

    @property
    def informative(self) -> bool:
        return len(self.ranking.cells) >= self.min_blocks


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


VERDICTS = ("too_few_seeds", "clear", "reference_may_be_best", "reference_beaten")


def verdict(d: Decision, cands: dict, reference: str, min_seeds: int = 3) -> str:
    """What the evidence at one board and ratio says about the reference, as one of VERDICTS: too few
    seeds (a candidate has fewer than `min_seeds`), clear (one method alone may be the best, among at least
    three: of two methods that is only "one beats the other", said as the reference's verdict), the
    reference among several that may be the best, or the reference beaten (it is not among them)."""
    if min(len(c.seeds) for c in cands.values()) < min_seeds:
        return "too_few_seeds"
    if len(d.may_be_best) == 1 and len(cands) >= 3:
        return "clear"
    return "reference_may_be_best" if reference in d.may_be_best else "reference_beaten"


def reference_may_be_best(d: Decision, kind: str, reference: str) -> bool:
    """Whether the reference may be the best method (it is the clear winner, or among several)."""
    return kind == "reference_may_be_best" or (kind == "clear" and d.may_be_best == [reference])


def cell_reviews(c, target: float = REVIEW_TARGET) -> dict[int, Review]:
    """The review-queue numbers (bench/review.py) of every seed of cell c whose record keeps per-image
    probabilities (records since round four), the temperature fitted on its validation images where it has
    them. A damaged per-image block leaves its seed out (the record's other numbers stand)."""
    out = {}
    for s, o in c.outcomes.items():
        if "log_probs" not in o:
            continue
        try:
            labels, logp, _ = outcome_arrays(o)
            val = outcome_arrays(c.val_outcomes[s])[:2] if s in c.val_outcomes else None
        except ValueError:
            continue
        out[s] = review(labels, logp, c.train_counts, val, target)
    return out


@dataclass
class ReviewBoard:
    """The review queue of one board and ratio: each candidate's per-seed numbers, and the paired decision on
    the common-class share a person reviews to catch the target share of the rare class (lower is better),
    against the reference over the seeds both have, Holm-corrected over the candidates (seeds only: the
    share is not a mean of per-image outcomes)."""

    ratio: float
    target: float
    reviews: dict[str, dict[int, Review]]  # method -> seed -> numbers
    decision: Decision | None

    def values(self, m: str, get) -> dict[int, float]:
        return {s: float(get(r)) for s, r in self.reviews[m].items() if get(r) is not None}


def review_board(b: Board, r: float, reference: str, chosen: dict, target: float = REVIEW_TARGET) -> ReviewBoard | None:
    """The ReviewBoard of board b at ratio r, or None when no candidate has per-image probabilities."""
    cands, _ = collapse_aliases(candidates(b, r, chosen), reference)
    reviews = {m: rv for m, c in cands.items() if (rv := cell_reviews(c, target))}
    if not reviews:
        return None
    rb = ReviewBoard(r, target, reviews, None)
    fewer = {m: {s: -v for s, v in rb.values(m, lambda x: x.common_share).items()} for m in reviews}
    rb.decision = (
        decide(fewer, reference, plan_seeds=False, best_set=False, correction="holm") if reference in reviews else None
    )
    return rb


def family_applies(family: dict, b: Board, r: float) -> bool:
    """Whether a confirmatory family (bench/gridfile.py `read_family`) covers board b at ratio r: one of its
    grid's entries makes that dataset, task, ratio and preset (a budget preset such as `standard` by name)."""
    s = b.setting
    return not s.get("classes") and any(
        e["dataset"] == s["dataset"] and e["task"] == s["task"] and e["ratio"] == r
        and e["preset"] in (s["preset"] if not named_budget(s) else None, named_budget(s))
        for e in family["boards"]
    )  # fmt: skip


def excluded_seeds(family: dict, b: Board, r: float, methods) -> set[int]:
    """The seeds a contrast of `methods` may not use on board b at ratio r: those its methods were picked on."""
    sel = family.get("selected")
    if not sel or not (set(methods) & set(sel["methods"])):
        return set()
    s = b.setting
    picked_here = s["dataset"] == sel["dataset"] and s["task"] == sel["task"] and r == sel["ratio"]
    return set(sel["seeds"]) if picked_here else set()


def family_seeds(family: dict, b: Board, r: float, method: str, reference: str) -> list[int]:
    """The seeds a contrast uses, in order: those both cells have, less the seeds its methods were picked on."""
    c, ref = b.cells.get((method, r)), b.cells.get((reference, r))
    if not (c and ref):
        return []
    return sorted((set(c.seeds) & set(ref.seeds)) - excluded_seeds(family, b, r, (method, reference)))


def family_wants(family: dict, b: Board, r: float, results: list[ContrastResult]) -> dict[str, tuple[int, int]]:
    """Per method of a family's undecided contrasts on board b at ratio r: (seeds it has, seeds the next look
    needs), counting the seeds it may not use there (those its contrast's methods were picked on)."""
    want: dict[str, int] = {}
    for res in results:
        if res.next_look is None:
            continue
        skip = len(excluded_seeds(family, b, r, (res.method, res.reference)))
        for m in (res.method, res.reference):  # the reference of an open contrast never stops
            want[m] = max(want.get(m, 0), res.next_look + skip)
    return {m: (len(b.cells[(m, r)].seeds) if (m, r) in b.cells else 0, t) for m, t in want.items()}


def confirm(family: dict, b: Board, r: float, alpha: float = ALPHA) -> list[ContrastResult]:
    """The family's contrasts on board b at ratio r, decided by the sequential procedure of bench/stats.py
    on balanced accuracy (the image term included where the records keep per-image outcomes)."""

    def paired_at(method, reference, n, first=True):
        seeds = family_seeds(family, b, r, method, reference)
        if len(seeds) < (n if first else 2):
            return None
        seeds = seeds[:n] if first else seeds
        c, ref = b.cells[(method, r)], b.cells[(reference, r)]
        bal = lambda cell: {s: v for s, v in cell.metric_by_seed("bal_acc").items() if s in seeds}  # noqa: E731
        return paired_difference(bal(c), bal(ref), cell_test_var(c, ref, "bal_acc", seeds))

    results = sequential_family(family["contrasts"], paired_at, family["looks"], alpha)
    for res in results:  # before its first look, a contrast shows its seeds so far
        if res.paired is None:
            res.paired = paired_at(res.method, res.reference, 0, first=False)
    return results


@dataclass
class Analysis:
    """Everything the renderers need, computed once."""

    boards: list[Board]
    reference: str
    rankings: list[NamedRanking] = field(default_factory=list)
    selections: dict[str, dict[tuple[str, float], str]] = field(default_factory=dict)  # board slug -> chosen
    margin: float = MARGIN
    decisions: dict[tuple[str, float], Decision] = field(default_factory=dict)  # (board slug, ratio)
    too_few_blocks: list[NamedRanking] = field(default_factory=list)  # rankings whose places carry no evidence
    review_target: float = REVIEW_TARGET
    reviews: dict[tuple[str, float], ReviewBoard] = field(default_factory=dict)  # (board slug, ratio)
    families: list[dict] = field(default_factory=list)  # confirmatory families declared in grid files
    confirmed: dict[tuple[str, float], tuple[dict, list[ContrastResult]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        boards: list[Board],
        reference: str = "os",
        margin: float = MARGIN,
        review_target: float = REVIEW_TARGET,
        families: list[dict] | None = None,
    ) -> Analysis:
        ranked = rankings(boards)
        a = cls(
            boards=boards,
            reference=reference,
            rankings=[nr for nr in ranked if nr.informative],
            too_few_blocks=[nr for nr in ranked if not nr.informative],
            selections={b.slug: select_on_validation(b) for b in boards},
            margin=margin,
            review_target=review_target,
            families=list(families or []),
        )
        for b in boards:
            for r in b.ratios:
                d = decision(b, r, reference, a.selections[b.slug], margin)
                if d:
                    a.decisions[(b.slug, r)] = d
                rb = review_board(b, r, reference, a.selections[b.slug], review_target)
                if rb:
                    a.reviews[(b.slug, r)] = rb
                for fam in a.families:
                    if family_applies(fam, b, r):
                        a.confirmed[(b.slug, r)] = (fam, confirm(fam, b, r))
        return a

    def boards_of(self, regime: str | None = None) -> list[Board]:
        """The boards, or only those of one regime (`Board.regime`: standard, short, transfer)."""
        return [b for b in self.boards if regime is None or b.regime == regime]

    def verdicts(self, regime: str | None = None) -> list[tuple[Decision, str]]:
        """(decision, verdict) for every board and ratio decided against the reference, in board order;
        `regime` as in `boards_of`."""
        out = []
        for b in self.boards_of(regime):
            for r in sorted(b.ratios):
                d = self.decisions.get((b.slug, r))
                if d is not None and d.reference == self.reference:
                    out.append((d, verdict(d, candidates(b, r, self.selections.get(b.slug, {})), self.reference)))
        return out


# Racing seeds (issue 23): every method gets the first count; the methods the procedure cannot exclude from
# the best get the second; up to the third while their verdict against the reference is still open.
RACE = (3, 5, 10)


@dataclass
class RacePlan:
    """The seeds each method of one board and ratio should have, and the methods that stop where they are."""

    board: Board
    ratio: float
    targets: dict[str, int] = field(default_factory=dict)  # method -> seeds it should reach (more than it has)
    stopped: dict[str, int] = field(default_factory=dict)  # method -> seeds it stopped at: excluded from the best
    settled: list[str] = field(default_factory=list)  # may be the best, with a verdict: no more seeds


def race(b: Board, r: float, d: Decision | None, reference: str, chosen: dict, counts=RACE) -> RacePlan:
    """Who gets more seeds at ratio r of board b: a method with fewer than counts[0] seeds gets them; one
    outside the set that may hold the best stops (it is beaten, at 0.95 confidence, by at least one other);
    one inside gets counts[1]; beyond that, up to counts[2] while the set holds more than one method and its
    comparison with the reference is inconclusive (the reference: while any is). Methods that computed the
    same numbers as another (aliases) are run once, under the kept name. The reference is never stopped (issue
    36: stopping it froze every comparison with it)."""
    first, more, most = counts
    cands, _ = collapse_aliases(candidates(b, r, chosen), reference)
    plan = RacePlan(b, r)
    open_verdicts = d is not None and len(d.may_be_best) > 1 and bool(d.named("inconclusive"))
    for m, c in sorted(cands.items()):
        n = len(c.seeds)
        if n < first or d is None:
            target = max(first, n)
        elif m not in d.may_be_best and m != reference:  # the reference never stops: every comparison needs it
            plan.stopped[m] = n
            continue
        elif n < more:
            target = more
        elif open_verdicts and (d.verdict.get(m) == "inconclusive" or m == reference):
            target = max(n, most)
        else:
            target = n
        if target > n:
            plan.targets[m] = target
        else:
            plan.settled.append(m)
    return plan


def race_plans(a: Analysis) -> list[RacePlan]:
    """The racing plan of every board and ratio, in board order."""
    return [
        race(b, r, a.decisions.get((b.slug, r)), a.reference, a.selections.get(b.slug, {}))
        for b in a.boards
        for r in sorted(b.ratios)
    ]
