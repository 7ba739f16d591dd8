"""ResNet-18 (torchvision's) adapted to small images, with a width option and named feature taps."""

from __future__ import annotations

import json

import torch
from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock

from .backbones import LIBRARY_START, SUITE_MODEL, build_library_model, is_library_model
from .errors import BenchError
from .starts import weights_file

LAYERS = ("layer1", "layer2", "layer3", "layer4")


class TappedResNet(ResNet):
    """torchvision's ResNet-18 with layer widths scaled by `width`; images of 64 px or less get a
    3x3 stride-1 stem and no max-pool (the CIFAR stem). `forward(x, taps)` also returns the
    global-average-pooled output of each requested layer, and computes nothing extra otherwise."""

    def __init__(
        self, num_classes: int, in_channels: int, image_size: int, width: float = 1.0, stem: str | None = None
    ):
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.num_classes = num_classes
        self.widths = [max(4, round(64 * width * m)) for m in (1, 2, 4, 8)]
        small = image_size <= 64 if stem is None else stem == "cifar"
        w0 = self.widths[0]
        if small:
            self.conv1 = nn.Conv2d(in_channels, w0, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, w0, 7, stride=2, padding=3, bias=False)
        if width != 1.0:  # rebuild the trunk at the new width with torchvision's own builder
            self.bn1 = nn.BatchNorm2d(w0)
            self.inplanes = w0
            self.layer1 = self._make_layer(BasicBlock, self.widths[0], 2)
            self.layer2 = self._make_layer(BasicBlock, self.widths[1], 2, stride=2)
            self.layer3 = self._make_layer(BasicBlock, self.widths[2], 2, stride=2)
            self.layer4 = self._make_layer(BasicBlock, self.widths[3], 2, stride=2)
            self.fc = nn.Linear(self.widths[3], num_classes)
        for m in self.modules():  # torchvision's initialisation, for the replaced modules too
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def feature_dims(self) -> dict[str, int]:
        return dict(zip(LAYERS, self.widths))

    def frozen_taps(self, tune: str) -> set[str]:
        """The taps whose layers `tune` freezes."""
        return {n for n in LAYERS if n in frozen_parts(tune)}

    def frozen_depth(self, tune: str) -> int:
        """How many stages `tune` freezes before the first trained one (0: only the stem)."""
        parts = frozen_parts(tune)
        return sum(name in parts for name in LAYERS)

    def frozen_prefix(self, x: torch.Tensor, depth: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The frozen part's output for `forward_from` (the stem and `depth` stages; the pooled last stage
        when all four are frozen), and the pooled output of each frozen stage (the taps a method may ask of
        them). The same modules and arithmetic as `forward`."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = {}
        for name in LAYERS[:depth]:
            x = getattr(self, name)(x)
            feats[name] = x.mean(dim=(2, 3))
        return (feats["layer4"] if depth == len(LAYERS) else x), feats

    def forward_from(self, h: torch.Tensor, depth: int, frozen_feats: dict, taps: tuple[str, ...] = ()):
        """`forward` continued from `frozen_prefix(x, depth)`'s output, with the frozen stages' taps from
        `frozen_feats`: the frozen-trunk cache's path (bench/train.py `FrozenCache`)."""
        feats = {n: frozen_feats[n] for n in taps if n in frozen_feats}
        x = h
        for name in LAYERS[depth:]:
            x = getattr(self, name)(x)
            if name in taps:
                feats[name] = x.mean(dim=(2, 3))
        pooled = h if depth == len(LAYERS) else feats["layer4"] if "layer4" in feats else x.mean(dim=(2, 3))
        return self.fc(pooled), feats

    def frozen_modules(self, tune: str) -> list[nn.Module]:
        """The parts `--tune` leaves untrained (see `frozen_parts`)."""
        return [getattr(self, name) for name in frozen_parts(tune)]

    def forward(self, x: torch.Tensor, taps: tuple[str, ...] = ()):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = {}
        for name in LAYERS:
            x = getattr(self, name)(x)
            if name in taps:
                feats[name] = x.mean(dim=(2, 3))
        pooled = feats["layer4"] if "layer4" in feats else x.mean(dim=(2, 3))
        return self.fc(pooled), feats


STEMS = ("imagenet", "cifar")
STEM = ("conv1", "bn1")


def check_tune_syntax(tune: str) -> str:
    """full, head or last:N (N >= 1), else ValueError naming the choices; whether the model has N stages
    is its own `frozen_modules`' check."""
    if tune in ("full", "head") or (tune.startswith("last:") and tune[5:].isdigit() and int(tune[5:]) >= 1):
        return tune
    raise ValueError("choose full, head or last:N (the last N stages and the head; the suite's ResNet has 4)")


def frozen_parts(tune: str) -> tuple[str, ...]:
    """The suite's ResNet's parts that `--tune` leaves untrained: none for 'full'; the stem and the first
    4 - N stages for 'last:N'; the whole trunk for 'head' (a linear probe). BenchError naming the choices
    for N > 4."""
    check_tune_syntax(tune)
    if tune == "full":
        return ()
    if tune == "head":
        return (*STEM, *LAYERS)
    if int(tune[5:]) > len(LAYERS):
        raise BenchError(f"--tune {tune}: the suite's ResNet has {len(LAYERS)} stages to tune; choose last:1 to last:4")
    return (*STEM, *LAYERS[: len(LAYERS) - int(tune[5:])])


def build_model(
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: float,
    weights: str | None = None,
    model: str = SUITE_MODEL,
    image_size_given: bool = False,
) -> nn.Module:
    """The model, with --weights loaded where given; `model.weights_info` says what was loaded, skipped
    and adapted, and which pretrained config (stem, normalisation) came with the weights. A `model` other
    than the suite's resnet18 is a library backbone (bench/backbones.py)."""
    if is_library_model(model):
        return build_library_model(model, num_classes, in_channels, weights, image_size_given)
    if weights == LIBRARY_START:  # the suite's ResNet-18 from torchvision's ImageNet weights
        weights = "ResNet18_Weights.DEFAULT"
    state, cfg = read_weights(weights) if weights else (None, {})
    net = TappedResNet(num_classes, in_channels, image_size, width, stem=cfg.get("stem"))
    net.pretrained_cfg = cfg
    net.weights_info = load_state(net, state, weights) | {"pretrained_cfg": cfg} if weights else None
    return net


def read_weights(weights: str) -> tuple[dict, dict]:
    """(state dict, pretrained config) from a file or a torchvision weights name (downloaded where
    possible). As timm's pretrained_cfg, the config says how the weights expect to be used: 'mean' and
    'std' of the inputs (per channel, 0-1 scale), 'stem' ('imagenet': 7x7 stride 2 + max-pool,
    'cifar': 3x3 stride 1). It comes from the checkpoint's 'pretrained_cfg' entry, else a JSON file
    beside the weights (FILE.json), else torchvision's metadata for its own weights."""
    path = weights_file(weights)
    cfg: dict = {}
    if path is not None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise BenchError(
                f"cannot read weights file {path} ({type(e).__name__}); pass a torch state_dict file"
            ) from None
        if isinstance(state, dict) and isinstance(state.get("pretrained_cfg"), dict):
            cfg = state["pretrained_cfg"]
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        side = path.with_name(path.name + ".json")
        if not cfg and side.is_file():
            try:
                cfg = json.loads(side.read_text())
            except (OSError, ValueError) as e:
                raise BenchError(
                    f"cannot read the pretrained config {side} ({type(e).__name__}); fix or remove it"
                ) from None
    else:
        from torchvision.models import get_weight

        try:
            w = get_weight(weights)
            state = w.get_state_dict(progress=False)
        except Exception as e:
            raise BenchError(
                f"--weights {weights!r} is neither a file nor a downloadable torchvision weights name "
                f"(e.g. ResNet18_Weights.IMAGENET1K_V1): {type(e).__name__}"
            ) from None
        cfg = {"mean": list(w.transforms().mean), "std": list(w.transforms().std), "stem": "imagenet"}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BenchError(f"--pretrained {weights}: not a state dict of tensors")
    return state, check_cfg(cfg, weights)


def check_cfg(cfg: dict, weights: str) -> dict:
    if not isinstance(cfg, dict):
        raise BenchError(f"--pretrained {weights}: its pretrained config is not a JSON object")
    unknown = set(cfg) - {"mean", "std", "stem", "classifier"}
    if unknown:
        raise BenchError(f"--pretrained {weights}: unknown pretrained-config keys {sorted(unknown)} (mean, std, stem)")
    if "stem" in cfg and cfg["stem"] not in STEMS:
        raise BenchError(f"--pretrained {weights}: stem must be one of {', '.join(STEMS)}, got {cfg['stem']!r}")
    for k in ("mean", "std"):
        v = cfg.get(k)
        if v is not None and not (isinstance(v, list) and v and all(isinstance(x, int | float) for x in v)):
            raise BenchError(f"--pretrained {weights}: pretrained-config {k} must be a list of numbers")
    if cfg.get("std") and min(cfg["std"]) <= 0:
        raise BenchError(f"--pretrained {weights}: pretrained-config std must be > 0")
    return cfg


def load_weights(model: nn.Module, weights: str) -> dict:
    """Load --weights into `model`; see `load_state`."""
    return load_state(model, read_weights(weights)[0], weights)


def load_state(model: nn.Module, state: dict, weights: str) -> dict:
    """Load the tensors whose name and shape match; a 3-channel first convolution is summed over its
    input channels for 1-channel images (timm's adapt_input_conv); the classifier of another number of
    classes is skipped and reported. A file that does not fill the whole trunk (every tensor but the
    classifier) is an error naming what did not match."""
    own = model.state_dict()
    adapted = []
    state = dict(state)
    w = state.get("conv1.weight")
    convolution = isinstance(w, torch.Tensor) and w.dim() == 4  # anything else is skipped below, by shape
    if convolution and "conv1.weight" in own and w.shape[1] == 3 and own["conv1.weight"].shape[1] == 1:
        state["conv1.weight"] = w.sum(dim=1, keepdim=True)
        adapted.append("conv1.weight: 3 input channels summed for 1-channel images")
    usable = {k: v for k, v in state.items() if k in own and isinstance(v, torch.Tensor) and own[k].shape == v.shape}
    if not usable:
        raise BenchError(f"--pretrained {weights}: no tensor matches this model's names and shapes")
    # a pretrained start is the whole trunk: one that would load part of it (another width or stem) and
    # train the rest from scratch is refused, not run under the start's name
    missing = [k for k in own if not k.startswith(HEAD) and k not in usable]
    if missing:

        def why(k):
            return f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" if k in state and hasattr(
                state[k], "shape") else f"{k} absent"  # fmt: skip

        raise BenchError(
            f"--pretrained {weights}: {len(missing)} of {sum(not k.startswith(HEAD) for k in own)} trunk tensors do "
            f"not match this model ({'; '.join(map(why, missing[:3]))}{'; ...' if len(missing) > 3 else ''}); "
            "pass weights of the same architecture, width and stem"
        )
    model.load_state_dict(usable, strict=False)
    skipped = sorted(k for k in own if k not in usable)
    adapted = [a for a in adapted if a.split(":")[0] in usable]
    return {"loaded": len(usable), "skipped": skipped, "adapted": adapted}


HEAD = "fc."  # the classifier: the one part of the model a pretrained start does not need to match
