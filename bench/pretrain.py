"""Pretrained starts made by the suite (issue 34): a backbone trained on the classes a task does not use.

Real ImageNet weights cannot be had on machines without internet, so the suite ships the analog of a
practitioner's pretrained backbone: the quick model trained with cross-entropy on the other classes of a
source (animals: the 8 classes other than horse and dog; Fashion-MNIST: the 8 other than its fine pair), on
training images only, balanced (every class at the smallest class's count), and evaluated on the held-out
test images of those classes. `bench pretrain` writes

- NAME.pt: the state dict (its 8-class classifier is skipped when a task loads it);
- NAME.pt.json: the pretrained config the loader reads beside any weights file (the pretraining images'
  mean and std, and the stem), as timm's pretrained_cfg;
- NAME.provenance.json: source, classes, excluded classes, steps, seed, width, held-out accuracy, the
  weights' SHA-256, command, machine and date.

`--pretrained NAME` names a checkpoint shipped in bench/pretrained/ (bench/starts.py), or any NAME.pt;
a run whose task uses a class of the checkpoint's pretraining classes is refused (`check_provenance`).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from datasets import build_task
from datasets.base import sha256_of

from .envinfo import environment, now
from .errors import BenchError
from .spec import PRESETS, TRAIN_FLAGS, RunSpec, numerics
from .starts import SHIPPED, STARTS


def provenance_of(weights: str | Path) -> dict | None:
    """The provenance record beside a weights file (NAME.provenance.json), or None."""
    p = Path(weights)
    side = p.with_name(p.name.removesuffix(".pt") + ".provenance.json")
    if not side.is_file():
        return None
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise BenchError(f"{side}: unreadable provenance ({e}); make the checkpoint again") from None


def check_provenance(weights: str | Path, dataset: str, classes: list[str]) -> None:
    """Refuse, in one line, a start pretrained on a class of the task (the same source and class name)."""
    prov = provenance_of(weights)
    if not prov or prov.get("source") != dataset:
        return
    seen = sorted(set(prov.get("classes", [])) & set(classes))
    if seen:
        raise BenchError(
            f"the pretrained start {Path(weights).name} was trained on {', '.join(seen)}, a class of this "
            f"{dataset} task: its test images would not be new to it; use a start made without them"
        )


def pretrain(name: str, steps: int, seed: int = 0, out_dir: Path = SHIPPED, progress=None) -> dict:
    """Train the start `name` (STARTS) and write its three files into `out_dir`; returns the provenance."""
    from datasets import get_source

    from .train import pick_device, train_and_evaluate

    if name not in STARTS:
        raise BenchError(f"unknown pretrained start {name!r}; choose one of: {', '.join(STARTS)}")
    if steps < 1:
        raise BenchError(f"--steps must be at least 1, got {steps}")
    dataset, excluded = STARTS[name]
    src = get_source(dataset)
    if not src.availability().available:
        raise BenchError(f"dataset {dataset} is not available here ({src.availability().where})")
    data = src.load()
    others = [c for c in data.classes if c not in excluded]
    task = build_task(data, dataset, src.pairs, "lt", 1.0, seed, classes=others)  # ratio 1: balanced
    torch.set_num_threads(1)
    train = {k: PRESETS["quick"][k] for k in TRAIN_FLAGS} | {"steps": steps}
    spec = RunSpec(
        dataset=dataset, task="lt", classes=tuple(others), ratio=1.0, n_major=None, seed=seed, data_seed=seed,
        method="ce", hparams={}, image_size=None, data_digest=data.digest, revisions={}, model="resnet18",
        weights=None, preset="quick", numerics=numerics("cpu", "auto", 1), **train,
    )  # fmt: skip
    from methods import parse_method

    result = train_and_evaluate(spec, task, parse_method("ce"), pick_device("cpu"), keep_model=True,
                                on_progress=progress)  # fmt: skip
    model = result.pop("model")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.pt"
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    cfg = {"mean": task.mean, "std": task.std, "stem": "cifar"}
    (out_dir / f"{name}.pt.json").write_text(json.dumps(cfg, indent=1) + "\n")
    m = result["metrics"]
    prov = {
        "name": name,
        "source": dataset,
        "classes": others,
        "never_seen": list(excluded),
        "train_images_per_class": task.train_counts[0],
        "steps": steps,
        "seed": seed,
        "width": spec.width,
        "heldout_accuracy": round(float(m["accuracy"]), 4),
        "heldout_images": int(sum(task.test_counts)),
        "heldout_per_class": [round(float(v), 4) for v in m["per_class_acc"]],
        "train_s": result["timings"]["train_s"],
        "sha256": sha256_of(path),
        "config_sha256": sha256_of(out_dir / f"{name}.pt.json"),
        "command": shlex.join(["python", "-m", "bench", *sys.argv[1:]]) if sys.argv else "",
        "date": now(),
        "env": environment(pick_device("cpu")),
    }
    (out_dir / f"{name}.provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
    return prov | {"mean_per_class": float(np.mean(m["per_class_acc"]))}
