import io
import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from scipy import stats as st

from bench import store
from bench.cli import main
from bench.report import Analysis, aggregate, collect, markdown
from bench.report import tables as T
from bench.report.model import numerics_tag
from bench.spec import numerics

SETTING = dict(
    dataset="animals",
    task="fine",
    classes=None,
    n_major=None,
    model="resnet18",
    width=0.25,
    image_size=None,
    weights=None,
    steps=240,
    batch_size=64,
    lr=0.05,
    weight_decay=5e-4,
    momentum=0.9,
    warmup_steps=10,
    preset="quick",
    suite_version="2",
    numerics="cpu fp32 threads=1 torch=2.14.1",
)
TAG = "cpu-fp32-t1-torch2.14.1"  # the numerics' file-name tag in figure names (of SETTING's records)
RUN_TAG = numerics_tag(numerics("cpu", "auto", 1))  # ... and of records this machine makes (its chip named)


def rec(method, ratio, seed, maj, mino, status="ok", hparams=None):
    spec = dict(SETTING, ratio=ratio, seed=seed, data_seed=seed, method=method, hparams=hparams or {})
    tag = json.dumps(hparams, sort_keys=True) if hparams else ""
    r = {
        "key": f"{method}-{ratio}-{seed}-{status}-{abs(hash(tag))}".replace("+", "_"),
        "status": status,
        "spec": spec,
        "date": "2026-11-27T08:00:00+00:00",
        "env": {"device": "CPU: test"},
        "counts": {"classes": ["horse", "dog"], "train": [800, 8], "test": [200, 200]},
    }
    if status == "ok":
        r["metrics"] = {
            "per_class_acc": [maj, mino],
            "balanced_acc": (maj + mino) / 2,
            "macro_f1": (maj + mino) / 2 - 0.01,
        }
    else:
        r["error"] = "NonFiniteLoss: loss became nan in epoch 3"
    return r


@pytest.fixture
def runs(tmp_path):
    d = tmp_path / "runs"
    records = [
        rec("ce", 1.0, 0, 0.96, 0.98),
        rec("ce", 1.0, 1, 0.98, 0.94),
        rec("ce", 0.01, 0, 1.0, 0.0),
        rec("ce", 0.01, 1, 1.0, 0.1),
        rec("ce", 0.01, 2, 0.99, 0.2),
        rec("os+fsc", 1.0, 0, 0.97, 0.97),
        rec("os+fsc", 0.01, 0, 0.95, 0.5),
        rec("os+fsc", 0.01, 1, 0.93, 0.7),
        rec("os+fsc", 0.01, 2, 0.0, 0.0, status="failed"),
        rec("os", 0.01, 0, 0.97, 0.4),  # no 1:1 run: a missing cell
    ]
    for r in records:
        store.write_record(d, r)
    return d


def test_aggregation_is_exact_and_excludes_failed_runs(runs):
    col = collect(runs)
    assert len(col.ok) == 9 and len(col.failed) == 1 and col.unreadable == []
    [b] = col.boards
    ce = b.cells[("ce", 0.01)]
    assert ce.per_class[1].mean == pytest.approx(0.1)
    assert ce.per_class[1].std == pytest.approx(np.std([0.0, 0.1, 0.2], ddof=1))
    assert ce.seeds == [0, 1, 2]
    fsc = b.cells[("os+fsc", 0.01)]
    assert fsc.seeds == [0, 1] and fsc.per_class[1].mean == pytest.approx(0.6)
    assert b.ranked_methods() == ["os+fsc", "os", "ce"]
    assert ("os", 1.0) not in b.cells


def test_leaderboard_markdown_matches_expected_text(runs):
    col = collect(runs)
    t = T.leaderboard(col.boards[0])
    head, rows = t.head, t.rows
    assert head == ["method", "1:1", "1:0.01"]
    assert rows == [
        ["os+fsc", "min 0.970 / maj 0.970 (n=1)", "min 0.600±0.141 / maj 0.940±0.014 (n=2)"],
        ["os", "—", "min 0.400 / maj 0.970 (n=1)"],
        ["ce", "min 0.960±0.028 / maj 0.970±0.014 (n=2)", "min 0.100±0.100 / maj 0.997±0.006 (n=3)"],
    ]
    md = md_of(col)
    expected_table = (
        "| method   | 1:1                                     | 1:0.01                                  |\n"
        "|----------|-----------------------------------------|-----------------------------------------|\n"
        "| os+fsc   | min 0.970 / maj 0.970 (n=1)             | min 0.600±0.141 / maj 0.940±0.014 (n=2) |\n"
        "| os       | —                                       | min 0.400 / maj 0.970 (n=1)             |\n"
        "| ce       | min 0.960±0.028 / maj 0.970±0.014 (n=2) | min 0.100±0.100 / maj 0.997±0.006 (n=3) |\n"
    )
    assert expected_table in md
    assert "## Failed runs (1), not averaged" in md and "NonFiniteLoss" in md
    assert "Records read: 9 finished, 1 failed, 0 unreadable." in md
    assert "| ce       | no             | no         |" in md  # the ablation table


def test_non_default_hparams_are_separate_rows(tmp_path):
    d = tmp_path / "runs"
    store.write_record(
        d, rec("fsc", 0.01, 0, 0.9, 0.3, hparams={"fsc": {"lam": 1.0, "layers": ["layer3", "layer4"], "centre": False}})
    )
    store.write_record(
        d, rec("fsc", 0.01, 0, 0.9, 0.5, hparams={"fsc": {"lam": 0.3, "layers": ["layer3", "layer4"], "centre": False}})
    )
    [b] = aggregate([r for _, r in store.iter_records(d)])
    assert b.methods == ["fsc", "fsc [fsc.lam=0.3]"]


def test_report_command_writes_tables_and_a_readable_figure(runs, tmp_path, capsys):
    (runs / "broken.json").write_text("{ not json")
    out = tmp_path / "out"
    assert main(["report", "--runs", str(runs), "--out", str(out)]) == 0
    assert "unreadable record" in capsys.readouterr().err
    assert "Unreadable record files (1)" in (out / "leaderboard.md").read_text()
    csv = (out / "leaderboard.csv").read_text().splitlines()
    assert csv[0].startswith("dataset,task,preset,width,steps,val_per_class,numerics,method,ratio,n_seeds")
    assert len(csv) == 1 + 5
    png = out / "figures" / f"accuracy_vs_ratio_animals_quick_{TAG}.png"
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 200 and img.std() > 0.01
    assert (out / "figures" / f"accuracy_vs_ratio_animals_quick_{TAG}.svg").read_text().lstrip().startswith("<?xml")


def test_report_on_missing_or_empty_directory_is_one_line(tmp_path, capsys):
    assert main(["report", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main(["report", "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no finished run records" in capsys.readouterr().err


def test_records_are_written_atomically_and_nan_becomes_null(tmp_path):
    r = rec("ce", 1.0, 0, 0.5, float("nan"))
    path = store.write_record(tmp_path, r)
    assert json.loads(path.read_text())["metrics"]["per_class_acc"] == [0.5, None]
    assert [p.name for p in Path(tmp_path).iterdir()] == [path.name]


def test_paired_statistics_match_scipy_on_fixed_numbers():
    from scipy import stats as st

    from bench.stats import paired_difference

    method = {0: 0.50, 1: 0.70, 2: 0.40, 3: 0.65, 4: 0.55}
    reference = {0: 0.40, 1: 0.45, 2: 0.42, 3: 0.50, 4: 0.30, 9: 0.99}  # seed 9 has no pair
    got = paired_difference(method, reference)
    d = np.array([0.10, 0.25, -0.02, 0.15, 0.25])
    ci = st.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=st.sem(d))
    assert got.n == 5 and got.mean == pytest.approx(d.mean())
    assert (got.lo, got.hi) == pytest.approx(ci)
    assert got.p == pytest.approx(st.ttest_rel(d, np.zeros_like(d)).pvalue)  # the t-test that made the interval
    assert paired_difference({0: 0.1}, {0: 0.2}) is None
    assert paired_difference({0: 0.1, 1: 0.2}, {0: 0.1, 1: 0.2}).p == 1.0


def test_report_has_paired_table_against_the_reference(runs):
    md = md_of(collect(runs), reference="ce")
    assert "Paired by seed against `ce`" in md
    table = md.split("Paired by seed against `ce`")[1]
    # os+fsc at 1:0.01 has seeds 0, 1 (seed 2 failed): differences 0.5 and 0.6 against ce; these records keep
    # no per-image outcomes, so the interval holds the seeds' spread only (the image term needs the images)
    se = np.sqrt(np.var([0.5, 0.6], ddof=1) / 2)
    half, p = st.t.ppf(0.975, 1) * se, 2 * st.t.sf(0.55 / se, 1)
    assert f"+0.550 [{0.55 - half:+.3f}, {0.55 + half:+.3f}] p={p:.2g} (n=2)" in table
    assert "| ce " not in table  # the reference has no row of its own


def test_threshold_free_numbers_are_paired_only_over_seeds_that_have_them(tmp_path):
    """Older records lack AUC / separation: those cells use the seeds that have them, and say n."""
    from bench.report import paired_figures

    recs = []
    for seed, (auc_os, auc_fsc) in enumerate([(0.80, 0.90), (0.70, 0.75), (0.60, 0.80), (None, None)]):
        for method, auc in (("os", auc_os), ("os+fsc", auc_fsc)):
            r = rec(method, 0.01, seed, 0.99, 0.3 + 0.1 * seed)
            if auc is not None:
                r["metrics"].update(
                    roc_auc=auc,
                    balanced_acc_logit_adjusted=auc - 0.1,
                    separation={
                        layer: {"silhouette": auc / 2, "cross_class_cos": 0.5} for layer in ("layer3", "layer4")
                    },
                )
            recs.append(r)
    [b] = aggregate(recs)
    cell = b.cells[("os+fsc", 0.01)]
    assert cell.metric_by_seed("roc_auc") == {0: 0.90, 1: 0.75, 2: 0.80}
    assert cell.metric_by_seed("min_acc") == pytest.approx({0: 0.3, 1: 0.4, 2: 0.5, 3: 0.6})
    t = T.paired(b, "os", "roc_auc")
    head, rows = t.head, t.rows
    assert head == ["method", "1:0.01: ROC-AUC − os"]
    # differences 0.10, 0.05, 0.20 over seeds 0-2; seed 3 has no AUC
    d = np.array([0.10, 0.05, 0.20])
    half = st.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    p = st.ttest_rel(d, np.zeros(3)).pvalue  # ROC-AUC has no test-sampling term: seeds only
    assert rows == [["os+fsc", f"+{d.mean():.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}] p={p:.2g} (n=3)"]]
    diag = T.diagnosis(b).rows
    assert dict(diag)["os+fsc"] == "0.817±0.076 (3) / 0.717±0.076 (3) / — / 0.408±0.038 (3) / 0.500±0.000 (3)"
    md = md_of(collect_from(recs, tmp_path))
    assert "Paired by seed against `os`" in md
    # the all-boards table of FSC contrasts: no fsc − ce here; os+fsc − os as above in ROC-AUC
    assert "| animals fine, 240 steps (short), CPU | 1:0.01  | —" in md
    assert f"| +0.117 [-0.073, +0.306] p={p:.2g} (n=3) |" in md.split("all boards")[1].split("\n## ")[0]
    [png, svg] = paired_figures(Analysis.of([b], "os"), tmp_path / "figs")
    assert png.name == f"paired_animals_quick_{TAG}_fine.png" and mpimg.imread(png).std() > 0.01


def test_separation_scores_against_hand_computed_values():
    from bench.metrics import separation

    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    y = np.array([0, 0, 1, 1])
    s = separation(x, y)
    assert s == pytest.approx({"silhouette": 1.0, "within_class_cos": 1.0, "cross_class_cos": 0.0})
    x2 = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    s2 = separation(x2, y)
    c = 1 / np.sqrt(2)  # cos between (1,0) and (1,1)
    assert s2["within_class_cos"] == pytest.approx((c + c) / 2)
    # cross pairs: (1,0)-(1,1)=c, (1,0)-(0,1)=0, (1,1)-(1,1)=1, (1,1)-(0,1)=c, each counted twice
    assert s2["cross_class_cos"] == pytest.approx((c + 0 + 1 + c) / 4)


def test_auc_and_logit_adjustment_against_hand_computed_values():
    from bench.metrics import evaluate, logit_adjusted_predictions

    y = np.array([0, 0, 1, 1])
    logits = np.array([[2.0, 0.0], [1.0, 0.5], [1.0, 0.8], [0.0, 1.0]])
    m = evaluate(y, logits, train_counts=[99, 1])
    # class-1 scores rank: 0.8-1 < ... AUC = fraction of (pos, neg) pairs ordered right = 4/4
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["per_class_acc"] == [1.0, 0.5]
    # prior 0.99 / 0.01: subtracting log prior adds log(99) ~ 4.6 to class 1's margin: all predicted 1
    assert logit_adjusted_predictions(logits, [99, 1]).tolist() == [1, 1, 1, 1]
    assert m["per_class_acc_logit_adjusted"] == [0.0, 1.0]
    assert logit_adjusted_predictions(logits, [1, 1]).tolist() == logits.argmax(1).tolist()


def test_friedman_ranking_and_cd_diagram(tmp_path):
    from scipy import stats as st

    from bench.report.analysis import NamedRanking
    from bench.report.figures import critical_difference
    from bench.stats import rank_methods

    scores = {
        "fine 1:1": {"a": 0.9, "b": 0.8, "c": 0.7},
        "fine 1:0.01": {"a": 0.6, "b": 0.7, "c": 0.5},
        "coarse 1:1": {"a": 0.95, "b": 0.9, "c": 0.85, "d": 0.1},
        "coarse 1:0.01": {"a": 0.8, "b": 0.6, "c": 0.4},
    }
    rk = rank_methods(scores)
    assert rk.methods == ["a", "b", "c"]  # 'd' did not run everywhere
    assert rk.mean_rank == pytest.approx({"a": 1.25, "b": 1.75, "c": 3.0})
    ref = st.friedmanchisquare([0.8, 0.95, 0.6, 0.9], [0.6, 0.9, 0.7, 0.8], [0.4, 0.85, 0.5, 0.7])
    assert rk.p == pytest.approx(ref.pvalue) and rk.statistic == pytest.approx(ref.statistic)
    assert rk.nemenyi.shape == (3, 3)
    [png, svg] = critical_difference(NamedRanking("x", "test", rk, min_seeds=3), "test", tmp_path / "cd")
    assert critical_difference(NamedRanking("x", "test", rk, min_seeds=1), "test", tmp_path / "cd1") == []
    assert mpimg.imread(png).ndim == 3 and svg.stat().st_size > 1000
    assert rank_methods({"x": {"a": 1, "b": 2}}) is None


def test_rankings_keep_training_settings_apart():
    """A validation hold-out is another setting: its `os` must not overwrite the main board's `os`."""
    from bench.report import rankings

    main_runs = [rec(m, r, 0, 0.9, acc) for m, acc in (("ce", 0.1), ("os", 0.5), ("fsc", 0.3)) for r in (0.05, 0.01)]
    held_out = [rec(m, r, 0, 0.9, acc) for m, acc in (("ce", 0.6), ("os", 0.0), ("fsc", 0.3)) for r in (0.05, 0.01)]
    for r in held_out:
        r["spec"]["val_per_class"] = 100
        r["key"] += "-val"
    by_slug = {nr.slug: nr for nr in rankings(aggregate(main_runs + held_out))}
    assert set(by_slug) == {f"animals_quick_{TAG}", f"animals_quick_val-per-class100_{TAG}"}
    assert by_slug[f"animals_quick_{TAG}"].ranking.mean_rank == pytest.approx({"os": 1.0, "fsc": 2.0, "ce": 3.0})
    held = by_slug[f"animals_quick_val-per-class100_{TAG}"]
    assert held.ranking.mean_rank == pytest.approx({"ce": 1.0, "fsc": 2.0, "os": 3.0})
    assert "val_per_class=100" in held.title


def _swept(lam, seed, test_min, val_bal):
    r = rec(
        "fsc",
        0.01,
        seed,
        0.99,
        test_min,
        hparams={"fsc": {"lam": lam, "layers": ["layer3", "layer4"], "centre": False}},
    )
    r["key"] += f"-lam{lam}"
    r["metrics"]["val"] = {"balanced_acc": val_bal, "per_class_acc": [val_bal, val_bal], "macro_f1": val_bal}
    return r


def test_selection_uses_validation_only_and_ignores_poisoned_test_numbers(tmp_path):
    from bench.report import select_on_validation

    recs = [_swept(0.3, s, 0.2, 0.80) for s in (0, 1)] + [_swept(1.0, s, 0.6, 0.70) for s in (0, 1)]
    [b] = aggregate(recs)
    assert select_on_validation(b) == {("fsc", 0.01): "fsc [fsc.lam=0.3]"}
    # poison the test numbers: the configuration not chosen now looks perfect on test, the chosen one hopeless
    for r in recs:
        r["metrics"]["per_class_acc"] = [1.0, 1.0] if r["spec"]["hparams"]["fsc"]["lam"] == 1.0 else [0.0, 0.0]
        r["metrics"]["balanced_acc"] = r["metrics"]["per_class_acc"][0]
    [poisoned] = aggregate(recs)
    assert select_on_validation(poisoned) == {("fsc", 0.01): "fsc [fsc.lam=0.3]"}
    rows = T.selection(Analysis.of([poisoned]), poisoned).rows
    # shown with its test grade against the default (lam 1): 0.0 − 1.0 balanced accuracy on both seeds
    assert rows == [
        [
            "fsc (selected on validation)",
            "min 0.000±0.000 / maj 0.000±0.000 — fsc [fsc.lam=0.3]; "
            "bal. acc. − default -1.000 [-1.000, -1.000] p=0 (n=2)",  # no spread, no test-set error: a t-test p of 0
            "fsc.lam 0.3|1.0 (given by --sweep)",  # the values tried, and where they came from
        ]
    ]
    assert "selected per ratio by mean validation" in md_of(collect_from(recs, tmp_path))


def md_of(col, reference="os"):
    """The index and every board's page, as one text."""
    from bench.report.markdown import board_pages

    a = Analysis.of(col.boards, reference)
    return markdown(col, a) + "".join(board_pages(a).values())


def collect_from(records, tmp_path):
    for r in records:
        store.write_record(tmp_path / "runs", r)
    return collect(tmp_path / "runs")


def test_figure_names_keep_a_dotted_setting(tmp_path):
    """A non-default width makes the slug 'animals_quick_width0.5': both files must keep the '.5'."""
    from bench.report import paired_figures

    recs = [rec(m, 0.01, s, 0.9, 0.1 * s + (0.2 if m == "os+fsc" else 0)) for m in ("os", "os+fsc") for s in (1, 2, 3)]
    for r in recs:
        r["spec"]["width"] = 0.5
    written = paired_figures(Analysis.of(aggregate(recs), "os"), tmp_path)
    assert sorted(p.name for p in written) == [
        f"paired_animals_quick_width0.5_{TAG}_fine.png",
        f"paired_animals_quick_width0.5_{TAG}_fine.svg",
    ]
    assert all(p.is_file() for p in written)


def test_selection_compares_configurations_on_the_seeds_they_share():
    from bench.report import select_on_validation

    # lam 0.3 over seeds 0-1 averages 0.70; lam 1 ran seed 0 only (a sweep cut short), at 0.75.
    # On their shared seed 0, lam 0.3 is better (0.80 > 0.75): its weaker seed 1 must not count against it.
    recs = [_swept(0.3, 0, 0.5, 0.80), _swept(0.3, 1, 0.5, 0.60), _swept(1.0, 0, 0.5, 0.75)]
    [b] = aggregate(recs)
    assert select_on_validation(b) == {("fsc", 0.01): "fsc [fsc.lam=0.3]"}


def test_saved_features_give_a_tsne_figure(tmp_path):
    import torch

    from bench.executors import RunOptions, run_local

    from .conftest import tiny_specs

    specs = tiny_specs(["ce", "os", "os+fsc"])
    recs = run_local(specs, tmp_path / "runs", torch.device("cpu"), RunOptions(plain=True, save_features=True)).written
    z = np.load(tmp_path / "runs" / "features" / f"{recs[0]['key']}.npz")
    assert z["layer4"].shape[0] == len(z["labels"]) == 60
    from bench.report import report

    col = report(tmp_path / "runs", tmp_path / "out")
    [tsne] = [p for p in col.figures if p.name.startswith("tsne_")]
    assert mpimg.imread(tsne).ndim == 3 and tsne.name == f"tsne_synthetic_tiny_{RUN_TAG}_fine.png"


def lt_rec(method, ratio, seed, accs, counts):
    r = rec(method, ratio, seed, accs[0], accs[-1])
    r["spec"]["task"] = "lt"
    classes = [f"c{i}" for i in range(len(accs))]
    r["counts"] = {"classes": classes, "train": counts, "test": [100] * len(accs)}
    r["metrics"]["per_class_acc"] = accs
    r["metrics"]["balanced_acc"] = float(np.mean(accs))
    r["key"] += "-lt"
    return r


def test_long_tailed_boards_report_shot_groups_by_hand():
    """Head 500 (the OLTR convention as is): many > 100, medium 20-100, few < 20 training images."""
    counts = [500, 200, 100, 50, 20, 19, 5]
    seed0 = [0.9, 0.8, 0.7, 0.6, 0.5, 0.2, 0.1]
    seed1 = [1.0, 0.8, 0.5, 0.6, 0.3, 0.0, 0.1]
    [b] = aggregate([lt_rec("ce", 0.01, 0, seed0, counts), lt_rec("ce", 0.01, 1, seed1, counts)])
    assert b.multiclass and b.headline == "bal_acc" and b.shot_thresholds() == (100, 20)
    c = b.cells[("ce", 0.01)]
    # many: 500, 200 -> (0.85, 0.9); medium: 100, 50, 20 -> (0.6, 0.4667); few: 19, 5 -> (0.15, 0.05)
    assert c.metric_by_seed("many") == pytest.approx({0: 0.85, 1: 0.9})
    assert c.metric_by_seed("medium") == pytest.approx({0: 0.6, 1: 1.4 / 3})
    assert c.metric_by_seed("few") == pytest.approx({0: 0.15, 1: 0.05})
    t = T.long_tail(b, 0.01)
    assert t.head[:5] == ["method", "top-1", "many-shot", "medium-shot", "few-shot"]
    top1 = np.mean([np.mean(seed0), np.mean(seed1)])
    assert t.rows[0][1].startswith(f"{top1:.3f}±") and t.rows[0][4] == "0.100±0.071" and t.rows[0][-1] == "2"
    assert "many > 100, medium 20-100, few < 20" in T.shot_note(b, 0.01)
    scaled = aggregate([lt_rec("ce", 0.01, 0, seed0, [800] + counts[1:])])[0]
    assert scaled.shot_thresholds() == pytest.approx((160, 32))  # scaled to a head of 800


def test_a_copy_counts_once_and_two_different_records_under_one_key_are_an_error(runs, tmp_path, capsys):
    from bench.report import collect

    col = collect(runs)
    some = next(runs.glob("*.json"))
    (runs / "copy").mkdir()
    (runs / "copy" / some.name).write_text(some.read_text())
    again = collect(runs)
    assert len(again.ok) == len(col.ok) and len(again.failed) == len(col.failed)
    seeds = lambda c: {k: cell.seeds for k, cell in c.boards[0].cells.items()}  # noqa: E731
    assert seeds(again) == seeds(col)
    other = json.loads(some.read_text())
    other["wall_s"] = 123.0
    (runs / "copy" / some.name).write_text(json.dumps(other))
    assert main(["report", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(some) in err and str(runs / "copy" / some.name) in err


def test_bad_record_files_are_named_and_skipped_by_report_run_and_status(runs, tmp_path, capsys):
    (runs / "latin1.json").write_bytes(b'{"key": "\xe9"}')
    no_counts = json.loads(next(runs.glob("ce-*ok*.json")).read_text())
    del no_counts["counts"]
    no_counts["key"] = "nocounts"
    (runs / "nocounts.json").write_text(json.dumps(no_counts))
    (runs / "adir.json").mkdir()
    out = tmp_path / "out"
    assert main(["report", "--runs", str(runs), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "latin1.json: not UTF-8 text" in err and "nocounts.json: finished record without counts.classes" in err
    assert "adir.json: a directory" in err
    assert main(["status", "--out", str(runs)]) == 0  # status reads the same folder without a traceback
    said = capsys.readouterr().out  # and names the same files (the record without counts is not done)
    assert "9 done, 1 failed" in said and "nocounts.json: finished record without counts.classes" in said
    assert "latin1.json: not UTF-8 text" in said and "adir.json: a directory" in said


def test_a_failing_report_leaves_the_previous_leaderboard_intact(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", "--runs", str(runs), "--out", str(out), "--no-figures"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    (tmp_path / "empty").mkdir()
    assert main(["report", "--runs", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert len(before["leaderboard.csv"]) > 100


def test_latex_marks_the_best_mean_per_column(runs):
    from bench.report.latex import board_latex

    tex = board_latex(collect(runs).boards[0])
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\multicolumn{2}{c}{1:0.01}" in tex
    rows = {line.split(" & ")[0]: line for line in tex.splitlines() if " & " in line}
    assert r"\textbf{0.600$\pm$0.141}" in rows["os+fsc"]  # the best minority mean at 1:0.01
    assert r"\textbf" not in rows["ce"].split(" & ")[3]  # ce's 1:0.01 minority is not the best


def test_console_shows_swept_labels_as_text(tmp_path, capsys):
    from rich.console import Console

    from bench.report import print_console

    recs = [_swept(0.3, 0, 0.2, 0.8), _swept(1.0, 0, 0.6, 0.7)]
    buf = io.StringIO()
    print_console(aggregate(recs), 0, Console(file=buf, force_terminal=True, width=200))
    text = buf.getvalue()
    assert "│ fsc [fsc.lam=0.3] │" in text and "│ fsc               │" in text  # not eaten as markup
    print_console(aggregate(recs), 0, Console(file=io.StringIO(), force_terminal=False))
    plain = capsys.readouterr().out
    assert "fsc [fsc.lam=0.3]" in plain and max(len(line) for line in plain.splitlines()) > 80


def test_separation_equals_scikit_learns_silhouette_and_the_pairwise_means():
    """The per-class-sum computation (O(n C D)) against scikit-learn and an explicit pairwise matrix,
    with all-zero feature vectors and a class of one image."""
    from sklearn.metrics import silhouette_score

    from bench.metrics import separation

    rng = np.random.default_rng(0)
    f = np.abs(rng.normal(size=(400, 12)))
    f[:4] = 0
    y = rng.integers(0, 4, 400)
    y[-1] = 4  # a singleton class
    z = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    cos = z @ z.T
    same, off = y[:, None] == y[None, :], ~np.eye(400, dtype=bool)
    got = separation(f, y)
    assert got["silhouette"] == pytest.approx(silhouette_score(z, y, metric="cosine"), abs=1e-12)
    assert got["within_class_cos"] == pytest.approx(cos[same & off].mean(), abs=1e-12)
    assert got["cross_class_cos"] == pytest.approx(cos[~same].mean(), abs=1e-12)


def _timed(method, seed, mino, wall_s=90.0, **kw):
    r = rec(method, 0.01, seed, 1.0, mino, **kw)
    r["wall_s"] = wall_s
    return r


WHICH_MIN = {
    "os": [0.40, 0.42, 0.38, 0.41, 0.39],
    "a": [0.60, 0.63, 0.58, 0.61, 0.62],  # above os on every seed
    "b": [0.59, 0.64, 0.50, 0.66, 0.57],  # a − b: +0.01 −0.01 +0.08 −0.05 +0.05, an interval around zero
    "ce": [0.0] * 5,
}


def test_which_method_names_ties_evidence_and_cost_by_hand():
    recs = [_timed(m, s, v) for m, vals in WHICH_MIN.items() for s, v in enumerate(vals)]
    a = Analysis.of(aggregate(recs))
    row = T.which_method(a).rows[0]
    best, headline, may_be_best, better, equivalent, others, evidence, cost, confirmatory = row[2:]
    assert confirmatory == "none declared"
    assert best == "a" and headline.startswith("bal 0.804±0.010, minority 0.608±0.019")
    # a and b are not separable (a − b: +0.01 −0.01 +0.08 −0.05 +0.05 in the minority); both beat os
    assert may_be_best == "a, b" and evidence == "os is beaten; 2 may be the best"
    assert cost == "20 runs, 0.5 h"  # 20 x 90 s
    # by hand: a − os in balanced accuracy is (min_a − min_os) / 2 on each seed; these records keep no
    # per-image outcomes, so the interval holds the seeds' spread only
    d = (np.array(WHICH_MIN["a"]) - np.array(WHICH_MIN["os"])) / 2
    se = np.sqrt(d.var(ddof=1) / 5)
    p_a = 2 * st.t.sf(d.mean() / se, 4)
    assert a.decisions[(a.boards[0].slug, 0.01)].vs_reference["a"].p == pytest.approx(p_a, rel=1e-9)
    ps = {m: a.decisions[(a.boards[0].slug, 0.01)].vs_reference[m].p for m in ("a", "b", "ce")}
    from statsmodels.stats.multitest import multipletests

    adj_a = dict(zip(ps, multipletests(list(ps.values()), method="fdr_bh")[1]))["a"]  # the exploratory screen
    assert ("a" in better.split(", ")) == (adj_a < 0.05) and "ce" not in better and others.startswith("worse: ce;")
    assert equivalent == "none"
    # without the look-alike, only a may be the best: clear
    clear = T.which_method(Analysis.of(aggregate([r for r in recs if r["spec"]["method"] != "b"]))).rows[0]
    assert (clear[2], clear[4], clear[8]) == ("a", "a", "clear: only a may be the best")
    # two seeds are not evidence, whatever the means say
    few = T.which_method(Analysis.of(aggregate([r for r in recs if r["spec"]["seed"] < 2]))).rows[0]
    assert few[8] == "too few seeds to say"


def test_the_report_says_whether_the_values_tried_are_the_methods_declared_search_space():
    recs = [_swept(lam, s, 0.2, 0.7 + lam / 10) for lam in (0.1, 0.3, 1.0) for s in (0, 1)]
    [b] = aggregate(recs)
    assert T.searched(b, "fsc") == "fsc.lam 0.1|0.3|1.0 (the declared space)"  # methods/fsc.py's search_space
    [row] = T.selection(Analysis.of([b]), b).rows
    assert row[-1] == "fsc.lam 0.1|0.3|1.0 (the declared space)"


def test_which_method_takes_the_configuration_chosen_on_validation_not_the_best_on_test():
    recs = [_swept(0.3, s, 0.2, 0.80) for s in range(3)] + [_swept(1.0, s, 0.9, 0.70) for s in range(3)]
    recs += [rec("os", 0.01, s, 0.99, 0.5) for s in range(3)]
    row = T.which_method(Analysis.of(aggregate(recs))).rows[0]
    # lam=1 (0.9 on test) never competes: the configuration validation chose (lam=0.3) does
    assert row[2] == "os" and "fsc [fsc.lam=1.0]" not in row[4] and "fsc [fsc.lam=1.0]" not in " ".join(row)


def test_the_readme_quotes_generated_tables_and_a_stale_quote_fails_the_check(tmp_path, capsys):
    from bench.spec import STANDARD_STEPS

    runs = tmp_path / "runs"
    for r in [_timed(m, s, v) for m, vals in WHICH_MIN.items() for s, v in enumerate(vals)]:
        r["spec"]["steps"] = STANDARD_STEPS  # the README's which-method block holds the standard boards
        store.write_record(runs, r)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- bench:which-method -->\n| old | numbers |\n<!-- /bench:which-method -->\nend\n")
    out = tmp_path / "out"
    assert main(["report", "--runs", str(runs), "--out", str(out), "--no-figures", "--check-readme", str(readme)]) == 1
    assert "quotes tables or values its records no longer give: which-method" in capsys.readouterr().err
    assert main(["report", "--runs", str(runs), "--out", str(out), "--no-figures", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| old | numbers |" not in text and text.endswith("<!-- /bench:which-method -->\nend\n")
    generated = (out / "summary.md").read_text()
    body = text.split("<!-- bench:which-method -->\n")[1].split("<!-- /bench:which-method -->")[0]
    assert body and body in generated
    assert main(["report", "--runs", str(runs), "--out", str(out), "--no-figures", "--check-readme", str(readme)]) == 0


def test_a_number_quoted_in_the_readme_prose_is_checked_against_the_records(tmp_path, capsys):
    """Issue 24: every number the README quotes equals what the records give; one in the prose is marked
    `<!--v:KEY-->...<!--/v-->` and checked (and refreshed) like a table."""
    from bench.report.markdown import value_key

    runs = tmp_path / "runs"
    for r in [_timed(m, s, v) for m, vals in WHICH_MIN.items() for s, v in enumerate(vals)]:
        store.write_record(runs, r)
    board = collect(runs).boards[0]
    key = value_key(board.slug, "os", "0.01")
    os_bal = [r["metrics"]["balanced_acc"] for r in collect(runs).ok if r["spec"]["method"] == "os"]
    expected = f"{np.mean(os_bal):.3f}±{np.std(os_bal, ddof=1):.3f}"
    readme = tmp_path / "README.md"
    readme.write_text(f"`os` reaches <!--v:{key}-->0.999<!--/v--> over <!--v:{key}:n-->9<!--/v--> seeds.\n")
    out = tmp_path / "out"
    args = ["report", "--runs", str(runs), "--out", str(out), "--no-figures"]
    assert main([*args, "--check-readme", str(readme)]) == 1
    assert f"v:{key}" in capsys.readouterr().err
    assert main([*args, "--readme", str(readme)]) == 0
    assert (
        readme.read_text()
        == f"`os` reaches <!--v:{key}-->{expected}<!--/v--> over <!--v:{key}:n-->{len(os_bal)}<!--/v--> seeds.\n"
    )
    assert main([*args, "--check-readme", str(readme)]) == 0
    readme.write_text("<!--v:no-such-board:os:0.01-->0.5<!--/v-->\n")  # a value the records do not give
    assert main([*args, "--check-readme", str(readme)]) == 1
    readme.write_text(f"<!--v:{key}-->{expected}\n<!--/v-->\n")  # a marker that is not closed on its line
    assert main([*args, "--check-readme", str(readme)]) == 1


@pytest.mark.parametrize("regime", ["short", "standard", "transfer"])
def test_the_which_method_counts_the_readme_quotes_are_the_tables(tmp_path, regime):
    """The README's answer quotes the from-scratch boards of at least the standard budget (`which:`) apart from
    the short-budget ones (`which-short:`) and those of a pretrained start (`which-transfer:`), each count as
    its own table gives it."""
    from bench.report.markdown import summary_blocks, summary_values
    from bench.spec import PRESETS

    runs = tmp_path / "runs"
    for r in [_timed(m, s, v) for m, vals in WHICH_MIN.items() for s, v in enumerate(vals)]:
        if regime == "standard":
            r["spec"]["steps"] = PRESETS["standard"]["steps"]
        if regime == "transfer":
            r["spec"]["weights"] = "animals-other8"
        store.write_record(runs, r)
    a = Analysis.of(collect(runs).boards, "os")
    rows = T.which_summary(a, regime=regime).rows
    prefix = {"short": "which-short", "standard": "which", "transfer": "which-transfer"}[regime]
    for other in {"short", "standard", "transfer"} - {regime}:
        assert T.which_summary(a, regime=other) is None
    assert set(summary_blocks(a)) == {"which-method" + ("" if regime == "standard" else f"-{regime}")}
    values = summary_values(a)
    assert values[f"v:{prefix}:settings"] == str(len(rows)) == "1"
    assert not [k for k in values if k.endswith(":settings") and k != f"v:{prefix}:settings"]
    assert values[f"v:{prefix}:better"] == str(sum(r[4] != "none" for r in rows))
    assert int(values[f"v:{prefix}:reference_may_be_best"]) + int(values[f"v:{prefix}:too_few_seeds"]) + int(
        values[f"v:{prefix}:reference_beaten"]
    ) == len(rows)


def test_a_record_with_a_non_finite_accuracy_is_named_and_not_averaged(tmp_path):
    d = tmp_path / "runs"
    store.write_record(d, rec("os", 0.01, 0, 0.9, 0.5))
    bad = rec("os", 0.01, 1, 0.9, float("nan"))  # written as null
    bad["metrics"]["balanced_acc"], bad["metrics"]["macro_f1"] = 0.7, 0.6  # finite beside it: it used to be averaged in
    store.write_record(d, bad)
    col = collect(d)
    assert len(col.ok) == 1 and [why for _, why in col.unreadable] == [
        "finished record with a non-finite accuracy (NaN is stored as null): the same `bench run` trains it again"
    ]
    assert col.boards[0].cells[("os", 0.01)].seeds == [0]


def test_board_labels_are_short_and_tell_apart_boards_that_differ_only_in_numerics():
    """Issue 38 item 2: one short label per setting, the numerics out of it except where two boards differ only
    there (records from before the CPU model was recorded)."""
    recs = []
    for i, change in enumerate([
        {},  # the short budget, numerics without the chip (SETTING's)
        {"numerics": "cpu fp32 threads=1 torch=2.14.1 chip=AMD-EPYC"},
        {"val_per_class": 100, "numerics": "cpu fp32 threads=1 torch=2.14.1 chip=AMD-EPYC"},
        {"val_per_class": 100},
        {"weights": "animals-other8", "tune": "last:1", "steps": 240},
        {"steps": 2400},
        {"weights": "animals-other8", "tune": "last:1", "steps": 1200},
        {"numerics": "cuda bf16 torch=2.14.1", "precision": "bf16"},
    ]):  # fmt: skip
        for m in ("os", "ce"):
            r = rec(m, 0.01, 0, 0.9, 0.5)
            r["spec"].update(change)
            r["key"] += f"-{i}"
            recs.append(r)
    labels = [b.label for b in aggregate(recs)]
    assert len(labels) == len(set(labels)) == 8 and all(len(label) <= 60 for label in labels), labels
    assert not any("threads" in label or "torch" in label for label in labels)
    assert "animals fine, standard, CPU" in labels and "animals fine, transfer, CPU" in labels
    assert "animals fine, 240 steps (short), CPU (AMD-EPYC)" in labels
    assert "animals fine, 240 steps (short), CPU (no chip)" in labels
    assert "animals fine, from animals-other8, last:1, 240 steps, CPU" in labels
    assert "animals fine, 240 steps (short), GPU" in labels
