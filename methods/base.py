"""The Method interface: its roles, its hooks, the registry and the `a+b` composition.

A method plays exactly one role (at most one method per role in a composition, except auxiliary):
- sampler: which training indices an epoch visits (default: every index once, shuffled); it may
  also resample the training data once (SMOTE) and states the class prior its batches have;
- transform: changes a batch between augmentation and the forward pass and may return soft
  targets (mixup, remix);
- criterion: the classification loss on logits (default: cross-entropy); it gives the loss of every
  sample for every candidate label, so hard and soft targets, class weights and the reduction are
  handled once, here;
- reweighting: class weights for the criterion that may change during training (deferred
  re-weighting);
- auxiliary: a term added to the loss; it may read pooled intermediate features and declares
  which layers it needs (`taps`), so the harness computes only those;
- stages: splits the step budget into stages, each with its own sampler, criterion, trainable
  parameters and re-initialised layers (classifier re-training, two-stage contrastive learning);
- posthoc: transforms logits or classifier weights at evaluation (tau-normalisation); a value it
  has to choose is chosen on the validation split, never on the test set.

Every method may also use the hooks `setup(ctx)` (once per run: class counts, budget, device),
`adapt_model(model)` (once, before training: e.g. a cosine classifier), `on_step(state)` (before
every optimiser step: schedules) and `parameters()` (tensors it trains with the model).
Hyper-parameters are dataclass fields with defaults; `hp()` declares a valid range, so a bad
`--set` value is refused before any run starts.

Methods never import the harness: the harness hands them a `TrainContext` and a `TrainState`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

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
    # Called on the model under torch.no_grad() after every optimiser step of this stage: a projection
    # onto a constraint set (Weight Balancing's MaxNorm), so the step is projected gradient descent.
    project: Callable[[nn.Module], None] | None = None

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


class Stages(Method):
    """Splits the budget into stages. `stages(comp)` builds them from the rest of the composition."""

    role = "stages"

    def stages(self, comp: Composite) -> list[Stage]:
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
REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method] | None = None, *, override: bool = False):
    """Class decorator: make `cls` (a subclass of one role's base) selectable by name. It becomes a
    dataclass if it is not one; a hyper-parameter whose type `--set` cannot parse is refused here. A name
    another class holds (a built-in's, say `ce`) is refused in one line, since records would be written
    under the other method's key, unless the class asks for it: `@register(override=True)`."""
    if cls is None:
        return lambda c: register(c, override=override)
    if getattr(cls, "role", None) not in ROLES:
        raise TypeError(f"{cls.__name__} must subclass one of {', '.join(b.__name__ for b in ROLE_BASES.values())}")
    if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
        cls = dataclass(cls)
    name = getattr(cls, "name", "")
    if not name or "+" in name or name == "all":
        raise TypeError(f"method name {name!r} is empty, contains '+' or is 'all'; choose another name")
    holder = REGISTRY.get(name)
    same = holder is not None and (holder.__module__, holder.__qualname__) == (cls.__module__, cls.__qualname__)
    if holder is not None and not same and not override:
        raise MethodError(
            f"method name {name!r} is already registered by {holder.__module__}.{holder.__qualname__}; give "
            f"{cls.__module__}.{cls.__qualname__} another name, or replace it on purpose with @register(override=True)"
        )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        try:
            _parser(hints[f.name])
        except TypeError as e:
            raise TypeError(
                f"{cls.__name__}.{f.name}: {e}; use bool, int, float, str, Literal, X | None, tuple[X, ...]"
            ) from None
    REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    return v


# ---- typed parsing of --set values ---------------------------------------------------------------

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parser(tp) -> Callable[[str], Any]:
    """A function from a command-line string to a value of type `tp`; TypeError for a type it cannot parse."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return lambda raw: True if raw.lower() in _TRUE else False if raw.lower() in _FALSE else _bad(raw, "bool")
    if tp is int:
        return lambda raw: int(raw)
    if tp is float:
        return lambda raw: float(raw)
    if tp is str:
        return lambda raw: raw
    if origin is Literal:
        choices = {str(a): a for a in args}
        return lambda raw: choices[raw] if raw in choices else _bad(raw, f"one of {', '.join(choices)}")
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"unsupported union {tp}")
        inner = _parser(rest[0])
        return lambda raw: None if raw.lower() in ("none", "null", "") else inner(raw)
    if origin in (tuple, list) and args:
        elem = args[0]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"unsupported fixed-length tuple {tp}")
        inner = _parser(elem)
        return lambda raw: origin(inner(s.strip()) for s in raw.split(",") if s.strip())
    raise TypeError(f"unsupported hyper-parameter type {tp}")


def _bad(raw, what):
    raise ValueError(f"{raw!r} is not {what}")


def _parse_value(method: str, cls: type, f: dataclasses.Field, raw: str):
    tp = typing.get_type_hints(cls)[f.name]
    try:
        value = _parser(tp)(raw)
    except (ValueError, KeyError) as e:
        raise MethodError(f"{method}.{f.name}={raw!r} is not a valid {_type_name(tp)} ({e})") from None
    return value


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


# ---- composition ---------------------------------------------------------------------------------

DEFAULT_CRITERION = "ce"


@dataclass
class Composite:
    """A parsed composition such as `os+fsc`: at most one method per role (auxiliaries: any number)."""

    sampler: Sampler | None
    criterion: Criterion
    auxiliaries: list[Auxiliary]
    transform: Transform | None = None
    reweighting: Reweighting | None = None
    stager: Stages | None = None
    posthoc: Posthoc | None = None

    @property
    def parts(self) -> list[Method]:
        own = [self.sampler, self.transform, self.criterion, self.reweighting, *self.auxiliaries]
        return [m for m in [*own, self.stager, self.posthoc] if m is not None]

    @property
    def name(self) -> str:
        return canonical_name([m.name for m in self.parts])

    def hparams(self) -> dict:
        return {m.name: m.hparams() for m in self.parts if m.hparams()}

    def revisions(self) -> dict[str, int] | None:
        """{part: revision} for the parts above revision 0; None when there are none (the run key then
        stays what it was before revisions existed)."""
        revs = {m.name: m.method_revision() for m in self.parts if m.method_revision() > 0}
        return revs or None

    def sources(self) -> dict[str, str]:
        """{part: digest of the source file that defines it}: a record says which file made it."""
        return {m.name: source_digest(type(m)) for m in self.parts}

    def code(self) -> dict[str, str]:
        """{part: digest of its file's code, docstrings, comments and layout left out}: what `bench run`
        compares, so that an edit of a method's documentation is not taken for a change of its arithmetic."""
        return {m.name: code_digest(type(m)) for m in self.parts}

    def main_stage(self, name: str = "train", share: float = 1.0) -> Stage:
        """The stage the composition trains in when no stages method splits the budget."""
        return Stage(
            name=name,
            share=share,
            sampler=self.sampler,
            criterion=self.criterion,
            reweighting=self.reweighting,
            transform=self.transform,
            auxiliaries=list(self.auxiliaries),
        )

    def stages(self) -> list[Stage]:
        stages = self.stager.stages(self) if self.stager else [self.main_stage()]
        total = sum(s.share for s in stages)
        if not stages or abs(total - 1) > 1e-9 or any(s.share <= 0 for s in stages):
            raise MethodError(f"the stages of {self.name} must have positive shares summing to 1, got {total}")
        return stages

    def batch_prior(self, counts: list[int]) -> list[float]:
        return (self.sampler or _INSTANCE).batch_prior(counts)

    def setup(self, ctx: TrainContext) -> None:
        for m in self.parts:
            m.setup(ctx)

    def adapt_model(self, model: nn.Module) -> None:
        for m in self.parts:
            m.adapt_model(model)


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


def code_digest_of_text(text: str) -> str:
    """The first 12 hex digits of the SHA-256 of the module's code without its docstrings and comments, in
    Python's canonical layout (`ast.unparse`, steadier across Python releases than `ast.dump`)."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()[:12]


@functools.cache
def _file_digests(path: str) -> tuple[str, str]:
    """(digest of the file's bytes, `code_digest_of_text` of it); 'unknown' for what cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "unknown", "unknown"
    try:
        code = code_digest_of_text(data.decode("utf-8"))
    except (SyntaxError, ValueError):
        code = "unknown"
    return hashlib.sha256(data).hexdigest()[:12], code


def _digests(cls: type) -> tuple[str, str]:
    try:
        return _file_digests(inspect.getfile(cls))
    except TypeError:  # a class without a file (defined in a REPL)
        return "unknown", "unknown"


def source_digest(cls: type) -> str:
    """The first 12 hex digits of the SHA-256 of the file that defines `cls` ('unknown' if it has none)."""
    return _digests(cls)[0]


def code_digest(cls: type) -> str:
    """`code_digest_of_text` of the file that defines `cls` ('unknown' if it has none)."""
    return _digests(cls)[1]


def canonical_name(names: list[str]) -> str:
    """Order-free name: by role, then by name; the default criterion is left out unless it is
    alone, so `fsc`, `ce+fsc` and `fsc+ce` are one method."""
    order = {r: i for i, r in enumerate(ROLES)}
    names = sorted(set(names), key=lambda n: (order[REGISTRY[n].role], n))
    if len(names) > 1 and DEFAULT_CRITERION in names:
        names.remove(DEFAULT_CRITERION)
    return "+".join(names)


def _check_composition(spec: str, parts: list[Method]) -> None:
    """Refuse compositions that correct for the class imbalance twice or change the classifier twice."""
    rebalancing = [m.name for m in parts if isinstance(m, Sampler) and m.rebalances]
    prior = [m.name for m in parts if m.corrects_prior]
    if rebalancing and prior:
        raise MethodError(
            f"{spec!r} corrects for the class prior twice: {rebalancing[0]} re-balances the batches and "
            f"{prior[0]} corrects the loss or logits for the training prior; use one of them"
        )
    if len(prior) > 1:
        raise MethodError(f"{spec!r} corrects for the class prior twice ({' and '.join(prior)}); use one of them")
    classifier_prior = [m.name for m in parts if m.rebalances_classifier]
    if classifier_prior and (prior or len(classifier_prior) > 1):
        other = (prior + classifier_prior[1:])[0]
        raise MethodError(
            f"{spec!r} corrects for the class prior twice: {classifier_prior[0]} re-balances the classifier and "
            f"{other} also corrects for the prior; use one of them"
        )
    classifier = [m.name for m in parts if m.changes_classifier]
    if len(classifier) > 1:
        raise MethodError(f"{spec!r} changes the classifier twice ({' and '.join(classifier)}); use one of them")


def parse_method(spec: str, overrides: dict[str, dict[str, str]] | None = None) -> Composite:
    """Parse `os+fsc` into a Composite, applying `{method: {param: raw_value}}` overrides."""
    overrides = overrides or {}
    names = [n.strip() for n in spec.split("+") if n.strip()]
    if not names:
        raise MethodError(f"empty method {spec!r}; registered: {', '.join(sorted(REGISTRY))}")
    for n in names:
        if n not in REGISTRY:
            raise MethodError(f"unknown method {n!r}; registered: {', '.join(sorted(REGISTRY))}")
    if len(set(names)) != len(names):
        raise MethodError(f"{spec!r} names a method twice")
    by_role: dict[str, list[str]] = {r: sorted(n for n in names if REGISTRY[n].role == r) for r in ROLES}
    for role, members in by_role.items():
        if role != "auxiliary" and len(members) > 1:
            raise MethodError(f"{spec!r} combines two methods of role {role} ({' and '.join(members)}); use one")
    make = lambda n: _instantiate(n, overrides.get(n, {}))
    one = lambda role: make(by_role[role][0]) if by_role[role] else None
    comp = Composite(
        sampler=one("sampler"),
        criterion=make(by_role["criterion"][0] if by_role["criterion"] else DEFAULT_CRITERION),
        auxiliaries=[make(n) for n in by_role["auxiliary"]],
        transform=one("transform"),
        reweighting=one("reweighting"),
        stager=one("stages"),
        posthoc=one("posthoc"),
    )
    _check_composition(spec, comp.parts)
    return comp


def _instantiate(name: str, raw: dict) -> Method:
    cls = REGISTRY[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            valid = ", ".join(fields) or "none"
            raise MethodError(f"unknown hyper-parameter {name}.{key}; valid for {name}: {valid}")
        kwargs[key] = _parse_value(name, cls, fields[key], value) if isinstance(value, str) else value
        if isinstance(kwargs[key], list) and typing.get_origin(typing.get_type_hints(cls)[key]) is tuple:
            kwargs[key] = tuple(kwargs[key])  # records store tuples as lists
    for key, value in kwargs.items():
        _check_range(name, fields[key], value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise MethodError(f"invalid hyper-parameters for {name}: {e}") from None
