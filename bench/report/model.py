"""The report's data model: per-seed numbers (Stat), all seeds of one method at one ratio (Cell), and
one leaderboard (Board: a dataset, task, class list, training setting and numerics).

Runs are grouped into boards by every spec field that changes what is computed, so runs of different
presets, models, validation hold-outs or numerics (device, precision, threads) are never averaged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from methods import MethodError, parse_method

from .. import SUITE_VERSION
from ..compat import LATE_DEFAULTS, record_hparams, record_numerics
from ..spec import PRESETS, TRAIN_FLAGS, named_budget, short_budget

MISSING = "—"
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
# Per-run numbers beyond per-class accuracy, read where a record has them (older records lack some).
EXTRA_METRICS = {
    "bal_acc": lambda m: m["balanced_acc"],
    "roc_auc": lambda m: m["roc_auc"],
    "bal_acc_la": lambda m: m["balanced_acc_logit_adjusted"],  # after test-time logit adjustment
    "bal_acc_bn": lambda m: m["bn_balanced"]["balanced_acc"],  # after class-balanced BatchNorm statistics
    "l4_silhouette": lambda m: m["separation"]["layer4"]["silhouette"],
    "l4_cross_cos": lambda m: m["separation"]["layer4"]["cross_class_cos"],
    "macro_f1": lambda m: m["macro_f1"],
    "val_bal": lambda m: m["val"]["balanced_acc"],  # on the held-out validation set, for selection only
}
METRIC_TITLES = {
    "min_acc": "minority acc.",
    "bal_acc": "balanced acc.",
    "roc_auc": "ROC-AUC",
    "bal_acc_la": "balanced acc. after logit adjustment",
    "bal_acc_bn": "balanced acc. with class-balanced BN statistics",
    "l4_silhouette": "layer4 silhouette",
    "l4_cross_cos": "layer4 cross-class cosine",
    "train_bal": "balanced acc. on the training images",
    "macro_f1": "macro-F1",
    "many": "many-shot acc.",
    "medium": "medium-shot acc.",
    "few": "few-shot acc.",
}
# Shot groups of multi-class boards (Liu et al. 2019, OLTR): > 100 / 20-100 / < 20 training images
# where the head class has 500 (CIFAR-100-LT), scaled to the board's head count.
OLTR_HEAD, OLTR_MANY, OLTR_FEW = 500, 100, 20


def shot_thresholds(head: int) -> tuple[float, float]:
    """(many, few): a class is many-shot above `many` training images, few-shot below `few`."""
    scale = head / OLTR_HEAD
    return OLTR_MANY * scale, OLTR_FEW * scale


def shot_groups(counts: list[int]) -> dict[str, list[int]]:
    many, few = shot_thresholds(max(counts))
    return {
        "many": [i for i, n in enumerate(counts) if n > many],
        "medium": [i for i, n in enumerate(counts) if few <= n <= many],
        "few": [i for i, n in enumerate(counts) if n < few],
    }


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
    extra: dict[str, dict[int, float]] = field(default_factory=dict)  # metric name -> {seed: value}
    keys: dict[int, str] = field(default_factory=dict)  # seed -> run key (names the run's files)
    train_counts: list[int] = field(default_factory=list)  # the same for every seed of a cell
    test_counts: list[int] = field(default_factory=list)  # test images per class (one test set for every seed)
    outcomes: dict[int, dict] = field(default_factory=dict)  # seed -> every test image's outcome (labels,
    # predictions; since round four log-probabilities and source index: bench/metrics.py image_outcomes)
    val_outcomes: dict[int, dict] = field(default_factory=dict)  # seed -> the same for the validation images
    wall_s: dict[int, float] = field(default_factory=dict)  # seed -> the run's wall time (its cost)

    def by_seed(self, class_index: int) -> dict[int, float]:
        return dict(zip(self.seeds, self.per_class[class_index].values))

    def metric_by_seed(self, name: str) -> dict[int, float]:
        """'min_acc' (the last class), a shot group, or an EXTRA_METRICS name, for the seeds that have it."""
        return self.by_seed(-1) if name == "min_acc" else self.extra.get(name, {})

    def stat(self, name: str) -> Stat:
        return Stat([v for _, v in sorted(self.metric_by_seed(name).items())])


@dataclass
class Board:
    """One leaderboard: a dataset, task, class list, training setting and numerics."""

    setting: dict
    classes: list[str]
    cells: dict[tuple[str, float], Cell] = field(default_factory=dict)
    display: str = ""  # the label among its boards (`board_labels`), set by `aggregate`

    @property
    def multiclass(self) -> bool:
        return len(self.classes) > 2

    @property
    def held_out(self) -> int:
        return int(self.setting.get("val_per_class") or 0)

    @property
    def title(self) -> str:
        s = self.setting
        classes = " vs ".join(self.classes) if len(self.classes) <= 3 else f"{len(self.classes)} classes"
        named = named_budget(s)
        preset = f"preset {named} (the {s['preset']} model)" if named else f"preset {s['preset']}"
        train = f"{preset}, width {s['width']}, {s['steps']} steps x {s['batch_size']}"
        held = f", validation hold-out {self.held_out}/class" if self.held_out else ""
        start = ""
        if s.get("weights"):
            start = f", pretrained start {str(s['weights']).rsplit('/', 1)[-1].removesuffix('.pt')}"
            start += f", tune {s.get('tune') or 'full'}"
        short = " — short budget" if self.regime == "short" else ""
        return f"{s['dataset']} / {s['task']} ({classes}) — {train}{held}{start}; {s['numerics']}{short}"

    @property
    def label(self) -> str:
        return self.display or self.own_label

    @property
    def own_label(self) -> str:
        """One short readable identity ("animals fine, transfer, CPU"): the data and task, the regime (a named
        budget, else its steps and what differs from the preset: the start, the tuning, a hold-out, the width)
        and the device; the numerics (precision, threads, torch, chip) stay in the title, one click away.
        `board_labels` makes two boards' labels differ where only their numerics do."""
        s = self.setting
        named = named_budget(s)
        parts = [named] if named else []
        if not named:
            if s.get("weights"):
                parts.append(f"from {str(s['weights']).rsplit('/', 1)[-1].removesuffix('.pt')}")
                if (s.get("tune") or "full") != "full":
                    parts.append(s["tune"])  # head, last:N
            parts.append(f"{s['steps']} steps" + (" (short)" if self.regime == "short" else ""))
            defaults = PRESETS.get(s["preset"], {})
            if s.get("width") != defaults.get("width"):
                parts.append(f"width {s['width']}")
            if (s.get("schedule") or "cosine") != "cosine":
                parts.append(f"{s['schedule']} schedule")
            if self.held_out:
                parts.append(f"val {self.held_out}")
        if s.get("classes"):
            parts.append(" vs ".join(s["classes"]))
        device = (s.get("numerics") or "cpu").split()[0].upper().replace("CUDA", "GPU")
        return ", ".join([f"{s['dataset']} {s['task']}", *parts, device])

    @property
    def short_budget(self) -> bool:
        return short_budget(self.setting)

    @property
    def regime(self) -> str:
        """'transfer' (a pretrained start), else 'short' (from scratch, a short budget: the archive) or
        'standard' (from scratch, at least the standard budget): boards of two regimes are never read as one."""
        if self.setting.get("weights"):
            return "transfer"
        return "short" if self.short_budget else "standard"

    @property
    def slug(self) -> str:
        """Unique per board: the group's slug, the task, and the classes when they were chosen by hand."""
        chosen = "_" + "-".join(self.classes) if self.setting.get("classes") else ""
        return f"{self.group[0]}_{self.setting['task']}{chosen}".replace("/", "-").replace(" ", "-")

    @property
    def group(self) -> tuple[str, str]:
        """A file-name slug and a title for the dataset, training setting and numerics (tasks share
        them): the preset, plus each training flag that differs from the preset's default (say a
        validation hold-out), so that boards of different settings get their own rankings and figures."""
        s = self.setting
        defaults = PRESETS.get(s["preset"], {})
        extra = {k: s.get(k) for k in TRAIN_FLAGS if k in defaults and s.get(k) != defaults[k]}
        # the rest of the setting's identity, where it is not the default: a --classes board, a capped
        # majority or an older suite version gets its own ranking and file names
        if s.get("classes"):
            extra["classes"] = "-".join(s["classes"])
        if s.get("n_major"):
            extra["n_major"] = s["n_major"]
        if s.get("suite_version", SUITE_VERSION) != SUITE_VERSION:
            extra["suite"] = s["suite_version"]
        if s.get("weights"):  # a pretrained start: never titled or filed like a from-scratch board
            extra = {"from": str(s["weights"]).rsplit("/", 1)[-1].removesuffix(".pt"), **extra}
        slug = "_".join([s["dataset"], s["preset"], *(f"{k.replace('_', '-')}{v}" for k, v in extra.items())])
        slug = slug.replace(":", "-")  # tune=last:1 in a file name
        # a budget preset's board (standard = quick at its steps) is titled by it; its file names stay those
        # of the preset it records, so that moving the standard budget renames no file and no quoted value
        if named := named_budget(s):
            title_extra = {k: v for k, v in extra.items() if k not in TRAIN_FLAGS}
            preset = f"preset {named} ({s['preset']}, steps={s['steps']})"
        else:
            title_extra, preset = extra, f"preset {s['preset']}"
        title = ", ".join([s["dataset"], preset, *(f"{k}={v}" for k, v in title_extra.items())])
        short = " (short budget)" if self.regime == "short" else ""
        return f"{slug}_{numerics_tag(s['numerics'])}", f"{title}, {s['numerics']}{short}"

    @property
    def methods(self) -> list[str]:
        return sorted({m for m, _ in self.cells})

    @property
    def ratios(self) -> list[float]:
        return sorted({r for _, r in self.cells}, reverse=True)

    @property
    def headline(self) -> str:
        """The metric a board is ordered and compared by: minority accuracy on binary boards,
        balanced accuracy (= top-1 on the balanced test set) on multi-class ones."""
        return "bal_acc" if self.multiclass else "min_acc"

    def ranked_methods(self) -> list[str]:
        """By the headline metric at the most extreme ratio, best first."""
        extreme = min(self.ratios)

        def score(m):
            c = self.cells.get((m, extreme))
            return -c.stat(self.headline).mean if c and c.stat(self.headline).n else float("inf")

        return sorted(self.methods, key=lambda m: (score(m), m))

    def shot_thresholds(self) -> tuple[float, float]:
        head = max((max(c.train_counts) for c in self.cells.values() if c.train_counts), default=OLTR_HEAD)
        return shot_thresholds(head)


def board_labels(boards: list[Board]) -> dict[str, str]:
    """{board slug: its label}, where boards whose labels would be equal (they differ in numerics only, e.g.
    records from before the CPU model was recorded) get the numerics tokens that tell them apart."""
    labels = {b.slug: b.own_label for b in boards}
    by_label: dict[str, list[Board]] = {}
    for b in boards:
        by_label.setdefault(labels[b.slug], []).append(b)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        tokens = [set((b.setting.get("numerics") or "").split()) for b in same]
        shared, every = set.intersection(*tokens), set.union(*tokens)
        for b, own in zip(same, tokens):
            # its own tokens (the chip by its name), else what it lacks that the others name ("no chip")
            extra = [t.removeprefix("chip=") for t in sorted(own - shared)]
            extra = extra or sorted({f"no {t.split('=')[0]}" for t in every - own})
            labels[b.slug] = f"{label} ({' '.join(extra)})"
    return labels


def numerics_tag(value: str) -> str:
    """A file-name tag for a numerics string: 'cpu fp32 threads=1 torch=2.14.1 chip=AMD-EPYC' ->
    'cpu-fp32-t1-torch2.14.1-AMD-EPYC'."""
    return "-".join(p.replace("threads=", "t").replace("torch=", "torch").replace("chip=", "") for p in value.split())


def ratio_label(r: float) -> str:
    return f"1:{r:g}"


def method_label(rec: dict) -> str:
    """The composition name, plus the hyper-parameters that differ from the registered defaults. A
    hyper-parameter added after the record was made counts with the value the record was computed
    with (the method's `legacy` value), so an old record is never shown as the new default's; one that
    does not enter the record's configuration (cb's gamma with a CE base) is not shown. A record made
    with another revision of a method's arithmetic than this code's says so, `(rev N)`, so records of two
    revisions are never averaged."""
    spec = rec["spec"]
    try:
        comp = parse_method(spec["method"])
        defaults = comp.hparams()
        legacy = {m.name: m.legacy for m in comp.parts}
    except MethodError:  # a method registered by a plug-in that this process does not know
        comp, defaults, legacy = None, {}, {}
    hparams = record_hparams(spec["hparams"], legacy)
    unused, current = {}, {}
    if comp is not None:
        try:
            own = parse_method(spec["method"], {m: dict(hp) for m, hp in hparams.items()})
            unused = {m.name: set(m.unused_hparams()) for m in own.parts}
            current = own.revisions() or {}
        except MethodError:
            pass
    diffs = [
        f"{m}.{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
        for m, hp in sorted(hparams.items())
        for k, v in sorted(hp.items())
        if defaults.get(m, {}).get(k) != v and k not in unused.get(m, set())
    ]
    made = spec.get("revisions") or {}
    revs = [
        f"{m} rev {made.get(m, 0)}" for m in sorted(set(made) | set(current)) if made.get(m, 0) != current.get(m, 0)
    ]
    return spec["method"] + (f" [{' '.join(diffs)}]" if diffs else "") + (f" ({', '.join(revs)})" if revs else "")


def board_setting(rec: dict) -> dict:
    spec = rec["spec"]
    return {k: spec.get(k, LATE_DEFAULTS.get(k)) for k in BOARD_FIELDS} | {"numerics": record_numerics(rec)}


def board_key(rec: dict) -> str:
    """Which board a record belongs to: its board setting and its classes (records of one key share a board)."""
    return json.dumps([board_setting(rec), rec["counts"]["classes"]], sort_keys=True)


def aggregate(records: list[dict]) -> list[Board]:
    groups: dict[str, dict] = {}
    values: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        bkey = board_key(rec)
        if bkey not in groups:
            groups[bkey] = {"setting": board_setting(rec), "classes": rec["counts"]["classes"]}
        values[bkey][(method_label(rec), float(rec["spec"]["ratio"]))].append(rec)
    boards = []
    for bkey in sorted(groups):
        b = Board(groups[bkey]["setting"], groups[bkey]["classes"])
        for (m, r), recs in values[bkey].items():
            recs = sorted(recs, key=lambda x: x["spec"]["seed"])
            extra = {name: _by_seed(recs, get) for name, get in EXTRA_METRICS.items()}
            extra["train_bal"] = {  # how well the run fits its own training images (records since round three)
                x["spec"]["seed"]: float(x["convergence"]["train_balanced_acc"]) for x in recs if x.get("convergence")
            }
            counts = recs[0]["counts"].get("train", [])
            if b.multiclass and counts:
                for group, members in shot_groups(counts).items():
                    if members:
                        extra[group] = {
                            x["spec"]["seed"]: float(np.mean([x["metrics"]["per_class_acc"][i] for i in members]))
                            for x in recs
                        }
            b.cells[(m, r)] = Cell(
                per_class=[Stat([x["metrics"]["per_class_acc"][i] for x in recs]) for i in range(len(b.classes))],
                balanced_acc=Stat([x["metrics"]["balanced_acc"] for x in recs]),
                macro_f1=Stat([x["metrics"]["macro_f1"] for x in recs]),
                seeds=[x["spec"]["seed"] for x in recs],
                base=recs[0]["spec"]["method"],
                extra=extra,
                keys={x["spec"]["seed"]: x["key"] for x in recs},
                train_counts=list(counts),
                test_counts=list(recs[0]["counts"].get("test", [])),
                outcomes={
                    x["spec"]["seed"]: x["metrics"]["test_outcome"] for x in recs if "test_outcome" in x["metrics"]
                },
                val_outcomes={
                    x["spec"]["seed"]: x["metrics"]["val_outcome"] for x in recs if "val_outcome" in x["metrics"]
                },
                wall_s={x["spec"]["seed"]: float(x["wall_s"]) for x in recs if x.get("wall_s") is not None},
            )
        boards.append(b)
    labels = board_labels(boards)
    for b in boards:
        b.display = labels[b.slug]
    return boards


def _by_seed(recs: list[dict], get) -> dict[int, float]:
    out = {}
    for x in recs:
        try:
            v = get(x["metrics"])
        except (KeyError, IndexError, TypeError):
            continue
        if v is not None:
            out[x["spec"]["seed"]] = float(v)
    return out
