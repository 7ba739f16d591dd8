"""The training budget as an axis: boards that differ only in their step budget, side by side.

A budget study is a group of boards whose setting is the same but for `steps` (each budget is its own
run with its own schedule and key), at one ratio. Its table gives, per method, balanced accuracy at
each budget (mean±sd over seeds), the change from the second-largest budget to the largest, how well
the largest budget's runs fit their own training images, and the wall time per run at each budget, so
a user can plan a grid. A method whose mean still moves by more than SETTLED between its own two largest
budgets has not settled (a larger budget is run only for the methods still moving).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from .model import MISSING, Board, Stat, ratio_label
from .tables import Table

SETTLED = 0.01  # balanced accuracy: a smaller move between the two largest budgets counts as settled


@dataclass
class BudgetStudy:
    title: str
    slug: str
    ratio: float
    boards: dict[int, Board] = field(default_factory=dict)  # steps -> board

    @property
    def budgets(self) -> list[int]:
        return sorted(self.boards)

    @property
    def setting(self) -> dict:
        return next(iter(self.boards.values())).setting

    @property
    def regime(self) -> str:
        """'from scratch' or 'from START, tune MODE' (the panel title of `regimes_vs_budget`)."""
        return regime_label(self.setting).rstrip(", ") or "from scratch"

    def methods(self) -> list[str]:
        """Methods whose two largest budgets are neighbouring budgets of the study, best first at the
        largest budget every one of them has (a study still running is not ordered by the few methods that
        reached its largest budget). A method with only a short-budget slice and a standard run (240 and
        2400 steps, the budgets between them not run) is not part of the study: a change over a tenfold
        budget says nothing about whether it has settled."""
        every = {m for b in self.boards.values() for m in b.methods}
        listed = [m for m in sorted(every) if (pair := self.last_two(m)) and self._neighbours(*pair)]
        shared = [s for s in self.budgets if all((m, self.ratio) in self.boards[s].cells for m in listed)]
        board = self.boards[shared[-1] if shared else self.budgets[-1]]

        def score(m):
            c = board.cells.get((m, self.ratio))
            return -c.balanced_acc.mean if c else float("inf")

        return sorted(listed, key=lambda m: (score(m), m))

    def _neighbours(self, a: int, b: int) -> bool:
        return self.budgets.index(b) == self.budgets.index(a) + 1

    def stat(self, method: str, steps: int, metric: str = "bal_acc") -> Stat | None:
        c = self.boards[steps].cells.get((method, self.ratio))
        return c.stat(metric) if c else None

    def last_two(self, method: str) -> tuple[int, int] | None:
        """The method's own two largest budgets (the 4800-step runs are made only for the methods still
        moving at 2400, so a study's methods need not share its largest budget)."""
        ran = [s for s in self.budgets if (c := self.boards[s].cells.get((method, self.ratio))) and c.seeds]
        return (ran[-2], ran[-1]) if len(ran) >= 2 else None

    def moved(self, method: str) -> float | None:
        """Mean balanced accuracy at the method's largest budget minus at its second largest (same seeds only)."""
        pair = self.last_two(method)
        if pair is None:
            return None
        a, b = (self.boards[s].cells[(method, self.ratio)] for s in pair)
        x, y = a.metric_by_seed("bal_acc"), b.metric_by_seed("bal_acc")
        seeds = sorted(set(x) & set(y))
        return float(np.mean([y[s] - x[s] for s in seeds])) if seeds else None

    def shared_pair(self) -> tuple[int, int] | None:
        """The two largest budgets when every method's are the same ones, else None."""
        pairs = {self.last_two(m) for m in self.methods()} - {None}
        return pairs.pop() if len(pairs) == 1 else None


def budget_studies(boards: list[Board]) -> list[BudgetStudy]:
    """Every group of boards that differ only in steps, at each ratio run at two budgets or more."""
    groups: dict[str, list[Board]] = {}
    for b in boards:
        rest = {k: v for k, v in b.setting.items() if k != "steps"}
        groups.setdefault(json.dumps([rest, b.classes], sort_keys=True), []).append(b)
    studies = []
    for members in groups.values():
        if len({b.setting["steps"] for b in members}) < 2:
            continue
        first = members[0]
        for r in sorted({r for b in members for r in b.ratios}):
            at = {b.setting["steps"]: b for b in members if r in b.ratios}
            if len(at) >= 2:
                s = first.setting
                classes = " vs ".join(first.classes) if len(first.classes) <= 3 else f"{len(first.classes)} classes"
                title = f"{s['dataset']} / {s['task']} ({classes}) {ratio_label(r)}, {regime_label(s)}{s['numerics']}"
                chosen = "_" + "-".join(first.classes) if s.get("classes") else ""
                # the boards' own file-name slug without the budget: studies of another start, tuning or
                # hold-out never share a file (from scratch it is the name the study always had)
                setting = re.sub(r"_steps\d+", "", first.group[0])
                slug = f"budget_{setting}_{s['task']}{chosen}_r{r:g}"
                slug = slug.replace(".", "p").replace("/", "-").replace(" ", "-")
                studies.append(BudgetStudy(title, slug, r, at))
    return studies


def regime_label(setting: dict) -> str:
    """'from START, tune MODE, ' for a pretrained start ('' from scratch): the study's regime in its title."""
    if not setting.get("weights"):
        return ""
    start = str(setting["weights"]).rsplit("/", 1)[-1].removesuffix(".pt")
    return f"from {start}, tune {setting.get('tune') or 'full'}, "


def regime_groups(studies: list[BudgetStudy]) -> list[tuple[str, str, list[BudgetStudy]]]:
    """The budget studies of one cell (dataset, task, classes, ratio, numerics) in more than one regime
    (from scratch, pretrained starts and tuning modes), from scratch first: (slug, title, studies)."""
    cells: dict[str, list[BudgetStudy]] = {}
    for st in studies:
        s = st.setting
        keep = {k: v for k, v in s.items() if k in ("dataset", "task", "classes", "numerics", "preset", "width")}
        cells.setdefault(json.dumps([keep, st.ratio], sort_keys=True, default=str), []).append(st)
    out = []
    for group in cells.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda st: (bool(st.setting.get("weights")), st.regime))
        first = group[0]
        title = first.title.replace(regime_label(first.setting), "")
        slug = "regimes_" + first.slug.removeprefix("budget_")
        out.append((slug, title, group))
    return out


def budget_table(study: BudgetStudy) -> Table:
    budgets, shared = study.budgets, study.shared_pair()
    rows, cells = [], []
    for m in study.methods():
        row = [m]
        for steps in budgets:
            st = study.stat(m, steps)
            row.append(f"{st.fmt()} (n={st.n})" if st and st.n else MISSING)
        moved, pair = study.moved(m), study.last_two(m)
        moving = moved is not None and abs(moved) > SETTLED
        if moved is None:
            row.append(MISSING)
        elif shared:
            row.append(f"{moved:+.3f}" + (" (moving)" if moving else ""))
        else:
            row.append(f"{moved:+.3f} ({pair[0]} → {pair[1]}{', moving' if moving else ''})")
        fit = study.stat(m, pair[1], "train_bal") if pair else None
        row.append(fit.fmt() if fit and fit.n else MISSING)
        rows.append(row)
        cells.append([study.boards[s].cells.get((m, study.ratio)) for s in budgets] + [None, None])
    if shared:
        tail = [f"{shared[0]} → {shared[1]}", f"training fit at {shared[1]}"]
    else:
        tail = ["change between its two largest budgets", "training fit at its largest budget"]
    return Table(["method"] + [f"{s} steps" for s in budgets] + tail, rows, cells)


def wall_table(study: BudgetStudy) -> Table:
    """Median wall time of one run at each budget (every method of the study), for planning."""
    rows, methods = [], set(study.methods())
    for steps in study.budgets:
        cells = study.boards[steps].cells.items()
        walls = [w for (m, r), c in cells if r == study.ratio and m in methods for w in c.wall_s.values()]
        rows.append([str(steps), f"{np.median(walls):.0f} s" if walls else MISSING, str(len(walls))])
    return Table(["steps", "median wall time per run", "runs"], rows)


def unsettled(study: BudgetStudy) -> list[str]:
    return [m for m in study.methods() if (mv := study.moved(m)) is not None and abs(mv) > SETTLED]


def regimes_table(group: list[BudgetStudy]) -> Table:
    """One cell's regimes side by side (issue 34: which start, tuning mode and budget): per regime and
    budget, balanced accuracy averaged over the methods every regime has at every budget all of them ran
    (`regime_methods`: a row's budgets and a column's regimes average the same methods), narrowed in a column
    that only some regimes ran to those of them its regimes all have there (`column_methods`; `regimes_intro`
    names them), and, in a column, over the seeds every regime there has (the same training subsets), with the
    best of those methods; then how many of the regime's methods still move between their two largest budgets,
    and the median wall time of a run at each budget. A budget that only one regime has is not compared (—)."""
    budgets = sorted({b for st in group for b in st.budgets})
    columns = {b: column_methods(group, b) for b in budgets}
    rows = []
    for st in group:
        row = [st.regime]
        for b in budgets:
            there = [o for o in group if b in o.boards]
            means = {}
            for m in columns[b] if b in st.boards else ():
                seeds = set.intersection(
                    *(set(o.boards[b].cells[(m, o.ratio)].metric_by_seed("bal_acc")) for o in there)
                )
                own = st.boards[b].cells[(m, st.ratio)].metric_by_seed("bal_acc")
                if seeds:
                    means[m] = float(np.mean([own[s] for s in seeds]))
            if not means:
                row.append(MISSING)
                continue
            best = max(means, key=lambda m: (means[m], m))
            row.append(f"{np.mean(list(means.values())):.3f} (best {best} {means[best]:.3f})")
        row.append(f"{len(unsettled(st))} of {len(st.methods())}")
        walls = {r[0]: r[1] for r in wall_table(st).rows}
        row.append(", ".join(f"{b}: {walls[str(b)]}" for b in st.budgets if walls.get(str(b), MISSING) != MISSING))
        rows.append(row)
    head = ["regime", *(f"{b} steps" for b in budgets), "methods still moving", "median wall time per run"]
    return Table(head, rows)


def regime_methods(group: list[BudgetStudy]) -> list[str]:
    """The methods every regime of a group has at every budget all of them ran: those `regimes_table`
    averages. A budget fewer regimes ran (from scratch's 4800 steps, or 2400 steps run from scratch and in one
    tuning mode for the methods still moving) does not narrow them: its column alone is narrowed
    (`column_methods`). With no budget common to every regime, the budgets two or more ran decide."""
    ran = [set(st.budgets) for st in group]
    common = set.intersection(*ran) if ran else set()
    shared = common or {b for b in set().union(*ran) if sum(b in r for r in ran) > 1}
    every = [{m for (m, r) in st.boards[b].cells if r == st.ratio} for st in group for b in shared & set(st.boards)]
    return sorted(set.intersection(*every)) if every else []


def column_methods(group: list[BudgetStudy], steps: int) -> list[str]:
    """The methods `regimes_table` averages at one budget: the `regime_methods` that every regime which ran
    that budget has there; none where fewer than two regimes ran it (nothing to compare)."""
    there = [st for st in group if steps in st.boards]
    if len(there) < 2:
        return []
    return [m for m in regime_methods(group) if all((m, st.ratio) in st.boards[steps].cells for st in there)]


def regimes_intro(group: list[BudgetStudy]) -> str:
    """The sentence before a regimes table: the methods it averages, and those of a narrower column."""
    methods = regime_methods(group)
    text = (
        f"Averaged over the {len(methods)} methods every regime ran at every budget all of them ran: "
        f"{', '.join(methods)}."
    )
    for b in sorted({b for st in group for b in st.budgets}):
        narrow = column_methods(group, b)
        if narrow and narrow != methods:
            names = ", ".join(st.regime for st in group if b in st.boards)
            text += (
                f" At {b} steps (run only {names}): the {len(narrow)} of them all of those have there, "
                f"{', '.join(narrow)}."
            )
    return text + "\n\n"


REGIMES_NOTE = (
    "Each regime at each budget: balanced accuracy (test) averaged over the methods every regime ran at every "
    "budget all of them ran (named below; a budget only some ran, over those of them its regimes have there) "
    "and, in a column, over the seeds every regime there has (the same "
    "training subsets in every row of a column), with the best of those methods; "
    f"'still moving': its methods whose mean changes by more than {SETTLED} between their own two largest budgets "
    "(the regime's budget table); the wall time is the median of one run on the records' machine, as loaded when "
    "they ran (regimes run on different days beside other grids: a speed comparison is results/PERF.md's, side by "
    "side)."
)
