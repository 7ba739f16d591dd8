"""K runs of one architecture trained as one grouped model (a lever toward the GPU's limit, issue 15).

A quick-preset run is launch-bound on a GPU: each of its kernels is too small to fill the chip. K
runs of the same architecture can share every kernel instead: each convolution becomes one grouped
convolution with K groups (run k's filters are group k), each BatchNorm one BatchNorm over K times the
channels (so run k's statistics see only run k's batch), the classifier one batched matrix product.
Every run keeps its own data, sampler, augmentation generator, method and seed; its loss is computed on
its own slice and the K losses are summed, so each run's gradient is what it would be alone (their
parameters are disjoint) and one SGD step updates them all exactly as K separate steps would (momentum,
Nesterov and weight decay act element by element).

The arithmetic is not bit-identical to K separate runs (a grouped convolution sums in another order):
`tests/test_batched.py` states the tolerance on the CPU. Runs that change the classifier, split the
budget into stages, or train on two views are not batched (`batchable` says why).
"""

from __future__ import annotations

import contextlib
import copy
import time

import numpy as np
import torch
from torch import nn

from datasets import TaskData
from methods import Composite, TrainContext, TrainState
from methods.base import epoch_indices

from .models import build_model
from .spec import RunSpec, resolved_precision
from .train import Normaliser, augment, augment_pad, balanced_bn_metrics, evaluate_model, lr_factor, use_channels_last

SHARED_FIELDS = ("width", "steps", "batch_size", "lr", "weight_decay", "momentum", "warmup_steps", "precision")


def batchable(specs: list[RunSpec], tasks: list[TaskData], methods: list[Composite]) -> str | None:
    """Why these runs cannot be trained as one grouped model, or None when they can."""
    first = specs[0]
    for s in specs[1:]:
        diff = [f for f in SHARED_FIELDS if getattr(s, f) != getattr(first, f)]
        if diff:
            return f"their {', '.join(diff)} differ"
    if len({tuple(t.train_x.shape[1:]) for t in tasks}) > 1 or len({len(t.classes) for t in tasks}) > 1:
        return "their images or classes differ in shape"
    if any(s.weights for s in specs):
        return "a run starts from --weights"
    for m in methods:
        if any(p.changes_classifier for p in m.parts):
            return f"{m.name} changes the classifier"
        stages = m.stages()
        if len(stages) > 1 or stages[0].views != 1:
            return f"{m.name} trains in stages or on several views"
    return None


class GroupedLinear(nn.Module):
    """K linear classifiers applied to K slices of the features: (B, K*D) -> (B, K, C)."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.k = len(layers)
        self.weight = nn.Parameter(torch.stack([fc.weight.detach().clone() for fc in layers]))  # (K, C, D)
        self.bias = nn.Parameter(torch.stack([fc.bias.detach().clone() for fc in layers]))  # (K, C)

    def forward(self, x):
        return torch.einsum("bkd,kcd->bkc", x.view(x.shape[0], self.k, -1), self.weight) + self.bias


def group_models(models: list[nn.Module]) -> nn.Module:
    """One model computing all K: a copy of models[0] whose convolutions, BatchNorms and classifier
    hold the K models' parameters side by side (run k = group k). Its forward takes (B, K*C, H, W)."""
    k = len(models)
    grouped = copy.deepcopy(models[0])
    for name, module in models[0].named_modules():
        parts = [m.get_submodule(name) for m in models]
        if isinstance(module, nn.Conv2d):
            new = nn.Conv2d(
                module.in_channels * k, module.out_channels * k, module.kernel_size, module.stride, module.padding,
                module.dilation, groups=module.groups * k, bias=False,
            )  # fmt: skip
            new.weight.data = torch.cat([p.weight.detach() for p in parts]).clone()
        elif isinstance(module, nn.BatchNorm2d):
            new = nn.BatchNorm2d(module.num_features * k, module.eps, module.momentum)
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(new, attr).data = torch.cat([getattr(p, attr).detach() for p in parts]).clone()
            new.num_batches_tracked.copy_(module.num_batches_tracked)
        elif name == "fc":
            new = GroupedLinear(parts)
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(grouped.get_submodule(parent_name) if parent_name else grouped, child, new)
    return grouped.to(next(models[0].parameters()).device)


@torch.no_grad()
def ungroup(grouped: nn.Module, models: list[nn.Module]) -> None:
    """Copy each run's slice of the grouped parameters and statistics back into its own model."""
    k = len(models)
    for name, module in grouped.named_modules():
        if isinstance(module, nn.Conv2d):
            for i, w in enumerate(module.weight.chunk(k)):
                models[i].get_submodule(name).weight.copy_(w)
        elif isinstance(module, nn.BatchNorm2d):
            for attr in ("weight", "bias", "running_mean", "running_var"):
                for i, v in enumerate(getattr(module, attr).chunk(k)):
                    getattr(models[i].get_submodule(name), attr).copy_(v)
            for m in models:
                m.get_submodule(name).num_batches_tracked.copy_(module.num_batches_tracked)
        elif isinstance(module, GroupedLinear):
            for i, m in enumerate(models):
                m.get_submodule(name).weight.copy_(module.weight[i])
                m.get_submodule(name).bias.copy_(module.bias[i])


def train_batched(
    specs: list[RunSpec], tasks: list[TaskData], methods: list[Composite], device: torch.device, eval_batch_size=1024
) -> list[dict]:
    """Train K compatible runs as one grouped model; return each run's measured part, as
    `train.train_and_evaluate` would (metrics, loss history, timings)."""
    why = batchable(specs, tasks, methods)
    if why:
        raise ValueError(f"these runs cannot be batched: {why}")
    spec0, k = specs[0], len(specs)
    bf16 = resolved_precision(spec0.precision, device) == "bf16"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    channels, size = tasks[0].train_x.shape[1], tasks[0].train_x.shape[2]
    nhwc = use_channels_last(device, size)
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    models, runs = [], []
    for spec, task, method in zip(specs, tasks, methods):  # each run set up exactly as it would be alone
        torch.manual_seed(spec.seed)
        model = build_model(len(task.classes), channels, size, spec.width)
        method.adapt_model(model)
        model = model.to(device, memory_format=fmt)
        bs = min(spec.batch_size, len(task.train_y))
        prior = method.batch_prior(task.train_counts)
        ctx = TrainContext(task.train_counts, model.feature_dims, device, spec.seed, spec.steps, bs, prior)
        method.setup(ctx)
        stage = method.stages()[0]
        rng = np.random.default_rng(spec.seed)
        x, y = task.train_x, task.train_y
        if stage.sampler is not None:
            x, y = stage.sampler.prepare(x, y, rng)
        runs.append(
            {
                "stage": stage,
                "norm": Normaliser(task.mean, task.std, device, channels_last=nhwc),
                "gen": torch.Generator(device=device).manual_seed(spec.seed),
                "rng": rng,
                "x": x.to(device),
                "y": y.to(device),
                "labels": y.numpy(),
                "bs": bs,
                "order": torch.empty(0, dtype=torch.int64, device=device),
                "pos": 0,
                "epochs": 0,
                "history": [],
                "sums": {},
            }
        )
        models.append(model)
    if len({r["bs"] for r in runs}) > 1:
        raise ValueError("these runs cannot be batched: their batch sizes differ (a training set smaller than a batch)")
    grouped = group_models(models).to(memory_format=fmt)
    params = list(grouped.parameters()) + [p for r in runs for p in r["stage"].parameters()]
    opt = torch.optim.SGD(
        params, lr=spec0.lr, momentum=spec0.momentum, nesterov=True, weight_decay=spec0.weight_decay
    )  # fmt: skip
    total, warmup, bs = spec0.steps, spec0.warmup_steps, runs[0]["bs"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, total))
    log_every = max(1, total // 20)
    taps = tuple(sorted({t for r in runs for t in r["stage"].taps}))
    grouped.train()
    t0 = time.perf_counter()
    for step in range(total):
        state = TrainState(
            step=step, total_steps=total, stage=runs[0]["stage"].name, stage_step=step, stage_steps=total
        )
        batches = []
        for r in runs:
            for part in r["stage"].parts:
                part.on_step(state)
            if r["pos"] + bs > len(r["order"]):
                idx = np.asarray(epoch_indices(r["stage"].sampler, r["labels"], r["epochs"], r["rng"]), dtype=np.int64)
                r["order"], r["pos"], r["epochs"] = torch.from_numpy(idx).to(device), 0, r["epochs"] + 1
            idx = r["order"][r["pos"] : r["pos"] + bs]
            r["pos"] += bs
            xb, yb = r["norm"](augment(r["x"][idx], augment_pad(size), r["gen"])), r["y"][idx]
            targets = yb
            if r["stage"].transform is not None:
                xb, targets = r["stage"].transform(xb, yb)
            batches.append((xb, yb, targets))
        x = torch.cat([b[0] for b in batches], dim=1).contiguous(memory_format=fmt)
        with autocast():
            logits, feats = grouped(x, taps)
        losses = []
        for i, (r, (_, yb, targets)) in enumerate(zip(runs, batches)):
            run_feats = {t: f.view(f.shape[0], k, -1)[:, i] for t, f in feats.items()}
            loss, parts = r["stage"].loss(logits[:, i], run_feats, targets, yb, state)
            losses.append(loss)
            for key, v in (("loss", loss), *parts.items()):
                r["sums"][key] = r["sums"].get(key, 0) + v.detach().float()
        opt.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step + 1 == total:
            n = log_every if (step + 1) % log_every == 0 else (step + 1) % log_every
            for r in runs:
                means = {key: float(v) / n for key, v in r["sums"].items()}
                entry = {"step": step + 1, "epoch": r["epochs"], **{key: round(v, 6) for key, v in means.items()}}
                r["history"].append(entry)
                r["sums"] = {}
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0
    ungroup(grouped, models)
    out = []
    for task, method, model, r in zip(tasks, methods, models, runs):
        t1 = time.perf_counter()
        metrics = evaluate_model(model, method.posthoc, task, r["norm"], eval_batch_size, autocast)
        metrics["bn_balanced"] = balanced_bn_metrics(
            model, method.posthoc, metrics, task, r["norm"], bs, eval_batch_size, autocast
        )  # fmt: skip
        out.append(
            {
                "metrics": metrics,
                "history": r["history"],
                "timings": {
                    "train_s": round(train_s / k, 3),  # the group's time, shared equally
                    "eval_s": round(time.perf_counter() - t1, 3),
                    "train_images": total * bs,
                    "steps": total,
                    "epochs": r["epochs"],
                    "batch_size": bs,
                    "batched_with": k,
                },
                "model_info": {"params": sum(p.numel() for p in model.parameters()), "widths": model.widths},
            }
        )
    return out
