"""Imbalance methods. Importing this registers every built-in method: each module of this folder
is imported (one method, or one family of methods, per file), so a new file is picked up without
being listed anywhere. Methods of other packages come in through the `bench.methods` entry-point
group or `load_plugins(["my.module"])` (the CLI's `--plugin MODULE`).

The names below are bound before the modules are imported, so a module of this folder may itself
`import methods as M` and use `M.register`, `M.Auxiliary`, ...
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .base import (
    REGISTRY,
    ROLES,
    Auxiliary,
    Composite,
    Criterion,
    Method,
    MethodError,
    Posthoc,
    Reweighting,
    Sampler,
    Stage,
    Stages,
    TrainContext,
    TrainState,
    Transform,
    canonical_name,
    hp,
    parse_method,
    register,
    unregister,
)

__all__ = [
    "REGISTRY",
    "ROLES",
    "Auxiliary",
    "Composite",
    "Criterion",
    "Method",
    "MethodError",
    "Posthoc",
    "Reweighting",
    "Sampler",
    "Stage",
    "Stages",
    "TrainContext",
    "TrainState",
    "Transform",
    "canonical_name",
    "hp",
    "load_plugins",
    "parse_method",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "bench.methods"

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod != "base" and not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")


def load_plugins(modules: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Import the modules of the `bench.methods` entry points and the named modules (each registers
    its methods on import); returns what was loaded. A plug-in that fails to import is a one-line error."""
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:
            raise MethodError(
                f"method plug-in {ep.name} ({ep.value}) failed to load: {type(e).__name__}: {e}"
            ) from None
        loaded.append(ep.value)
    for name in modules:
        try:
            _import_plugin(name)
        except MethodError as e:  # it imported, but what it registers is refused
            raise MethodError(f"--plugin {name}: {e}") from None
        except Exception as e:
            raise MethodError(
                f"--plugin {name}: cannot import it ({type(e).__name__}: {e}); pass a module name importable from "
                "here (its folder on PYTHONPATH, or installed) or the path of a .py file"
            ) from None
        loaded.append(name)
    return loaded


def _import_plugin(name: str):
    """A module name, or the path of a .py file (imported under its file name, once)."""
    if not name.endswith(".py"):
        return importlib.import_module(name)
    path = Path(name).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file {path}")
    module_name = f"bench_plugin_{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
