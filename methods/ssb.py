"""The Square-root Sampling Branch (Cunha et al., Ecological Informatics 2023): the camera-trap study's
best trade-off between rare and common species.

Stage one ("representation", 1 - share of the budget) trains the whole model with the composition's
sampler and criterion (instance sampling and CE by default). Stage two ("sqrt_branch", share) freezes
the backbone, adds a second, freshly initialised linear classifier and trains only it with square-root
sampling (class probability proportional to sqrt(n_c)) and CE; the first classifier is kept. At
evaluation each branch's softmax is masked and the two are added: the instance branch answers for the
frequent classes (at least `many_shot` training images) and the square-root branch for the others,
p_c = [n_c >= many_shot] softmax(z_inst)_c + [n_c < many_shot] softmax(z_sqrt)_c; the model's logits
are log p_c (not renormalised, as in the authors' prediction model; the argmax is theirs). The threshold
is the authors' absolute 1000 images, made for camera-trap sets of many thousands: on the suite's small
sets (animals: 800 images in the largest class) no class reaches it and the square-root branch answers
for every class, so `ssb` is then cRT with square-root instead of class-balanced sampling and frozen
BatchNorm statistics; `--set ssb.many_shot=N` sets the bin.

Compared with the authors' code (alcunha/bagoftricks4cameratraps, TensorFlow 2.5, which this machine
cannot run: compared by formula, tests/test_new_baselines.py): their `SquareRootSamplingBranch` masks
with the classes of the last frequency bin (n_c >= 1000 training images, `_get_bin`), their second
stage freezes the base model with `training=False` (BatchNorm keeps the first stage's statistics: the
default `bn=eval` here) and runs 12 epochs after a 30-epoch first stage (share 0.286, 12/42). Their
square-root sampler rejection-resamples an instance stream to class shares sqrt(n_c) / sum sqrt(n);
the suite's `sqrt` sampler draws a class with those shares, then an image of it uniformly (same
expected shares). Named differences: their optimiser is AdamW (lr 1e-5) with RandAugment on
EfficientNet/ResNet-50 at 224 px; here every method gets the preset's SGD and augmentation.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import Stage, Stages, TrainContext, hp, register
from .ce import CE
from .class_aware import SquareRootSampling

AUTHORS_SHARE = 0.286  # 12/42: 12 epochs of the frozen square-root stage after 30 epochs of the first


class SquareRootBranchClassifier(nn.Module):
    """Two linear heads on the same features. While stage two trains: the square-root branch's logits (the
    only head that trains); once it is done (`joined`): the log of the masked sum of both branches' softmax."""

    def __init__(self, instance: nn.Module, instance_classes: torch.Tensor):
        super().__init__()
        self.instance = instance
        self.sqrt = nn.Linear(instance.in_features, instance.out_features).to(instance.weight.device)
        self.register_buffer("instance_mask", instance_classes.to(instance.weight.device, torch.float32))
        self.joined = False

    def forward(self, x):
        z_sqrt = self.sqrt(x)
        if not self.joined:
            return z_sqrt
        return torch.log(ssb_probabilities(self.instance(x), z_sqrt, self.instance_mask))


def ssb_probabilities(z_instance: torch.Tensor, z_sqrt: torch.Tensor, instance_mask: torch.Tensor) -> torch.Tensor:
    """p_c = m_c softmax(z_instance)_c + (1 - m_c) softmax(z_sqrt)_c (m: 1 for the frequent classes)."""
    m = instance_mask.to(z_instance.dtype)
    return F.softmax(z_instance, dim=1) * m + F.softmax(z_sqrt, dim=1) * (1 - m)


def _join(model: nn.Module) -> None:
    model.fc.joined = True


@register
class SquareRootSamplingBranch(Stages):
    name = "ssb"
    summary = "square-root sampling branch: a second classifier trained on frozen features with sqrt sampling"
    paper = (
        "Cunha et al., Bag of tricks for long-tail visual recognition of animal species in camera-trap images, "
        "Ecological Informatics 2023"
    )
    changes_classifier = True
    rebalances_classifier = True
    search_space = {"share": (0.1, AUTHORS_SHARE, 0.5)}
    share: float = hp(AUTHORS_SHARE, gt=0, lt=1)
    many_shot: int = hp(1000, ge=1, help="training images from which a class is answered by the instance branch")
    bn: Literal["train", "eval"] = "eval"

    def setup(self, ctx: TrainContext) -> None:
        self._instance_classes = torch.tensor([n >= self.many_shot for n in ctx.class_counts])

    def _add_branch(self, model: nn.Module) -> None:
        model.fc = SquareRootBranchClassifier(model.fc, self._instance_classes)

    def stages(self, comp):
        return [
            comp.main_stage("representation", 1 - self.share),
            Stage(
                "sqrt_branch",
                self.share,
                sampler=SquareRootSampling(),
                criterion=CE(),
                trainable=lambda m: list(m.fc.sqrt.parameters()),
                on_start=self._add_branch,
                on_end=_join,
                train_bn=self.bn == "train",
            ),
        ]
