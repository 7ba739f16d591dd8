"""Evaluation of a trained model: test and validation metrics (after the post-hoc step), feature
separation, the class-balanced BatchNorm diagnostic, and whether training had finished learning."""

from __future__ import annotations

import copy

import numpy as np
import torch

from datasets import TaskData
from methods import Posthoc

from .metrics import evaluate, image_outcomes, separation
from .models import LAYERS


@torch.no_grad()
def predict(model, x: torch.Tensor, norm, batch_size: int, autocast, taps=()):
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


def posthoc_logits(posthoc: Posthoc | None, logits, feats, model, value):
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
        v: evaluate(y, posthoc_logits(posthoc, logits, feats["layer4"], model, v), task.train_counts)["balanced_acc"]
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
    final_logits = posthoc_logits(posthoc, logits, feats["layer4"], model, choice and choice["value"])
    metrics = evaluate(y, final_logits, task.train_counts)
    # every test image's label, prediction and probabilities: the report pairs two methods image by image
    # (the test set's sampling error) and computes calibration and the review queue from them
    if len(task.classes) <= 36:  # one character per label in the record
        metrics["test_outcome"] = image_outcomes(y, final_logits, task.test_index)
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
        val_logits = posthoc_logits(posthoc, val_logits, val_feats["layer4"], model, value)
        v = evaluate(task.val_y.numpy(), val_logits, task.train_counts)
        metrics["val"] = {k: v[k] for k in SHORT_METRICS}
        if len(task.classes) <= 36:  # for fitting a temperature on validation, never on the test images
            metrics["val_outcome"] = image_outcomes(task.val_y.numpy(), val_logits, task.val_index)
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
        task.test_y.numpy(), posthoc_logits(posthoc, logits, feats["layer4"], bn_model, value), task.train_counts
    )
    return {k: m[k] for k in SHORT_METRICS} | {"images_per_class": per_class}
