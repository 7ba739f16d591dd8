"""Several runs computed as one model: their trunks side by side, each run's classifier its own.

K runs of the suite's ResNet can share every kernel of their trunk: each convolution becomes one grouped
convolution with K groups (run k's filters are group k, its images channel slice k), each BatchNorm one
BatchNorm over K times the channels (run k's statistics see only run k's batch). The parameters stay in
each run's own model and are concatenated at every step, so every method hook (a cosine classifier, a
stage that re-initialises or freezes the classifier, a projection after the step) acts on the run's own
model exactly as it would alone; the classifier (`fc`, the only module methods replace) runs per run on
its slice of the pooled features.

Groups never mix: a run's numbers do not depend on the other runs' values, only on K (the shapes the
kernels see, so their summation order). K therefore enters a stacked run's numerics (`stack=K`,
bench/spec.py), and a run that fails (a NaN loss) leaves the others' arithmetic untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from .models import LAYERS, TappedResNet

TRUNK_MODULES = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.Identity,
    nn.MaxPool2d,
    nn.Sequential,
    BasicBlock,
    nn.AdaptiveAvgPool2d,
)


def trunk_problem(model: nn.Module) -> str | None:
    """Why this model's trunk cannot be stacked (it is not the suite's plain ResNet trunk), or None."""
    if not isinstance(model, TappedResNet) or type(model).forward is not TappedResNet.forward:
        return "its model is not the suite's ResNet"
    for name, m in model.named_modules():
        if name == "" or name == "fc" or name.startswith("fc."):
            continue
        if not isinstance(m, TRUNK_MODULES):
            return f"its module {name} is a {type(m).__name__}"
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            return f"its convolution {name} has a bias"
        if isinstance(m, nn.BatchNorm2d) and (m.momentum is None or not m.track_running_stats or not m.affine):
            return f"its BatchNorm {name} is not the default kind"
    return None


def _conv(x: torch.Tensor, convs: list[nn.Conv2d]) -> torch.Tensor:
    c = convs[0]
    weight = torch.cat([m.weight for m in convs])
    return F.conv2d(x, weight, None, c.stride, c.padding, c.dilation, c.groups * len(convs))


def _bn(x: torch.Tensor, bns: list[nn.BatchNorm2d]) -> torch.Tensor:
    """BatchNorm over the K runs' channels; in training mode each run's running statistics are updated
    as its own module would update them."""
    b = bns[0]
    mean = torch.cat([m.running_mean for m in bns])
    var = torch.cat([m.running_var for m in bns])
    weight, bias = torch.cat([m.weight for m in bns]), torch.cat([m.bias for m in bns])
    out = F.batch_norm(x, mean, var, weight, bias, b.training, b.momentum, b.eps)
    if b.training:
        with torch.no_grad():
            for m, mu, v in zip(bns, mean.chunk(len(bns)), var.chunk(len(bns))):
                m.running_mean.copy_(mu)
                m.running_var.copy_(v)
                m.num_batches_tracked.add_(1)
    return out


def _block(x: torch.Tensor, blocks: list[BasicBlock]) -> torch.Tensor:
    """torchvision's BasicBlock for K runs at once."""
    out = F.relu(_bn(_conv(x, [b.conv1 for b in blocks]), [b.bn1 for b in blocks]))
    out = _bn(_conv(out, [b.conv2 for b in blocks]), [b.bn2 for b in blocks])
    if blocks[0].downsample is None:
        identity = x
    else:
        identity = _bn(_conv(x, [b.downsample[0] for b in blocks]), [b.downsample[1] for b in blocks])
    return F.relu(out + identity)


def stacked_forward(
    models: list[TappedResNet], xs: list[torch.Tensor], taps: tuple[str, ...], memory_format
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Each model's `forward(x, taps)` on its own batch, computed as one: (logits, feats) per run."""
    k = len(models)
    x = torch.cat(xs, dim=1).contiguous(memory_format=memory_format)
    x = F.relu(_bn(_conv(x, [m.conv1 for m in models]), [m.bn1 for m in models]))
    x = models[0].maxpool(x)
    feats = {}
    for name in LAYERS:
        for i in range(len(getattr(models[0], name))):
            x = _block(x, [getattr(m, name)[i] for m in models])
        if name in taps:
            feats[name] = x.mean(dim=(2, 3))
    pooled = feats["layer4"] if "layer4" in feats else x.mean(dim=(2, 3))

    def split(f: torch.Tensor) -> list[torch.Tensor]:
        return [p.contiguous() for p in f.view(f.shape[0], k, -1).unbind(1)]

    logits = [m.fc(p) for m, p in zip(models, split(pooled))]
    per_run = {t: split(f) for t, f in feats.items()}
    return logits, [{t: v[i] for t, v in per_run.items()} for i in range(k)]
