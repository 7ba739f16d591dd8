"""A trained model taken away: saved with what it needs to classify new photos, loaded again, applied.

`bench run --save-model` (on by default in `bench advise`) writes OUT/models/KEY.pt next to the run's
record: the state dict and a config holding everything that turns a photo into the run's prediction
(how the photo was decoded, the input normalisation, the architecture, the method's post-hoc step and
its chosen value), so that `bench predict` gives the same predictions as the record's test outcome
(tests/test_advise.py). The config is also written as KEY.json, readable without torch.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from .errors import BenchError

FORMAT = "fsc-bench model 1"


def model_path(out: Path, key: str) -> Path:
    return Path(out) / "models" / f"{key}.pt"


def save(path: Path, model, spec, task, method, metrics: dict, mean, std, precision: str) -> None:
    """Write the trained `model` of run `spec` with the config `load` rebuilds it from (through a
    private temporary file: a cut-off save never leaves a half model under the final name)."""
    posthoc = method.posthoc
    value = metrics.get("posthoc", {}).get(posthoc.choice or "value") if posthoc else None
    config = {
        "format": FORMAT,
        "key": spec.key,
        "method": spec.method,
        "hparams": method.hparams(),  # every value (the key leaves out those at their legacy value)
        "posthoc": {"name": posthoc.name, "value": value} if posthoc else None,
        "classes": list(task.classes),
        "train_counts": list(task.train_counts),
        "model": spec.model,
        "width": spec.width,
        "in_channels": int(task.train_x.shape[1]),
        "image_size": int(task.train_x.shape[2]),  # the size photos are decoded to (the folder's resize)
        "image_size_given": spec.image_size is not None,
        "stem": getattr(model, "pretrained_cfg", {}).get("stem"),
        "input_size": getattr(model, "input_size", None),  # a library backbone's resize inside the model
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "precision": precision,
        "weights": spec.weights,
        "dataset": spec.dataset,
        "torch": torch.__version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": json.dumps(config), "state_dict": state}, tmp)
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(config, indent=1) + "\n")


def load(path: Path, device: torch.device):
    """(model in eval mode, config, the method's post-hoc step or None) of a saved model; a file that is
    not one is one line naming it."""
    from methods import parse_method

    from .models import TappedResNet, build_model, is_library_model

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config = json.loads(saved["config"])
        state = saved["state_dict"]
    except Exception as e:
        raise BenchError(
            f"{path} is not a model saved by `bench run --save-model` / `bench advise` ({type(e).__name__})"
        ) from None
    if config.get("format") != FORMAT:
        raise BenchError(f"{path}: unknown model format {config.get('format')!r} (this suite reads {FORMAT!r})")
    n, ch, size = len(config["classes"]), config["in_channels"], config["image_size"]
    if is_library_model(config["model"]):
        model = build_model(n, ch, size, config["width"], None, config["model"], config["image_size_given"])
        model.input_size = config["input_size"]
    else:
        model = TappedResNet(n, ch, size, config["width"], stem=config["stem"])
    model.load_state_dict(state)
    model.to(device).eval()
    posthoc = parse_method(config["method"], config["hparams"]).posthoc
    return model, config, posthoc


def classify(model, config: dict, posthoc, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """The final logits (after the post-hoc step) of uint8 images `x` (N, C, H, W) decoded as the config says,
    computed as the run's evaluation computed them."""
    from .evaluation import posthoc_logits, predict
    from .train import Normaliser, use_channels_last

    norm = Normaliser(config["mean"], config["std"], device, use_channels_last(device, config["image_size"]))
    bf16 = config["precision"] == "bf16"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    logits, feats = predict(model, x, norm, batch_size, autocast, ("layer4",))
    value = (config.get("posthoc") or {}).get("value")
    return posthoc_logits(posthoc, logits, feats["layer4"], model, value)


def photo_files(root: Path) -> list[Path]:
    """Every image file under `root` (recursively, sorted, links to folders not followed)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    if not root.is_dir():
        raise BenchError(f"{root} is not a folder; pass a folder of photos to classify")
    files = sorted(
        Path(d) / f
        for d, dirs, names in os.walk(root)
        for f in names
        if f.lower().endswith(IMG_EXTENSIONS) and not f.startswith(".")
    )
    if not files:
        raise BenchError(f"{root} holds no image files (.jpg, .png, ...)")
    return files


def decode(files: list[Path], config: dict) -> torch.Tensor:
    """The photos decoded as the model's training photos were (datasets/folder.py `decode_photo`)."""
    from datasets.folder import decode_photo

    mode = "RGB" if config["in_channels"] == 3 else "L"
    out = []
    for f in files:
        try:
            out.append(decode_photo(str(f), config["image_size"], mode))
        except Exception as e:
            raise BenchError(f"cannot read image {f} ({type(e).__name__}); remove or replace it") from None
    return torch.stack(out)


def write_predictions(path: Path, names: list[str], logits: np.ndarray, classes: list[str], labels=None) -> None:
    """One CSV row per image: its file, the predicted class and each class's probability (and the true
    label where known), for a person's review."""
    from .metrics import log_softmax

    probs = np.exp(log_softmax(logits))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", *(["label"] if labels is not None else []), "prediction", *(f"p_{c}" for c in classes)])
        for i, name in enumerate(names):
            row = [name, *([classes[int(labels[i])]] if labels is not None else []), classes[int(probs[i].argmax())]]
            w.writerow(row + [f"{p:.6g}" for p in probs[i]])
