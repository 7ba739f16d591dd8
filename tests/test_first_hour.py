"""Issue 29 (a user's first hour): progress bars that move and fit 80 columns, the training counts a
run will see, and a console table a newcomer reads without a legend."""

import io
import re

from rich.console import Console

from bench.cli import main
from bench.progress import RichProgress

from .test_hardening import TINY, _folder_args, _photos


def _render(progress: RichProgress) -> str:
    out = Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None)
    out.print(progress.progress.get_renderable())
    return out.file.getvalue()


def test_run_bars_move_with_the_steps_of_every_worker_and_fit_80_columns():
    p = RichProgress(4, 0, console=Console(file=io.StringIO(), force_terminal=True, width=80))
    p.start_run("animals/fine r=0.01 os+fsc [fsc.lam=0.3] seed=0", 240)
    p.start_run("animals/fine r=0.01 ce seed=1", 240)  # a second pool worker's run
    p.worker_step("animals/fine r=0.01 os+fsc [fsc.lam=0.3] seed=0", 120, 240, 0.25)
    p.worker_step("animals/fine r=0.01 ce seed=1", 228, 240, 0.01)
    [grid, first, second] = p.progress.tasks
    assert (first.completed, second.completed) == (120, 228)  # they used to stay at 0/240
    text = _render(p)
    lines = [line for line in text.splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines)
    assert "120/240" in text and "228/240" in text and len(re.findall(r"\d:\d\d:\d\d", text)) >= 3  # times not cut
    p.end_run({"spec": {"dataset": "animals", "task": "fine", "ratio": 0.01, "method": "ce", "seed": 1},
               "status": "failed", "error": "x"})  # fmt: skip
    assert [t.completed for t in p.progress.tasks] == [1, 120]  # its bar is gone, the grid advanced


def test_a_run_says_how_many_training_images_each_class_keeps_after_the_ratio(tmp_path, capsys):
    _photos(tmp_path / "p", {"cat": 40, "dog": 40}, size=20)
    args = _folder_args(tmp_path / "p", tmp_path / "r")
    args[args.index("--ratios") + 1] = "0.25"
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "folder/fine 1:0.25: training images per class after the ratio: cat 32, dog 8" in said


def test_the_console_table_has_a_short_row_per_method_and_ratio_in_words(tmp_path, capsys):
    out = tmp_path / "r"
    args = [*TINY, "--methods", "ce,os", "--ratios", "1,0.1", "--seeds", "1", "--executor", "local"]
    assert main([*args, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    # one seed: no decision to order by (a paired test needs two), so by the headline at the extreme ratio
    assert "methods ordered by mean minority-class accuracy at 1:0.1, best first; mean±sd over seeds" in said
    header = next(line for line in said.splitlines() if line.startswith("method "))
    assert header.split() == ["method", "ratio", "bal.", "acc.", "minority", "majority", "seeds"]
    rows = [line for line in said.splitlines() if line.startswith(("ce ", "os "))]
    assert len(rows) == 4 and all(len(line) < 80 for line in rows)


def test_the_console_table_follows_the_boards_decision_and_says_it_in_words(tmp_path, capsys):
    """Issue 38 item 1: the main command's table is ordered by the board's decision (the set that may hold the
    best first), with the verdict against os, and a closing paragraph says what it shows and where the full
    answer is."""
    out = tmp_path / "r"
    args = [*TINY, "--methods", "ce,os,os+fsc", "--ratios", "0.1", "--seeds", "3", "--executor", "local"]
    assert main([*args, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "methods ordered by the decision at 1:0.1: those that may be the best first" in said
    lines = said.splitlines()
    header = next(line for line in lines if line.startswith("method "))
    assert header.split()[-4:] == ["best?", "vs", "os", "(BH)"]
    rows = [line.split() for line in lines if line.startswith(("ce ", "os ", "os+fsc "))]
    assert len(rows) == 3 and all(row[5] == "3" for row in rows)
    best = [row[6] == "yes" for row in rows]
    assert best == sorted(best, reverse=True)  # the set that may hold the best comes first
    assert next(row for row in rows if row[0] == "os")[-1] == "reference"
    verdicts = [row[-4] for row in rows if row[0] != "os"]  # 'inconclusive +0.008, p 0.71'
    assert all(v in ("inconclusive", "better", "worse", "equivalent") for v in verdicts), verdicts
    words = next(line for line in lines if line.startswith("At 1:0.1, with 3 seeds:"))
    assert "of 3 methods may be the best" in words and "The answer so far" in words
    assert "a short budget" in words  # the tiny preset is no regime the answer is read from


def test_a_report_without_figures_says_why(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        main([*TINY, "--methods", "ce", "--ratios", "0.1", "--seeds", "1", "--executor", "local", "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    import json

    for f in out.glob("*.json"):  # a record made before round four: no per-image probabilities, no review figure
        rec = json.loads(f.read_text())
        rec["metrics"]["test_outcome"].pop("log_probs")
        f.write_text(json.dumps(rec))
    assert main(["report", "--runs", str(out), "--out", str(tmp_path / "rep")]) == 0
    said = capsys.readouterr().out
    assert "0 figure files" in said and "no figure: each figure needs" in said and "two ratios or more" in said


def test_a_figure_draws_at_most_eight_methods_and_never_joins_points_of_different_seed_counts():
    import matplotlib.pyplot as plt

    from bench.report.figures import method_style, plot_by_seed_count, shown_methods
    from bench.report.model import Stat

    ranked = [f"m{i}" for i in range(20)] + ["os+fsc", "fsc", "os", "ce"]  # the paper's four ranked last
    shown = shown_methods(ranked)
    assert len(shown) == 8 and {"ce", "os", "fsc", "os+fsc"} <= set(shown) and shown[:4] == ["m0", "m1", "m2", "m3"]
    assert method_style("bcl")["color"] != method_style("wb")["color"] != method_style("ssb")["color"]
    fig, ax = plt.subplots()
    points = [(0.001, Stat([0.1])), (0.01, Stat([0.2, 0.3, 0.4])), (0.1, Stat([0.5, 0.6, 0.7])), (1, Stat([0.9]))]
    plot_by_seed_count(ax, points, method_style("os"), "os")
    segments = [line.get_xdata().tolist() for line in ax.get_lines()]
    assert segments == [[0.001], [0.01, 0.1], [1]]  # 1 seed | 3 seeds | 1 seed: only the 3-seed pair is joined
    assert [line.get_label() for line in ax.get_lines()][0] == "os"
    plt.close(fig)


def test_report_prints_a_line_per_board_unless_asked_for_every_table(tmp_path, capsys):
    """Issue 38: `bench report` printed every board (707 lines on the committed records)."""
    out = tmp_path / "r"
    assert main([*TINY, "--methods", "ce,os", "--ratios", "0.1", "--executor", "local", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["report", "--runs", str(out), "--out", str(tmp_path / "rep"), "--no-figures"]) == 0
    said = capsys.readouterr().out
    assert "1 boards (each one's tables" in said and "minority" not in said
    assert main(["report", "--runs", str(out), "--out", str(tmp_path / "rep"), "--no-figures", "--verbose"]) == 0
    assert "minority" in capsys.readouterr().out
