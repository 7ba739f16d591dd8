"""The roles a method plays, what it may know about its run, and its hyper-parameter fields (see
methods/base.py for the whole interface)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class MethodError(ValueError):
    """A bad method name, composition or hyper-parameter; one line that names the fix."""


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """Half-precision activations (bf16 autocast) as float32 for a loss; float32 and float64 unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


# ---- what a method may know about its run ---------------------------------------------------------


@dataclass
class TrainContext:
    """What a method may know about the run it is part of (handed to `setup`)."""

    class_counts: list[int]  # training images per class, task order
    feature_dims: dict[str, int]  # channels of each tappable layer ('layer1'..'layer4')
    device: torch.device
    seed: int
    total_steps: int = 1  # the run's optimiser-step budget (all stages together)
    batch_size: int = 1
    # Expected class shares of a training batch under the run's sampler (natural prior without one).
    batch_prior: list[float] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    @property
    def prior(self) -> list[float]:
        """The class shares of the training set."""
        n = float(sum(self.class_counts))
        return [c / n for c in self.class_counts]


@dataclass(frozen=True)
class TrainState:
    """Where training is (handed to `on_step` before every optimiser step)."""

    step: int  # run-wide index of the step about to be taken, 0-based
    total_steps: int
    stage: str = "train"
    stage_step: int = 0
    stage_steps: int = 1

    @property
    def progress(self) -> float:
        """Fraction of the run's budget already done, in [0, 1)."""
        return self.step / max(1, self.total_steps)


# ---- hyper-parameter fields ----------------------------------------------------------------------


def hp(default, *, ge=None, gt=None, le=None, lt=None, help: str = ""):
    """A hyper-parameter field with its valid range: `lam: float = hp(1.0, ge=0)`. A value outside
    the range is refused when the method is built (so `--set` fails up front, exit 2)."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "lt": lt, "help": help})


def _check_range(method: str, f: dataclasses.Field, value) -> None:
    meta = f.metadata
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise MethodError(f"{method}.{f.name}={value} is not a finite number")
    for bound, ok, word in (
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ):
        b = meta.get(bound)
        if b is not None and not ok(value, b):
            raise MethodError(f"{method}.{f.name}={value} is out of range: it must be {word} {b}")


# ---- the roles -----------------------------------------------------------------------------------


class Method:
    """Base of every registered method. Subclasses are dataclasses whose fields are hyper-parameters."""

    name: ClassVar[str]
    role: ClassVar[str]
    summary: ClassVar[str] = ""  # one line for `bench list` (default: the docstring's first line)
    paper: ClassVar[str] = ""  # the reference, e.g. "Menon et al., ICLR 2021"
    # Declared effects, checked when methods are composed (see `_check_composition`):
    corrects_prior: ClassVar[bool] = False  # re-weights or shifts the loss/logits by the class prior
    changes_classifier: ClassVar[bool] = False  # replaces, rescales or renormalises the classifier
    # Re-trains or rescales the classifier class-balanced after the representation is learned (cRT, LWS):
    # a second prior correction on top of a loss or post-hoc one, but not on top of a sampler, which
    # then shapes only the representation.
    rebalances_classifier: ClassVar[bool] = False
    # The arithmetic's revision: raise it when a change of the code changes the numbers a configuration
    # gives without a new hyper-parameter saying so. It enters the run key (once above 0), so records of
    # the old arithmetic are never taken for the new; `method_revision` may make it depend on the
    # configuration (cb's focal base changed, its CE base did not).
    revision: ClassVar[int] = 0
    # The values a sweep tries (`--sweep auto`), as DomainBed's hparams registry keeps them with each
    # algorithm: {field: (value, ...)}, the default among them.
    search_space: ClassVar[dict[str, tuple]] = {}
    # Hyper-parameters added after records existed, with the value those older records were computed
    # with where it is not the new default (a report shows such records with that value, never as the default's).
    legacy: ClassVar[dict] = {}

    def setup(self, ctx: TrainContext) -> None:
        """Called once per run before training (build weights, heads, ...)."""

    def adapt_model(self, model: nn.Module) -> None:
        """Called once per run on the freshly built model, before training (e.g. a cosine classifier)."""

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters the method owns (e.g. a projection head); optimised with the model."""
        return []

    def on_step(self, state: TrainState) -> None:
        """Called before every optimiser step (schedules such as deferred re-weighting)."""

    def lr_factor(self, state: TrainState, factor: float) -> float:
        """The learning-rate factor (of the peak rate) for the step about to be taken; `factor` is the
        run's schedule (warm-up, then cosine). Default: unchanged. DRW replaces it after its switch."""
        return factor

    def hparams(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def unused_hparams(self) -> tuple[str, ...]:
        """Hyper-parameters that do not enter this configuration's arithmetic (cb's gamma with a CE
        base): a report does not show them as differences."""
        return ()

    def method_revision(self) -> int:
        return self.revision

    @classmethod
    def describe(cls) -> str:
        if cls.summary:
            return cls.summary
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc and not doc.startswith(cls.__name__ + "(") else ""


class Sampler(Method):
    """Which training indices an epoch visits."""

    role = "sampler"
    rebalances: ClassVar[bool] = True  # batches no longer follow the training prior

    def prepare(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Once per stage, before training: the training images (uint8, CPU) and labels to sample
        from. Default: unchanged; SMOTE adds synthetic minority images here."""
        return x, y

    def epoch_indices(self, labels: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def batch_prior(self, counts: list[int]) -> list[float]:
        """Expected class shares of a batch (default: the training prior)."""
        n = float(sum(counts))
        return [c / n for c in counts]


class Transform(Method):
    """Changes a batch after augmentation and normalisation, before the forward pass."""

    role = "transform"

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, int labels) -> (images, targets): int labels (B,) or soft targets (B, C)."""
        raise NotImplementedError


REDUCTIONS = ("weight_sum", "batch")


class Criterion(Method):
    """A classification loss. Subclasses give `class_losses(logits)`: the (B, C) matrix whose entry
    (i, c) is sample i's loss if its label were c. The base class then handles hard (B,) and soft
    (B, C) targets, per-class weights and the reduction once for every criterion:
        loss_i = sum_c t_ic * w_c * L_ic          (t = one-hot for hard targets)
        'weight_sum': sum_i loss_i / sum_i sum_c t_ic * w_c   (PyTorch's cross_entropy(weight=...))
        'batch':      sum_i loss_i / B                        (Cui et al.'s code)
    Without weights both are the plain mean."""

    role = "criterion"
    reduction_default: ClassVar[str] = "weight_sum"  # for weights that come without a reduction

    def class_losses(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def class_weights(self) -> torch.Tensor | None:
        """The criterion's own per-class weights (cb; then its `reduction` field applies), or None."""
        return None

    def __call__(self, logits, targets, weight: torch.Tensor | None = None, reduction: str | None = None):
        losses = self.class_losses(full_precision(logits))
        own = self.class_weights()
        if own is not None:
            if weight is not None:
                raise MethodError(f"{self.name} has class weights of its own and was given more")
            weight, reduction = own, getattr(self, "reduction", self.reduction_default)
        return reduce_class_losses(losses, targets, weight, reduction or self.reduction_default)


def reduce_class_losses(losses: torch.Tensor, targets: torch.Tensor, weight=None, reduction="weight_sum"):
    """See Criterion: the weighted mean (or sum / batch) of a (B, C) loss matrix under targets."""
    if targets.dtype.is_floating_point:  # soft targets (B, C)
        t = targets.to(losses.dtype)
    else:
        t = F.one_hot(targets, losses.shape[1]).to(losses.dtype)
    if weight is not None:
        t = t * weight.to(losses.dtype)[None, :]
    total = (t * losses).sum()
    if reduction == "batch":
        return total / losses.shape[0]
    if reduction != "weight_sum":
        raise MethodError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    return total / t.sum()


class Reweighting(Method):
    """Per-class weights for the criterion, which may change with the training state."""

    role = "reweighting"
    corrects_prior = True

    def weights(self, state: TrainState) -> tuple[torch.Tensor | None, str]:
        """(weights or None for 'not now', reduction)."""
        raise NotImplementedError


class Auxiliary(Method):
    """A term added to the loss; reads pooled features of the layers it names in `taps`."""

    role = "auxiliary"

    @property
    def taps(self) -> tuple[str, ...]:
        """Layers whose global-average-pooled features this term reads."""
        return ()

    def __call__(self, feats: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """`labels` are always the int labels of the batch's (first) images, also under mixup."""
        raise NotImplementedError


@dataclass
class Stage:
    """One stage of a run: its share of the step budget and what trains in it."""

    name: str
    share: float  # fraction of the run's step budget
    sampler: Sampler | None = None  # None: every index once per epoch, shuffled
    criterion: Criterion | None = None  # None: no classification loss in this stage
    reweighting: Reweighting | None = None
    transform: Transform | None = None
    auxiliaries: list[Auxiliary] = field(default_factory=list)
    # The model parameters that train (None: all).
    trainable: Callable[[nn.Module], list[nn.Parameter]] | None = None
    # BatchNorm in training mode (batch statistics, running statistics updated) while the stage trains.
    # None: only when every parameter trains (a frozen backbone keeps its statistics); cRT and LWS set
    # True by default, as Kang et al.'s code keeps model.train() and freezes through requires_grad only.
    train_bn: bool | None = None
    on_start: Callable[[nn.Module], None] | None = None  # e.g. re-initialise or wrap the classifier
    on_end: Callable[[nn.Module], None] | None = None  # after the stage's last step (e.g. join two classifiers)
    views: int = 1  # augmented views of each image in a batch (two for contrastive pre-training)
    # Replaces the harness's augmentation (random crop with padding, flip) in this stage:
    # (uint8 batch (B, C, H, W), torch.Generator) -> float batch on the 0-255 scale. One function for
    # every view, or a tuple with one per view (None there: the harness's own; BCL's first view).
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | tuple | None = None
    # The criterion sees the logits of the first `criterion_views` views only (None: every view); the
    # auxiliaries always see every view (BCL: CE on the plain view, contrast on the two strong ones).
    criterion_views: int | None = None
    # The weight decay of this stage's optimiser (None: the run's); Weight Balancing tunes it per stage.
    weight_decay: float | None = None
    # Called on the model under torch.no_grad() after optimiser steps of this stage: a projection onto a
    # constraint set (Weight Balancing's MaxNorm), so training is projected gradient descent. `project_every`:
    # "step" (after every step) or "epoch" (after the last step of each pass over the stage's sampler, and
    # after the stage's last step: the authors of Weight Balancing project once per epoch).
    project: Callable[[nn.Module], None] | None = None
    project_every: Literal["step", "epoch"] = "step"

    def view_augment(self, view: int):
        """The augmentation of view `view` (None: the harness's own)."""
        return self.augment[view] if isinstance(self.augment, tuple) else self.augment

    @property
    def bn_training(self) -> bool:
        return self.trainable is None if self.train_bn is None else self.train_bn

    def lr_factor(self, state: TrainState, factor: float) -> float:
        for m in self.parts:
            factor = m.lr_factor(state, factor)
        return factor

    @property
    def parts(self) -> list[Method]:
        own = [self.sampler, self.transform, self.criterion, self.reweighting, *self.auxiliaries]
        return [m for m in own if m is not None]

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(sorted({t for a in self.auxiliaries for t in a.taps}))

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.parts for p in m.parameters()]

    def loss(self, logits, feats, targets, labels, state: TrainState):
        """Total loss and its named parts (tensors; the caller converts them only when it logs)."""
        parts = {}
        if self.criterion is not None:
            if self.criterion_views is not None:  # the views are stacked view by view: keep the first ones
                keep = len(labels) // self.views * self.criterion_views
                logits, targets = logits[:keep], targets[:keep]
            weight, reduction = self.reweighting.weights(state) if self.reweighting else (None, None)
            parts[self.criterion.name] = self.criterion(logits, targets, weight=weight, reduction=reduction)
        for a in self.auxiliaries:
            parts[a.name] = a(feats, labels)
        total = sum(parts.values())
        return total, parts


class Composition(Protocol):
    """What a stages method reads of the composition it is part of (methods/_compose.py's Composite, which
    imports this module: a protocol here keeps the two files one way)."""

    sampler: Sampler | None
    criterion: Criterion
    auxiliaries: list[Auxiliary]
    transform: Transform | None
    reweighting: Reweighting | None

    def main_stage(self, name: str = "train", share: float = 1.0) -> Stage: ...


class Stages(Method):
    """Splits the budget into stages. `stages(comp)` builds them from the rest of the composition."""

    role = "stages"

    def stages(self, comp: Composition) -> list[Stage]:
        raise NotImplementedError


class Posthoc(Method):
    """Changes the logits at evaluation. `choice` names the hyper-parameter chosen on validation
    (None: nothing to choose); `grid` holds its candidates."""

    role = "posthoc"
    choice: ClassVar[str | None] = None

    def needs_validation(self) -> bool:
        """True when this configuration chooses its value on a validation split and has no other way
        (the grid then needs --val-per-class; refused up front otherwise)."""
        return False

    def grid(self) -> tuple:
        return ()

    def apply(self, logits: torch.Tensor, features: torch.Tensor, model: nn.Module, value) -> torch.Tensor:
        """Logits (N, C) of the trained model, its pooled penultimate features (N, D) -> new logits."""
        raise NotImplementedError


ROLES = ("sampler", "transform", "criterion", "reweighting", "auxiliary", "stages", "posthoc")
ROLE_BASES = {
    "sampler": Sampler,
    "transform": Transform,
    "criterion": Criterion,
    "reweighting": Reweighting,
    "auxiliary": Auxiliary,
    "stages": Stages,
    "posthoc": Posthoc,
}


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    return v


@dataclass
class _Instance(Sampler):
    """Instance-balanced sampling: every index once per epoch, shuffled (the default)."""

    name = "_instance"
    rebalances = False

    def epoch_indices(self, labels, epoch, rng):
        return rng.permutation(len(labels))


_INSTANCE = _Instance()


def epoch_indices(sampler: Sampler | None, labels: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
    return (sampler or _INSTANCE).epoch_indices(labels, epoch, rng)
