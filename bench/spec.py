"""Presets, the frozen run spec and its key."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field

from . import SUITE_VERSION

PRECISIONS = ("auto", "fp32", "bf16")
# The training settings a preset fixes and single command-line flags override.
TRAIN_FLAGS = (
    "width",
    "steps",
    "batch_size",
    "lr",
    "weight_decay",
    "momentum",
    "warmup_steps",
    "precision",
    "val_per_class",
    "tune",
    "augment",
    "schedule",
)
# The training images' augmentation: random crop after padding + horizontal flip, or none (frozen parts of
# a --tune head / last:N model then see each image the same way every step, so their outputs are computed
# once: bench/train.py `FrozenCache`).
AUGMENTS = ("crop+flip", "none")
# The learning-rate schedule after the linear warm-up: cosine decay to zero (the suite's), or `step`, the
# LDAM-DRW authors' for the whole run (kaidic/LDAM-DRW's adjust_learning_rate: the peak rate until 80% of the
# budget, 0.01x until 90%, 0.0001x after; their epochs 160 and 180 of 200). `step` puts every method of a
# comparison on the schedule DRW was published with, so `ldam` vs `ldam+drw` differs by the re-weighting alone.
SCHEDULES = ("cosine", "step")
PAPER_RATIOS = (1.0, 0.1, 0.05, 0.01, 0.005, 0.001)
STANDARD_STEPS = 2400  # see PRESETS["standard"]
TRANSFER_STEPS = 1200  # see PRESETS["transfer"]

# Training settings per preset. Command-line flags override single values.
PRESETS: dict[str, dict] = {
    # CPU-sized: quarter-width ResNet-18, 240 steps of 64 images (~10 passes over a 1:1 animals task).
    # The default command (3 methods x 6 ratios, 1 seed) takes minutes on 2 cores. A short budget: it
    # shows which methods learn the rare class fastest, not where they end (see "standard").
    "quick": dict(
        width=0.25,
        steps=240,
        batch_size=64,
        lr=0.05,
        weight_decay=5e-4,
        momentum=0.9,
        warmup_steps=10,
        seeds=(0,),
        ratios=PAPER_RATIOS,
        eval_batch_size=1024,
        precision="auto",
        val_per_class=0,
        tune="full",
        augment="crop+flip",
        schedule="cosine",
    ),
    # GPU-sized: the full-width ResNet-18 of the paper, 1500 steps of 128 (~120 passes over 1:1), 3 seeds.
    "paper": dict(
        width=1.0,
        steps=1500,
        batch_size=128,
        lr=0.05,
        weight_decay=5e-4,
        momentum=0.9,
        warmup_steps=75,
        seeds=(0, 1, 2),
        ratios=PAPER_RATIOS,
        eval_batch_size=2048,
        precision="auto",
        val_per_class=0,
        tune="full",
        augment="crop+flip",
        schedule="cosine",
    ),
    # For tests and CI smoke runs only: a handful of steps.
    "tiny": dict(
        width=0.125,
        steps=12,
        batch_size=32,
        lr=0.05,
        weight_decay=5e-4,
        momentum=0.9,
        warmup_steps=0,
        seeds=(0,),
        ratios=(1.0, 0.05),
        eval_batch_size=512,
        precision="auto",
        val_per_class=0,
        tune="full",
        augment="crop+flip",
        schedule="cosine",
    ),
}

# Fields added after records existed: left out of the key at these values, so older keys stay valid (the
# record-compatibility rules: bench/compat.py).
LATE_DEFAULTS = {
    "precision": "auto",
    "val_per_class": 0,
    "tune": "full",
    "augment": "crop+flip",
    "schedule": "cosine",
    "numerics": None,
    "weights_sha256": None,
    "data_digest": None,
    "revisions": None,
}


# The budget presets are the quick preset with other values (BUDGET_OF below records their runs as quick runs).
# standard: the quick model trained longer, for the which-method answer. Provisional: 2400 steps is the largest
# budget the budget study (results/README.md, "The training budget"; grids/round3_study.toml) ran for every
# method with 3 seeds, not a converged one: on animals lt 1:0.01 8 of 11 methods still gain more than 0.01
# balanced accuracy from 1200 to 2400 steps, on animals fine 8 of 11 and on Fashion-MNIST fine all 11; 4800
# steps are being run for those (grids/round3_budget_4800.toml). `quick` boards are a fast first look and say
# "short budget".
# Its default cell and seeds are the answer's (issue 38): the main command, `bench run --methods ce,os,os+fsc
# --task fine`, shows the standard board of animals fine at 1:0.01, where the confirmatory races decide, at
# their first look's 5 seeds.
ANSWER_RATIOS, ANSWER_SEEDS = (0.01,), (0, 1, 2, 3, 4)
PRESETS["standard"] = {**PRESETS["quick"], "steps": STANDARD_STEPS, "seeds": ANSWER_SEEDS, "ratios": ANSWER_RATIOS}
# transfer: the practitioner's regime (issue 34): the quick model from the suite's pretrained start for the
# dataset (`start`: animals-other8 / fashion-other8, the quick model trained on the 8 classes its fine task
# does not use), the last stage and the head tuned, 1200 steps, the quick optimiser. Read from the transfer
# study (grids/round4_transfer.toml, results/README.md): at 240 steps `last:1` matched `full` on the leaders
# (la, os+wb, bcl within one seed's spread) at a third of the training time, and tuning less is what LIFT
# (ICML 2024) and MEWC's unfreeze-two-blocks recipe do; 1200 steps because the slow starters (ce, fsc, the
# paper's own claims, and ldam+drw) gain far more from 240 to 1200 than the leaders, whose means move by a few
# hundredths either way. lr 0.05 (not PyTorch-Wildlife's 0.01): the pilot's 0.01 lost 0.16 for la at 240 steps.
# Checked at 1200 steps on 2026-12-07 (every regime, 11 methods, seeds 0-2 on animals fine 1:0.01): last:1 and
# full average the same, full − last:1 within ±0.03 for 9 of 11 methods, and full collapsed os+wb's second stage
# on 2 of 3 seeds; head and from scratch fall behind. The budget, checked the same day with last:1 at 2400 steps
# for the five methods that moved from 600 to 1200: la, fsc and os+wb move by 0.01 or less, only ce still gains
# (+0.026) and ldam+drw loses (-0.051): 1200 stays (results/README.md, 'The transfer preset'). Fashion-MNIST
# fine 1:0.01, the same checks (2026-12-07): last:1 the highest average at 600 and 1200 steps (full behind
# it, head within 0.003 at 1200; 3 seeds, no test); from 1200 to 2400 every method but the oversampling ones
# (os, os+fsc, sqrt: -0.013 to -0.015, still falling) moves by 0.006 or less.
PRESETS["transfer"] = {
    **PRESETS["quick"], "steps": TRANSFER_STEPS, "seeds": ANSWER_SEEDS, "ratios": ANSWER_RATIOS, "tune": "last:1",
    "start": "shipped",
}  # fmt: skip
PRESETS = {k: PRESETS[k] for k in ("quick", "standard", "transfer", "paper", "tiny")}  # the order `bench list` shows


# A preset that is another preset at a longer budget records its runs under that preset's name: a
# `standard` run IS a quick run of STANDARD_STEPS steps (same spec, key and record), so the budget study's
# runs at that budget count as standard runs, the same arithmetic is never trained twice under two names,
# and moving the standard budget re-labels boards without invalidating a record. Boards whose setting
# equals such a preset's are titled by it (`named_budget`).
BUDGET_OF = {"standard": "quick", "transfer": "quick"}


def recorded_preset(name: str) -> str:
    """The preset name a run of preset `name` records in its spec (and key)."""
    return BUDGET_OF.get(name, name)


def named_budget(setting: dict) -> str | None:
    """The preset a board's training setting is a budget of ('standard' for the quick model at
    STANDARD_STEPS with every other quick value), or None."""
    from .starts import STARTS

    for name, base in BUDGET_OF.items():
        shipped = setting.get("weights") in STARTS
        if PRESETS[name].get("start") != ("shipped" if shipped else None) or (setting.get("weights") and not shipped):
            continue  # standard is from scratch, transfer from the suite's own start
        if setting.get("preset") == base and all(setting.get(k) == PRESETS[name][k] for k in TRAIN_FLAGS):
            return name
    return None


PRESET_PURPOSE = {
    "quick": "a fast first look on a CPU (the default until round four); a short budget: which methods learn "
    "the rare class fastest, not where they end",
    "standard": f"the default: the quick model trained {STANDARD_STEPS // 240}x longer, for the which-method "
    "answer, at 1:0.01 with 5 seeds unless asked; its runs are "
    f"the quick preset's at {STANDARD_STEPS} steps (same keys: the budget study's records count). Provisional: "
    "the budget study finds most methods still gaining at 2400 steps and several at 4800; see results/README.md",
    "transfer": f"the practitioner's regime: the quick model from the dataset's shipped pretrained start "
    f"(animals-other8, fashion-other8), last stage + head tuned, {TRANSFER_STEPS} steps; its runs are the quick "
    "preset's with that start, tuning and budget (the transfer study's records count). The tuning mode is checked "
    "against full and head at 1200 steps, its budget against 2400 steps: results/README.md, 'The transfer preset'",
    "paper": "the paper's full-width ResNet-18 for a GPU",
    "tiny": "tests and CI smoke runs only: a handful of steps",
}


def resolved_precision(precision: str, device) -> str:
    """'auto' -> bf16 autocast on CUDA, float32 elsewhere; explicit values stay."""
    kind = device if isinstance(device, str) else device.type
    return "bf16" if precision == "bf16" or (precision == "auto" and kind == "cuda") else "fp32"


def torch_release(version: str | None = None) -> str:
    """'2.14.1+cu130' -> '2.14.1': the CPU and CUDA builds of one release compute alike on the CPU."""
    if version is None:
        import torch

        version = torch.__version__
    return version.split("+")[0]


def chip_tag(name: str | None = None) -> str:
    """The CPU model as one word ('AMD EPYC' -> 'AMD-EPYC'): oneDNN's CPU kernels differ between chips
    even at the same instruction-set level, so one key computed on an Intel Xeon and on an AMD EPYC
    gives different numbers (measured: os on animals fine 1:0.01, seed 0, minority 0.315 vs 0.335)."""
    if name is None:
        from .envinfo import cpu_name

        name = cpu_name()
    return re.sub(r"[^A-Za-z0-9.]+", "-", re.sub(r"\((R|TM)\)", "", name)).strip("-") or "unknown"


def numerics(
    device_type: str,
    precision: str,
    threads: int | None,
    torch_version: str | None = None,
    chip: str | None = None,
    stack: int = 1,
) -> str:
    """The arithmetic a run is computed with, beyond its spec: e.g. 'cpu fp32 threads=1 torch=2.14.1
    chip=AMD-EPYC'. The CPU thread count changes the order of floating-point sums (a 1-thread and a
    2-thread run of one spec differ), and so does the CPU model (see `chip_tag`); a GPU's threads do not
    matter. `chip=""` leaves the chip out (the form of records made before it was part of the key). A run
    trained in a stack of K (bench/stacking.py) adds 'stack=K': K decides the grouped kernels' shapes."""
    parts = [device_type, resolved_precision(precision, device_type)]
    if device_type == "cpu":
        parts.append(f"threads={threads}")
    parts.append(f"torch={torch_release(torch_version)}")
    if device_type == "cpu" and chip != "":
        parts.append(f"chip={chip_tag(chip)}")
    return with_stack(" ".join(parts), stack)


def with_stack(value: str, stack: int) -> str:
    """A numerics string with its stack size set to `stack` (1: no stack part, a run alone)."""
    parts = [p for p in value.split() if not p.startswith("stack=")]
    return " ".join(parts + ([f"stack={stack}"] if stack > 1 else []))


def numerics_stack(value: str | None) -> int:
    """The stack size a numerics string names ('... stack=4' -> 4); 1 for a run alone."""
    for part in (value or "").split():
        if part.startswith("stack="):
            return int(part.partition("=")[2])
    return 1


def numerics_threads(value: str) -> int | None:
    """The CPU thread count a numerics string names ('cpu fp32 threads=2 torch=...' -> 2), else None."""
    for part in value.split():
        if part.startswith("threads="):
            return int(part.partition("=")[2])
    return None


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's result. Its key is a hash of its canonical JSON."""

    dataset: str
    task: str
    classes: tuple[str, ...] | None  # None = the task's built-in classes
    ratio: float
    n_major: int | None
    seed: int
    data_seed: int
    method: str  # canonical composition name, e.g. 'os+fsc'
    hparams: dict = field(hash=False)  # resolved {method: {param: value}}
    model: str = "resnet18"
    width: float = 0.25
    image_size: int | None = None  # None = the source's native size
    weights: str | None = None
    steps: int = 240  # optimiser steps: the same budget for every method and ratio
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    momentum: float = 0.9
    warmup_steps: int = 10
    preset: str = "quick"
    suite_version: str = SUITE_VERSION
    # Fields added after records existed; left out of the key at their default so old keys stay valid.
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; or 'fp32' / 'bf16' everywhere
    val_per_class: int = 0  # a balanced validation set held out of the training pool (for selection)
    tune: str = "full"  # how much of the network trains: full, last:N (the last N stages and the head), head
    augment: str = "crop+flip"  # the training images' augmentation (AUGMENTS)
    schedule: str = "cosine"  # the learning-rate schedule after the warm-up (SCHEDULES)
    # What decides the arithmetic besides the fields above (see `numerics`): device kind, resolved
    # precision, CPU threads, torch release. Part of the key, so a GPU record never makes a CPU run
    # skip and a 1-thread run never stands for a 2-thread one; boards never mix two values.
    numerics: str | None = None
    weights_sha256: str | None = None  # the content of a --weights file (its path is only a name)
    data_digest: str | None = None  # the content of a user's photo folder (built-in sources are checksummed)
    # {method part: revision} for the parts whose arithmetic was revised (Method.revision > 0), so a
    # revised method never reuses the key, and so the records, of its old arithmetic.
    revisions: dict | None = field(default=None, hash=False)

    def canonical(self) -> str:
        d = asdict(self)
        d["classes"] = list(self.classes) if self.classes else None
        for name, default in LATE_DEFAULTS.items():
            if d[name] == default:
                del d[name]
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]

    def label(self) -> str:
        return f"{self.dataset}/{self.task} r={self.ratio:g} {self.method} seed={self.seed}"

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        d = dict(d)
        if d.get("classes"):
            d["classes"] = tuple(d["classes"])
        return cls(**d)


def short_budget(setting: dict) -> bool:
    """A training setting that sees fewer images than the `standard` preset (the budget study's
    converged budget): its boards measure how fast methods learn, not where they end."""
    std = PRESETS["standard"]
    return setting["steps"] * setting["batch_size"] < std["steps"] * std["batch_size"]
