"""Issue 23: the training budget as an axis: a list of budgets in one grid, a record's convergence,
the report's budget study, the standard preset and the short-budget mark."""

import matplotlib.image as mpimg
import pytest
import torch

from bench.cli import main
from bench.executors import RunOptions, run_local
from bench.report import aggregate
from bench.report.budget import budget_studies, budget_table, unsettled, wall_table
from bench.report.figures import accuracy_vs_budget
from bench.spec import PRESETS, STANDARD_STEPS, short_budget

from .conftest import tiny_specs
from .test_report import rec


def test_a_list_of_budgets_is_one_run_per_budget_each_with_its_own_key():
    specs = tiny_specs(["ce"], steps=6, budgets=[6, 12])
    assert sorted(s.steps for s in specs) == [6, 12] and len({s.key for s in specs}) == 2


def test_steps_flag_takes_a_list_and_refuses_nonsense(tmp_path, capsys):
    assert main(["run", "--steps", "12,x", "--out", str(tmp_path)]) == 2
    assert "--steps takes step counts" in capsys.readouterr().err
    assert main(["run", "--steps", "0,12", "--out", str(tmp_path)]) == 2


def test_a_record_states_its_convergence(tmp_path):
    [spec] = tiny_specs(["ce"], steps=20)
    [r] = run_local([spec], tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
    conv = r["convergence"]
    losses = [h["loss"] for h in r["history"]]
    k = len(losses) // 5
    before, last = sum(losses[-2 * k : -k]) / k, sum(losses[-k:]) / k
    assert conv["stages"]["train"]["loss_drop_last20"] == pytest.approx((before - last) / before, abs=1e-4)
    assert conv["loss_flat"] == ((before - last) / before < 0.10)
    assert 0 <= conv["train_balanced_acc"] <= 1 and len(conv["train_per_class_acc"]) == 2


def budget_records():
    """Two methods at 240, 600 and 1200 steps, seeds 0-1: 'a' settles (+0.005), 'b' still moves (+0.05)."""
    values = {
        ("a", 240): (0.70, 0.72),
        ("a", 600): (0.80, 0.82),
        ("a", 1200): (0.805, 0.825),
        ("b", 240): (0.60, 0.62),
        ("b", 600): (0.70, 0.72),
        ("b", 1200): (0.75, 0.77),
    }
    out = []
    for (m, steps), mins in values.items():
        for seed, mino in enumerate(mins):
            r = rec(m, 0.01, seed, 1.0, 2 * mino - 1.0)  # balanced accuracy = mino
            r["spec"]["steps"] = steps
            r["key"] += f"-{steps}"
            r["wall_s"] = steps / 10
            r["convergence"] = {"train_balanced_acc": 0.9 + steps / 100000}
            out.append(r)
    return out


def test_the_budget_study_table_by_hand(tmp_path):
    [study] = budget_studies(aggregate(budget_records()))
    assert study.budgets == [240, 600, 1200] and study.methods() == ["a", "b"]
    t = budget_table(study)
    assert t.head == ["method", "240 steps", "600 steps", "1200 steps", "600 → 1200", "training fit at 1200"]
    a, b = t.rows
    assert a[1:4] == ["0.710±0.014 (n=2)", "0.810±0.014 (n=2)", "0.815±0.014 (n=2)"]
    assert a[4] == "+0.005" and b[4] == "+0.050 (moving)" and a[5] == "0.912±0.000"
    assert unsettled(study) == ["b"]
    assert wall_table(study).rows == [["240", "24 s", "4"], ["600", "60 s", "4"], ["1200", "120 s", "4"]]
    [png, svg] = accuracy_vs_budget(study, tmp_path)
    assert png.name == f"{study.slug}.png" and mpimg.imread(png).std() > 0.01 and svg.is_file()


def test_a_cell_studied_in_two_regimes_gets_two_studies_two_files_and_one_regimes_figure(tmp_path):
    """Seen 2026-12-03: the transfer study's budget study (from a start, --tune last:1) took the from-scratch
    study's slug, so its figure overwrote the other's and its table filled the other's README block."""
    from bench.report.budget import regime_groups
    from bench.report.figures import regimes_vs_budget

    started = []
    for r in budget_records():
        r = dict(r, spec=dict(r["spec"], weights="animals-other8", tune="last:1"), key=r["key"] + "-t")
        started.append(r)
    studies = budget_studies(aggregate(budget_records() + started))
    assert len(studies) == 2 and len({s.slug for s in studies}) == 2
    scratch = next(s for s in studies if not s.setting.get("weights"))
    assert "from" not in scratch.slug and scratch.regime == "from scratch"
    [(slug, title, group)] = regime_groups(studies)
    assert group[0] is scratch and group[1].regime == "from animals-other8, tune last:1"
    [png, _] = regimes_vs_budget(group, title, tmp_path / slug)
    assert mpimg.imread(png).std() > 0.01


def test_short_budgets_are_marked_and_the_standard_preset_is_not():
    quick, standard = PRESETS["quick"], PRESETS["standard"]
    assert short_budget(quick) and not short_budget(standard) and not short_budget(PRESETS["paper"])
    assert standard["width"] == quick["width"] and standard["steps"] > quick["steps"]
    recs = []
    for steps in (quick["steps"], standard["steps"]):
        r = rec("os", 0.01, 0, 1.0, 0.5)
        r["spec"]["steps"], r["key"] = steps, f"os-{steps}"
        recs.append(r)
    boards = {b.setting["steps"]: b for b in aggregate(recs)}
    assert "short budget" in boards[quick["steps"]].title and "short budget" not in boards[standard["steps"]].title


def _keys(argv: list[str]) -> list[str]:
    from bench.cli import build_parser
    from bench.runner import DataCache, expand
    from bench.settings import RunSettings

    a = build_parser().parse_args(["run", "--dataset", "synthetic", "--methods", "ce,os", "--ratios", "0.25", *argv])
    a.command_line = "test"
    return sorted(s.key for s in expand(RunSettings.from_args(a).request, DataCache(None, None)))


def test_a_method_with_only_a_slice_and_a_standard_run_is_not_part_of_the_budget_study():
    """A method run at 240 and 2400 steps only (a quick slice and the standard grid) is left out of the
    study's table, figure and wall times: its change over a tenfold budget is not a settling test."""
    extra = []
    for steps, mino in ((240, 0.5), (1200, 0.9)):
        r = rec("c", 0.01, 0, 1.0, 2 * mino - 1.0)
        r["spec"]["steps"], r["key"], r["wall_s"] = steps, f"c-{steps}", 999.0
        extra.append(r)
    [study] = budget_studies(aggregate(budget_records() + extra))
    assert study.methods() == ["a", "b"] and study.last_two("c") == (240, 1200)
    assert [row[0] for row in budget_table(study).rows] == ["a", "b"] and unsettled(study) == ["b"]
    assert wall_table(study).rows[0] == ["240", "24 s", "4"]


def test_a_standard_run_is_the_quick_run_of_the_standard_budget_and_its_board_says_standard():
    """`--preset standard` trains nothing that `--preset quick --steps STANDARD_STEPS` trains under another
    key: the budget study's records at that budget are standard records; their board is titled standard."""
    # sharing keys is honest only while standard differs from quick in nothing but its budget and the grid's
    # default seeds and ratios (which runs a grid holds, not how one trains)
    differs = {k for k in PRESETS["quick"] if PRESETS["quick"][k] != PRESETS["standard"][k]}
    assert differs == {"steps", "seeds", "ratios"} and PRESETS["standard"]["steps"] == STANDARD_STEPS
    n = str(len(PRESETS["standard"]["seeds"]))
    standard = _keys(["--preset", "standard"])
    assert len(standard) == 2 * len(PRESETS["standard"]["seeds"])
    assert standard == _keys(["--preset", "quick", "--steps", str(STANDARD_STEPS), "--seeds", n])
    assert standard != _keys(["--preset", "quick", "--seeds", n])
    assert _keys(["--preset", "standard", "--steps", "1200"]) == _keys(["--preset", "quick", "--steps", "1200",
                                                                         "--seeds", n])  # fmt: skip
    r = rec("os", 0.01, 0, 1.0, 0.5)
    r["spec"]["steps"] = STANDARD_STEPS
    [board] = aggregate([r])
    assert "preset standard (the quick model)" in board.title and "short budget" not in board.title
    assert f"preset standard (quick, steps={STANDARD_STEPS})" in board.group[1]
    assert board.group[0].startswith(f"animals_quick_steps{STANDARD_STEPS}_")  # file names of the record's preset
    r["spec"]["lr"] = 0.1  # another setting at the same budget is not the standard preset
    [board] = aggregate([r])
    assert "standard" not in board.title and "standard" not in board.group[1]


def test_a_larger_budget_run_for_the_moving_methods_only_reads_per_method():
    """4800 steps are run only for the methods still moving at 2400: each method's change is taken between its
    own two largest budgets, said in the cell, and the settled ones keep their 1200 -> 2400 change."""
    recs = []
    for steps, moving, settled in ((1200, 0.60, 0.80), (2400, 0.70, 0.805), (4800, 0.74, None)):
        for seed in range(2):
            for method, mino in (("la", moving), ("os", settled)):
                if mino is None:
                    continue
                r = rec(method, 0.01, seed, 1.0, mino + 0.001 * seed)
                r["spec"]["steps"] = steps
                r["key"] += f"-{steps}"
                recs.append(r)
    [study] = budget_studies(aggregate(recs))
    assert study.last_two("la") == (2400, 4800) and study.last_two("os") == (1200, 2400)
    table = budget_table(study)
    assert table.head[-2:] == ["change between its two largest budgets", "training fit at its largest budget"]
    rows = {row[0]: row for row in table.rows}
    assert rows["la"][-2] == "+0.020 (2400 → 4800, moving)" and rows["os"][-2] == "+0.003 (1200 → 2400)"
    assert rows["os"][3] == "—" and unsettled(study) == ["la"]


def test_the_regimes_table_compares_each_budget_on_the_runs_every_regime_has():
    """Two regimes of one cell: from a start every run is 0.1 higher, and its 'b' at 600 steps lacks seed 1.
    At 600 steps both rows average a (seeds 0-1) and b on seed 0 only, so the start's lead is exactly 0.1 there
    too (averaging each row's own seeds would give 0.1 plus the seed difference); the moving methods and the
    wall times are the regimes' own."""
    from bench.report.budget import regime_groups, regimes_intro, regimes_table

    started = []
    for r in budget_records():
        spec = r["spec"]
        if (spec["method"], spec["steps"], spec["seed"]) == ("b", 600, 1):
            continue
        bal = r["metrics"]["balanced_acc"] + 0.1
        s = dict(r, spec=dict(spec, weights="animals-other8", tune="last:1"), key=r["key"] + "-t")
        s["metrics"] = dict(r["metrics"], per_class_acc=[1.0, 2 * bal - 1.0], balanced_acc=bal)
        started.append(s)
    longer = []  # from scratch alone runs 'a' at 2400 steps: not compared, and it narrows nothing
    for r in budget_records():
        if r["spec"]["method"] == "a" and r["spec"]["steps"] == 1200:
            longer.append(dict(r, spec=dict(r["spec"], steps=2400), key=r["key"] + "-2400", wall_s=240.0))
    [(_, _, group)] = regime_groups(budget_studies(aggregate(budget_records() + started + longer)))
    t = regimes_table(group)
    assert t.head == ["regime", "240 steps", "600 steps", "1200 steps", "2400 steps", "methods still moving",
                      "median wall time per run"]  # fmt: skip
    scratch, start = t.rows
    assert scratch[0] == "from scratch" and start[0] == "from animals-other8, tune last:1"

    def mean(cell):
        return float(cell.split(" ")[0])

    assert mean(scratch[2]) == pytest.approx((0.81 + 0.70) / 2, abs=6e-4)  # b on seed 0 only
    assert mean(start[2]) - mean(scratch[2]) == pytest.approx(0.1, abs=1.1e-3)
    assert mean(scratch[1]) == pytest.approx((0.71 + 0.61) / 2, abs=6e-4) and "(best a 0.710)" in scratch[1]
    assert scratch[4] == start[4] == "—"  # 2400 steps: from scratch only
    assert scratch[5] == "1 of 2" and start[5] == "1 of 2"
    assert scratch[6] == "240: 24 s, 600: 60 s, 1200: 120 s, 2400: 240 s"
    assert regimes_intro(group).startswith(
        "Averaged over the 2 methods every regime ran at every budget all of them ran: a, b.\n\n"
    )


def test_a_budget_only_some_regimes_ran_narrows_its_own_column_not_the_others():
    """Three regimes run a and b at 240-1200 steps; from scratch and last:1 also run a alone at 2400 (the
    methods still moving), the head never. The 2400 column compares those two regimes on a; every other column
    still averages a and b (taking the methods every regime has at every budget two regimes ran would leave a
    alone everywhere), and the sentence before the table names the narrower column."""
    from bench.report.budget import regime_groups, regime_methods, regimes_intro, regimes_table

    def regime(weights, tune, shift):
        out = []
        for r in budget_records():
            bal = r["metrics"]["balanced_acc"] + shift
            spec = dict(r["spec"], weights=weights, tune=tune) if weights else r["spec"]
            x = dict(r, spec=spec, key=f"{r['key']}-{tune}")
            x["metrics"] = dict(r["metrics"], per_class_acc=[1.0, 2 * bal - 1.0], balanced_acc=bal)
            out.append(x)
        longer = [
            dict(r, spec=dict(r["spec"], steps=2400), key=r["key"] + "-2400")
            for r in out
            if r["spec"]["method"] == "a" and r["spec"]["steps"] == 1200
        ]
        return out + (longer if tune != "head" else [])

    records = (
        regime(None, "full", 0.0) + regime("animals-other8", "last:1", 0.1) + regime("animals-other8", "head", -0.1)
    )
    [(_, _, group)] = regime_groups(budget_studies(aggregate(records)))
    assert regime_methods(group) == ["a", "b"]
    t = regimes_table(group)
    assert t.head[1:5] == ["240 steps", "600 steps", "1200 steps", "2400 steps"]
    rows = {row[0]: row for row in t.rows}
    scratch, head, last = (
        rows["from scratch"],
        rows["from animals-other8, tune head"],
        rows["from animals-other8, tune last:1"],
    )

    def mean(cell):
        return float(cell.split(" ")[0])

    assert mean(scratch[2]) == pytest.approx((0.81 + 0.71) / 2, abs=6e-4)  # a and b at 600 steps
    assert mean(head[2]) == pytest.approx(mean(scratch[2]) - 0.1, abs=1.1e-3)
    assert mean(scratch[4]) == pytest.approx(0.815, abs=6e-4) and "(best a " in scratch[4]  # a alone at 2400
    assert mean(last[4]) == pytest.approx(0.915, abs=1.1e-3) and head[4] == "—"
    assert regimes_intro(group) == (
        "Averaged over the 2 methods every regime ran at every budget all of them ran: a, b. At 2400 steps (run "
        "only from scratch, from animals-other8, tune last:1): the 1 of them all of those have there, a.\n\n"
    )
