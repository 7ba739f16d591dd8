"""The report's statistics: paired comparisons over seeds, the decision procedure of the which-method
answer, and rankings.

Paired comparison: the same seed gives two methods the same training subset, and every seed shares one
balanced test set. The per-image difference of two methods (a correct minus b correct, image i, seed s)
is, per class, a two-way crossed layout D[s, i] = mu + a_s + b_i + e_si: a_s the seed's effect, b_i the
image's (an image on which a is better than b for every seed), e_si the rest (which model of which seed
gets which image right, nearly independent across seeds). The mean difference over seeds and images has
variance var(a)/n + mean_c var(b_c)/n_c / C + mean_c var(e_c)/(n n_c) / C (n seeds, n_c test images of
class c, C classes). The spread of the per-seed differences already holds the first and third terms
(sd^2 / n); only the image term b, the part of the test set's error that every seed shares and no number
of seeds removes, is added, as `test_var`, estimated from the per-image outcomes by the two-way ANOVA's
variance components (`image_shared_var`). Records without per-image outcomes use the seeds only (the
report says so). Round three added the whole per-seed image variance undivided instead, counting the e
term twice and never letting it shrink (issue 36): no difference under 0.047 could be found on animals
fine at any number of seeds. The printed p is the p of the test that made the interval (a t-test with
n - 1 degrees of freedom on the combined standard error, conservative when the image term is large), so
interval and p never disagree.

The decision procedure (`decide`), one per board and ratio, against a reference method:
- 'better' / 'worse': the two-sided paired test above, corrected over the board's methods at that ratio
  with Benjamini-Hochberg (the boards' comparisons are an exploratory screen since round four: false
  discoveries at most alpha of the claims; `correction='holm'` gives the family-wise version). The
  confirmatory contrasts, declared in advance, are decided apart (`sequential_family`);
- 'equivalent': two one-sided tests (TOST, Schuirmann 1987) against a declared margin (default 0.01
  balanced accuracy), corrected the same way;
- 'inconclusive': neither.
The set of methods that may be the best: a method leaves it only when some other method beats it in a
one-sided paired test beyond the exact Dunnett critical value for k - 1 comparisons (multiple comparisons
with the best, Hsu 1996; round three used the Bonferroni level alpha / (k - 1)): the true best stays in the
set with probability at least 1 - alpha.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

ALPHA = 0.05
MARGIN = 0.01  # the equivalence margin in balanced accuracy (`bench report --margin`)
DETECT = 0.02  # the difference the seed planning asks to detect, at POWER
POWER = 0.8


@dataclass(frozen=True)
class Paired:
    n: int
    mean: float  # mean of (method - reference) over the shared seeds
    lo: float  # 95% interval of that mean (seeds and, where given, the test set's sampling error)
    hi: float
    p: float  # two-sided p of the t-test that made the interval
    se: float = float("nan")  # the standard error behind the interval
    sd: float = float("nan")  # standard deviation of the per-seed differences
    with_test: bool = False  # whether the test set's sampling error is in the interval
    image_var: float = 0.0  # the test images' shared term inside se^2 (does not shrink with seeds)

    def fmt(self) -> str:
        return f"{self.mean:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}] p={self.p:.2g} (n={self.n})"

    def one_sided_p(self, greater: bool = True) -> float:
        """p of 'the method is above the reference' (greater) or below it."""
        if not self.se > 0:
            return 0.0 if (self.mean > 0) == greater and self.mean != 0 else 1.0
        t = self.mean / self.se
        return float(stats.t.sf(t, self.n - 1) if greater else stats.t.cdf(t, self.n - 1))

    def tost_p(self, margin: float = MARGIN) -> float:
        """Two one-sided tests that the true difference lies inside (-margin, +margin): the larger p."""
        if not self.se > 0:
            return 0.0 if abs(self.mean) < margin else 1.0
        lower = stats.t.sf((self.mean + margin) / self.se, self.n - 1)
        upper = stats.t.cdf((self.mean - margin) / self.se, self.n - 1)
        return float(max(lower, upper))


def paired_difference(method: dict[int, float], reference: dict[int, float], test_var: float = 0.0) -> Paired | None:
    """`method` − `reference` over their shared seeds; None when fewer than two seeds are shared.
    `test_var`: the variance the test set's sampling adds to the mean difference (0: seeds only)."""
    seeds = sorted(set(method) & set(reference))
    if len(seeds) < 2:
        return None
    d = np.array([method[s] - reference[s] for s in seeds], dtype=np.float64)
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    se = math.sqrt(sd**2 / n + test_var)
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1) * se)
    if se > 0:
        p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    else:
        p = 1.0 if mean == 0 else 0.0
    return Paired(
        n=n, mean=mean, lo=mean - half, hi=mean + half, p=p, se=se, sd=sd, with_test=test_var > 0, image_var=test_var
    )


def image_shared_var(outcomes_a: list[tuple], outcomes_b: list[tuple], classes=None) -> float:
    """The image term of the module docstring: the variance that the test images shared by every seed add
    to the mean over seeds of (mean per-class accuracy of a - that of b), over the classes `classes`
    (default all: balanced accuracy; [last]: the minority's). `outcomes_x[seed] = (labels, predictions)`,
    integer arrays over the same test images in the same order, one entry per shared seed (at least 2).

    Per class c, with D the seeds x images matrix of (a correct) - (b correct): the images' mean square
    MS_img = n * var(column means) and the residual mean square MS_res of the two-way layout without
    replication give var(b_c) = max(0, (MS_img - MS_res) / n) (its expectation-matching estimate, truncated
    at 0); the term is sum_c var(b_c) / n_c / C^2."""
    if len(outcomes_a) != len(outcomes_b):
        raise ValueError("the two methods' seeds differ")
    if len(outcomes_a) < 2:
        return 0.0
    ys = [ya for ya, _ in outcomes_a] + [yb for yb, _ in outcomes_b]
    if any(len(y) != len(ys[0]) or not np.array_equal(y, ys[0]) for y in ys):
        raise ValueError("the runs were tested on different images")
    y = ys[0]
    d = np.stack([(pa == y).astype(np.float64) - (pb == y) for (_, pa), (_, pb) in zip(outcomes_a, outcomes_b)])
    n = d.shape[0]
    cs = sorted(set(y.tolist())) if classes is None else classes
    total = 0.0
    for c in cs:
        dc = d[:, y == c]
        n_c = dc.shape[1]
        if n_c < 2:
            continue
        cols, rows, grand = dc.mean(0), dc.mean(1, keepdims=True), dc.mean()
        ms_img = n * float(((cols - grand) ** 2).sum()) / (n_c - 1)
        ms_res = float(((dc - rows - cols[None, :] + grand) ** 2).sum()) / ((n - 1) * (n_c - 1))
        total += max(0.0, (ms_img - ms_res) / n) / n_c
    return total / len(cs) ** 2


def holm(pvalues: list[float], alpha: float = ALPHA) -> list[float]:
    """Holm-adjusted p-values: the i-th smallest p times (m - i + 1), made monotone, capped at 1. The
    same numbers as statsmodels' multipletests(method='holm') (a test checks it), written out because
    that function runs a full garbage collection on every call (0.24 s each here), which made the
    simulations of the procedure take minutes."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values: p_(i) m / i made monotone from the largest down, capped at 1
    (statsmodels' multipletests(method='fdr_bh'), a test checks it; written out for the reason `holm` is)."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted, running = [0.0] * m, 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, m * float(pvalues[i]) / (rank + 1))
        adjusted[i] = min(1.0, running)
    return adjusted


@dataclass
class Decision:
    """The verdicts of one board and ratio against its reference, and the set that may hold the best."""

    reference: str
    margin: float
    verdict: dict[str, str] = field(default_factory=dict)  # method -> better / worse / equivalent / inconclusive
    vs_reference: dict[str, Paired] = field(default_factory=dict)
    p_adj: dict[str, float] = field(default_factory=dict)  # adjusted p of the difference test (`correction`)
    p_equiv_adj: dict[str, float] = field(default_factory=dict)  # adjusted TOST p
    correction: str = "bh"  # bh: Benjamini-Hochberg (an exploratory screen), holm: family-wise
    may_be_best: list[str] = field(default_factory=list)
    best_by_mean: str = ""
    seeds_needed: dict[str, int | float | None] = field(default_factory=dict)  # inconclusive: seeds to find
    # DETECT (math.inf: not reachable)
    mde: dict[str, float | None] = field(default_factory=dict)  # minimum detectable effect at the seeds run
    aliases: dict[str, list[str]] = field(default_factory=dict)  # a method -> those that computed the same

    def name(self, m: str) -> str:
        """A method with its aliases, e.g. 'ce (= drw, fsc)'."""
        return f"{m} (= {', '.join(self.aliases[m])})" if m in self.aliases else m

    def named(self, verdict: str) -> list[str]:
        return [m for m, v in self.verdict.items() if v == verdict]


def decide(
    scores: dict[str, dict[int, float]],
    reference: str,
    margin: float = MARGIN,
    alpha: float = ALPHA,
    test_var=None,
    plan_seeds: bool = True,
    best_set: bool = True,
    correction: str = "bh",
) -> Decision | None:
    """The decision procedure (module docstring) over `scores[method][seed]`, higher is better; `correction`
    'bh' (Benjamini-Hochberg: the boards' exploratory screen, false discoveries at most alpha of the
    claims) or 'holm' (family-wise error at most alpha).
    `test_var(a, b)` gives the test-sampling variance of a − b (None: seeds only). None when the
    reference is missing or no other method shares two seeds with it. `plan_seeds` and `best_set`
    can be switched off where only the verdicts are wanted (simulations)."""
    if reference not in scores or len(scores) < 2:
        return None
    tv = test_var or (lambda a, b: 0.0)
    others = [m for m in sorted(scores) if m != reference]
    pairs = {m: paired_difference(scores[m], scores[reference], tv(m, reference)) for m in others}
    pairs = {m: pd for m, pd in pairs.items() if pd is not None}
    if not pairs:
        return None
    names = list(pairs)
    adjust = {"holm": holm, "bh": benjamini_hochberg}[correction]
    adj = dict(zip(names, adjust([pairs[m].p for m in names])))
    adj_eq = dict(zip(names, adjust([pairs[m].tost_p(margin) for m in names])))
    d = Decision(
        reference=reference, margin=margin, vs_reference=pairs, p_adj=adj, p_equiv_adj=adj_eq, correction=correction
    )
    for m in names:
        if adj[m] < alpha:
            d.verdict[m] = "better" if pairs[m].mean > 0 else "worse"
        elif adj_eq[m] < alpha:
            d.verdict[m] = "equivalent"
        else:
            d.verdict[m] = "inconclusive"
            if plan_seeds:
                d.seeds_needed[m] = seeds_to_detect(pairs[m].sd, len(names), alpha, image_var=pairs[m].image_var)
        if plan_seeds:
            d.mde[m] = min_detectable(pairs[m].sd, pairs[m].image_var, pairs[m].n, alpha / len(names))
    means = {m: float(np.mean(list(v.values()))) for m, v in scores.items() if v}
    d.best_by_mean = max(means, key=lambda m: (means[m], m == reference))
    d.may_be_best = may_be_best(scores, alpha, tv) if best_set else []
    return d


@functools.lru_cache(maxsize=512)
def dunnett_critical(m: int, df: float, alpha: float = ALPHA) -> float:
    """The one-sided critical value of Dunnett's many-to-one comparison: P(max_j T_j <= d) = 1 - alpha for m
    t statistics with df degrees of freedom and correlation 1/2 (one method against m others with equal
    variances: Hsu's MCB uses it). Computed exactly by quadrature: T_j = (W + E_j) / sqrt(2) / S with W, E_j
    standard normal and S^2 a chi-square over df (Gauss-Hermite over W, 400 quantiles of S); m = 1 is
    Student's t. A test checks it against Monte Carlo and the published normal-case values (1.916 for 2
    comparisons, 2.234 for 5)."""
    if m <= 1:
        return float(stats.t.ppf(1 - alpha, df))
    from scipy.optimize import brentq

    q = (np.arange(400) + 0.5) / 400
    s = np.sqrt(stats.chi2.ppf(q, df) / df) if math.isfinite(df) else np.ones(1)
    x, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / math.sqrt(2 * math.pi)

    def cover(d: float) -> float:
        return float(((stats.norm.cdf(d * s[:, None] * math.sqrt(2) - x[None, :]) ** m) * w[None, :]).sum(1).mean())

    return float(brentq(lambda d: cover(d) - (1 - alpha), 0.0, 200.0))


def may_be_best(scores: dict[str, dict[int, float]], alpha: float = ALPHA, test_var=None) -> list[str]:
    """Hsu's multiple comparisons with the best (1996): a method leaves the set when some other beats it in
    the paired test by more than the exact one-sided Dunnett critical value for k - 1 comparisons
    (`dunnett_critical`, correlation 1/2, the pair's n - 1 degrees of freedom), so the true best stays with
    probability at least 1 - alpha. Round three used the Bonferroni level alpha / (k - 1) (a critical t of
    18.7 for 35 comparisons at 3 seeds, where Dunnett's is 7.4). Best mean first."""
    tv = test_var or (lambda a, b: 0.0)
    methods = [m for m in scores if len(scores[m]) >= 2]
    k = len(methods)
    if k < 2:
        return methods
    keep = []
    for i in methods:
        beaten = False
        for j in methods:
            if j == i:
                continue
            pd = paired_difference(scores[j], scores[i], tv(j, i))
            if pd is None:
                continue
            t = pd.mean / pd.se if pd.se > 0 else (math.inf if pd.mean > 0 else 0.0)
            if t > dunnett_critical(k - 1, pd.n - 1, alpha):
                beaten = True
                break
        if not beaten:
            keep.append(i)
    return sorted(keep, key=lambda m: -float(np.mean(list(scores[m].values()))))


MAX_SEEDS = 100  # a seed plan beyond this is reported as not reachable


def power_at(delta: float, sd: float, image_var: float, n: int, level: float) -> float:
    """Probability that the two-sided paired t-test of this module (n - 1 degrees of freedom, standard error
    sqrt(sd^2 / n + image_var)) finds a true difference `delta` at `level`: the noncentral t's tail."""
    se = math.sqrt(sd**2 / n + image_var)
    if not se > 0:
        return 1.0 if delta else 0.0
    crit, nc = stats.t.ppf(1 - level / 2, n - 1), abs(delta) / se
    p = float(stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc))
    if not math.isfinite(p):  # scipy's noncentral t fails far in its tail: the answer is then 0 or 1
        p = 1.0 if nc > crit else 0.0
    return p


def min_detectable(sd: float, image_var: float, n: int, level: float, power: float = POWER) -> float | None:
    """The smallest true difference the test finds with probability `power` at `level` with n seeds (the
    procedure's own test: the seeds' spread shrinks with n, the images' shared term does not); None when the
    spread is unknown."""
    if n < 2 or not (math.isfinite(sd) and sd >= 0) or not (sd > 0 or image_var > 0):
        return None
    from scipy.optimize import brentq

    se = math.sqrt(sd**2 / n + image_var)
    hi = 100 * se + 1e-9
    while power_at(hi, sd, image_var, n, level) < power:  # 2 seeds at a small level: critical t in the hundreds
        hi *= 10
        if hi > 1e6 * (se + 1e-9):
            return math.inf
    return float(brentq(lambda d: power_at(d, sd, image_var, n, level) - power, 0.0, hi))


def seeds_to_detect(
    sd: float, comparisons: int, alpha: float = ALPHA, delta: float = DETECT, image_var: float = 0.0
) -> int | float | None:
    """Seeds the procedure's test needs to find a true difference of `delta` with probability POWER at the
    first step of Holm over `comparisons` tests (alpha / comparisons), at the observed spread `sd` of the
    per-seed differences and the images' shared term `image_var`: math.inf when no number of seeds up to
    MAX_SEEDS reaches it (the images' term alone can forbid it: it never shrinks), None when the spread is
    unknown. Without the image term this is statsmodels' TTestPower (a test checks it)."""
    if not (math.isfinite(sd) and sd >= 0) or not (sd > 0 or image_var > 0):
        return None
    level = alpha / max(1, comparisons)
    for n in range(2, MAX_SEEDS + 1):
        if power_at(delta, sd, image_var, n, level) >= POWER:
            return n
    return math.inf


# ---- sequential looks: alpha spent over the seeds of a race -------------------------------------------------


def obrien_fleming_spent(fraction: float, alpha: float = ALPHA) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: the alpha spent by the information fraction t (seeds so far
    over the planned maximum), 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))."""
    if fraction <= 0:
        return 0.0
    z = stats.norm.ppf(1 - alpha / 2)
    return float(2 - 2 * stats.norm.cdf(z / math.sqrt(min(1.0, fraction))))


def look_levels(looks: list[int], alpha: float = ALPHA) -> list[float]:
    """The level of each look (seeds at the look, the last the maximum): the alpha spent between it and the
    previous look. Testing look j at its increment and adding the increments (a union bound over looks)
    keeps the family-wise error over all looks at most alpha whatever the correlation between looks:
    conservative, and exact to compute (a simulation in the tests shows it)."""
    spent = [obrien_fleming_spent(n / looks[-1], alpha) for n in looks]
    return [b - a for a, b in zip([0.0, *spent[:-1]], spent)]


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


# ---- the confirmatory family: contrasts declared before the runs, decided at sequential looks -------------


@dataclass
class ContrastResult:
    """One confirmatory contrast (method − reference): its verdict, the look that made it, the paired
    difference at the latest look reached (or over the seeds so far, before the first look), and the
    minimum detectable effect at that look's level."""

    method: str
    reference: str
    verdict: str = "waiting"  # better / worse (decided), open (next look to come), not decided (last look)
    look: int | None = None  # seeds at the look that decided it, or the latest look reached
    paired: Paired | None = None
    p_holm: float | None = None  # Holm-adjusted p at that look (to compare with the look's level)
    level: float | None = None  # the alpha the look spends
    mde: float | None = None
    next_look: int | None = None  # seeds the race asks for next (undecided contrasts)

    @property
    def name(self) -> str:
        return f"{self.method} − {self.reference}"


def sequential_family(
    contrasts, paired_at, looks: list[int], alpha: float = ALPHA, with_mde: bool = True
) -> list[ContrastResult]:
    """The confirmatory procedure: at each look (the first n seeds of each contrast, n in `looks`), the
    contrasts still open are tested together with Holm's correction at the alpha that look spends
    (`look_levels`: O'Brien-Fleming-type, added over looks), counting in Holm's family every open contrast,
    also one whose seeds have not reached the look yet (conservative). A contrast rejected at a look is
    decided there and stops; the others go on to the next look, until the last. `paired_at(method,
    reference, n)` gives the Paired over the contrast's first n seeds, None when it has fewer. The family-wise
    error over every contrast and look is at most alpha (a simulation in the tests shows it). `with_mde`
    can be switched off where only the verdicts are wanted (simulations)."""
    results = {c: ContrastResult(*c) for c in contrasts}
    for look, level in zip(looks, look_levels(looks, alpha)):
        open_ = [c for c in contrasts if results[c].verdict in ("waiting", "open")]
        if not open_:
            break
        pairs = {c: pd for c in open_ if (pd := paired_at(*c, look)) is not None}
        if not pairs:
            break
        order = sorted(pairs, key=lambda c: pairs[c].p)
        m, running, stop = len(open_), 0.0, False
        for i, c in enumerate(order):
            running = max(running, min(1.0, (m - i) * pairs[c].p))  # Holm-adjusted p, as in `holm`
            r = results[c]
            r.look, r.paired, r.p_holm, r.level = look, pairs[c], running, level
            r.mde = min_detectable(pairs[c].sd, pairs[c].image_var, look, level / m) if with_mde else None
            if not stop and running <= level:
                r.verdict = "better" if pairs[c].mean > 0 else "worse"
            else:
                stop = True  # Holm stops at the first acceptance
                r.verdict = "open"
    for r in results.values():
        if r.verdict in ("waiting", "open"):
            later = [n for n in looks if r.look is None or n > r.look]
            r.next_look = later[0] if later else None
            if r.next_look is None:
                r.verdict = "not decided"
    return [results[c] for c in contrasts]
