"""Backbones by name: torchvision's classification models (`--model mobilenet_v3_small`, `convnext_tiny`, ...)
and any timm model (`--model timm:NAME`), wrapped so every method sees the interface of the suite's own
ResNet (bench/models.py): `forward(x, taps) -> (logits, {tap: pooled features})`, a linear classifier `fc`,
`feature_dims`, `num_classes`, and `frozen_modules(tune)`.

The taps come from the libraries' own feature-extraction APIs: timm's `forward_intermediates` (+
`forward_head(pre_logits=True)`), torchvision's `create_feature_extractor`. They keep the quick ResNet's
names, by stage from the end: `layer4` is what the classifier sees (the pooled last stage through the
library's own pre-logits layers: MobileNetV3's 1024-wide hidden layer, ConvNeXt's final LayerNorm; for a
ResNet exactly the pooled last stage), `layer3`, `layer2`, `layer1` the globally pooled outputs of the three
stages before it. So `fsc`'s default layers (layer3, layer4: "the last two stages" in the paper's ResNet)
mean the last two stages of every backbone, and every method that taps features works on every backbone.

A stage is what the library calls one: timm's `feature_info` (one entry per output stride); for torchvision,
whose models declare none, the last block at each spatial resolution (found by one forward of a 224 px image),
among `layer1..layer4` (ResNets) or the blocks of `features` (MobileNet, EfficientNet, ConvNeXt, ...).

Channels and size: torchvision's models take 3 channels and grey images are repeated to three; timm's take
the data's channels from scratch (`in_chans`) and, from a 3-channel pretrained start, grey images repeated
(the start's filters see what they were trained on). From a pretrained start the images are resized, batch by
batch, to the start's input size unless `--image-size` set one; the normalisation is the start's.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from .errors import BenchError

TAPS = ("layer1", "layer2", "layer3", "layer4")
SUITE_MODEL = "resnet18"  # the suite's own ResNet-18 (bench/models.py): width option, CIFAR stem
LIBRARY_START = "imagenet"  # --pretrained imagenet: the library's default weights for the model


def is_library_model(name: str) -> bool:
    return name != SUITE_MODEL


def check_model_name(name: str) -> str:
    """`name` if it names a backbone the suite can build, else BenchError with the choices (one line)."""
    if name == SUITE_MODEL:
        return name
    if name.startswith("timm:"):
        import timm

        arch = name[5:]
        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join('timm:' + c for c in close)}? " if close else ""
            raise BenchError(f"--model {name}: timm has no model {arch!r}; {hint}`timm.list_models()` lists them")
        return name
    names = torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name, [SUITE_MODEL, *names], n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise BenchError(
            f"--model {name}: not a backbone the suite knows; {hint}choose resnet18 (the suite's), a torchvision "
            "classification model (resnet50, mobilenet_v3_small, efficientnet_b0, convnext_tiny, ...) or timm:NAME"
        )
    return name


def torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return tvm.list_models(module=tvm)


class LibraryBackbone(nn.Module):
    """A library's model without its classifier (`trunk`, returning pre-logits features), and the
    suite's linear classifier `fc` on them. Subclasses say how to get the four taps."""

    def __init__(
        self, name: str, trunk: nn.Module, units: list[tuple[str, nn.Module]], boundaries: list[str],
        pre_dim: int, tap_dims: list[int], num_classes: int, channels: int, in_chans: int, input_size: int | None,
    ):  # fmt: skip
        super().__init__()
        self.name, self.trunk, self.num_classes = name, trunk, num_classes
        self._units, self._boundaries = units, boundaries  # for `frozen_modules` (not registered twice)
        self.fc = nn.Linear(pre_dim, num_classes)
        self.repeat = in_chans // channels if in_chans != channels else 1
        if in_chans != channels and (channels != 1 or in_chans != 3):
            raise BenchError(f"--model {name}: takes {in_chans} input channels and the images have {channels}")
        self.input_size = input_size
        self.widths = [*tap_dims[-4:-1], pre_dim]

    @property
    def feature_dims(self) -> dict[str, int]:
        return dict(zip(TAPS, self.widths))

    @property
    def stages(self) -> int:
        """How many stages `--tune last:N` may name (the four tapped ones at most)."""
        return min(len(TAPS), len(self._boundaries))

    def frozen_modules(self, tune: str) -> list[nn.Module]:
        """The trunk's parts `--tune` leaves untrained, in forward order: none for full, the whole trunk for
        head, for last:N everything before the N-th stage from the end (the stem and the earlier stages)."""
        if tune == "full":
            return []
        if tune == "head":
            return [m for _, m in self._units]
        n = int(tune.split(":")[1])
        if not 1 <= n <= self.stages:
            raise BenchError(
                f"--tune {tune}: {self.name} has {self.stages} stages to tune; choose last:1 to last:{self.stages}"
            )
        names = [p for p, _ in self._units]
        start = (
            names.index(self._boundaries[-n - 1]) + 1 if n < len(self._boundaries) else names.index(self._boundaries[0])
        )
        return [m for _, m in self._units[:start]]

    def frozen_taps(self, tune: str) -> set[str]:
        """The taps whose stages `tune` freezes (taps count from the end, as `last:N`'s stages do)."""
        if tune == "full":
            return set()
        return set(TAPS) if tune == "head" else set(TAPS[: len(TAPS) - int(tune.split(":")[1])])

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat > 1:
            x = x.repeat(1, self.repeat, 1, 1)
        if self.input_size and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return x

    def _features(self, x: torch.Tensor, taps: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, taps: tuple[str, ...] = ()):
        pre, stages = self._features(self._prepare(x), bool(set(taps) - {"layer4"}))
        feats = {"layer4": pre} if "layer4" in taps else {}
        for name, t in zip(TAPS[:3], stages[-4:-1] if stages else ()):
            if name in taps:
                feats[name] = t.mean(dim=(2, 3)) if t.dim() == 4 else t.mean(dim=1)
        return self.fc(pre), feats


def _units(model: nn.Module, boundaries: list[str]) -> list[tuple[str, nn.Module]]:
    """The model's modules in registration (forward) order at the granularity of its stage boundaries:
    a child is split into its own children where a boundary lies inside it."""
    out = []

    def walk(mod: nn.Module, prefix: str) -> None:
        for name, child in mod.named_children():
            path = prefix + name
            if any(b.startswith(path + ".") for b in boundaries):
                walk(child, path + ".")
            else:
                out.append((path, child))

    walk(model, "")
    missing = set(boundaries) - {p for p, _ in out}
    if missing:
        raise BenchError(f"the model's stage modules {sorted(missing)} were not found among its children")
    return out


class TimmBackbone(LibraryBackbone):
    """A timm model created with `num_classes=0` (its forward gives the pre-logits features); taps by
    `forward_intermediates(indices=4)` (the last four stages) then `forward_head(pre_logits=True)`."""

    def _features(self, x, taps):
        if not taps:
            return self.trunk(x), []
        final, inter = self.trunk.forward_intermediates(x, indices=len(TAPS))
        return self.trunk.forward_head(final, pre_logits=True), inter


class TorchvisionBackbone(LibraryBackbone):
    """A torchvision model whose final Linear is replaced by Identity, traced by `create_feature_extractor`
    to return its stages and the Identity's output (the pre-logits features)."""

    def _features(self, x, taps):
        out = self.trunk(x)
        return out["pre"], [out[n] for n in TAPS if n in out]


def build_library_model(
    name: str, num_classes: int, channels: int, weights: str | None = None, image_size_given: bool = False
) -> LibraryBackbone:
    """The backbone `name` (checked by `check_model_name`), from the library's default pretrained weights
    when `weights` is 'imagenet', or from a state-dict file of the library's model."""
    if weights not in (None, LIBRARY_START) and not Path(weights).is_file():
        raise BenchError(
            f"--pretrained {weights}: for --model {name} pass `imagenet` (the library's weights) or a state-dict file"
        )
    build = _build_timm if name.startswith("timm:") else _build_torchvision
    model, info = build(name, num_classes, channels, weights, image_size_given)
    model.weights_info = info
    return model


def _pretrained_cfg(mean, std, size) -> dict:
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std], "input_size": int(size)}


def _build_timm(name, num_classes, channels, weights, image_size_given):
    import timm

    arch = name[5:]
    kwargs = {"num_classes": 0}
    if weights == LIBRARY_START:
        kwargs["pretrained"] = True
    elif weights:
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    try:
        in_chans = 3 if weights else channels  # a pretrained start sees grey images as three equal channels
        trunk = timm.create_model(arch, in_chans=in_chans, **kwargs)
    except (RuntimeError, OSError, ValueError) as e:  # a file or cache that does not hold the model's weights
        raise BenchError(
            f"--pretrained {weights} for --model {name}: timm could not load it ({_first_line(e)})"
        ) from None
    if not hasattr(trunk, "forward_intermediates"):
        raise BenchError(f"--model {name}: this timm model has no forward_intermediates, which the suite's taps use")
    boundaries = [f["module"] for f in trunk.feature_info]
    cfg = trunk.pretrained_cfg
    start_cfg = _pretrained_cfg(cfg["mean"], cfg["std"], cfg["input_size"][-1]) if weights else {}
    dims = [f["num_chs"] for f in trunk.feature_info]
    pre_dim = getattr(trunk, "head_hidden_size", None) or trunk.num_features
    model = TimmBackbone(
        name, trunk, _units(trunk, boundaries), boundaries, pre_dim, dims, num_classes, channels, in_chans,
        start_cfg.get("input_size") if weights and not image_size_given else None,
    )  # fmt: skip
    model.pretrained_cfg = start_cfg
    info = {"library": f"timm {timm.__version__}", "loaded": "the whole trunk (timm's load_pretrained)",
            "pretrained_cfg": start_cfg}  # fmt: skip
    if weights == LIBRARY_START:
        info["source"] = cfg.get("hf_hub_id") or cfg.get("url")
    return model, info if weights else None


def _build_torchvision(name, num_classes, channels, weights, image_size_given):
    import torchvision.models as tvm
    from torchvision.models.feature_extraction import create_feature_extractor

    net = tvm.get_model(name, weights=None)
    start_cfg, info = {}, None
    if weights:
        if weights == LIBRARY_START:
            w = tvm.get_model_weights(name).DEFAULT
            try:
                state = w.get_state_dict(progress=False, check_hash=False)
            except Exception as e:  # no network and nothing in $TORCH_HOME
                raise BenchError(
                    f"--pretrained imagenet for --model {name}: torchvision could not load {w} ({_first_line(e)}); "
                    f"put {Path(urlparse(w.url).path).name} under {Path(torch.hub.get_dir()) / 'checkpoints'}"
                ) from None
            t = w.transforms()
            start_cfg = _pretrained_cfg(t.mean, t.std, t.crop_size[0])
            source = w.url
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            start_cfg = _pretrained_cfg((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224)  # torchvision's ImageNet
            source = str(weights)
        try:
            net.load_state_dict(state)  # strict: the whole model, classifier included, as torchvision loads it
        except RuntimeError as e:
            raise BenchError(
                f"--pretrained {weights}: not the weights of torchvision's {name} ({_first_line(e)})"
            ) from None
        info = {"library": "torchvision", "loaded": len(state), "source": source, "pretrained_cfg": start_cfg}
    classifier = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
    parent, _, leaf = classifier.rpartition(".")
    pre_dim = net.get_submodule(classifier).in_features
    setattr(net.get_submodule(parent) if parent else net, leaf, nn.Identity())
    nodes, dims = _torchvision_stages(name, net)
    trunk = create_feature_extractor(net, return_nodes={**{n: t for n, t in zip(nodes[-4:], TAPS)}, classifier: "pre"})
    model = TorchvisionBackbone(
        name, trunk, _units(trunk, nodes), nodes, pre_dim, dims, num_classes, channels, 3,
        start_cfg.get("input_size") if weights and not image_size_given else None,
    )  # fmt: skip
    model.pretrained_cfg = start_cfg
    return model, info


def _torchvision_stages(name: str, net: nn.Module) -> tuple[list[str], list[int]]:
    """The last block at each spatial resolution among the candidate blocks, and their channels."""
    from torchvision.models.feature_extraction import create_feature_extractor

    if all(hasattr(net, f"layer{i}") for i in range(1, 5)):
        candidates = [f"layer{i}" for i in range(1, 5)]
    elif isinstance(getattr(net, "features", None), nn.Sequential):
        candidates = [f"features.{i}" for i in range(len(net.features))]
    else:
        raise BenchError(f"--model {name}: the suite does not know this torchvision model's stages; try timm:{name}")
    probe = create_feature_extractor(net, return_nodes=candidates).eval()
    with torch.no_grad():
        out = probe(torch.zeros(1, 3, 224, 224))
    shapes = [tuple(out[c].shape) for c in candidates]
    ends = [c for i, c in enumerate(candidates) if i == len(candidates) - 1 or shapes[i][-1] != shapes[i + 1][-1]]
    if len(ends) < len(TAPS):
        raise BenchError(f"--model {name}: {len(ends)} stages found, the suite's taps need {len(TAPS)}")
    return ends, [out[c].shape[1] for c in ends]


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def library_weights_file(model: str, weights: str) -> Path:
    """The file holding the library's default weights for `model` (fetched into the library's own cache,
    $TORCH_HOME or $HF_HOME, if it is not there): its digest goes into the run key."""
    if model.startswith("timm:"):
        from huggingface_hub import hf_hub_download
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(model[5:])
        if cfg is None or not cfg.hf_hub_id:
            raise BenchError(f"--pretrained imagenet: timm has no downloadable weights for {model[5:]}")
        errors = []
        for filename in ("model.safetensors", "pytorch_model.bin"):
            try:
                return Path(hf_hub_download(cfg.hf_hub_id, filename))
            except Exception as e:  # not cached and no network, or only the other file exists
                errors.append(_first_line(e))
        raise BenchError(
            f"--pretrained imagenet for --model {model}: {cfg.hf_hub_id} is not in the Hugging Face cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and cannot be downloaded ({errors[0]})"
        )
    import torchvision.models as tvm

    w = tvm.get_model_weights(model).DEFAULT
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(w.url).path).name
    if not path.is_file():
        try:
            torch.hub.download_url_to_file(w.url, str(path), progress=False)
        except Exception as e:
            raise BenchError(
                f"--pretrained imagenet for --model {model}: {path.name} is not in {path.parent} and cannot be "
                f"downloaded ({_first_line(e)})"
            ) from None
    return path
