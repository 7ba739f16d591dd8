"""Generated blocks in a hand-written page (the README): `<!-- bench:NAME -->` ... `<!-- /bench:NAME -->`.

`bench report --readme README.md` replaces each block's body with the table of that name the report
generated (results/summary.md holds them all); `--check-readme README.md` changes nothing and lists the
blocks whose body differs, so CI fails when the README quotes numbers its records no longer give.

A number in the prose is quoted the same way, inline: `<!--v:KEY-->0.951<!--/v-->`, KEY naming a value
the report generates (`summary_values`: a budget study's or a board's mean or sd, e.g.
`budget_animals_..._lt_r0p01:ce:2400`); refreshed and checked with the blocks. A generated dict holds
the values under "v:KEY".
"""

from __future__ import annotations

import re

BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w.\-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)
VALUE = re.compile(r"(<!--v:(?P<key>[\w.:\-+=]+)-->)(?P<body>[^<\n]*)(<!--/v-->)")
VALUE_OPENING = re.compile(r"<!--v:([^>]*)-->")


def blocks(text: str) -> dict[str, str]:
    """{block name: body} and {"v:" + value key: quoted number} of `text`."""
    found = {m["name"]: m["body"] for m in BLOCK.finditer(text)}
    well_formed = {m["key"] for m in VALUE.finditer(text)}
    for key in VALUE_OPENING.findall(text):  # a marker with a bad key or no closing `<!--/v-->` on its line
        if key not in well_formed:
            found["v:" + key] = None
    for m in VALUE.finditer(text):
        found.setdefault("v:" + m["key"], m["body"])
        if found["v:" + m["key"]] != m["body"]:  # one value quoted twice with two numbers
            found["v:" + m["key"]] = None
    return found


def refresh(text: str, generated: dict[str, str]) -> str:
    """`text` with every block and value that was generated replaced by the generated one."""
    text = BLOCK.sub(lambda m: m.group(1) + generated.get(m["name"], m["body"]) + m.group(4), text)
    return VALUE.sub(lambda m: m.group(1) + generated.get("v:" + m["key"], m["body"]) + m.group(4), text)


def stale(text: str, generated: dict[str, str]) -> list[str]:
    """Blocks and values of `text` that differ from the generated ones, or that the report no longer
    generates."""
    return [name for name, body in blocks(text).items() if generated.get(name) != body]
