"""The one training and evaluation loop that every method runs through.

The whole training subset lives on the device as uint8; each step gathers a batch by index,
augments it on the device (random crop with zero padding, horizontal flip), normalises it and
runs the method's composed loss. The loop knows methods only through the Composite interface
(sampler indices, taps, loss, extra parameters): it never looks at a method's name.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from datasets import TaskData
from methods import Composite, TrainContext

from .metrics import evaluate, separation
from .models import LAYERS, build_model
from .spec import RunSpec


class NonFiniteLoss(RuntimeError):
    pass


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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
        x = (xb.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


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
    """Logits (float32, CPU numpy) and, if asked, pooled features of `x`, in large batches."""
    model.eval()
    logits, feats = [], {t: [] for t in taps}
    for i in range(0, len(x), batch_size):
        with autocast():
            out, f = model(norm(x[i : i + batch_size]), taps)
        logits.append(out.float())
        for t in taps:
            feats[t].append(f[t].float())
    result = torch.cat(logits).cpu().numpy()
    return result, {t: torch.cat(v).cpu().numpy() for t, v in feats.items()}


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

    `compile=True` wraps the training forward in torch.compile; dynamo's cache is keyed by code and
    guards, not by the model instance, so the runs of a grid with the same shapes reuse one compilation."""
    set_determinism(spec.seed)
    cuda = device.type == "cuda"
    bf16 = spec.precision == "bf16" or (spec.precision == "auto" and cuda)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    channels, size = task.train_x.shape[1], task.train_x.shape[2]
    model = build_model(len(task.classes), channels, size, spec.width, spec.weights).to(device)
    # channels_last on every device: cuDNN's tensor-core kernels want NHWC, and on the 2-core CPU the
    # training loop measured ~4% faster with it; the arithmetic is unchanged.
    model = model.to(memory_format=torch.channels_last)
    ctx = TrainContext(class_counts=task.train_counts, feature_dims=model.feature_dims, device=device, seed=spec.seed)
    method.setup(ctx)
    taps = method.taps
    forward = torch.compile(model) if compile else model
    params = list(model.parameters()) + method.parameters()
    opt = torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=True, weight_decay=spec.weight_decay)

    x_train = task.train_x.to(device)
    y_train = task.train_y.to(device)
    labels = task.train_y.numpy()
    norm = Normaliser(task.mean, task.std, device, channels_last=True)
    pad = max(1, round(size / 8))
    gen = torch.Generator(device=device).manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)

    # The budget is a number of optimiser steps, the same for every method and ratio: a sampler
    # that enlarges the epoch (oversampling) gets no extra compute, and a tiny imbalanced set is
    # not under-trained. Epochs are the sampler's unit: a fresh index order whenever one runs out.
    total, warmup = spec.steps, spec.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, total))
    bs = min(spec.batch_size, len(labels))
    log_every = max(1, total // 20)

    history, sums, n_sum, epoch, step = [], {}, 0, 0, 0
    order = torch.empty(0, dtype=torch.int64, device=device)
    pos = 0
    model.train()
    t0 = time.perf_counter()
    while step < total:
        if pos + bs > len(order):  # the sampler's next epoch (drop-last: batches are always full)
            method.on_epoch_start(epoch)
            order = torch.from_numpy(np.asarray(method.epoch_indices(labels, epoch, rng), dtype=np.int64)).to(device)
            epoch, pos = epoch + 1, 0
            if len(order) < bs:
                raise RuntimeError(f"sampler returned {len(order)} indices, fewer than a batch of {bs}")
        idx = order[pos : pos + bs]
        pos += bs
        xb = norm(augment(x_train[idx], pad, gen))
        yb = y_train[idx]
        with autocast():
            logits, feats = forward(xb, taps)
        loss, parts = method.loss(logits, feats, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        for k, v in (("loss", loss), *parts.items()):
            sums[k] = sums.get(k, 0) + v.detach().float()
        n_sum += 1
        if step % log_every == 0 or step == total:
            means = {k: float(v) / n_sum for k, v in sums.items()}  # the only device sync of the loop
            if not math.isfinite(means["loss"]):
                raise NonFiniteLoss(f"loss became {means['loss']} by step {step}; lower --lr or check the method")
            history.append({"step": step, "epoch": epoch, **{k: round(v, 6) for k, v in means.items()}})
            sums, n_sum = {}, 0
            if on_progress:
                on_progress(step, total, means["loss"])
    images = total * bs
    if cuda:
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    logits, feats = predict(model, task.test_x.to(device), norm, eval_batch_size, autocast, LAYERS)
    metrics = evaluate(task.test_y.numpy(), logits, task.train_counts)
    metrics["separation"] = {layer: separation(f, task.test_y.numpy()) for layer, f in feats.items()}
    if features_path is not None:  # pooled layer4 test features, for the report's 2-D embedding
        features_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(features_path, layer4=feats["layer4"].astype(np.float16), labels=task.test_y.numpy())
    if task.val_y is not None and len(task.val_y):  # for model selection; never mixed with the test numbers
        val_logits, _ = predict(model, task.val_x.to(device), norm, eval_batch_size, autocast)
        v = evaluate(task.val_y.numpy(), val_logits, task.train_counts)
        metrics["val"] = {k: v[k] for k in ("per_class_acc", "balanced_acc", "macro_f1", "roc_auc")}
    eval_s = time.perf_counter() - t1
    return {
        "metrics": metrics,
        "history": history,
        "timings": {
            "train_s": round(train_s, 3),
            "eval_s": round(eval_s, 3),
            "train_images": images,
            "steps": total,
            "epochs": epoch,
            "batch_size": bs,
            "images_per_s": round(images / train_s, 1) if train_s > 0 else None,
        },
        "model_info": {"params": sum(p.numel() for p in model.parameters()), "widths": model.widths},
    }
