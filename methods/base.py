"""The Method interface, its three roles, the registry and the `a+b` composition.

A method plays exactly one role:
- Sampler: which training indices an epoch visits (default: every index once, shuffled);
- Criterion: the classification loss on logits (default: cross-entropy);
- Auxiliary: a term added to the criterion; it may read pooled intermediate features and
  declares which layers it needs (`taps`), so the harness computes only those.
A composition has at most one sampler, at most one criterion and any number of auxiliary terms.
Hyper-parameters are dataclass fields with defaults; they can be overridden by name.

Methods never import the harness: the harness hands them a `TrainContext` with what they may need.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn


class MethodError(ValueError):
    """A bad method name, composition or hyper-parameter; one line that names the fix."""


@dataclass
class TrainContext:
    """What a method may know about the run it is part of."""

    class_counts: list[int]  # training images per class, task order
    feature_dims: dict[str, int]  # channels of each tappable layer ('layer1'..'layer4')
    device: torch.device
    seed: int

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)


class Method:
    """Base of every registered method. Subclasses are dataclasses whose fields are hyper-parameters."""

    name: ClassVar[str]
    role: ClassVar[str]  # 'sampler' | 'criterion' | 'auxiliary'
    summary: ClassVar[str] = ""

    def setup(self, ctx: TrainContext) -> None:
        """Called once per run before training (build weights, heads, ...)."""

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters the method owns (e.g. a projection head); optimised with the model."""
        return []

    def on_epoch_start(self, epoch: int) -> None:
        """Room for schedules such as deferred re-weighting; no built-in method needs it yet."""

    def hparams(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


class Sampler(Method):
    role = "sampler"

    def epoch_indices(self, labels: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class Criterion(Method):
    role = "criterion"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Auxiliary(Method):
    role = "auxiliary"

    @property
    def taps(self) -> tuple[str, ...]:
        """Layers whose global-average-pooled features this term reads."""
        return ()

    def __call__(self, feats: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


ROLES = ("sampler", "criterion", "auxiliary")
REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make `cls` (a dataclass subclass of Sampler/Criterion/Auxiliary) selectable by name."""
    if not dataclasses.is_dataclass(cls):
        cls = dataclass(cls)
    if getattr(cls, "role", None) not in ROLES:
        raise TypeError(f"{cls.__name__} must subclass Sampler, Criterion or Auxiliary")
    name = cls.name
    if not name or "+" in name or name in REGISTRY and REGISTRY[name] is not cls:
        raise TypeError(f"method name {name!r} is empty, contains '+', or is registered twice")
    REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    return v


def _parse_value(method: str, field: dataclasses.Field, raw: str):
    """Turn a command-line string into the field's type (float, int, bool, str, tuple of str)."""
    tp = field.type if not isinstance(field.type, str) else eval(field.type, vars(typing))  # noqa: S307
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if origin is tuple:
            return tuple(s.strip() for s in raw.split(",") if s.strip())
        if tp in (int, float, str):
            return tp(raw)
    except ValueError:
        pass
    else:
        return raw
    raise MethodError(f"{method}.{field.name}={raw!r} is not a valid {getattr(tp, '__name__', tp)}")


DEFAULT_CRITERION = "ce"


@dataclass
class Composite:
    """A parsed composition such as `os+fsc`: one sampler (or None), one criterion, aux terms."""

    sampler: Sampler | None
    criterion: Criterion
    auxiliaries: list[Auxiliary]

    @property
    def parts(self) -> list[Method]:
        return ([self.sampler] if self.sampler else []) + [self.criterion] + list(self.auxiliaries)

    @property
    def name(self) -> str:
        return canonical_name([m.name for m in self.parts])

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(sorted({t for a in self.auxiliaries for t in a.taps}))

    def hparams(self) -> dict:
        return {m.name: m.hparams() for m in self.parts if m.hparams()}

    def setup(self, ctx: TrainContext) -> None:
        for m in self.parts:
            m.setup(ctx)

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.parts for p in m.parameters()]

    def on_epoch_start(self, epoch: int) -> None:
        for m in self.parts:
            m.on_epoch_start(epoch)

    def epoch_indices(self, labels: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
        if self.sampler is None:
            return rng.permutation(len(labels))
        return self.sampler.epoch_indices(labels, epoch, rng)

    def loss(self, logits: torch.Tensor, feats: dict[str, torch.Tensor], targets: torch.Tensor):
        """Total loss and its named parts (tensors; the caller converts them only when it logs)."""
        parts = {self.criterion.name: self.criterion(logits, targets)}
        for a in self.auxiliaries:
            parts[a.name] = a(feats, targets)
        total = sum(parts.values())
        return total, parts


def canonical_name(names: list[str]) -> str:
    """Order-free name: sampler, criterion, auxiliaries, each by name; the default criterion is
    left out unless it is alone, so `fsc`, `ce+fsc` and `fsc+ce` are one method."""
    order = {r: i for i, r in enumerate(ROLES)}
    names = sorted(set(names), key=lambda n: (order[REGISTRY[n].role], n))
    if len(names) > 1 and DEFAULT_CRITERION in names:
        names.remove(DEFAULT_CRITERION)
    return "+".join(names)


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
    for role in ("sampler", "criterion"):
        if len(by_role[role]) > 1:
            plural = "criteria" if role == "criterion" else "samplers"
            both = " and ".join(by_role[role])
            raise MethodError(f"{spec!r} combines two {plural} ({both}); use at most one")
    crit = by_role["criterion"][0] if by_role["criterion"] else DEFAULT_CRITERION
    make = lambda n: _instantiate(n, overrides.get(n, {}))
    return Composite(
        sampler=make(by_role["sampler"][0]) if by_role["sampler"] else None,
        criterion=make(crit),
        auxiliaries=[make(n) for n in by_role["auxiliary"]],
    )


def _instantiate(name: str, raw: dict[str, str]) -> Method:
    cls = REGISTRY[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            valid = ", ".join(fields) or "none"
            raise MethodError(f"unknown hyper-parameter {name}.{key}; valid for {name}: {valid}")
        kwargs[key] = _parse_value(name, fields[key], value) if isinstance(value, str) else value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise MethodError(f"invalid hyper-parameters for {name}: {e}") from None
