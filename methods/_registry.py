"""The registry of methods by name, the typed parsing of `--set` values, and the digests of a method's
source that records keep (see methods/base.py)."""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._roles import ROLE_BASES, ROLES, Method, MethodError, _check_range

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
