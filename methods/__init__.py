"""Imbalance methods. Importing this registers every built-in method (one file each)."""

from . import cb, ce, focal, fsc, oversample, supcon  # noqa: F401  (registration)
from .base import (
    REGISTRY,
    Auxiliary,
    Composite,
    Criterion,
    Method,
    MethodError,
    Sampler,
    TrainContext,
    canonical_name,
    parse_method,
    register,
    unregister,
)

__all__ = [
    "REGISTRY",
    "Auxiliary",
    "Composite",
    "Criterion",
    "Method",
    "MethodError",
    "Sampler",
    "TrainContext",
    "canonical_name",
    "parse_method",
    "register",
    "unregister",
]
