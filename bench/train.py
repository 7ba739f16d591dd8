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
from methods import Composite, TrainContext, TrainState
from methods.base import epoch_indices

from .evaluation import balanced_bn_metrics, convergence, evaluate_model, predict
from .metrics import evaluate
from .models import build_model
from .spec import RunSpec, resolved_precision
from .stacking import stacked_forward, trunk_problem


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


STEP_CUTS = ((0.8, 1.0), (0.9, 0.01), (math.inf, 0.0001))  # schedule=step: (until this share of the budget, factor)


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine") -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to zero at `total`, or with schedule `step` the
    LDAM-DRW authors' levels (STEP_CUTS, bench/spec.py SCHEDULES)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "step":
        return next(factor for until, factor in STEP_CUTS if step < until * total)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


def set_determinism(seed: int) -> None:
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True  # CUDA runs are fast, not bitwise reproducible


def input_statistics(task: TaskData, cfg: dict, channels: int) -> tuple[list[float], list[float]]:
    """The normalisation of the inputs: the pretrained weights' own (their config's mean and std; one
    channel takes the mean of three), else the task's training images'."""
    if cfg.get("mean") and cfg.get("std"):
        fit = lambda v: v if len(v) == channels else [sum(v) / len(v)] * channels  # noqa: E731
        return fit(cfg["mean"]), fit(cfg["std"])
    return task.mean, task.std


class FrozenCache:
    """The frozen part's outputs for every training image of a stage, computed once (`--augment none` with
    `--tune head` or `last:N`): frozen parts keep their weights and BatchNorm statistics (eval mode), so
    without augmentation each image's frozen output is the same at every step. A step then gathers the
    batch's rows and runs only the trained stages (`model.forward_from`). The arithmetic is the uncached
    path's up to the order of sums in batches of another size (tests/test_frozen_cache.py)."""

    CHUNK = 512

    def __init__(self, model, depth: int, x_u8: torch.Tensor, norm: Normaliser, autocast, source: torch.Tensor):
        self.depth, self.source = depth, source  # `source`: the images it was made from (stages may share it)
        outs, feats = [], {}
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast():
            for i in range(0, len(x_u8), self.CHUNK):
                h, f = model.frozen_prefix(norm(x_u8[i : i + self.CHUNK]), depth)
                outs.append(h.float())
                for k, v in f.items():
                    feats.setdefault(k, []).append(v.float())
        model.train(was_training)
        self.h = torch.cat(outs)
        self.feats = {k: torch.cat(v) for k, v in feats.items()}

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.h[idx], {k: v[idx] for k, v in self.feats.items()}


def cache_problem(spec: RunSpec, stage, model, stacked: bool) -> str | None:
    """Why a stage cannot use the frozen-trunk cache, or None (recorded in the run's timings)."""
    if spec.tune == "full":
        return "nothing is frozen (--tune full)"
    if spec.augment != "none":
        return f"the images are augmented every step (--augment {spec.augment}; none allows the cache)"
    if stacked:
        return "a stack computes its trunks as one model"
    if not hasattr(model, "forward_from"):
        return "only the suite's resnet18 has a cached path"
    if stage.transform is not None:
        return "the method transforms the images every step (e.g. mixup)"
    if stage.views > 1 or stage.view_augment(0) is not None:
        return "the method trains on augmented views"
    return None


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


class _Run:
    """One run's own part of the loop: its model, method, data, generators, log and failure. In a stack
    each run's work is done inside `own_rng()`, so torch's global generator (classifier re-initialisation,
    a method's random draws) gives each run the stream it would have alone."""

    def __init__(
        self, spec: RunSpec, task: TaskData, method: Composite, device, nhwc: bool, on_progress, stacked,
        cache_frozen: bool = True,
    ):  # fmt: skip
        self.spec, self.task, self.method, self.on_progress = spec, task, method, on_progress
        self.stacked, self.device, self.error = stacked, device, None
        self.cache_frozen, self.cache, self.cache_log = cache_frozen, None, []
        self._rng_state = None
        with self.own_rng():
            set_determinism(spec.seed)
            channels, size = task.train_x.shape[1], task.train_x.shape[2]
            self.model = build_model(
                len(task.classes), channels, size, spec.width, spec.weights, spec.model, spec.image_size is not None
            )
            method.adapt_model(self.model)
            self.model = self.model.to(device, memory_format=torch.channels_last if nhwc else torch.contiguous_format)
            self.bs = min(spec.batch_size, len(task.train_y))
            ctx = TrainContext(
                class_counts=task.train_counts,
                feature_dims=self.model.feature_dims,
                device=device,
                seed=spec.seed,
                total_steps=spec.steps,
                batch_size=self.bs,
                batch_prior=method.batch_prior(task.train_counts),
            )
            method.setup(ctx)
            self.stages = method.stages()
            self.budgets = split_budget(spec.steps, [s.share for s in self.stages])
            self.mean, self.std = input_statistics(task, self.model.pretrained_cfg, channels)
            self.norm = Normaliser(self.mean, self.std, device, channels_last=nhwc)
            self.pad = augment_pad(size)
            self.gen = torch.Generator(device=device).manual_seed(spec.seed)
            self.rng = np.random.default_rng(spec.seed)
        self.history, self.stage_log, self.epoch = [], [], 0

    @contextlib.contextmanager
    def own_rng(self):
        """torch's global generator set to this run's stream for the block (alone: left as it is)."""
        if not self.stacked:
            yield
            return
        cuda = self.device.type == "cuda"
        outer = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if cuda else None)
        if self._rng_state is not None:
            torch.set_rng_state(self._rng_state[0])
            if cuda:
                torch.cuda.set_rng_state(self._rng_state[1], self.device)
        try:
            yield
        finally:
            self._rng_state = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if cuda else None)
            torch.set_rng_state(outer[0])
            if cuda:
                torch.cuda.set_rng_state(outer[1], self.device)

    def fail(self, error: Exception) -> None:
        """Alone, a failure ends the run (the exception goes up); in a stack it ends this run only."""
        if not self.stacked:
            raise error
        self.error = self.error or error

    def begin_stage(self, index: int, n_steps: int) -> None:
        """The stage's hooks, trainable parameters, BatchNorm mode and batch source."""
        self.stage, self.n_steps = self.stages[index], n_steps
        stage, model = self.stage, self.model
        if stage.on_start:
            stage.on_start(model)
        trainable = stage.trainable(model) if stage.trainable else list(model.parameters())
        frozen = model.frozen_modules(self.spec.tune)
        untrained = {id(p) for part in frozen for p in part.parameters()}
        trainable = [p for p in trainable if id(p) not in untrained]
        wanted = {id(p) for p in trainable}
        for p in model.parameters():
            p.requires_grad_(id(p) in wanted)
        decay = self.spec.weight_decay if stage.weight_decay is None else stage.weight_decay
        self.param_group = {"params": trainable + stage.parameters(), "weight_decay": decay}
        # Warm-up in proportion to the stage's share of the budget, then the run's schedule over the stage
        # (cosine, or the authors' steps; a method may replace the factor, e.g. DRW's step levels).
        self.warmup = round(self.spec.warmup_steps * n_steps / self.spec.steps)
        model.train(stage.bn_training)
        for part in frozen:  # frozen parts keep their (pretrained) BatchNorm statistics: eval mode
            part.eval()
        x, y = self.task.train_x, self.task.train_y
        if stage.sampler is not None:  # a sampler may resample the training set once (SMOTE)
            x, y = stage.sampler.prepare(x, y, self.rng)
        self.x_train, self.y_train, self.labels = x.to(self.device), y.to(self.device), y.numpy()
        why = cache_problem(self.spec, stage, model, self.stacked) if self.cache_frozen else "turned off"
        if why:
            self.cache = None
        elif self.cache is None or self.cache.source is not x:  # stages on the same images share one cache
            depth = model.frozen_depth(self.spec.tune)
            self.cache = FrozenCache(model, depth, self.x_train, self.norm, self.autocast, source=x)
        self.cache_log.append({"stage": stage.name, "frozen_cache": why or "on"})
        self.b = min(self.bs, len(self.labels))
        self.log_every = max(1, n_steps // 20)
        self.order = torch.empty(0, dtype=torch.int64, device=self.device)
        self.pos, self.sums, self.n_sum, self.stage_epochs = 0, {}, 0, 0

    def next_batch(self, state: TrainState) -> None:
        """The step's hooks, then its batch: sampled, augmented (one or more views), transformed."""
        stage = self.stage
        for part in stage.parts:
            part.on_step(state)
        if self.pos + self.b > len(self.order):  # the sampler's next epoch (drop-last: batches are always full)
            idx_np = np.asarray(epoch_indices(stage.sampler, self.labels, self.stage_epochs, self.rng), dtype=np.int64)
            self.order = torch.from_numpy(idx_np).to(self.device)
            self.epoch, self.stage_epochs, self.pos = self.epoch + 1, self.stage_epochs + 1, 0
            if len(self.order) < self.b:
                raise RuntimeError(f"sampler returned {len(self.order)} indices, fewer than a batch of {self.b}")
        idx = self.order[self.pos : self.pos + self.b]
        self.pos += self.b
        xb_u8, yb = self.x_train[idx], self.y_train[idx]
        if self.cache is not None:  # the frozen part's outputs, computed once (FrozenCache)
            self.xb, self.frozen_feats = self.cache.batch(idx)
            self.yb = self.targets = yb
            return
        plain = augment if self.spec.augment != "none" else (lambda x, pad, gen: x)
        views = [  # two or three for contrastive stages
            self.norm(aug(xb_u8, self.gen) if (aug := stage.view_augment(v)) else plain(xb_u8, self.pad, self.gen))
            for v in range(stage.views)
        ]
        xb = views[0] if len(views) == 1 else torch.cat(views)
        yb = yb.repeat(len(views))
        targets = yb
        if stage.transform is not None:
            xb, targets = stage.transform(xb, yb)
        self.xb, self.yb, self.targets = xb, yb, targets

    def epoch_ends(self) -> bool:
        """Whether the batch just trained was the last of its pass over the sampler (the next starts a new
        one: batches are always full, drop-last)."""
        return self.pos + self.b > len(self.order)

    def after_step(self, k: int, step: int, loss: torch.Tensor, parts: dict) -> None:
        """Accumulate the logged losses; every 1/20 of the stage, log their means and check them."""
        for key, v in (("loss", loss), *parts.items()):
            self.sums[key] = self.sums.get(key, 0) + v.detach().float()
        self.n_sum += 1
        if (k + 1) % self.log_every and k + 1 != self.n_steps:
            return
        means = {key: float(v) / self.n_sum for key, v in self.sums.items()}  # the only device sync of the loop
        if not math.isfinite(means["loss"]):
            self.fail(NonFiniteLoss(f"loss became {means['loss']} by step {step}; lower --lr or check the method"))
            return
        entry = {"step": step, "epoch": self.epoch, **{key: round(v, 6) for key, v in means.items()}}
        self.history.append(entry | ({"stage": self.stage.name} if len(self.stages) > 1 else {}))
        self.sums, self.n_sum = {}, 0
        if self.on_progress:
            self.on_progress(step, self.spec.steps, means["loss"])

    def end_stage(self) -> None:
        if self.stage.on_end:
            self.stage.on_end(self.model)
        views = self.stage.views
        self.stage_log.append(
            {"name": self.stage.name, "steps": self.n_steps, "train_images": self.n_steps * self.b * views}
        )


def stack_problem(runs: list[_Run]) -> str | None:
    """Why these runs cannot train as one stack, or None: they must share the training settings, the
    stages' plan (budgets, views, BatchNorm mode), the batch size and the image shape."""
    first = runs[0]
    shared = ("width", "steps", "batch_size", "lr", "momentum", "precision")
    for r in runs[1:]:
        diff = [f for f in shared if getattr(r.spec, f) != getattr(first.spec, f)]
        if diff:
            return f"their {', '.join(diff)} differ"
    if len({tuple(r.task.train_x.shape[1:]) for r in runs}) > 1:
        return "their images differ in shape"
    plans = {(tuple(r.budgets), tuple((s.views, s.bn_training) for s in r.stages), r.bs) for r in runs}
    if len(plans) > 1:
        return "their stages, views or batch sizes differ"
    for r in runs:
        why = trunk_problem(r.model)
        if why:
            return f"{r.spec.method}: {why}"
    return None


def train_and_evaluate(
    spec: RunSpec,
    task: TaskData,
    method: Composite,
    device: torch.device,
    eval_batch_size: int = 1024,
    on_progress: Callable[[int, int, float], None] | None = None,
    compile: bool = False,
    features_path: Path | None = None,
    keep_model: bool = False,
    cache_frozen: bool = True,
) -> dict:
    """Train one run and return the record's measured part: metrics, loss history, timings (a stack of
    one: see `train_stack`); with `keep_model` also the trained model under "model" (not for the record:
    `bench pretrain` saves it). A failure raises."""
    return train_stack(
        [spec],
        [task],
        [method],
        device,
        eval_batch_size,
        [on_progress],
        compile,
        [features_path],
        keep_model,
        cache_frozen,
    )[0]


def train_stack(
    specs: list[RunSpec],
    tasks: list[TaskData],
    methods: list[Composite],
    device: torch.device,
    eval_batch_size: int = 1024,
    on_progress: list | None = None,
    compile: bool = False,
    features_paths: list | None = None,
    keep_models: bool = False,
    cache_frozen: bool = True,
) -> list[dict | Exception]:
    """Train K runs in one loop and return each one's measured part (or, in a stack, the exception that
    ended it): the one training loop of the suite. K = 1 is a plain run; K > 1 computes the runs' trunks
    as one model (bench/stacking.py) while every run keeps its own sampler, augmentation, transform,
    loss, stages, projection and post-hoc step.

    The run's step budget is split into the method's stages (one unless a stages method splits it); each
    stage gets a fresh optimiser and learning-rate schedule and trains the parameters it names.
    `compile=True` (single runs) wraps the training forward in torch.compile; dynamo's cache is keyed by
    code and guards, not by the model instance, so the runs of a grid with the same shapes reuse one
    compilation. `keep_models` adds each trained model to its result under "model". `cache_frozen=False`
    turns the frozen-trunk cache off (for `bench perf --frozen-cache`, which measures what it buys)."""
    k = len(specs)
    stacked = k > 1
    if stacked and compile:
        raise ValueError("--compile applies to single runs, not to stacks")
    size = tasks[0].train_x.shape[2]
    nhwc = use_channels_last(device, size)
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    progress = on_progress or [None] * k
    runs = [
        _Run(s, t, m, device, nhwc, p, stacked, cache_frozen) for s, t, m, p in zip(specs, tasks, methods, progress)
    ]
    if stacked and (why := stack_problem(runs)):
        raise ValueError(f"these runs cannot train as one stack: {why}")
    bf16 = resolved_precision(specs[0].precision, device) == "bf16"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    for r in runs:
        r.autocast = autocast
    forward = torch.compile(runs[0].model) if compile else runs[0].model
    t0 = time.perf_counter()
    for index, n_steps in enumerate(runs[0].budgets):
        _train_stage(runs, index, n_steps, forward, autocast, fmt)
    for r in runs:
        for p in r.model.parameters():
            p.requires_grad_(True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = (time.perf_counter() - t0) / k  # a stack's time, shared equally
    out = []
    for r, features_path in zip(runs, features_paths or [None] * k):
        if r.error is None:
            try:
                with r.own_rng():
                    out.append(_evaluate_run(r, train_s, eval_batch_size, autocast, features_path, k))
                    if keep_models:
                        out[-1]["model"] = r.model
                continue
            except Exception as e:
                r.fail(e)
        out.append(r.error)
    return out


def _train_stage(runs: list[_Run], index: int, n_steps: int, forward, autocast, fmt) -> None:
    """One stage of every run: its optimiser (a parameter group per run), then its steps."""
    spec, stacked = runs[0].spec, len(runs) > 1
    for r in runs:
        if r.error is None:
            try:
                with r.own_rng():
                    r.begin_stage(index, n_steps)
                continue
            except Exception as e:
                r.fail(e)
        r.stage, r.param_group = r.stages[index], {"params": [], "weight_decay": 0.0}  # an idle slot
        r.model.train(r.stage.bn_training)
    opt = torch.optim.SGD([r.param_group for r in runs], lr=spec.lr, momentum=spec.momentum, nesterov=True)
    step0 = sum(runs[0].budgets[:index])
    for k in range(n_steps):
        step = step0 + k
        live = [r for r in runs if r.error is None]
        if not live:
            return
        states = {}
        for r in live:
            states[id(r)] = TrainState(step, spec.steps, r.stage.name, stage_step=k, stage_steps=n_steps)
            try:
                with r.own_rng():
                    r.next_batch(states[id(r)])
            except Exception as e:
                r.fail(e)
        taps = tuple(sorted({t for r in live for t in r.stage.taps}))
        if stacked:
            ref = next((r for r in runs if r.error is None), live[0])
            xs = [r.xb if r.error is None else torch.zeros_like(ref.xb) for r in runs]  # a failed run's slot idles
            with autocast():
                logits, feats = stacked_forward([r.model for r in runs], xs, taps, fmt)
        else:
            r0 = runs[0]
            with autocast():
                if r0.cache is not None:
                    out, f = r0.model.forward_from(r0.xb, r0.cache.depth, r0.frozen_feats, taps)
                else:
                    out, f = forward(r0.xb, taps)
            logits, feats = [out], [f]
        losses = {}
        for i, r in enumerate(runs):
            if r.error is None:
                try:
                    with r.own_rng():
                        losses[i] = r.stage.loss(logits[i], feats[i], r.targets, r.yb, states[id(r)])
                except Exception as e:
                    r.fail(e)
        if not losses:
            return
        total = sum(loss for loss, _ in losses.values()) if stacked else losses[0][0]
        opt.zero_grad(set_to_none=True)
        total.backward()
        for i, (r, group) in enumerate(zip(runs, opt.param_groups)):
            scheduled = lr_factor(k, r.warmup, n_steps, r.spec.schedule)
            factor = r.stage.lr_factor(states[id(r)], scheduled) if i in losses else 0.0
            group["lr"] = spec.lr * factor
        opt.step()
        for i, (loss, parts) in losses.items():
            r = runs[i]
            if r.stage.project is not None and (r.stage.project_every == "step" or r.epoch_ends() or k + 1 == n_steps):
                with torch.no_grad():
                    r.stage.project(r.model)
            r.after_step(k, step + 1, loss, parts)
    for r in runs:
        if r.error is None:
            with r.own_rng():
                r.end_stage()


def _evaluate_run(r: _Run, train_s: float, eval_batch_size: int, autocast, features_path, k: int) -> dict:
    """The record's measured part for one trained run: test (and validation) metrics, the training fit,
    the BatchNorm diagnostic, convergence and timings."""
    task, model, norm = r.task, r.model, r.norm
    images = sum(s["train_images"] for s in r.stage_log)
    t1 = time.perf_counter()
    metrics = evaluate_model(model, r.method.posthoc, task, norm, eval_batch_size, autocast, features_path)
    train_logits, _ = predict(model, task.train_x, norm, eval_batch_size, autocast)
    fit = evaluate(task.train_y.numpy(), train_logits, task.train_counts)
    metrics["bn_balanced"] = balanced_bn_metrics(
        model, r.method.posthoc, metrics, task, norm, r.bs, eval_batch_size, autocast
    )
    eval_s = time.perf_counter() - t1
    return {
        "metrics": metrics,
        "history": r.history,
        "convergence": convergence(r.history, r.stage_log, fit),
        "timings": {
            "train_s": round(train_s, 3),
            "eval_s": round(eval_s, 3),
            "train_images": images,
            "steps": r.spec.steps,
            "epochs": r.epoch,
            "batch_size": r.bs,
            "stages": r.stage_log,
            "images_per_s": round(images / train_s, 1) if train_s > 0 else None,
        }
        | ({"frozen_cache": r.cache_log} if r.spec.tune != "full" else {})
        | ({"stack": k} if k > 1 else {}),
        "model_info": {"params": sum(p.numel() for p in model.parameters()), "widths": model.widths}
        | ({"backbone": model.name, "input_size": model.input_size} if hasattr(model, "input_size") else {})
        | ({"weights": model.weights_info, "input_mean": r.mean, "input_std": r.std} if model.weights_info else {}),
    }
