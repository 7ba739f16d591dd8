"""Grid files (`bench run --grid FILE`, bench/gridfile.py): the same runs as the commands they stand for,
checked up front, and recorded with the file's digest and entry."""

import json

import pytest

from bench.cli import main
from bench.gridfile import read_grid

GRID = """
description = "two entries, seed by seed"
seeds = 2
seed_by_seed = true

[defaults]
dataset = "synthetic"
task = "fine"
ratios = 0.25
preset = "tiny"
steps = 4

[[run]]
name = "plain"
methods = ["ce", "os"]

[[run]]
methods = "fsc"
set = ["fsc.lam=0.5"]
seeds = 1
"""


def _keys(out):
    return {json.loads(p.read_text())["key"] for p in out.glob("*.json")}


def test_a_grid_file_runs_what_its_commands_run_seed_by_seed(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    entries, digest = read_grid(str(grid))
    assert [label for label, _ in entries] == ["plain, seeds 0-0", "entry 2, seeds 0-0", "plain, seeds 0-1"]
    assert main(["run", "--grid", str(grid), "--out", str(tmp_path / "g"), "--plain", "--executor", "local"]) == 0
    common = ["run", "--dataset", "synthetic", "--task", "fine", "--ratios", "0.25", "--preset", "tiny"]
    common += ["--steps", "4", "--plain", "--executor", "local", "--out", str(tmp_path / "c")]
    assert main([*common, "--methods", "ce,os", "--seeds", "2"]) == 0
    assert main([*common, "--methods", "fsc", "--set", "fsc.lam=0.5", "--seeds", "1"]) == 0
    assert _keys(tmp_path / "g") == _keys(tmp_path / "c") and len(_keys(tmp_path / "g")) == 5
    rec = json.loads(next((tmp_path / "g").glob("*.json")).read_text())
    assert f"sha256:{digest}" in rec["command"] and str(grid) in rec["command"]
    assert main(["run", "--grid", str(grid), "--show-grid", "--out", "x"]) == 0
    shown = capsys.readouterr().out
    assert "# plain, seeds 0-1\npython -m bench run --dataset synthetic" in shown and "--seeds 2 --out x" in shown


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[run]]\nmethods = "ce"\nbogus_flag = 1\n', "[entry 1]: unrecognized arguments: --bogus-flag 1"),
        ('[[run]]\nmethods = "nosuch"\n', "[entry 1]: unknown method 'nosuch'"),
        ('[[run]]\nmethods = "ce"\nratios = 7\n', "[entry 1]: "),
        ("[[run]\n", "not valid TOML"),
        ("seeds = 2\n", "no [[run]] entry"),
        ('steps = 2\n[[run]]\nmethods = "ce"\n', "unknown top-level keys ['steps']"),
        ('seed_by_seed = true\n[[run]]\nmethods = "ce"\n', "seed_by_seed needs a number of seeds"),
    ],
)
def test_a_bad_grid_file_is_one_line_before_any_run(tmp_path, capsys, text, message):
    grid = tmp_path / "g.toml"
    defaults = '\n[defaults]\ndataset = "synthetic"\npreset = "tiny"\n' if "[[run]]\n" in text else ""
    grid.write_text(text + defaults)
    assert main(["run", "--grid", str(grid), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_a_missing_grid_file_names_the_fix(tmp_path, capsys):
    assert main(["run", "--grid", str(tmp_path / "none.toml")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_every_committed_grid_file_reads():
    from pathlib import Path

    files = sorted(Path(__file__).resolve().parents[1].glob("grids/*.toml"))
    assert files
    for f in files:
        entries, _ = read_grid(str(f))
        assert entries and all(flags for _, flags in entries)
