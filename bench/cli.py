"""`python -m bench`: run a grid, list methods and data, report leaderboards."""

from __future__ import annotations

import argparse
import math
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np

from datasets import PAPER_RATIOS, SOURCES, TASKS, get_source
from methods import REGISTRY, load_plugins

from . import store
from .errors import USER_ERRORS, BenchError
from .settings import MAX_RUNS_UNASKED, csv_list
from .spec import AUGMENTS, PRECISIONS, PRESET_PURPOSE, PRESETS, SCHEDULES, STANDARD_STEPS

_GRID_ENTRY: list[str] = []  # the grid-file entry whose flags are being parsed, if any


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad value is one line naming the flag and --help, not the whole usage (and, for an
    entry of a grid file, the entry)."""

    def error(self, message):
        if _GRID_ENTRY:
            raise BenchError(message)
        print(f"error: {message}; see `{self.prog} --help`", file=sys.stderr)
        raise SystemExit(2)


def _console():
    """A rich console; in a pipe or a log, wide enough that tables are not wrapped into narrow columns."""
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=220)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one (None means: from the preset, or unset)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m bench",
        description=(
            "Benchmark of class-imbalance methods for fine-grained image classification. "
            "Example: python -m bench run --methods ce,os,os+fsc --task fine"
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    plugin = argparse.ArgumentParser(add_help=False)
    plugin.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (a module name importable from here: its folder on PYTHONPATH; or the path of a "
        ".py file) first, so the methods it registers can be used (also in worker processes); installed "
        "packages can instead declare an entry point in the group 'bench.methods'",
    )

    _add_run_parser(sub, plugin)
    _add_advise_parser(sub, plugin)
    _add_info_parsers(sub, plugin)
    _add_perf_parser(sub)
    _add_report_parser(sub, plugin)
    return p


def _add_run_parser(sub, plugin) -> None:
    r = sub.add_parser(
        "run",
        help="train a grid of methods x tasks x ratios x seeds and write run records",
        formatter_class=_Help,
        parents=[plugin],
    )
    r.add_argument(
        "--methods",
        default="ce,os,os+fsc",
        help="comma-separated methods; compose with '+', e.g. ce,os,os+fsc; 'all' = each registered one (see `list`); "
        "'os+all' = os composed with each one where that is allowed",
    )
    r.add_argument("--dataset", default="animals", help=f"comma-separated: {', '.join(sorted(SOURCES))}")
    r.add_argument("--task", default="fine", help=f"comma-separated: {', '.join(TASKS)}")
    r.add_argument("--classes", help="MAJ,MIN for a binary task (required for dataset 'folder')")
    r.add_argument(
        "--ratios",
        help="comma-separated minority:majority ratios in (0, 1], or natural (the data's own imbalance: every "
        "training image of both classes; the default for --dataset folder; else the preset's default: 0.01 for "
        f"standard and transfer, the paper's {','.join(f'{x:g}' for x in PAPER_RATIOS)} for quick and paper)",
    )
    r.add_argument("--seeds", type=int, help="number of seeds, run as seeds 0..N-1 (preset default)")
    r.add_argument("--data-seed", type=int, help="fix the training-subset draw (default: each run's seed)")
    r.add_argument("--n-major", type=int, help="cap the majority (head) class count")
    r.add_argument(
        "--val-per-class",
        type=int,
        help="hold out this many training-pool images per class as a balanced validation set (for --sweep "
        "selection); never taken from the test set",
    )
    r.add_argument(
        "--tune",
        help="how much of the network trains (with --pretrained): full (default), last:N (the last N of the 4 "
        "stages and the head), head (a linear probe); frozen parts keep their BatchNorm statistics",
    )
    r.add_argument(
        "--augment",
        choices=AUGMENTS,
        help="the training images' augmentation: crop+flip (default: random crop after padding, horizontal flip) "
        "or none; with none, the frozen parts of a --tune head / last:N model are computed once per image "
        "(the frozen-trunk cache) instead of every step",
    )
    r.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="the learning rate after the warm-up: cosine (default: decay to zero) or step (the LDAM-DRW authors' "
        "for the whole run: the peak rate until 80%% of the budget, 0.01x until 90%%, then 0.0001x), so that a DRW "
        "comparison puts every method on the schedule DRW was published with",
    )
    r.add_argument("--data-root", help="data folder (Fashion-MNIST IDX files, CIFAR root, or your photos)")
    r.add_argument("--image-size", type=int, help="resize for 'folder' (default 64); others keep native size")
    r.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="folder: leave out photos that cannot be read (each record lists them) instead of stopping",
    )
    r.add_argument(
        "--split-by",
        choices=("location", "camera", "sequence"),
        help="folder: keep each location / camera / sequence of DIR/metadata.csv in one split (train or test), "
        "stratified by class as far as the groups allow; a random split puts frames of one burst in both",
    )
    r.add_argument(
        "--grid",
        metavar="FILE",
        help="run the entries of a grid file (TOML: a [[run]] table per `bench run`, see bench/gridfile.py) "
        "one after another; the flags given here apply to every entry",
    )
    r.add_argument("--show-grid", action="store_true", help="with --grid: print each entry's command and stop")
    _add_training_args(r)
    _add_execution_args(r)


def _add_training_args(r) -> None:
    """How each run trains: the preset and the flags that override it (they decide the run key)."""
    r.add_argument(
        "--preset",
        default="standard",
        choices=sorted(PRESETS),
        help=f"training settings: standard (the default) = the quick model from scratch at {STANDARD_STEPS} steps, "
        "the README's from-scratch screen, at 1:0.01 with 5 seeds unless --ratios / --seeds say otherwise (its runs "
        "are quick runs of that budget, same keys; provisional: see the README's budget study); transfer = from the "
        "dataset's pretrained start, last stage + head tuned, the practitioner's regime, where the README's "
        "declared contrasts are decided first; quick = a fast first look (a short budget, the paper's six ratios); "
        "paper = full width for a GPU; see `list`",
    )
    r.add_argument(
        "--model",
        default="resnet18",
        help="backbone: resnet18 (the suite's ResNet-18, with --width; the default), a torchvision classification "
        "model (resnet50, mobilenet_v3_small, efficientnet_b0, convnext_tiny, ...) or timm:NAME (any timm model); "
        "the methods' feature taps are its last stages (docs/harness.md, 'Backbones')",
    )
    r.add_argument("--width", type=float, help="channel width multiplier of the suite's resnet18 (1 = full)")
    r.add_argument(
        "--steps",
        help="optimiser steps per run, the same for every method and ratio; a comma-separated list makes the "
        "budget an axis (e.g. 240,600,1200,2400: each budget is its own run, schedule and key)",
    )
    r.add_argument("--batch-size", type=int)
    r.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto (preset default): bf16 autocast on CUDA, float32 on CPU; bf16 also on CPUs with native "
        "bf16 (AVX512-BF16/AMX), part of the run key",
    )
    r.add_argument("--lr", type=float)
    r.add_argument(
        "--pretrained",
        "--weights",
        dest="weights",
        metavar="START",
        help="start from pretrained weights: a start the suite ships (animals-other8, fashion-other8: the quick "
        "model trained on the 8 classes the fine task does not use; `bench pretrain`), imagenet (the library's "
        "default weights for --model, from its cache: $TORCH_HOME or $HF_HOME), a state_dict file, or a "
        "torchvision weights name; the whole trunk must match, and a start trained on a class of the task is "
        "refused",
    )
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.PARAM=VALUE",
        help="override a hyper-parameter, e.g. --set fsc.lam=0.5 --set fsc.layers=layer2,layer3,layer4",
    )
    r.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="METHOD.PARAM=V1|V2|...",
        help="run every value (a grid over several --sweep flags), e.g. --sweep fsc.lam='0.1|0.3|1|3' "
        "--sweep fsc.layers='layer4|layer3,layer4'; `--sweep auto`: the search space each method of --methods "
        "declares (`bench list`); `report` then selects per cell on --val-per-class",
    )


def _add_execution_args(r) -> None:
    """Where and how the runs execute (not part of the run key, except the CPU threads and --stack)."""
    r.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    r.add_argument("--out", default="results/runs", help="where run records go")
    r.add_argument("--force", action="store_true", help="re-run finished runs too")
    r.add_argument("--yes", action="store_true", help=f"run a grid of more than {MAX_RUNS_UNASKED} runs")
    r.add_argument(
        "--save-features",
        action="store_true",
        help="also keep each run's pooled layer4 test features (OUT/features/KEY.npz) for the report's t-SNE",
    )
    r.add_argument(
        "--save-model",
        action="store_true",
        help="also keep each run's trained model (OUT/models/KEY.pt with KEY.json: weights, input normalisation, "
        "post-hoc step), for `bench predict`",
    )
    r.add_argument("--plain", action="store_true", help="plain log lines instead of the live display")
    r.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads per run (default 1 on a CPU: the thread count changes the arithmetic and is "
        "part of the run key, so the default keeps keys the same on every machine; on a GPU: the cores "
        "split among workers)",
    )
    r.add_argument("--compile", action="store_true", help="torch.compile the training forward (worth it on GPUs)")
    r.add_argument(
        "--stack",
        type=int,
        default=1,
        metavar="K",
        help="train up to K runs that differ only in their seed as one model (their convolutions grouped; each "
        "run keeps its own data, method and record); a stacked run's key names K, as K changes its "
        "arithmetic. For GPUs, whose small kernels it fills; slower on a CPU (results/PERF.md). Default 1",
    )
    r.add_argument(
        "--executor",
        default="pool",
        choices=["pool", "local", "slurm", "gpus"],
        help="pool: worker processes pulling runs from the grid (--workers-per-gpu per visible GPU, else one "
        "per --threads CPU cores); local: one run after another in this process; slurm: a submitit job "
        "array; gpus: the old name of pool",
    )
    r.add_argument(
        "--workers-per-gpu",
        type=int,
        help="pool executor: concurrent runs per device (default 1 per GPU; on a CPU: cores / --threads)",
    )
    r.add_argument("--slurm-partition")
    r.add_argument("--slurm-time", type=int, default=60, help="minutes per array task")
    r.add_argument("--slurm-gpus-per-task", type=int, default=0)
    r.add_argument("--slurm-cpus-per-task", type=int, default=2)
    r.add_argument("--slurm-mem-gb", type=int, default=8)
    r.add_argument("--slurm-array-parallelism", type=int, default=16)
    r.add_argument("--slurm-runs-per-task", type=int, default=4, help="runs per array task (a shard)")
    r.add_argument(
        "--slurm-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --slurm-option account=mylab --slurm-option qos=short",
    )
    r.add_argument("--slurm-no-wait", action="store_true", help="submit and return; `bench status` shows progress")


def _add_advise_parser(sub, plugin) -> None:
    ad = sub.add_parser(
        "advise",
        help="which method for MY data? races a few contenders on validation photos carved from your training "
        "photos, says which to use in words, and trains and saves it (bench/advise.py)",
        formatter_class=_Help,
        parents=[plugin],
    )
    ad.add_argument("--dataset", default="folder", help=f"folder (your photos, the default) or a built-in source: "
                    f"{', '.join(sorted(SOURCES))}")  # fmt: skip
    ad.add_argument("--data-root", help="your photos: DIR/<class>/* (and optionally DIR/metadata.csv)")
    ad.add_argument("--classes", help="COMMON,RARE: the two classes, the rare one second")
    ad.add_argument("--task", default="fine", help="a built-in dataset's task (fine, coarse)")
    ad.add_argument(
        "--methods",
        help="the contenders (default: os, ce and the methods of the regime's confirmatory family in grids/, the "
        "ones the suite's evidence puts forward)",
    )
    ad.add_argument("--ratios", help="one ratio (default: natural for a folder, 0.01 for a built-in task)")
    ad.add_argument("--split-by", choices=("location", "camera", "sequence"), help="as for `run`")
    ad.add_argument("--image-size", type=int, help="as for `run` (folder default 64)")
    ad.add_argument("--skip-unreadable", action="store_true", help="as for `run`")
    ad.add_argument(
        "--val-per-class",
        type=int,
        help="training photos per class held out to choose on (default: a quarter of the rare class's, at most 20)",
    )
    ad.add_argument("--seeds", type=int, default=3, help="seeds every contender trains first")
    ad.add_argument("--max-seeds", type=int, default=10, help="seeds the race may grow to")
    ad.add_argument("--hours", type=float, default=1.0, help="time budget: no round of more seeds is started that "
                    "the runs so far say would end beyond it")  # fmt: skip
    ad.add_argument(
        "--preset",
        default="quick",
        choices=sorted(PRESETS),
        help="training settings, as for `run` (default quick here, a short budget, so that a race of several methods "
        "fits --hours on a CPU; `run` defaults to standard)",
    )
    ad.add_argument("--model", default="resnet18", help="backbone, as for `run`")
    ad.add_argument("--width", type=float, help="as for `run`")
    ad.add_argument("--steps", help="as for `run` (one budget)")
    ad.add_argument(
        "--pretrained",
        "--weights",
        dest="weights",
        metavar="START",
        help="a pretrained start, as for `run` (the contenders are then the transfer regime's)",
    )
    ad.add_argument("--tune", help="as for `run`")
    ad.add_argument("--augment", choices=AUGMENTS, help="as for `run`")
    ad.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE", help="as for `run`")
    ad.add_argument("--out", default="advice", help="OUT/runs: the race's records; OUT/advice.md, OUT/model.pt, "
                    "OUT/test_predictions.csv: the answer")  # fmt: skip
    ad.add_argument("--no-save-model", dest="save_model", action="store_false",
                    help="do not train and keep the chosen method's model")  # fmt: skip
    ad.add_argument("--device", default="auto")
    ad.add_argument("--executor", default="pool", choices=["pool", "local"], help="as for `run`")
    ad.add_argument("--threads", type=int, help="as for `run`")
    ad.add_argument("--plain", action="store_true", help="plain log lines instead of the live display")


def _add_info_parsers(sub, plugin) -> None:
    """`list`, `datasets` and `status`."""
    sub.add_parser(
        "list",
        help="registered methods (role, hyper-parameters, defaults, paper), datasets and tasks",
        parents=[plugin],
    )
    d = sub.add_parser("datasets", help="each data source: available here?, from where, tasks and counts")
    d.add_argument("--data-root")
    d.add_argument("--figure", metavar="PNG", help="also draw example images of each available built-in task")

    pt = sub.add_parser(
        "pretrain",
        help="make a pretrained start: the quick model trained on a source's classes that its tasks do not use "
        "(animals-other8, fashion-other8), written with its config and provenance",
    )
    pt.add_argument("name", help="the start to make: animals-other8 or fashion-other8")
    pt.add_argument("--steps", type=int, default=3000, help="training steps of 64 images (default 3000)")
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--out", help="folder for NAME.pt, NAME.pt.json, NAME.provenance.json (default: the shipped "
                    "bench/pretrained/)")  # fmt: skip

    pr = sub.add_parser(
        "predict",
        help="classify a folder of photos with a saved model (`bench run --save-model`, `bench advise`): a CSV of "
        "each photo's predicted class and probabilities",
    )
    pr.add_argument("model", help="a saved model: OUT/models/KEY.pt, or the model.pt `bench advise` wrote")
    pr.add_argument("photos", help="a folder of photos (searched recursively); where its sub-folders are named "
                    "after the model's classes, they are taken as the true labels and accuracy is printed")  # fmt: skip
    pr.add_argument("--out", default="predictions.csv", help="the CSV to write")
    pr.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, ...")

    st = sub.add_parser("status", help="done / failed / pending per grid from the records (and SLURM job ids)")
    st.add_argument("--out", default="results/runs", help="folder of run records")


def _add_perf_parser(sub) -> None:
    pf = sub.add_parser(
        "perf",
        help="training throughput: the harness vs a naive DataLoader pipeline",
        formatter_class=_Help,
    )
    pf.add_argument("--preset", default=None, choices=sorted(PRESETS), help="default: paper on CUDA, quick on CPU")
    pf.add_argument("--device", default="auto")
    pf.add_argument("--dataset", default="animals")
    pf.add_argument("--repeats", type=int, default=3)
    pf.add_argument("--epochs", type=int, default=3, help="passes over the 1:1 training set per measurement")
    pf.add_argument("--concurrency", help="comma-separated process counts to try on one GPU, e.g. 1,2,4")
    pf.add_argument("--compile-check", action="store_true", help="also time torch.compile (default on CUDA)")
    pf.add_argument("--batched", help="comma-separated K: also time K runs as one stack against K alone")
    pf.add_argument(
        "--grid",
        action="store_true",
        help="instead: runs per hour of a small grid (4 methods x --seeds on animals fine 1:0.01), the pool "
        "against stacks of --stack seeds, side by side; on an idle machine (about 10 minutes on 2 cores)",
    )
    pf.add_argument(
        "--frozen-cache",
        action="store_true",
        help="instead: runs per hour with the frozen-trunk cache against the frozen part computed every step "
        "(--tune head and last:1 from the shipped start, --augment none, 4 methods), alternating run by run; on "
        "an idle machine (about 10 minutes on one core)",
    )
    pf.add_argument("--seeds", type=int, default=4, help="--grid: seeds per method")
    pf.add_argument("--stack", type=int, default=4, help="--grid: runs per stack")
    pf.add_argument("--steps", type=int, help="--grid / --frozen-cache: steps per run (default: the preset's / 240)")
    pf.add_argument("--layout-check", action="store_true", help="also time NHWC (channels_last) against NCHW")
    pf.add_argument("--results", default="results", help="PERF.md and perf/*.json go here")


def _add_report_parser(sub, plugin) -> None:
    rep = sub.add_parser(
        "report",
        help="leaderboards, ablation table and figures from run records",
        formatter_class=_Help,
        parents=[plugin],
    )
    rep.add_argument("--runs", default="results/runs", help="folder of run records")
    rep.add_argument("--out", default="results", help="where leaderboard.md/.csv and figures/ go")
    rep.add_argument("--reference", help="method the paired differences are taken against (default: os, where it ran)")
    rep.add_argument(
        "--margin",
        type=float,
        default=0.01,
        help="equivalence margin in balanced accuracy: two methods are 'equivalent' when two one-sided tests "
        "put their difference inside ±MARGIN",
    )
    rep.add_argument(
        "--review-target",
        type=float,
        default=0.95,
        help="the review queue's recall target: the share of the rare class's test images a person must catch; "
        "the report gives the share of images they review to do so (default 0.95)",
    )
    rep.add_argument(
        "--family",
        metavar="GRID",
        action="append",
        help="a grid file whose [confirmatory] table declares contrasts to decide sequentially (repeatable; "
        "default: every grids/*.toml that declares one)",
    )
    rep.add_argument("--verbose", action="store_true", help="print every board's table, not one line per board")
    rep.add_argument("--html", action="store_true", help="also write a static site (OUT/site/index.html)")
    rep.add_argument(
        "--readme",
        metavar="FILE",
        action="append",
        default=[],
        help="also refresh the generated blocks of FILE (<!-- bench:NAME --> ... <!-- /bench:NAME -->) and its "
        "quoted values (<!--v:KEY-->...<!--/v-->) from the records (repeat for several files)",
    )
    rep.add_argument(
        "--check-readme",
        metavar="FILE",
        action="append",
        default=[],
        help="change nothing in FILE; exit 1 naming each generated block or value whose numbers differ from the "
        "records' (repeat for several files)",
    )
    rep.add_argument("--no-figures", action="store_true", help="tables only (the figures take most of the time)")
    rep.add_argument(
        "--race-grid",
        metavar="FILE",
        help="also write the racing plan's runs still to do (more seeds for the methods that may be the best) "
        "as a grid file for `bench run --grid FILE`",
    )


def cmd_run_grid(a, argv: list[str]) -> int:
    """`bench run --grid FILE [flags]`: every entry checked first, then run in order; the worst exit status."""
    from methods import parse_method

    from .gridfile import read_grid
    from .settings import RunSettings

    entries, digest = read_grid(a.grid)
    rest = _flags_besides_grid(argv)
    parser, planned = build_parser(), []
    # plug-ins named in the file load before any entry is checked, as --plugin does on the command line
    # (gridfile.py documents `plugin`): a method they register is then known, a clash is refused
    from_file = sorted({f[i + 1] for _, f in entries for i, x in enumerate(f) if x == "--plugin"} - set(a.plugin))
    if from_file:
        load_plugins(from_file)
    for label, flags in entries:
        _GRID_ENTRY.append(label)
        try:
            args = parser.parse_args(["run", *flags, *rest])
            args.command_line = f"{a.command_line}  # {a.grid} sha256:{digest} [{label}]"
            settings = RunSettings.from_args(args)  # every value checked before the first entry runs
            for method in settings.request.methods:  # and every method name and --set value (data: later)
                parse_method(method, settings.request.overrides)
        except USER_ERRORS as e:
            raise BenchError(f"--grid {a.grid} [{label}]: {e}") from None
        finally:
            _GRID_ENTRY.pop()
        planned.append((label, args, settings, shlex.join(["python", "-m", "bench", "run", *flags, *rest])))
    if a.show_grid:
        for label, _, _, command in planned:
            print(f"# {label}\n{command}")
        return 0
    status = 0
    for label, args, settings, _ in planned:
        print(f"grid file {a.grid}: {label}", flush=True)
        code = cmd_run(args, settings)
        if code in (130, 143):  # Ctrl-C or SIGTERM ends the whole file, not just its current entry
            return code
        status = max(status, code)
    return status


def _flags_besides_grid(argv: list[str]) -> list[str]:
    """The flags typed after `run` other than --grid FILE and --show-grid: they apply to every entry."""
    out, it = [], iter(argv[argv.index("run") + 1 :])
    for arg in it:
        if arg == "--grid":
            next(it, None)
        elif not (arg.startswith("--grid=") or arg == "--show-grid"):
            out.append(arg)
    return out


class Terminated(KeyboardInterrupt):
    """SIGTERM during a grid: unwinds like Ctrl-C (workers stopped, claims released), with its own line."""


def _terminated(signum, frame):
    raise Terminated()


def cmd_run(a, settings=None) -> int:
    return run_command(a, settings)[0]


def run_command(a, settings=None, cache=None, table: bool = True) -> tuple[int, list]:
    """`bench run`: (exit status, the runs it planned). `cache`: data already loaded by the caller (`bench
    advise` runs several commands on one folder); `table`: print the grid's console table at the end."""
    from .executors import run_grid
    from .runner import DataCache, expand, plan_stacks
    from .settings import RunSettings
    from .status import write_manifest

    settings = settings or RunSettings.from_args(a)  # a grid file's entries come checked
    cache = cache or DataCache(a.data_root, a.image_size, a.skip_unreadable, a.split_by)
    stacks = plan_stacks(expand(settings.request, cache), settings.stack)
    specs = [s for stack in stacks for s in stack]
    for name in settings.request.datasets:  # what loading a user's folder found: the split per class, skipped files
        for note in cache.get(name)[1].notes:
            print(
                f"{name}: {note}",
                file=sys.stderr if note.startswith(("warning", "skipped", "not followed")) else sys.stdout,
            )
    out = settings.out
    print(settings.describe(len(specs), len(stacks)))
    store.prepare_out(out)  # after every check of flags and data: a refused command leaves nothing behind
    write_manifest(out, [s.key for s in specs], [s.label() for s in specs], a.command_line)
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _terminated)  # `kill PID` ends the grid as Ctrl-C does (issue 37)
    try:
        outcome = run_grid(settings, stacks)
    except Terminated:
        print(f"terminated (SIGTERM): finished records are in {out}; run the same command again to resume",
              file=sys.stderr)  # fmt: skip
        return 143, specs
    except KeyboardInterrupt:
        print(f"interrupted: finished records are in {out}; run the same command again to resume", file=sys.stderr)
        return 130, specs
    finally:
        signal.signal(signal.SIGTERM, previous)
    if outcome is None:  # submitted to SLURM without waiting
        return 0, specs
    return _grid_finished(outcome, specs, out, t0, table), specs


def _grid_finished(outcome, specs, out: Path, t0: float, table: bool = True) -> int:
    """The grid's summary line, its console table, and the exit status (1 when runs failed or were lost)."""
    ok = sum(r["status"] == "ok" for r in outcome.written)
    print(
        f"grid finished in {time.perf_counter() - t0:.1f} s: {ok} ok, {len(outcome.failed)} failed by this call; "
        f"{outcome.already_done} were already done"
        + (f"; {len(outcome.claimed)} being run by another process" if outcome.claimed else "")
        + (f"; {len(outcome.lost)} lost" if outcome.lost else "")
        + f"; records in {out}"
    )
    from .report import aggregate, print_console

    keys = {s.key for s in specs}
    every = [r for _, r in store.iter_records(out) if r]
    recs = [r for r in every if r.get("key") in keys]
    if table:
        asked = [r for r in recs if r.get("status") == "ok"]
        print_console(
            aggregate(asked), sum(r.get("status") != "ok" for r in recs), declared=_declared_analysis(every, asked)
        )
    if outcome.lost:
        print(
            f"error: the grid did not finish: {len(outcome.lost)} run(s) have no record (every worker stopped); "
            "finished records are kept, run the same command again to complete it",
            file=sys.stderr,
        )
        return 1
    if outcome.failed:
        print(
            f"error: {len(outcome.failed)} run(s) failed; their records say why (`bench report` lists them)",
            file=sys.stderr,
        )
        return 1
    return 0


def _declared_analysis(every: list[dict], asked: list[dict]):
    """An Analysis of every finished record of the boards the asked runs belong to, with the confirmatory
    families of grids/*.toml (none outside a checkout): what the declared contrasts among the asked methods
    say over all of the board's seeds. None without a family; a grid file that cannot be read is named."""
    from .report.analysis import Analysis
    from .report.model import aggregate, board_key

    try:
        families = families_of(None)
    except BenchError as e:
        print(f"warning: the declared contrasts are not shown: {e}", file=sys.stderr)
        return None
    if not families or not asked:
        return None

    boards = {board_key(r) for r in asked}
    same = []
    for r in every:
        try:
            if r.get("status") == "ok" and board_key(r) in boards:
                same.append(r)
        except (KeyError, TypeError, AttributeError):  # a record of another schema: the report names it
            continue
    return Analysis.of(aggregate(same), families=families)


def cmd_list(a) -> int:
    import dataclasses

    from rich.markup import escape
    from rich.table import Table

    from methods import parse_method

    t = Table(title="methods (compose with '+': at most one per role, auxiliary terms any number)", show_lines=True)
    for h in ("name", "role", "hyper-parameters (defaults, valid range)", "what it does", "paper", "stages"):
        t.add_column(h)
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        hps = []
        for f in dataclasses.fields(cls):
            rng = " ".join(
                f"{op}{f.metadata[k]}"
                for k, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                if f.metadata.get(k) is not None
            )
            default = f.default if f.default is not dataclasses.MISSING else "?"
            if isinstance(default, tuple):
                default = ",".join(map(str, default))
            space = cls.search_space.get(f.name)
            hps.append(
                f"{f.name}={default}"
                + (f" ({rng})" if rng else "")
                + (f" sweep {'|'.join(map(str, space))}" if space else "")
            )
        try:
            stages = parse_method(name).stages()
            plan = " -> ".join(f"{s.name} {s.share:g}" for s in stages) if len(stages) > 1 else "-"
        except Exception:  # a plug-in whose stages need more than a default composition
            plan = "?"
        role = cls.role + (f" (rev {cls.revision})" if cls.revision else "")
        t.add_row(*(escape(x) for x in (name, role, "\n".join(hps) or "-", cls.describe(), cls.paper or "-", plan)))
    _console().print(t)
    t = Table(title="presets (--preset; single flags override single settings)")
    for h in ("preset", "model and budget", "default seeds", "what it is for"):
        t.add_column(h)
    for name, pr in PRESETS.items():
        budget = f"width {pr['width']}, {pr['steps']} steps x {pr['batch_size']}"
        t.add_row(name, budget, str(len(pr["seeds"])), PRESET_PURPOSE.get(name, ""))
    _console().print(t)
    t = Table(title="datasets and tasks")
    for h in ("dataset", "built-in pairs (majority, minority)", "description"):
        t.add_column(h)
    for name in sorted(SOURCES):
        cls = SOURCES[name]
        pairs = "; ".join(f"{k}: {a} vs {b}" for k, (a, b) in cls.pairs.items()) or "--classes MAJ,MIN"
        t.add_row(name, pairs + "; lt: all classes", cls.description)
    _console().print(t)
    return 0


def cmd_datasets(a) -> int:
    from rich.table import Table

    from datasets import build_task

    drawn = []
    t = Table(title="data sources on this machine")
    for h in ("dataset", "available", "from", "licence", "tasks (train counts at 1:1 and 1:0.01, test per class)"):
        t.add_column(h)
    for name in sorted(SOURCES):
        src = get_source(name, data_root=a.data_root)
        av = src.availability()
        tasks = "-"
        if av.available and src.pairs:
            try:
                data = src.load()
                parts = []
                for task, (maj, mino) in src.pairs.items():
                    full = build_task(data, name, src.pairs, task, 1.0, 0)
                    low = build_task(data, name, src.pairs, task, 0.01, 0)
                    parts.append(
                        f"{task}: {maj} vs {mino} {full.train_counts} / {low.train_counts}, test {full.test_counts[0]}"
                    )
                tasks = "\n".join(parts)
            except USER_ERRORS as e:
                tasks = f"error: {e}"
        t.add_row(name, "yes" if av.available else "no", av.where, src.licence, tasks)
        if av.available and src.pairs and name != "synthetic" and a.figure:
            drawn.append((name, src, data))
    _console().print(t)
    if a.figure:
        from .report.figures import task_examples

        print(f"wrote {task_examples(drawn, Path(a.figure))}")
    return 0


def cmd_report(a) -> int:
    from .report import collect, report

    if a.reference:
        present = sorted({m for b in collect(Path(a.runs)).boards for m in b.methods}) if Path(a.runs).is_dir() else []
        if present and a.reference not in present:
            raise BenchError(f"--reference {a.reference} ran on no board; methods here: {', '.join(present)}")

    runs = Path(a.runs)
    if not runs.is_dir():
        raise BenchError(f"no run records: {runs} does not exist; run `python -m bench run` first or pass --runs DIR")
    if not (math.isfinite(a.margin) and 0 < a.margin < 1):
        raise BenchError(f"--margin is a difference in balanced accuracy in (0, 1), got {a.margin}")
    if not (math.isfinite(a.review_target) and 0 < a.review_target <= 1):
        raise BenchError(f"--review-target is a share of the rare class's images in (0, 1], got {a.review_target}")
    col = report(
        runs, Path(a.out), reference=a.reference or "os", figures=not a.no_figures, site=a.html, margin=a.margin,
        review_target=a.review_target, families=families_of(a.family), verbose=a.verbose,
    )  # fmt: skip
    print(
        f"read {len(col.ok)} finished and {len(col.failed)} failed records ({len(col.unreadable)} unreadable) "
        f"from {runs}; wrote {Path(a.out) / 'leaderboard.md'}, leaderboard.csv, latex/ and {len(col.figures)} "
        "figure files" + (f", and the site {Path(a.out) / 'site' / 'index.html'}" if a.html else "")
    )
    if not col.figures and not a.no_figures:
        print(
            "no figure: each figure needs more than these records give: accuracy against ratio two ratios or more "
            "on a two-class board; accuracy against class frequency a long-tailed board; paired differences "
            f"the reference method ({a.reference or 'os'}) and another with two seeds in common; a budget study two "
            "--steps budgets; embeddings --save-features; the review queue records with per-image probabilities"
        )
    for p, why in col.unreadable:
        print(f"warning: unreadable record {p}: {why} (skipped)", file=sys.stderr)
    if a.race_grid:
        Path(a.race_grid).write_text(col.race_grid)
        entries = col.race_grid.count("[[run]]")
        print(f"racing plan: {entries} grid entries still to run, written to {a.race_grid}")
    return _readme_blocks(a.readme, a.check_readme, col.summary_blocks)


def _readme_blocks(refresh_paths: list[str], check_paths: list[str], generated: dict[str, str]) -> int:
    from .report.readme import refresh, stale

    for path in [*refresh_paths, *check_paths]:
        if not Path(path).is_file():
            raise BenchError(f"{path}: no such file to refresh or check")
    for path in refresh_paths:
        text = Path(path).read_text(encoding="utf-8")
        Path(path).write_text(refresh(text, generated), encoding="utf-8")
        print(f"refreshed the generated blocks and values of {path}")
    status = 0
    for path in check_paths:
        bad = stale(Path(path).read_text(encoding="utf-8"), generated)
        if bad:
            print(
                f"error: {path} quotes tables or values its records no longer give: {', '.join(bad)}; run "
                f"`python -m bench report --readme {path}` and commit it",
                file=sys.stderr,
            )
            status = 1
        else:
            print(f"{path}: every generated block and value equals what the records give")
    return status


def cmd_status(a) -> int:
    from .status import status

    return status(Path(a.out))


def cmd_perf(a) -> int:
    from .perf import measure, write_results
    from .train import pick_device

    device = pick_device(a.device)
    preset = a.preset or ("paper" if device.type == "cuda" else "quick")
    try:
        levels = [int(x) for x in csv_list(a.concurrency)] if a.concurrency else None
        batched = [int(x) for x in csv_list(a.batched)] if a.batched else None
    except ValueError:
        raise BenchError("--concurrency and --batched take counts such as 1,2,4") from None
    if batched and min(batched) < 2:
        raise BenchError("--batched counts must be >= 2")
    if a.repeats < 1 or a.epochs < 1 or (levels and min(levels) < 1):
        raise BenchError("--repeats, --epochs and each --concurrency count must be >= 1")
    if a.grid:
        return _perf_grid(a, device, preset)
    if a.frozen_cache:
        from .perf import write_results
        from .perf_cache import frozen_cache_speed

        result = frozen_cache_speed(a.dataset, steps=a.steps or 240, repeats=a.repeats)
        result["command"] = a.command_line
        path = write_results(result, Path(a.results))
        print("; ".join(f"{t}: {s['speedup']:.2f}x the runs per hour" for t, s in result["summary"].items())
              + f" with the frozen-trunk cache; written to {path}")  # fmt: skip
        return 0
    result = measure(
        a.dataset,
        "fine",
        preset,
        device,
        repeats=a.repeats,
        epochs=a.epochs,
        compile_check=True if a.compile_check else None,
        concurrency_levels=levels,
        batched_levels=batched,
        layout=a.layout_check,
    )
    result["command"] = a.command_line
    path = write_results(result, Path(a.results))
    print(
        f"harness {result['harness_median']:.0f} img/s, naive {result['naive_median']:.0f} img/s: "
        f"{result['speedup']:.2f}x; fsc {result['overhead_vs_ce']['fsc'] * 100:+.1f}%, "
        f"supcon {result['overhead_vs_ce']['supcon'] * 100:+.1f}% per step over ce; written to {path}"
    )
    return 0


def _perf_grid(a, device, preset: str) -> int:
    from .perf import write_results
    from .perf_grid import grid_throughput

    if a.seeds < 2 or a.stack < 2 or (a.steps is not None and a.steps < 1):
        raise BenchError("perf --grid needs --seeds >= 2 and --stack >= 2 (something to stack), --steps >= 1")
    result = grid_throughput(a.dataset, preset=preset, seeds=a.seeds, stack=a.stack, steps=a.steps, device=device)
    result["command"] = a.command_line
    path = write_results(result, Path(a.results))
    print(f"stacked over pool: {result['speedup']:.2f}x the runs per hour; written to {path}")
    return 0


def cmd_pretrain(a) -> int:
    from .pretrain import SHIPPED, pretrain
    from .progress import plain_progress

    out = Path(a.out) if a.out else SHIPPED
    prov = pretrain(a.name, a.steps, a.seed, out, progress=plain_progress(f"pretrain {a.name}"))
    print(
        f"{a.name}: {prov['steps']} steps on {len(prov['classes'])} {prov['source']} classes "
        f"({', '.join(prov['classes'])}), held-out accuracy {prov['heldout_accuracy']:.3f} on "
        f"{prov['heldout_images']} test images; wrote {out / (a.name + '.pt')} (sha256 {prov['sha256'][:12]}) "
        "with its config and provenance"
    )
    return 0


def cmd_predict(a) -> int:
    from .saved_model import classify, decode, load, photo_files, write_predictions
    from .train import pick_device

    root = Path(a.photos)
    files = photo_files(root)
    device = pick_device(a.device)
    model, config, posthoc = load(Path(a.model), device)
    classes = config["classes"]
    top = [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else None for f in files]
    labelled = all(t in classes for t in top)
    logits = classify(model, config, posthoc, decode(files, config), device)
    labels = np.array([classes.index(t) for t in top]) if labelled else None
    write_predictions(Path(a.out), [str(f.relative_to(root)) for f in files], logits, classes, labels)
    pred = logits.argmax(axis=1)
    counts = ", ".join(f"{c} {int((pred == i).sum())}" for i, c in enumerate(classes))
    print(f"{len(files)} photos classified by {config['method']} ({Path(a.model).name}): {counts}; wrote {a.out}")
    if labelled:
        acc = [float((pred[labels == i] == i).mean()) for i in range(len(classes)) if (labels == i).any()]
        seen = [c for i, c in enumerate(classes) if (labels == i).any()]
        print("accuracy per class (folders as labels): " + ", ".join(f"{c} {v:.3f}" for c, v in zip(seen, acc)))
    return 0


def cmd_advise(a) -> int:
    from .advise import advise
    from .settings import RunSettings

    def run(argv: list[str], command_line: str, cache) -> tuple[int, list]:
        args = build_parser().parse_args(argv)
        args.command_line = command_line
        return run_command(args, RunSettings.from_args(args), cache, table=False)

    try:
        return advise(a, run)
    except KeyboardInterrupt:
        print(f"interrupted: the race's records are in {a.out}/runs; run the same command again to resume",
              file=sys.stderr)  # fmt: skip
        return 130


COMMANDS = {
    "advise": cmd_advise,
    "predict": cmd_predict,
    "pretrain": cmd_pretrain,
    "status": cmd_status,
    "perf": cmd_perf,
    "run": cmd_run,
    "list": cmd_list,
    "datasets": cmd_datasets,
    "report": cmd_report,
}


def families_of(paths: list[str] | None) -> list[dict]:
    """The confirmatory families of the grid files given, else of every grids/*.toml that declares one."""
    from .gridfile import read_family

    files = paths if paths is not None else sorted(str(p) for p in Path("grids").glob("*.toml"))
    out = []
    for p in files:
        if not Path(p).is_file():
            raise BenchError(f"--family {p}: no such grid file")
        try:
            fam = read_family(p)
        except (OSError, ValueError) as e:
            raise BenchError(f"--family {p}: cannot read it ({e})") from None
        if fam is None and paths is not None:
            raise BenchError(f"--family {p}: it declares no [confirmatory] table")
        if fam is not None:
            out.append(fam)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a bad flag (already said in one line)
        return int(e.code or 0)
    args.command_line = shlex.join(["python", "-m", "bench", *argv])  # recorded with every run
    try:
        load_plugins(getattr(args, "plugin", []))
        if args.command == "run" and args.grid:
            return cmd_run_grid(args, argv)
        if args.command == "run" and args.show_grid:  # else it would be ignored and the grid would run
            raise BenchError("--show-grid prints a grid file's commands: pass it with --grid FILE")
        return COMMANDS[args.command](args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
