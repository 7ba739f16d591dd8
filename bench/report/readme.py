"""Generated blocks in a hand-written page (the README): `<!-- bench:NAME -->` ... `<!-- /bench:NAME -->`.

`bench report --readme README.md` replaces each block's body with the table of that name the report
generated (results/summary.md holds them all); `--check-readme README.md` changes nothing and lists the
blocks whose body differs, so CI fails when the README quotes numbers its records no longer give.
"""

from __future__ import annotations

import re

BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w.\-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)


def blocks(text: str) -> dict[str, str]:
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def refresh(text: str, generated: dict[str, str]) -> str:
    """`text` with every block whose name was generated replaced by the generated body."""
    return BLOCK.sub(lambda m: m.group(1) + generated.get(m["name"], m["body"]) + m.group(4), text)


def stale(text: str, generated: dict[str, str]) -> list[str]:
    """Blocks of `text` that differ from the generated ones, or that the report no longer generates."""
    return [name for name, body in blocks(text).items() if generated.get(name) != body]
