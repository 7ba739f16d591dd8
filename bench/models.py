"""ResNet-18 (torchvision's) adapted to small images, with a width option and named feature taps."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock

from .errors import BenchError

LAYERS = ("layer1", "layer2", "layer3", "layer4")


class TappedResNet(ResNet):
    """torchvision's ResNet-18 with layer widths scaled by `width`; images of 64 px or less get a
    3x3 stride-1 stem and no max-pool (the CIFAR stem). `forward(x, taps)` also returns the
    global-average-pooled output of each requested layer, and computes nothing extra otherwise."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, width: float = 1.0):
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.num_classes = num_classes
        self.widths = [max(4, round(64 * width * m)) for m in (1, 2, 4, 8)]
        small = image_size <= 64
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

    def forward(self, x: torch.Tensor, taps: tuple[str, ...] = ()):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = {}
        for name in LAYERS:
            x = getattr(self, name)(x)
            if name in taps:
                feats[name] = x.mean(dim=(2, 3))
        pooled = feats["layer4"] if "layer4" in feats else x.mean(dim=(2, 3))
        return self.fc(pooled), feats


def build_model(
    num_classes: int, in_channels: int, image_size: int, width: float, weights: str | None = None
) -> TappedResNet:
    model = TappedResNet(num_classes, in_channels, image_size, width)
    if weights:
        load_weights(model, weights)
    return model


def load_weights(model: nn.Module, weights: str) -> dict:
    """Load a state dict from a file, or a torchvision weights name (downloaded where possible).
    Tensors whose shape differs (a 1-channel or 3x3 stem, another number of classes) are skipped
    and reported; a file sharing no tensor with the model is an error."""
    path = Path(weights)
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise BenchError(
                f"cannot read weights file {path} ({type(e).__name__}); pass a torch state_dict file"
            ) from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    else:
        from torchvision.models import get_weight

        try:
            state = get_weight(weights).get_state_dict(progress=False)
        except Exception as e:
            raise BenchError(
                f"--weights {weights!r} is neither a file nor a downloadable torchvision weights name "
                f"(e.g. ResNet18_Weights.IMAGENET1K_V1): {type(e).__name__}"
            ) from None
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise BenchError(f"--weights {weights}: no tensor matches this model's names and shapes")
    model.load_state_dict(usable, strict=False)
    skipped = sorted(k for k in own if k not in usable)
    return {"loaded": len(usable), "skipped": skipped}
