"""The one training and evaluation loop that every method runs through.

The whole training subset lives on the device as uint8; each step gathers a batch by index,
augments it on the device (random crop with zero padding, horizontal flip), normalises it and
runs the method's composed loss. The loop knows methods only through the Composite interface
(sampler indices, taps, loss, extra parameters): it never looks at a method's name.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from datasets import TaskData
from methods import Composite, Posthoc, Stage, TrainContext, TrainState
from methods.base import epoch_indices

from .metrics import encode_labels, evaluate, separation
from .models import LAYERS, build_model
from .spec import RunSpec, resolved_precision


class NonFiniteLoss(RuntimeError):
    pass


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def augment_pad(size: int) -> int:
    """Random-crop padding: an eighth of the image side (4 px at 32 px), at least 1."""
    return max(1, round(size / 8))


def augment(xb: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding by `pad` and random horizontal flip, for a whole uint8 batch."""
    b, _, h, w = xb.shape
    dev = xb.device
    if pad > 0:
        xp = torch.nn.functional.pad(xb, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=gen)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, :, None]  # (B, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, :]  # (B, 1, W)
        xb = xp[torch.arange(b, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    flip = torch.rand(b, device=dev, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], xb.flip(3), xb)


class Normaliser:
    def __init__(self, mean: list[float], std: list[float], device: torch.device, channels_last: bool):
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255
        self.channels_last = channels_last

    def __call__(self, xb: torch.Tensor) -> torch.Tensor:
        x = (xb.to(torch.get_default_dtype()) - self.mean) / self.std
        # explicit either way: the augmented batch comes out of a permute with NHWC strides, which would
        # send a "contiguous" model down the NHWC kernels anyway
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)


# On the CPU, torch 2.14.1's oneDNN convolution backward corrupts the heap for channels_last inputs
# of 56 px and more at 1/8 width ("free(): invalid next size", exit 134/139; reproduced with a plain
# torch script, so upstream). At 28-32 px no run of the suite ever crashed, and NHWC is kept there only
# so that every CPU record of suite version 2 shares one arithmetic: it buys nothing on the CPU
# (0.98x of NCHW on the 2-core Xeon, `bench perf --layout-check`, results/PERF.md); the next suite
# version can drop it. CUDA: cuDNN's tensor-core kernels want NHWC.
CPU_CHANNELS_LAST_MAX_PX = 32


def use_channels_last(device: torch.device, image_size: int) -> bool:
    """NHWC on CUDA always; on the CPU only for small images (see CPU_CHANNELS_LAST_MAX_PX). The choice
    follows from the spec (device, image size), so records of one key always share it."""
    return device.type == "cuda" or image_size <= CPU_CHANNELS_LAST_MAX_PX


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to zero at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


def set_determinism(seed: int) -> None:
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True  # CUDA runs are fast, not bitwise reproducible


@torch.no_grad()
def predict(model, x: torch.Tensor, norm: Normaliser, batch_size: int, autocast, taps=()):
    """Logits (float32, CPU numpy) and, if asked, pooled features of `x` (uint8, any device), in large batches."""
    model.eval()
    logits, feats = [], {t: [] for t in taps}
    device = norm.mean.device
    for i in range(0, len(x), batch_size):
        with autocast():
            out, f = model(norm(x[i : i + batch_size].to(device)), taps)
        logits.append(out.float())
        for t in taps:
            feats[t].append(f[t].float())
    result = torch.cat(logits).cpu().numpy()
    return result, {t: torch.cat(v).cpu().numpy() for t, v in feats.items()}


def input_statistics(task: TaskData, cfg: dict, channels: int) -> tuple[list[float], list[float]]:
    """The normalisation of the inputs: the pretrained weights' own (their config's mean and std; one
    channel takes the mean of three), else the task's training images'."""
    if cfg.get("mean") and cfg.get("std"):
        fit = lambda v: v if len(v) == channels else [sum(v) / len(v)] * channels  # noqa: E731
        return fit(cfg["mean"]), fit(cfg["std"])
    return task.mean, task.std


def split_budget(total: int, shares: list[float]) -> list[int]:
    """Steps per stage: round(share * total) each, the last stage taking what is left, every stage >= 1
    (a last stage that rounding left empty takes its step from the largest stage: Weight Balancing's
    3% share of a 12-step tiny budget)."""
    if total < len(shares):
        raise ValueError(f"a budget of {total} steps is too small for {len(shares)} stages; raise --steps")
    steps = [max(1, round(s * total)) for s in shares[:-1]]
    while total - sum(steps) < 1:
        steps[steps.index(max(steps))] -= 1
    steps.append(total - sum(steps))
    return steps


def _batch_source(stage: Stage, task: TaskData, device, rng):
    """The training images and labels this stage samples from, on the device (a sampler may resample
    them once, e.g. SMOTE), and their labels as numpy for the sampler."""
    x, y = task.train_x, task.train_y
    if stage.sampler is not None:
        x, y = stage.sampler.prepare(x, y, rng)
    return x.to(device), y.to(device), y.numpy()


def train_and_evaluate(
    spec: RunSpec,
    task: TaskData,
    method: Composite,
    device: torch.device,
    eval_batch_size: int = 1024,
    on_progress: Callable[[int, int, float], None] | None = None,
    compile: bool = False,
    features_path: Path | None = None,
) -> dict:
    """Train one run and return the record's measured part: metrics, loss history, timings.

    The run's step budget is split into the method's stages (one unless a stages method splits
    it); each stage gets a fresh optimiser and learning-rate schedule and trains the parameters it
    names. `compile=True` wraps the training forward in torch.compile; dynamo's cache is keyed by code
    and guards, not by the model instance, so the runs of a grid with the same shapes reuse one
    compilation."""
    set_determinism(spec.seed)
    cuda = device.type == "cuda"
    bf16 = resolved_precision(spec.precision, device) == "bf16"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    channels, size = task.train_x.shape[1], task.train_x.shape[2]
    model = build_model(len(task.classes), channels, size, spec.width, spec.weights)
    method.adapt_model(model)
    nhwc = use_channels_last(device, size)
    model = model.to(device, memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    bs = min(spec.batch_size, len(task.train_y))
    ctx = TrainContext(
        class_counts=task.train_counts,
        feature_dims=model.feature_dims,
        device=device,
        seed=spec.seed,
        total_steps=spec.steps,
        batch_size=bs,
        batch_prior=method.batch_prior(task.train_counts),
    )
    method.setup(ctx)
    stages = method.stages()
    budgets = split_budget(spec.steps, [s.share for s in stages])
    forward = torch.compile(model) if compile else model
    mean, std = input_statistics(task, model.pretrained_cfg, channels)
    norm = Normaliser(mean, std, device, channels_last=nhwc)
    pad = augment_pad(size)
    gen = torch.Generator(device=device).manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    total = spec.steps
    history, step, epoch = [], 0, 0
    stage_log = []
    t0 = time.perf_counter()
    for stage, n_steps in zip(stages, budgets):
        if stage.on_start:
            stage.on_start(model)
        trainable = stage.trainable(model) if stage.trainable else list(model.parameters())
        wanted = {id(p) for p in trainable}
        for p in model.parameters():
            p.requires_grad_(id(p) in wanted)
        params = trainable + stage.parameters()
        decay = spec.weight_decay if stage.weight_decay is None else stage.weight_decay
        opt = torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=True, weight_decay=decay)
        # Warm-up in proportion to the stage's share of the budget, then cosine decay to zero (a method
        # may replace the factor, e.g. DRW's step levels); set before every step as LambdaLR would.
        warmup = round(spec.warmup_steps * n_steps / total)
        model.train(stage.bn_training)
        x_train, y_train, labels = _batch_source(stage, task, device, rng)
        b = min(bs, len(labels))
        log_every = max(1, n_steps // 20)
        order = torch.empty(0, dtype=torch.int64, device=device)
        pos, sums, n_sum, stage_epochs = 0, {}, 0, 0
        for k in range(n_steps):
            state = TrainState(step=step, total_steps=total, stage=stage.name, stage_step=k, stage_steps=n_steps)
            for part in stage.parts:
                part.on_step(state)
            if pos + b > len(order):  # the sampler's next epoch (drop-last: batches are always full)
                idx_np = np.asarray(epoch_indices(stage.sampler, labels, stage_epochs, rng), dtype=np.int64)
                order = torch.from_numpy(idx_np).to(device)
                epoch, stage_epochs, pos = epoch + 1, stage_epochs + 1, 0
                if len(order) < b:
                    raise RuntimeError(f"sampler returned {len(order)} indices, fewer than a batch of {b}")
            idx = order[pos : pos + b]
            pos += b
            xb_u8, yb = x_train[idx], y_train[idx]
            views = [  # two or three for contrastive stages
                norm(aug(xb_u8, gen) if (aug := stage.view_augment(v)) else augment(xb_u8, pad, gen))
                for v in range(stage.views)
            ]
            xb = views[0] if len(views) == 1 else torch.cat(views)
            yb = yb.repeat(len(views))
            targets = yb
            if stage.transform is not None:
                xb, targets = stage.transform(xb, yb)
            with autocast():
                logits, feats = forward(xb, stage.taps)
            loss, parts = stage.loss(logits, feats, targets, yb, state)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            rate = spec.lr * stage.lr_factor(state, lr_factor(k, warmup, n_steps))
            for group in opt.param_groups:
                group["lr"] = rate
            opt.step()
            if stage.project is not None:
                with torch.no_grad():
                    stage.project(model)
            step += 1
            for key, v in (("loss", loss), *parts.items()):
                sums[key] = sums.get(key, 0) + v.detach().float()
            n_sum += 1
            if (k + 1) % log_every == 0 or k + 1 == n_steps:
                means = {key: float(v) / n_sum for key, v in sums.items()}  # the only device sync of the loop
                if not math.isfinite(means["loss"]):
                    raise NonFiniteLoss(f"loss became {means['loss']} by step {step}; lower --lr or check the method")
                entry = {"step": step, "epoch": epoch, **{key: round(v, 6) for key, v in means.items()}}
                history.append(entry | ({"stage": stage.name} if len(stages) > 1 else {}))
                sums, n_sum = {}, 0
                if on_progress:
                    on_progress(step, total, means["loss"])
        if stage.on_end:
            stage.on_end(model)
        stage_log.append({"name": stage.name, "steps": n_steps, "train_images": n_steps * b * stage.views})
    for p in model.parameters():
        p.requires_grad_(True)
    images = sum(s["train_images"] for s in stage_log)
    if cuda:
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    metrics = evaluate_model(model, method.posthoc, task, norm, eval_batch_size, autocast, features_path)
    train_logits, _ = predict(model, task.train_x, norm, eval_batch_size, autocast)
    fit = evaluate(task.train_y.numpy(), train_logits, task.train_counts)
    metrics["bn_balanced"] = balanced_bn_metrics(
        model, method.posthoc, metrics, task, norm, bs, eval_batch_size, autocast
    )
    eval_s = time.perf_counter() - t1
    return {
        "metrics": metrics,
        "history": history,
        "convergence": convergence(history, stage_log, fit),
        "timings": {
            "train_s": round(train_s, 3),
            "eval_s": round(eval_s, 3),
            "train_images": images,
            "steps": total,
            "epochs": epoch,
            "batch_size": bs,
            "stages": stage_log,
            "images_per_s": round(images / train_s, 1) if train_s > 0 else None,
        },
        "model_info": {"params": sum(p.numel() for p in model.parameters()), "widths": model.widths}
        | ({"weights": model.weights_info, "input_mean": mean, "input_std": std} if model.weights_info else {}),
    }


FLAT_DROP = 0.10  # a stage's smoothed loss fell by less than this fraction over its last 20% of steps


def convergence(history: list[dict], stage_log: list[dict], fit: dict) -> dict:
    """Whether training had finished learning: per stage, the relative drop of the logged loss (each entry a
    mean over 1/20 of the stage) from the stage's 60-80% window to its last 20%; and how well the model
    fits its own (un-augmented) training images. A cosine schedule flattens the loss near the end of any
    budget, so the drop alone can call a short budget flat: the training fit and the budget study
    (accuracy against budget) are the stronger evidence."""
    stages = {}
    multi = len(stage_log) > 1
    for st in stage_log:
        losses = [h["loss"] for h in history if not multi or h.get("stage") == st["name"]]
        k = max(1, len(losses) // 5)
        if len(losses) < 2 * k:
            continue
        before, last = float(np.mean(losses[-2 * k : -k])), float(np.mean(losses[-k:]))
        drop = (before - last) / before if before > 0 else 0.0
        stages[st["name"]] = {"final_loss": round(last, 6), "loss_drop_last20": round(drop, 4)}
    return {
        "stages": stages,
        "loss_flat": all(s["loss_drop_last20"] < FLAT_DROP for s in stages.values()),
        "train_balanced_acc": round(float(fit["balanced_acc"]), 6),
        "train_per_class_acc": [round(float(a), 6) for a in fit["per_class_acc"]],
    }


def _posthoc_logits(posthoc: Posthoc | None, logits, feats, model, value):
    if posthoc is None:
        return logits
    out = posthoc.apply(torch.from_numpy(logits), torch.from_numpy(feats), model, value)
    return out.detach().float().cpu().numpy()


def choose_posthoc(posthoc: Posthoc, model, task: TaskData, norm, batch_size, autocast) -> dict:
    """The post-hoc method's value: chosen by balanced accuracy on the validation split when the run
    holds one out (ties go to the value nearest the default), else the default. Never the test set."""
    default = getattr(posthoc, posthoc.choice) if posthoc.choice else None
    grid = tuple(posthoc.grid()) or (default,)
    if posthoc.choice is None or task.val_y is None or not len(task.val_y) or len(grid) < 2:
        return {"value": default, "chosen_on": "default"}
    logits, feats = predict(model, task.val_x, norm, batch_size, autocast, ("layer4",))
    y = task.val_y.numpy()
    scores = {
        v: evaluate(y, _posthoc_logits(posthoc, logits, feats["layer4"], model, v), task.train_counts)["balanced_acc"]
        for v in grid
    }
    best = max(scores, key=lambda v: (scores[v], -abs(v - default)))
    return {
        "value": best,
        "chosen_on": "validation",
        "val_balanced_acc": {str(v): round(s, 6) for v, s in scores.items()},
    }


def evaluate_model(model, posthoc, task: TaskData, norm, batch_size, autocast, features_path=None) -> dict:
    """Test metrics (after the post-hoc step, if any), feature separation, and validation metrics."""
    choice = choose_posthoc(posthoc, model, task, norm, batch_size, autocast) if posthoc else None
    logits, feats = predict(model, task.test_x, norm, batch_size, autocast, LAYERS)
    y = task.test_y.numpy()
    final_logits = _posthoc_logits(posthoc, logits, feats["layer4"], model, choice and choice["value"])
    metrics = evaluate(y, final_logits, task.train_counts)
    # every test image's label and prediction: the report pairs two methods image by image when it puts
    # the test set's sampling error into an interval
    labels, predictions = encode_labels(y), encode_labels(final_logits.argmax(axis=1))
    if labels is not None and predictions is not None:
        metrics["test_outcome"] = {"labels": labels, "predictions": predictions}
    if choice:
        metrics["posthoc"] = {"method": posthoc.name, posthoc.choice or "value": choice.pop("value"), **choice}
        metrics["before_posthoc"] = {
            k: v for k, v in evaluate(y, logits, task.train_counts).items() if k in SHORT_METRICS
        }
    metrics["separation"] = {layer: separation(f, y) for layer, f in feats.items()}
    if features_path is not None:  # pooled layer4 test features, for the report's 2-D embedding
        features_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(features_path, layer4=feats["layer4"].astype(np.float16), labels=y)
    if task.val_y is not None and len(task.val_y):  # for model selection; never mixed with the test numbers
        val_logits, val_feats = predict(model, task.val_x, norm, batch_size, autocast, ("layer4",))
        value = metrics.get("posthoc", {}).get(posthoc.choice or "value") if posthoc else None
        val_logits = _posthoc_logits(posthoc, val_logits, val_feats["layer4"], model, value)
        v = evaluate(task.val_y.numpy(), val_logits, task.train_counts)
        metrics["val"] = {k: v[k] for k in SHORT_METRICS}
    return metrics


SHORT_METRICS = ("per_class_acc", "balanced_acc", "macro_f1", "roc_auc")
BN_IMAGES_PER_CLASS = 1024


@torch.no_grad()
def balanced_bn_metrics(model, posthoc, metrics, task: TaskData, norm, batch_size, eval_batch_size, autocast) -> dict:
    """A diagnostic: test metrics after re-estimating the BatchNorm running statistics on a
    class-balanced pass over the training images (the same number of images of every class, drawn
    with replacement: min(largest class, 1024) each, un-augmented, in shuffled batches of the training
    batch size, averaged over batches). It tells how much of a method's result comes from the
    statistics BatchNorm saw in training (os: about half minority; ce: the training prior) rather
    than from its weights. The model itself is not changed."""
    bn_model = copy.deepcopy(model)
    bns = [m for m in bn_model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return {}
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass
    y = task.train_y.numpy()
    per_class = min(int(np.bincount(y).max()), BN_IMAGES_PER_CLASS)
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class) for c in range(len(task.classes))])
    idx = torch.from_numpy(rng.permutation(idx))
    bn_model.train()
    device = norm.mean.device
    for i in range(0, len(idx) - batch_size + 1, batch_size):
        with autocast():
            bn_model(norm(task.train_x[idx[i : i + batch_size]].to(device)))
    logits, feats = predict(bn_model, task.test_x, norm, eval_batch_size, autocast, ("layer4",))
    value = metrics.get("posthoc", {}).get(posthoc.choice or "value") if posthoc else None
    m = evaluate(
        task.test_y.numpy(), _posthoc_logits(posthoc, logits, feats["layer4"], bn_model, value), task.train_counts
    )
    return {k: m[k] for k in SHORT_METRICS} | {"images_per_class": per_class}
