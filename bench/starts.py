"""The pretrained starts the suite ships (bench/pretrained/, made by `bench pretrain`: bench/pretrain.py),
and the one place a `--weights` / `--pretrained` value is turned into a file."""

from __future__ import annotations

from pathlib import Path

from .errors import BenchError

SHIPPED = Path(__file__).parent / "pretrained"
# name -> (source, the classes the start must never have seen: its tasks' classes)
STARTS = {
    "animals-other8": ("animals", ("horse", "dog")),
    "fashion-other8": ("fashion", ("T-shirt/top", "Shirt")),
}


def weights_file(weights: str | None) -> Path | None:
    """The file a weights value names: a shipped start's by its name (so run keys and records hold the name,
    the same in every clone), else the path itself when it is a file; None otherwise (a torchvision weights
    name, or nothing)."""
    if not weights:
        return None
    if weights in STARTS:
        path = SHIPPED / f"{weights}.pt"
        if not path.is_file():
            raise BenchError(f"--pretrained {weights}: {path} is missing; run `python -m bench pretrain {weights}`")
        return path
    path = Path(weights)
    return path if path.is_file() else None


def shipped_start(datasets: list[str], preset: str) -> str:
    """The shipped start a preset with `start = "shipped"` (transfer) uses for these datasets: each dataset's
    own, so one dataset per command; BenchError naming the fix otherwise."""
    starts = {ds: [name for name, (source, _) in STARTS.items() if source == ds] for ds in datasets}
    missing = [ds for ds, names in starts.items() if not names]
    if missing:
        raise BenchError(
            f"--preset {preset}: the suite ships no pretrained start for {', '.join(missing)} (it has "
            f"{', '.join(STARTS)}); pass --pretrained NAME|FILE|imagenet"
        )
    if len(datasets) > 1:
        raise BenchError(
            f"--preset {preset} starts each dataset from its own start ({', '.join(n[0] for n in starts.values())}): "
            "run one dataset per command, or a grid file with one entry per dataset"
        )
    return starts[datasets[0]][0]
