"""Faults a user meets on a shared cluster folder, each reproduced as the issue found it: native
crashes, lost runs, orphaned workers, bad files, concurrent launches, bad folders, a full disk."""

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import store
from bench.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["run", "--dataset", "synthetic", "--preset", "tiny", "--plain"]


def _photos(root: Path, per_class: dict[str, int], size: int = 60) -> None:
    rng = np.random.default_rng(0)
    for cls, n in per_class.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")


def _bench(args, env_extra=None, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO)) | (env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=REPO, env=env, text=True, **kw)


# ---- 1. native crashes --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_tiny_preset_on_60px_photos_trains(tmp_path):
    """torch 2.14.1's oneDNN crashed ('free(): invalid next size') on channels_last at 1/8 width from
    56 px on this CPU; such inputs now train in the default memory format."""
    _photos(tmp_path / "photos", {"cat": 12, "dog": 12})
    args = ["run", "--preset", "tiny", "--dataset", "folder", "--data-root", str(tmp_path / "photos")]
    p = _bench([*args, "--classes", "cat,dog", "--methods", "ce", "--ratios", "0.5", "--out", str(tmp_path / "r")])
    assert p.wait(timeout=300) == 0
    [(_, rec)] = list(store.iter_records(tmp_path / "r"))
    assert rec["status"] == "ok"


@pytest.mark.slow
def test_a_native_crash_in_a_run_is_a_failed_record_and_the_grid_goes_on(tmp_path):
    (tmp_path / "abort_plugin.py").write_text(
        textwrap.dedent(
            '''
            import os
            import methods as M


            @M.register
            class Abort(M.Auxiliary):
                """Dies like a native crash (SIGABRT), with no Python exception."""

                name = "test_abort"

                def __call__(self, feats, labels):
                    os.abort()
            '''
        )
    )
    out = tmp_path / "runs"
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    args = [*TINY, "--ratios", "0.25", "--methods", "ce,test_abort,os", "--plugin", "abort_plugin", "--out", str(out)]
    p = _bench(args, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 1, stdout + stderr  # 2. a grid that did not finish cleanly is not exit 0
    assert "1 run(s) failed" in stderr and "Traceback" not in stderr
    recs = {r["spec"]["method"]: r for _, r in store.iter_records(out)}
    assert recs["ce"]["status"] == recs["os"]["status"] == "ok"
    assert recs["test_abort"]["status"] == "failed" and "died (signal SIGABRT)" in recs["test_abort"]["error"]
    assert not list(store.claims_dir(out).iterdir())  # no claim left behind


# ---- 3. workers die with their parent; Ctrl-C is one line -----------------------------------------


def _children(pid):
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _running(pid: int) -> bool:
    """Whether a process still runs (not ended, not a zombie); it may end while we look."""
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False


def _grid_started(out: Path, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and not list(out.glob("*.json")):
        time.sleep(0.2)
    assert list(out.glob("*.json")), "the grid did not start"


@pytest.mark.slow
def test_workers_die_with_a_killed_parent(tmp_path):
    out = tmp_path / "runs"
    args = [*TINY, "--steps", "400", "--ratios", "1,0.25", "--methods", "ce,os,fsc", "--out", str(out)]
    p = _bench([*args, "--workers-per-gpu", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _grid_started(out)
    workers = _children(p.pid)
    assert workers
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if _running(w)]
    assert not alive, f"orphaned workers still running: {alive}"


@pytest.mark.slow
def test_ctrl_c_stops_the_grid_in_one_line(tmp_path):
    out = tmp_path / "runs"
    args = [*TINY, "--steps", "400", "--ratios", "1,0.25", "--methods", "ce,os,fsc", "--out", str(out)]
    # (a launcher in the background, e.g. `nohup .ci/run &`, hands its children SIGINT ignored: undo that)
    p = _bench(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _grid_started(out)
    os.killpg(p.pid, signal.SIGINT)  # as a terminal's Ctrl-C reaches the whole process group
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted: finished records are in" in stderr
    assert "leaked semaphore" not in stderr  # issue 37: multiprocessing's warning was the last line of every kill


@pytest.mark.slow
def test_sigterm_stops_the_grid_in_one_line_and_leaves_no_claim(tmp_path):
    """Issue 37: `kill PID` ended with exit 143, no message and stale claims."""
    out = tmp_path / "runs"
    args = [*TINY, "--steps", "400", "--ratios", "1,0.25", "--methods", "ce,os,fsc", "--out", str(out)]
    p = _bench(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _grid_started(out)
    os.kill(p.pid, signal.SIGTERM)  # the parent only, as `kill PID` does
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 143 and "Traceback" not in stderr, stderr
    assert "terminated (SIGTERM): finished records are in" in stderr
    assert "leaked semaphore" not in stderr
    left = sorted(c.name for c in (out / ".claims").iterdir()) if (out / ".claims").exists() else []
    assert left == [], left


@pytest.mark.slow
def test_sigterm_ends_a_grid_file_not_just_its_current_entry(tmp_path):
    """Seen 2026-12-03: `kill PID` of `bench run --grid FILE` ended the entry it was in, and the file went on
    to its next entry (two processes then shared one grid). Now the whole file ends, exit 143."""
    out = tmp_path / "runs"
    grid = tmp_path / "g.toml"
    grid.write_text(
        '[defaults]\ndataset = "synthetic"\npreset = "tiny"\nsteps = 400\nratios = [1, 0.25]\n'
        'methods = ["ce", "os", "fsc"]\n\n[[run]]\nname = "first"\n\n[[run]]\nname = "second"\nseeds = 2\n'
    )
    p = _bench(["run", "--grid", str(grid), "--out", str(out), "--plain"], stdout=subprocess.PIPE,
               stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    _grid_started(out)
    os.kill(p.pid, signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 143 and "terminated (SIGTERM)" in stderr, stderr
    assert "grid file" in stdout and ": second" not in stdout, stdout


# ---- 4. bad files, 7. concurrent launches ---------------------------------------------------------


def test_bad_files_in_the_runs_folder_are_named_and_the_grid_goes_on(tmp_path, capsys):
    from .conftest import tiny_specs

    out = tmp_path / "runs"
    a, b = tiny_specs(["ce", "os"])
    out.mkdir()
    store.record_path(out, a.key).write_bytes(b"\xff\xfe not utf-8")
    store.record_path(out, b.key).mkdir()  # a folder named like a record
    assert main([*TINY, "--ratios", "0.25", "--methods", "ce,os", "--executor", "local", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"unreadable record {store.record_path(out, a.key)} (not UTF-8 text); run" in err
    assert f"{store.record_path(out, b.key)} is a folder, not a record file (remove it)" in err
    assert store.read_record(store.record_path(out, a.key))["status"] == "ok"  # redone
    assert main(["status", "--out", str(out)]) == 0


# ---- issue 37: faults the round-four re-test found ---------------------------------------------------


def test_a_pipe_at_a_records_path_is_trained_again_not_counted_done(tmp_path, capsys):
    from .conftest import tiny_specs

    out = tmp_path / "runs"
    [a] = tiny_specs(["ce"])
    out.mkdir()
    os.mkfifo(store.record_path(out, a.key))
    assert main([*TINY, "--ratios", "0.25", "--methods", "ce", "--executor", "local", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "not a regular file (a pipe, socket or device)" in err and "is redone" in err
    assert store.read_record(store.record_path(out, a.key))["status"] == "ok"


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_pipe_or_folder_in_a_claims_place_neither_hangs_nor_crashes_the_run(kind, tmp_path, capsys):
    """A pipe at .claims/KEY used to block `bench run` for ever, a folder older than 10 s made a traceback:
    both are unreadable claims, named by `status`, and taken over once stale."""
    from .conftest import tiny_specs

    out = tmp_path / "runs"
    [a] = tiny_specs(["ce"])
    (out / ".claims").mkdir(parents=True)
    path = out / ".claims" / a.key
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    old = time.time() - 60
    os.utime(path, (old, old))
    assert [k for k, *_ in store.held_claims(out)] == [a.key]  # status names it
    assert main(["status", "--out", str(out)]) == 0
    assert main([*TINY, "--ratios", "0.25", "--methods", "ce", "--executor", "local", "--out", str(out)]) == 0
    assert store.read_record(store.record_path(out, a.key))["status"] == "ok"
    assert not path.exists()  # released after the run


def test_an_absurd_step_budget_is_refused(tmp_path, capsys):
    assert main([*TINY, "--steps", "9223372036854775808", "--out", str(tmp_path)]) == 2
    assert "a typo?" in capsys.readouterr().err


def test_a_grid_files_plugin_is_loaded_like_the_command_lines(tmp_path, capsys):
    """gridfile.py documents `plugin`; it used to be ignored ('unknown method')."""
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(
        "import methods as M\n\n\n@M.register\nclass GridOnly(M.Criterion):\n    name = 'grid_only_ce'\n\n"
        "    def class_losses(self, logits):\n        return -logits.log_softmax(dim=1)\n"
    )
    grid = tmp_path / "g.toml"
    grid.write_text(
        f'[defaults]\nplugin = "{plugin}"\n[[run]]\ndataset = "synthetic"\npreset = "tiny"\nratios = 0.25\n'
        'methods = "grid_only_ce"\n'
    )
    assert main(["run", "--grid", str(grid), "--out", str(tmp_path / "runs"), "--plain", "--executor", "local"]) == 0
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1


@pytest.mark.slow
def test_two_launches_of_one_grid_train_each_run_once(tmp_path):
    out = tmp_path / "runs"
    args = [*TINY, "--steps", "30", "--ratios", "1,0.25", "--methods", "ce,os,fsc", "--out", str(out)]
    procs = [_bench([*args, "--executor", "local"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    logs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    trained = [int(log[0].split("grid finished in ")[1].split(" ok")[0].split(": ")[1]) for log in logs]
    assert sum(trained) == 6, logs  # every run trained by exactly one of the two
    assert len(list(out.glob("*.json"))) == 6 and len(list((out / ".grids").glob("*.json"))) == 1


def test_a_corrupt_manifest_does_not_break_status(tmp_path, capsys):
    out = tmp_path / "runs"
    (out / ".grids").mkdir(parents=True)
    (out / ".grids" / "abc.json").write_text("{ half")
    assert main(["status", "--out", str(out)]) == 0
    assert "unreadable grid manifest" in capsys.readouterr().err


# ---- 8. and 13. a user's photo folder ------------------------------------------------------------


def _folder_args(root, out):
    return [
        "run", "--preset", "tiny", "--dataset", "folder", "--data-root", str(root), "--classes", "cat,dog",
        "--methods", "ce", "--ratios", "0.5", "--image-size", "16", "--executor", "local", "--plain", "--out", str(out),
    ]  # fmt: skip


def test_a_folder_link_loop_is_not_followed(tmp_path, capsys):
    _photos(tmp_path / "p", {"cat": 12, "dog": 12}, size=20)
    (tmp_path / "p" / "cat" / "loop").symlink_to(tmp_path / "p")  # a link back up: dog photos as cats
    assert main(_folder_args(tmp_path / "p", tmp_path / "r")) == 0
    captured = capsys.readouterr()
    assert "not followed: folder link" in captured.err and "cat 10 train / 2 test" in captured.out
    [(_, rec)] = list(store.iter_records(tmp_path / "r"))
    assert sum(rec["counts"]["train"]) + sum(rec["counts"]["test"]) <= 24


@pytest.mark.parametrize("bad", ["dangling", "loop", "bomb"])
def test_unreadable_photos_are_one_line_or_skipped_and_listed(tmp_path, capsys, bad):
    root = tmp_path / "p"
    _photos(root, {"cat": 12, "dog": 12}, size=20)
    target = root / "dog" / "bad.png"
    if bad == "dangling":
        target.symlink_to(tmp_path / "nowhere.png")
    elif bad == "loop":
        target.symlink_to(root / "dog" / "bad2.png")
        (root / "dog" / "bad2.png").symlink_to(target)
    else:  # 20000 x 20000: PIL's decompression-bomb guard
        Image.new("1", (20000, 20000)).save(target)
    assert main(_folder_args(root, tmp_path / "r")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.png" in err and "--skip-unreadable" in err
    assert main([*_folder_args(root, tmp_path / "r"), "--skip-unreadable"]) == 0
    [(_, rec)] = list(store.iter_records(tmp_path / "r"))
    assert any("bad.png" in n for n in rec["data"]["notes"])


def test_the_folder_cache_is_keyed_by_content_and_verified(tmp_path):
    import torch

    from datasets import get_source
    from datasets.base import cache_dir

    root = tmp_path / "p"
    _photos(root, {"cat": 6, "dog": 6}, size=20)
    first = get_source("folder", data_root=str(root), image_size=16).load()
    [cache] = list((cache_dir() / "folder").glob("*.pt"))
    blob = torch.load(cache, weights_only=True)
    blob["y"] = 1 - blob["y"]  # flipped labels in a file that still loads
    torch.save(blob, cache)
    again = get_source("folder", data_root=str(root), image_size=16).load()
    assert torch.equal(again.train_y, first.train_y)  # the tampered cache was rebuilt, not used
    os.utime(root / "cat" / "0.png", (1, 1))  # a new date, the same content: the same data and digest
    assert get_source("folder", data_root=str(root), image_size=16).load().digest == first.digest
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(root / "cat" / "0.png")
    assert get_source("folder", data_root=str(root), image_size=16).load().digest != first.digest


@pytest.mark.parametrize("size", ["0", "-5", "100000"])
def test_image_size_out_of_range_is_one_line(tmp_path, capsys, size):
    _photos(tmp_path / "p", {"cat": 3, "dog": 3}, size=20)
    args = _folder_args(tmp_path / "p", tmp_path / "r")
    args[args.index("--image-size") + 1] = size
    assert main(args) == 2
    assert "--image-size must be between 8 and 1024" in capsys.readouterr().err


# ---- 9. one line, exit 2, before anything is written ----------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr", "nan"], "--lr must be a finite number > 0"),
        (["--width", "inf"], "--width must be a finite number > 0"),
        (["--n-major", "0"], "--n-major is a count"),
        (["--val-per-class", "200"], "--val-per-class 200 leaves no training images"),
        (["--data-seed", "-1"], "--data-seed must be >= 0"),
        (["--seeds", "100000"], "pass --yes"),
        (["--task", "lt", "--classes", "a"], "needs at least two classes"),
        (["--seeds", "x"], "argument --seeds: invalid int value"),
        (["--model", "x"], "--model x: not a backbone the suite knows"),
        (["--workers-per-gpu", "0"], "--workers-per-gpu must be >= 1"),
        (["--show-grid"], "--show-grid prints a grid file's commands: pass it with --grid FILE"),
        (["--preset", "transfer", "--dataset", "animals,fashion"], "run one dataset per command"),
        (["--preset", "transfer", "--dataset", "synthetic"], "the suite ships no pretrained start for synthetic"),
    ],
)
def test_bad_flags_are_one_line_before_anything_is_written(argv, message, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main([*TINY, "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()  # no manifest, no folder


def test_bad_out_folders_are_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out, message in (
        ("", "--out must name a folder"),
        (str(tmp_path / "file" / "runs"), "a file or folder is in the way"),
        ("/proc/runs", "cannot write /proc/runs"),
    ):  # noqa: E501
        assert main([*TINY, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_report_reference_must_have_run(tmp_path, capsys):
    from .conftest import tiny_specs

    out = tmp_path / "runs"
    assert main([*TINY, "--ratios", "0.25", "--methods", "ce,os", "--executor", "local", "--out", str(out)]) == 0
    assert len(tiny_specs(["ce", "os"])) == 2
    assert main(["report", "--runs", str(out), "--out", str(tmp_path / "o"), "--reference", "nosuch"]) == 2
    assert "--reference nosuch ran on no board; methods here: ce, os" in capsys.readouterr().err


# ---- 10. a full disk, unwritable folders, crafted files -------------------------------------------


def test_a_full_disk_is_one_line_and_leaves_no_partial_record(tmp_path, capsys, monkeypatch):
    real = os.fsync

    def full(fd):
        real(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    out = tmp_path / "runs"
    assert main([*TINY, "--ratios", "0.25", "--methods", "ce", "--executor", "local", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on the device" in err and "the grid resumes" in err
    assert list(out.glob("*.json")) == [] and list(out.glob(".*.tmp")) == []


def test_report_to_an_unwritable_folder_is_one_line(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main([*TINY, "--ratios", "0.25", "--methods", "ce", "--executor", "local", "--out", str(out)]) == 0
    (tmp_path / "file").write_text("x")
    assert main(["report", "--runs", str(out), "--out", str(tmp_path / "file" / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write" in err


def test_a_truncated_feature_file_is_named_and_skipped(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = [*TINY, "--ratios", "0.25", "--methods", "ce,os,os+fsc", "--executor", "local", "--save-features"]
    assert main([*argv, "--out", str(out)]) == 0
    npz = sorted((out / "features").glob("*.npz"))[0]
    npz.write_bytes(npz.read_bytes()[:100])
    assert main(["report", "--runs", str(out), "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert f"unreadable feature file {npz}" in captured.out + captured.err


# ---- 11. permissions, 12. progress in a log -------------------------------------------------------


def test_records_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store.write_record(tmp_path, {"key": "k", "spec": {}, "status": "ok"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o644


def test_a_log_gets_progress_lines_inside_a_run(tmp_path, capsys, monkeypatch):
    import bench.progress

    monkeypatch.setattr(bench.progress, "PROGRESS_EVERY_S", 0.0)
    argv = [*TINY, "--ratios", "0.25", "--methods", "ce", "--executor", "local", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "... synthetic/fine r=0.25 ce seed=0: step" in out
    assert "grid finished in" in out and "0 were already done" in out


# ---- the run key --------------------------------------------------------------------------------


def test_numerics_are_in_the_key_and_a_gpu_record_never_makes_a_cpu_run_skip(tmp_path, capsys):
    from dataclasses import replace

    from bench.spec import numerics

    from .conftest import tiny_specs

    [cpu1] = tiny_specs(["ce"])
    cpu2 = replace(cpu1, numerics=numerics("cpu", "auto", 2))
    gpu = replace(cpu1, numerics=numerics("cuda", "auto", None))
    assert len({cpu1.key, cpu2.key, gpu.key}) == 3
    assert gpu.numerics.startswith("cuda bf16") and "threads" not in gpu.numerics
    out = tmp_path / "runs"
    store.write_record(out, {"key": gpu.key, "spec": json.loads(gpu.canonical()), "status": "ok", "metrics": {}})
    assert main([*TINY, "--ratios", "0.25", "--methods", "ce", "--executor", "local", "--out", str(out)]) == 0
    assert "1 ok" in capsys.readouterr().out  # the CPU run trained; the GPU record did not stand for it


@pytest.mark.parametrize(
    "code, message", [(errno.EROFS, "pass a writable --out folder"), (errno.EACCES, "pass a writable --out folder")]
)
def test_a_read_only_or_forbidden_folder_is_one_line(tmp_path, capsys, monkeypatch, code, message):
    def refuse(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store.tempfile, "mkstemp", refuse)
    out = tmp_path / "runs"
    out.mkdir()
    assert main([*TINY, "--ratios", "0.25", "--methods", "ce", "--executor", "local", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_grid_manifests_and_claims_stay_out_of_git():
    for path in ("results/runs/.grids/abc.json", "results/runs/.claims/0123", "results/runs/.slurm/jobs.json"):
        r = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert r.returncode == 0, f"{path} is not ignored"


def test_weights_are_keyed_by_content_not_path(tmp_path, capsys):
    import torch

    from bench.models import build_model

    w = tmp_path / "w.pt"
    argv = [*TINY, "--ratios", "0.25", "--methods", "ce", "--executor", "local", "--weights", str(w)]
    torch.manual_seed(0)
    torch.save(build_model(2, 1, 16, 0.125).state_dict(), w)
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    torch.manual_seed(1)
    torch.save(build_model(2, 1, 16, 0.125).state_dict(), w)  # same path, other weights
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "1 ok" in capsys.readouterr().out.split("grid finished")[-1]  # trained again: a new key
    assert len(list((tmp_path / "a").glob("*.json"))) == 2


def test_a_record_edited_to_an_impossible_ratio_is_named_not_put_on_a_board(tmp_path):
    from .test_report import rec

    r = rec("ce", 0.01, 0, 1.0, 0.5)
    r["spec"]["ratio"] = -1
    store.write_record(tmp_path, r)
    assert store.load_record(store.record_path(tmp_path, r["key"]))[1] == (
        "finished record whose spec.ratio is outside (0, 1]"
    )


def test_weight_balancing_is_not_composed_with_a_method_that_replaces_the_classifier():
    """Issue 37 item 6: under wb+ldam MaxNorm bounded the 64 feature rows of LDAM's cosine classifier."""
    from methods import MethodError, parse_method

    with pytest.raises(MethodError, match="changes the classifier twice"):
        parse_method("wb+ldam")
    assert parse_method("os+wb").name == "os+wb"  # the standard grid's composition stays


def test_a_typo_in_a_method_name_suggests_the_name_meant(tmp_path, capsys):
    """Issue 38: the error used to list 25 names and nothing else."""
    assert main([*TINY, "--methods", "ce,os+fsx", "--out", str(tmp_path)]) == 2
    assert "unknown method 'fsx'; did you mean fsc?" in capsys.readouterr().err


def test_two_ratios_that_give_one_training_set_are_named(tmp_path, capsys):
    """Issue 38: on a small class two ratios round to the same minority count, the same cell twice."""
    assert main([*TINY, "--methods", "ce", "--ratios", "0.004,0.003", "--out", str(tmp_path), "--executor",
                 "local"]) == 0  # fmt: skip
    assert "ratios 1:0.004 and 1:0.003 give the same training counts" in capsys.readouterr().err


@pytest.mark.slow
def test_a_full_disk_under_two_workers_leaves_no_claim_of_either(tmp_path):
    """Issue 37 item 12: with 2 workers, the worker whose record met a full disk stopped the pool, and its
    sibling's claim was left behind (stale, taken over on the next launch; the contract says none is left).
    The full disk is simulated in the worker processes only, by a plug-in (plug-ins load in every worker)."""
    plugin = tmp_path / "full_disk.py"
    plugin.write_text(
        "import errno, multiprocessing\n"
        "from bench import store\n"
        "if multiprocessing.parent_process() is not None:  # a worker: every record write meets a full disk\n"
        "    def full(out, record):\n"
        "        raise store.write_failure(store.record_path(out, record['key']), "
        "OSError(errno.ENOSPC, 'No space left on device'))\n"
        "    store.write_record = full\n"
    )
    out = tmp_path / "runs"
    args = [*TINY, "--steps", "60", "--ratios", "1,0.5,0.25", "--methods", "ce,os", "--executor", "pool",
            "--workers-per-gpu", "2", "--plugin", str(plugin), "--out", str(out)]  # fmt: skip
    p = _bench(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = p.communicate(timeout=600)
    assert p.returncode == 2 and "no space left on the device" in stderr, stderr
    assert list(out.glob("*.json")) == []
    left = sorted(c.name for c in (out / ".claims").iterdir()) if (out / ".claims").exists() else []
    assert left == [], left
