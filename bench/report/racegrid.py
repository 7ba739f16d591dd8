"""The racing plan (analysis.race) as a grid file that `bench run --grid FILE` runs (bench/gridfile.py)."""

from __future__ import annotations

import json

from ..spec import PRESETS, TRAIN_FLAGS
from .analysis import Analysis, family_wants, race_plans
from .model import ratio_label


def _toml(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string (JSON's escapes are TOML's)


def _setting_flags(s: dict) -> dict:
    """The `bench run` flags that reproduce a board's setting: its preset and what differs from the preset."""
    preset = PRESETS.get(s["preset"], {})
    flags = {"dataset": s["dataset"], "task": s["task"], "preset": s["preset"]}
    flags |= {k: s[k] for k in TRAIN_FLAGS if s.get(k) is not None and s.get(k) != preset.get(k)}
    # the model and its start: without them a transfer board's race would train from scratch
    if s.get("model") not in (None, "resnet18"):
        flags["model"] = s["model"]
    if s.get("weights"):
        flags["pretrained"] = s["weights"]
    if s.get("image_size"):
        flags["image_size"] = s["image_size"]
    if s.get("classes"):
        flags["classes"] = list(s["classes"])
    if s.get("n_major"):
        flags["n_major"] = s["n_major"]
    return flags


def race_grid_text(a: Analysis) -> str:
    """A grid file with one entry per board, ratio and seed count of the runs the race still asks for.
    Configurations chosen on validation (labels with [...]) are left to their sweep, said in a comment."""
    lines = [
        f'description = "Racing seeds (bench/report/analysis.py, race) for the records read; reference {a.reference}."',
        "",
    ]
    for p in race_plans(a):
        by_target: dict[int, list[str]] = {}
        swept = []
        for m, t in p.targets.items():
            if "[" in m or "(" in m:
                swept.append(f"{m} to {t} seeds")
            else:
                by_target.setdefault(t, []).append(m)
        where = f"{p.board.label} {ratio_label(p.ratio)}"
        if swept:
            lines.append(f"# {where}: re-run the sweep with more seeds for {'; '.join(swept)}")
        for t, methods in sorted(by_target.items()):
            lines += ["[[run]]", f"name = {_toml(f'{where}: to {t} seeds')}"]
            lines += [f"{k} = {_toml(v)}" for k, v in _setting_flags(p.board.setting).items()]
            lines += [f"ratios = {_toml(p.ratio)}", f"seeds = {t}", f"methods = {_toml(sorted(methods))}", ""]
    for (slug, r), (fam, results) in sorted(a.confirmed.items()):
        b = next(x for x in a.boards if x.slug == slug)
        by_target: dict[int, list[str]] = {}
        for m, (have, t) in family_wants(fam, b, r, results).items():
            if t > have:
                by_target.setdefault(t, []).append(m)
        where = f"{b.label} {ratio_label(r)}"
        for t, methods in sorted(by_target.items()):
            name = f"{where}: confirmatory family ({fam['source']}), to {t} seeds"
            lines += ["[[run]]", f"name = {_toml(name)}"]
            lines += [f"{k} = {_toml(v)}" for k, v in _setting_flags(b.setting).items()]
            lines += [f"ratios = {_toml(r)}", f"seeds = {t}", f"methods = {_toml(sorted(methods))}", ""]
    return "\n".join(lines) + "\n"
