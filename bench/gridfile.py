"""Grid files: what a sweep runs, as data the code reads (`bench run --grid FILE`), not as shell loops.

A grid file is TOML (read with the standard library's tomllib):

    description = "what the grid is for"
    seeds = 5               # every entry's --seeds unless it names its own
    seed_by_seed = true     # every entry at seed 0, then every entry at seeds 0-1, ...: a grid cut short
                            # covers every entry with the seeds it finished (each pass resumes by run key)
    [defaults]              # flags every entry shares
    dataset = ["animals", "fashion"]
    task = "fine"
    [[run]]
    name = "la's tau"       # optional: how the entry is named in logs and records
    methods = ["os", "la"]
    sweep = ["la.tau=0.5|1|2"]

An optional `[confirmatory]` table declares, before the runs, the contrasts the report decides with the
sequential procedure of bench/stats.py (`read_family`); `bench run` ignores it:

    [confirmatory]
    contrasts = ["os+fsc - os", "fsc - ce"]   # method - reference, each tested two-sided
    looks = [5, 10, 20]                       # seeds at each look; the last is the most any contrast gets
    [confirmatory.selected]                   # methods picked from earlier results, and where: their
    methods = ["la"]                          # contrasts on that board and ratio use only the seeds not
    dataset = "animals"                       # used to pick them
    task = "fine"
    ratio = 0.01
    seeds = [0, 1, 2]

The family applies to the boards the grid's entries make (dataset, task, ratio and preset).

Each key is a `bench run` flag without its dashes (`val_per_class` or `val-per-class`); a list is
joined with commas, except for the repeatable flags (`set`, `sweep`, `slurm_option`, `plugin`), which
are given once per item; `true` gives a switch. Flags typed after `--grid FILE` apply to every entry and
win over the file's. Every entry is checked before the first one runs; each run's record keeps the
command with the file, its digest and the entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import tomllib

from .errors import BenchError

REPEATABLE = ("set", "sweep", "slurm_option", "plugin")
TOP_LEVEL = {"description", "seeds", "seed_by_seed", "defaults", "run", "confirmatory"}


def _flag_args(key: str, value, where: str) -> list[str]:
    flag = "--" + key.replace("_", "-")
    name = key.replace("-", "_")
    if isinstance(value, bool):
        return [flag] if value else []
    if isinstance(value, dict):
        raise BenchError(f"{where}: {key} must be a value or a list, not a table")
    if name in REPEATABLE:
        items = value if isinstance(value, list) else [value]
        return [a for item in items for a in (flag, str(item))]
    if isinstance(value, list):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, str(value)]


def read_grid(path: str) -> tuple[list[tuple[str, list[str]]], str]:
    """The grid file's `bench run` invocations in order, each (label, flags), and the file's digest."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as e:
        raise BenchError(f"--grid {path}: cannot read it ({e.strerror}); pass the path of a grid file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BenchError(f"--grid {path}: not valid TOML ({e}); see bench/gridfile.py for the format") from None
    unknown = set(data) - TOP_LEVEL
    if unknown:
        raise BenchError(f"--grid {path}: unknown top-level keys {sorted(unknown)}; flags go in [defaults] or [[run]]")
    runs = data.get("run", [])
    if not isinstance(runs, list) or not runs:
        raise BenchError(f"--grid {path}: no [[run]] entry; add at least one")
    defaults, by_seed = data.get("defaults", {}), bool(data.get("seed_by_seed"))
    entries = []
    for i, run in enumerate(runs, 1):
        table = {"seeds": data.get("seeds")} | defaults | run
        name = str(table.pop("name", f"entry {i}"))
        flags = []
        for key, value in table.items():
            if value is not None and not (by_seed and key == "seeds"):  # seed_by_seed gives --seeds per pass
                flags += _flag_args(key, value, f"--grid {path} [{name}]")
        entries.append((name, flags, table.get("seeds")))
    digest = hashlib.sha256(raw).hexdigest()[:12]
    if not by_seed:
        return [(name, flags) for name, flags, _ in entries], digest
    if any(not isinstance(seeds, int) for _, _, seeds in entries):
        raise BenchError(f"--grid {path}: seed_by_seed needs a number of seeds for every entry (seeds = N)")
    passes = []
    for n in range(1, max(seeds for _, _, seeds in entries) + 1):
        passes += [(f"{name}, seeds 0-{n - 1}", [*flags, "--seeds", str(n)]) for name, flags, s in entries if s >= n]
    return passes, digest


def _as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def read_family(path: str) -> dict | None:
    """The grid file's `[confirmatory]` declaration, resolved: {"contrasts": [(method, reference)], "looks",
    "selected": {...} or None, "boards": [{"dataset", "task", "ratio", "preset"}], "source": path@digest};
    None when the file declares none. BenchError (one line) for a malformed declaration."""
    raw = Path(path).read_bytes()
    data = tomllib.loads(raw.decode("utf-8"))
    fam = data.get("confirmatory")
    if fam is None:
        return None
    where = f"{path} [confirmatory]"
    contrasts = []
    for c in fam.get("contrasts", []):
        parts = [x.strip() for x in str(c).split(" - ")]
        if len(parts) != 2 or not all(parts):
            raise BenchError(f"{where}: contrast {c!r} is not 'method - reference' (spaces around the minus)")
        contrasts.append(tuple(parts))
    looks = fam.get("looks", [5, 10, 20])
    if not contrasts or not all(isinstance(n, int) and n >= 2 for n in looks) or looks != sorted(set(looks)):
        raise BenchError(f"{where}: needs contrasts and increasing looks of at least 2 seeds, e.g. looks = [5, 10, 20]")
    defaults = data.get("defaults", {})
    boards = []
    for run in data.get("run", []):
        t = defaults | run
        for ds in _as_list(t.get("dataset", "animals")):
            for task in _as_list(t.get("task", "fine")):
                for r in _as_list(t.get("ratios", 1.0)):
                    boards.append({"dataset": ds, "task": task, "ratio": float(r), "preset": t.get("preset", "quick")})
    selected = fam.get("selected")
    if selected is not None:
        need = {"methods", "dataset", "task", "ratio", "seeds"}
        if not need <= set(selected):
            raise BenchError(f"{where}: [confirmatory.selected] needs {', '.join(sorted(need))}")
        selected = dict(selected, ratio=float(selected["ratio"]))
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return {"contrasts": contrasts, "looks": looks, "selected": selected, "boards": boards,
            "source": f"{path} sha256:{digest}"}  # fmt: skip
