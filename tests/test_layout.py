"""Issue 37 item 3: each file one way. No two modules of the suite import each other, at the top or inside a
function (an import inside a function is still a circle: it only hides it until the call); imports under
`if TYPE_CHECKING:` are type annotations and are not counted, and a package's `__init__` is not a cycle with
the modules it re-exports."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "methods", "datasets")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (REPO / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The suite's modules that module `name` imports anywhere in its file (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(x) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
        for x in ast.walk(n)
    }  # fmt: skip
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for n in ast.walk(tree):
        if id(n) in typing_only:
            continue
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = package[: len(package) - n.level + 1] if n.level else []
            mod = ".".join(base + ([n.module] if n.module else []))
            out |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in n.names}
    return {m for m in out if m in known and m != name}


def test_no_two_modules_of_the_suite_import_each_other():
    known = modules()
    edges = {m: imported(m, p, known) for m, p in known.items()}
    assert "bench.spec" in edges["bench.compat"]  # the graph sees imports inside functions and relative ones
    circles = sorted({tuple(sorted((a, b))) for a, bs in edges.items() for b in bs if a in edges[b]})
    # a package's __init__ re-exporting its modules, which import the package's other modules, is not a circle
    circles = [(a, b) for a, b in circles if not (b.startswith(a + ".") and known[a].name == "__init__.py")]
    assert circles == []
