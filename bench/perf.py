"""`python -m bench perf`: training throughput of the harness against a naive pipeline, side by side.

The naive reference is the loop most public imbalance repositories use: a torch DataLoader over a
Dataset that turns one PIL image at a time into a tensor with torchvision transforms, float32, the
model on the same device. Both train the same model on the same data with the same batch size, in
one process, alternating repeats; the medians are reported. Also measured: the per-step cost of
`fsc` and `supcon` relative to `ce`, peak memory, and on CUDA the FLOP/s reached and whether
several concurrent runs on one GPU raise the grid's throughput.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from datasets import TaskData, get_source
from datasets.tasks import build_task
from methods import parse_method

from .envinfo import device_name, environment, now
from .models import build_model
from .perf_cache import render_frozen_cache
from .perf_grid import render_grid
from .spec import PRESETS, RunSpec
from .train import train_and_evaluate

# Dense bf16 tensor-core peak (no sparsity), from the vendors' datasheets, by device-name fragment.
PEAK_BF16 = {
    "H200": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
}


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


class PilDataset(Dataset):
    """One PIL image at a time, as in most public repositories."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x = x.permute(0, 2, 3, 1).numpy()  # HWC uint8
        self.y = y.numpy()
        self.transform = transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        arr = self.x[i]
        img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        return self.transform(img), int(self.y[i])


def naive_throughput(task: TaskData, spec: RunSpec, device: torch.device, epochs: int, workers: int) -> float:
    size = task.train_x.shape[2]
    tf = T.Compose(
        [
            T.RandomCrop(size, padding=max(1, round(size / 8))),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(task.mean, task.std),
        ]
    )
    loader = DataLoader(
        PilDataset(task.train_x, task.train_y, tf),
        batch_size=spec.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    model = build_model(len(task.classes), task.train_x.shape[1], size, spec.width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    crit = torch.nn.CrossEntropyLoss()
    model.train()
    images = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = crit(model(xb)[0], yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            images += len(yb)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - t0)


def harness_run(task, spec, method: str, device, compile=False, precision="auto") -> dict:
    comp = parse_method(method)
    s = replace(spec, method=comp.name, hparams=comp.hparams(), precision=precision)
    return train_and_evaluate(s, task, comp, device, compile=compile)["timings"]


def train_flops_per_image(task: TaskData, spec: RunSpec, device: torch.device) -> float:
    """FLOPs of one forward+backward step per image, counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(len(task.classes), task.train_x.shape[1], task.train_x.shape[2], spec.width).to(device)
    x = torch.randn(spec.batch_size, *task.train_x.shape[1:], device=device)
    y = torch.randint(0, len(task.classes), (spec.batch_size,), device=device)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x)[0], y).backward()
    return counter.get_total_flops() / spec.batch_size


def _concurrent_worker(args):
    dataset, task_name, spec_dict, device = args
    torch.set_num_threads(1)
    src = get_source(dataset)
    task = build_task(src.load(), dataset, src.pairs, task_name, 1.0, 0)
    spec = RunSpec.from_dict(spec_dict)
    harness_run(task, spec, "ce", torch.device(device))  # warm-up (cudnn autotune)
    t = harness_run(task, spec, "ce", torch.device(device))
    return t["train_images"], t["train_s"]


def concurrency(dataset, task_name, spec, device, levels=(1, 2, 4)) -> list[dict]:
    """Aggregate images/s when K runs share one GPU as K processes."""
    out = []
    ctx = mp.get_context("spawn")
    for k in levels:
        with ctx.Pool(k) as pool:
            t0 = time.perf_counter()
            res = pool.map(_concurrent_worker, [(dataset, task_name, spec.__dict__, str(device))] * k)
            wall = time.perf_counter() - t0
        per_run = [n / s for n, s in res]
        out.append(
            {
                "processes": k,
                "sum_images_per_s": round(sum(per_run), 1),
                "per_run_images_per_s": round(statistics.mean(per_run), 1),
                "wall_s": round(wall, 1),
            }
        )
    return out


def batched_speed(task: TaskData, spec: RunSpec, device: torch.device, k: int, repeats: int) -> dict:
    """K runs of `ce` (seeds 0..K-1) one after another against the same K as one stack
    (bench/stacking.py), alternating; training images per second of the K runs together."""
    from .train import train_stack

    specs = [replace(spec, seed=i, data_seed=i, method="ce", hparams={}) for i in range(k)]
    images = k * spec.steps * spec.batch_size
    alone, together = [], []
    for _ in range(repeats):
        alone.append(
            images / sum(train_and_evaluate(s, task, parse_method("ce"), device)["timings"]["train_s"] for s in specs)
        )
        parts = train_stack(specs, [task] * k, [parse_method("ce") for _ in specs], device)
        together.append(images / sum(p["timings"]["train_s"] for p in parts))
    a, t = statistics.median(alone), statistics.median(together)
    return {
        "runs": k,
        "separate_images_per_s": round(a, 1),
        "batched_images_per_s": round(t, 1),
        "speedup": round(t / a, 2),
    }


def layout_check(task: TaskData, spec: RunSpec, device: torch.device, repeats: int) -> dict:
    """What NHWC (channels_last) buys over NCHW for this preset on this device, alternating repeats."""
    import bench.train as T

    nhwc, nchw = [], []
    original = T.use_channels_last
    try:
        for _ in range(repeats):
            T.use_channels_last = lambda dev, size: True
            nhwc.append(harness_run(task, spec, "ce", device)["images_per_s"])
            T.use_channels_last = lambda dev, size: False
            nchw.append(harness_run(task, spec, "ce", device)["images_per_s"])
    finally:
        T.use_channels_last = original
    a, b = statistics.median(nhwc), statistics.median(nchw)
    return {"nhwc_images_per_s": [round(v, 1) for v in nhwc], "nchw_images_per_s": [round(v, 1) for v in nchw],
            "nhwc_over_nchw": round(a / b, 3)}  # fmt: skip


def _perf_spec(dataset: str, task_name: str, preset: str, train_images: int, epochs: int) -> RunSpec:
    """A `ce` run of the preset's model for `epochs` passes over the 1:1 training set, without warm-up."""
    p = PRESETS[preset]
    spec = RunSpec(
        dataset=dataset,
        task=task_name,
        classes=None,
        ratio=1.0,
        n_major=None,
        seed=0,
        data_seed=0,
        method="ce",
        hparams={},
        width=p["width"],
        steps=epochs * train_images // p["batch_size"],
        batch_size=p["batch_size"],
        lr=p["lr"],
        weight_decay=p["weight_decay"],
        momentum=p["momentum"],
        warmup_steps=0,
        preset=preset,
    )
    return spec


def measure(
    dataset="animals",
    task_name="fine",
    preset="quick",
    device=None,
    repeats=3,
    epochs=3,
    workers=None,
    compile_check=None,
    concurrency_levels=None,
    batched_levels=None,
    layout=False,
    log=print,
) -> dict:
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    src = get_source(dataset)
    task = build_task(src.load(), dataset, src.pairs, task_name, 1.0, 0)
    spec = _perf_spec(dataset, task_name, preset, len(task.train_y), epochs)
    workers = workers if workers is not None else (8 if cuda else 0)
    log(
        f"perf on {device_name(device)}: {dataset}/{task_name} 1:1 ({len(task.train_y)} images), preset {preset} "
        f"(width {spec.width}, batch {spec.batch_size}), {epochs} epochs per measurement, {repeats} repeats"
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    harness_run(task, spec, "ce", device)  # warm-ups: allocator, cudnn autotune, first-touch
    naive_throughput(task, spec, device, 1, workers)
    harness, naive, harness_bf16 = [], [], []
    for r in range(repeats):  # alternate, so drifts in machine load hit both alike
        harness.append(harness_run(task, spec, "ce", device)["images_per_s"])
        naive.append(naive_throughput(task, spec, device, epochs, workers))
        line = f"  repeat {r + 1}: harness {harness[-1]:.0f} img/s, naive {naive[-1]:.0f} img/s"
        if not cuda:  # on CUDA the harness already runs in bf16 (precision auto)
            harness_bf16.append(harness_run(task, spec, "ce", device, precision="bf16")["images_per_s"])
            line += f", harness --precision bf16 {harness_bf16[-1]:.0f} img/s"
        log(line)
    step = {}
    for m in ("ce", "fsc", "supcon", "ce", "fsc", "supcon"):
        t = harness_run(task, spec, m, device)
        step.setdefault(m, []).append(t["train_s"] / t["steps"])
    step_s = {m: statistics.median(v) for m, v in step.items()}
    result = {
        "date": now(),
        "env": environment(device),
        "dataset": dataset,
        "task": task_name,
        "preset": preset,
        "train_images": int(len(task.train_y)),
        "batch_size": spec.batch_size,
        "width": spec.width,
        "epochs_per_measurement": epochs,
        "repeats": repeats,
        "naive_loader_workers": workers,
        "harness_images_per_s": [round(v, 1) for v in harness],
        "naive_images_per_s": [round(v, 1) for v in naive],
        "harness_median": round(statistics.median(harness), 1),
        "naive_median": round(statistics.median(naive), 1),
        "step_s": {m: round(v, 5) for m, v in step_s.items()},
        "overhead_vs_ce": {m: round(step_s[m] / step_s["ce"] - 1, 4) for m in ("fsc", "supcon")},
    }
    result["speedup"] = round(result["harness_median"] / result["naive_median"], 2)
    if harness_bf16:
        result["harness_bf16_images_per_s"] = [round(v, 1) for v in harness_bf16]
        result["harness_bf16_median"] = round(statistics.median(harness_bf16), 1)
        result["speedup_bf16"] = round(result["harness_bf16_median"] / result["naive_median"], 2)
    _resources(result, task, spec, device)
    _extra_checks(result, task, spec, device, dataset, task_name, compile_check, concurrency_levels, batched_levels,
                  layout, repeats, log)  # fmt: skip
    return result


def _resources(result: dict, task: TaskData, spec: RunSpec, device: torch.device) -> None:
    """Peak memory; on CUDA also the FLOP/s reached and its fraction of the device's dense bf16 peak."""
    cuda = device.type == "cuda"
    if cuda:
        result["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        fpi = train_flops_per_image(task, spec, device)
        peak = peak_flops(torch.cuda.get_device_name(device))
        result["train_flops_per_image"] = fpi
        result["achieved_tflops"] = round(fpi * result["harness_median"] / 1e12, 2)
        result["peak_bf16_tflops"] = peak / 1e12 if peak else None
        result["fraction_of_peak"] = round(fpi * result["harness_median"] / peak, 4) if peak else None
    else:
        result["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _extra_checks(result, task, spec, device, dataset, task_name, compile_check, concurrency_levels, batched_levels,
                  layout, repeats, log) -> None:  # fmt: skip
    """The measurements asked for by flag: torch.compile, concurrent runs, stacks, memory layout."""
    cuda = device.type == "cuda"
    if compile_check if compile_check is not None else cuda:
        t0 = time.perf_counter()
        harness_run(task, spec, "ce", device, compile=True)
        cold = time.perf_counter() - t0
        warm = [harness_run(task, spec, "ce", device, compile=True)["images_per_s"] for _ in range(2)]
        result["compile"] = {
            "first_run_s": round(cold, 1),
            "images_per_s": round(statistics.median(warm), 1),
            "speedup_vs_eager": round(statistics.median(warm) / result["harness_median"], 3),
        }
    if concurrency_levels:
        result["concurrency"] = concurrency(dataset, task_name, spec, device, concurrency_levels)
    for k in batched_levels or ():
        result.setdefault("batched", []).append(batched_speed(task, spec, device, k, repeats))
        log(f"  {k} runs as one stack: {result['batched'][-1]}")
    if layout:
        result["layout"] = layout_check(task, spec, device, repeats)
        log(f"  NHWC vs NCHW: {result['layout']}")


def slug(result: dict) -> str:
    name = result["env"]["device"].split(":", 1)[-1].split("(")[0].strip()
    kind = result["env"]["device_type"]
    return f"{kind}_{''.join(c if c.isalnum() else '_' for c in name).strip('_')}_{result['preset']}".lower()


def write_results(result: dict, results_dir: Path) -> Path:
    perf_dir = results_dir / "perf"
    perf_dir.mkdir(parents=True, exist_ok=True)
    name = {"grid": "grid_", "frozen_cache": "frozen_cache_"}.get(result.get("kind"), "") + slug(result)
    (perf_dir / f"{name}.json").write_text(json.dumps(result, indent=1))
    perf_md = results_dir / "PERF.md"
    perf_md.write_text(render_markdown([json.loads(p.read_text()) for p in sorted(perf_dir.glob("*.json"))]))
    return perf_md


def _fmt_list(values) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def render_markdown(results: list[dict]) -> str:
    out = [
        "# Speed: the harness against a naive pipeline",
        "",
        "Made by `python -m bench perf` (see `bench/perf.py`): same model, data, batch size and device, one "
        "process, alternating repeats, medians. The naive loop is a torch DataLoader over a Dataset that "
        "converts and augments one PIL image at a time with torchvision transforms, in float32. Training "
        "images/s; `fsc`/`supcon` overhead is the per-step time relative to `ce` in the harness. "
        "`python -m bench perf --grid` (see `bench/perf_grid.py`) measures a whole grid's runs per hour, "
        "one run per worker against stacked runs (`bench run --stack K`), side by side in one command; "
        "`python -m bench perf --frozen-cache` (see `bench/perf_cache.py`) what computing a frozen trunk once "
        "buys.",
        "",
    ]
    for r in results:
        if r.get("kind") == "grid":
            out += render_grid(r)
    for r in results:
        if r.get("kind") == "frozen_cache":
            out += render_frozen_cache(r)
    for r in results:
        if r.get("kind") in ("grid", "frozen_cache"):
            continue
        env = r["env"]
        rows = _rows(r)
        out += [
            f"## {env['device']}, preset {r['preset']}",
            "",
            f"- {r['date']}, torch {env['torch']}; {r['dataset']}/{r['task']} 1:1 ({r['train_images']} images), "
            f"width {r['width']}, batch {r['batch_size']}, {r['epochs_per_measurement']} passes x {r['repeats']} "
            f"repeats; naive DataLoader workers: {r['naive_loader_workers']}",
            f"- command: `{r.get('command', 'python -m bench perf --preset ' + r['preset'])}`",
            "",
            tabulate(rows, headers=["measure", "value"], tablefmt="github", disable_numparse=True),
            "",
        ]
    return "\n".join(out)


def _rows(r: dict) -> list[list[str]]:
    """The measure/value rows of one `bench perf` result."""
    env = r["env"]
    cuda = env["device_type"] == "cuda"
    ov = r["overhead_vs_ce"]
    rows = [
        [
            "harness, images/s: median (all repeats)",
            f"{r['harness_median']:.0f} ({_fmt_list(r['harness_images_per_s'])})",
        ],
        [
            "naive loop, images/s: median (all repeats)",
            f"{r['naive_median']:.0f} ({_fmt_list(r['naive_images_per_s'])})",
        ],
        ["speed-up, harness / naive", f"**{r['speedup']:.2f}x**"],
        *(
            [
                [
                    "harness with `--precision bf16`, images/s: median (all)",
                    f"{r['harness_bf16_median']:.0f} ({_fmt_list(r['harness_bf16_images_per_s'])})",
                ],
                ["speed-up, harness bf16 / naive (float32)", f"**{r['speedup_bf16']:.2f}x**"],
            ]
            if r.get("harness_bf16_median")
            else []
        ),
        ["fsc step cost over ce", f"{ov['fsc'] * 100:+.1f}%"],
        ["supcon step cost over ce", f"{ov['supcon'] * 100:+.1f}%"],
        ["peak memory", f"{r['peak_memory_mb']:.0f} MB ({'GPU, allocated' if cuda else 'process max RSS'})"],
    ]
    if r.get("achieved_tflops") is not None:
        peak = r.get("peak_bf16_tflops")
        frac = f"{r['fraction_of_peak'] * 100:.1f}% of {peak:.0f} dense bf16" if peak else "peak unknown"
        rows.append(["model FLOP/s reached (step FLOPs x images/s)", f"{r['achieved_tflops']:.1f} TFLOP/s ({frac})"])
    if r.get("compile"):
        c = r["compile"]
        rows.append(
            [
                "torch.compile: first run; images/s; vs eager",
                f"{c['first_run_s']:.1f} s; {c['images_per_s']:.0f}; {c['speedup_vs_eager']:.2f}x",
            ]
        )
    for b in r.get("batched", []):
        rows.append(
            [
                f"{b['runs']} runs: one after another vs one grouped model (images/s of all)",
                f"{b['separate_images_per_s']:.0f} vs {b['batched_images_per_s']:.0f}: **{b['speedup']:.2f}x**",
            ]
        )
    if r.get("layout"):
        lay = r["layout"]
        rows.append(
            [
                "NHWC (channels_last) vs NCHW memory, images/s (all repeats)",
                f"{_fmt_list(lay['nhwc_images_per_s'])} vs {_fmt_list(lay['nchw_images_per_s'])}: "
                f"**{lay['nhwc_over_nchw']:.2f}x**",
            ]
        )
    for c in r.get("concurrency", []):
        rows.append(
            [
                f"{c['processes']} concurrent runs on the device: total (per run) images/s",
                f"{c['sum_images_per_s']:.0f} ({c['per_run_images_per_s']:.0f})",
            ]
        )
    return rows
