"""Issue 39 items 2-3: `bench advise` on a user's photos (locations and bursts) races contenders on
validation photos carved from the training photos, says which method to use, and saves a model that
`bench predict` reloads and that predicts what its run's record says it predicted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.metrics import decode_labels, outcome_arrays
from bench.runner import DataCache

from .test_own_photos import write_site

CLASSES = ["roe_deer", "water_deer"]


def advise_args(root, out, *extra) -> list[str]:
    return ["advise", "--data-root", str(root), "--classes", ",".join(CLASSES), "--preset", "tiny",
            "--methods", "os,ce", "--seeds", "2", "--max-seeds", "3", "--executor", "local", "--plain",
            "--out", str(out), *extra]  # fmt: skip


@pytest.mark.slow
def test_advise_races_on_validation_says_which_method_and_saves_a_model_predict_reproduces(tmp_path, capsys):
    root = write_site(tmp_path / "photos")
    out = tmp_path / "advice"
    assert main(advise_args(root, out, "--split-by", "location")) == 0
    said = capsys.readouterr().out
    assert "split by location" in said and "near-identical" not in said  # the grouped split, no leak to warn of
    [use] = [line for line in said.splitlines() if line.startswith("use ")]
    chosen = use.split(":")[0].removeprefix("use ")
    assert chosen in ("os", "ce")
    assert "on your test split (never used to choose)" in said
    assert (out / "advice.md").read_text().count(f"use {chosen}") == 1

    recs = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    race = [r for r in recs if r["spec"]["val_per_class"]]
    assert {r["spec"]["method"] for r in race} == {"os", "ce"} and all("val" in r["metrics"] for r in race)
    assert all(len({r["spec"]["seed"] for r in race if r["spec"]["method"] == m}) >= 2 for m in ("os", "ce"))
    # the chosen method again on every training photo, its model saved
    [final] = [r for r in recs if not r["spec"]["val_per_class"]]
    assert final["spec"]["method"] == chosen and final["saved_model"]
    config = json.loads((out / "model.json").read_text())
    assert config["key"] == final["key"] and config["classes"] == CLASSES

    # bench predict reloads it; on the record's test photos it predicts what the record says
    assert main(["predict", str(out / "model.pt"), str(root), "--out", str(tmp_path / "p.csv")]) == 0
    assert "accuracy per class (folders as labels)" in capsys.readouterr().out
    rows = {r["file"]: r for r in csv.DictReader((tmp_path / "p.csv").open())}
    assert len(rows) == 50  # every photo of the folder
    data = DataCache(str(root), None, split_by="location").get("folder")[1]
    labels, logp, index = outcome_arrays(final["metrics"]["test_outcome"])
    predictions = decode_labels(final["metrics"]["test_outcome"]["predictions"])
    for i, y, lp, pred in zip(index, labels, logp, predictions):
        row = rows[data.test_files[i]]
        assert row["label"] == CLASSES[y] and row["prediction"] == CLASSES[pred]
        p = np.array([float(row[f"p_{c}"]) for c in CLASSES])
        assert np.allclose(np.log(p), lp, atol=2e-3)  # the record's float16 log-probabilities
    # and the advice's own CSV holds every test photo of the two classes
    test_rows = list(csv.DictReader((out / "test_predictions.csv").open()))
    assert len(test_rows) == len(data.test_files) and {r["file"] for r in test_rows} == set(data.test_files)


@pytest.mark.slow
def test_advise_on_a_random_split_of_bursts_warns_of_near_duplicates(tmp_path, capsys):
    root = write_site(tmp_path / "photos")
    assert main(advise_args(root, tmp_path / "advice", "--no-save-model", "--max-seeds", "2")) == 0
    captured = capsys.readouterr()
    assert "near-identical training photo" in captured.err + captured.out
    assert not (tmp_path / "advice" / "model.pt").exists()


def test_advise_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    # 2 rare photos: 1 to train on, 1 to test on
    root = write_site(tmp_path / "photos", classes={"roe_deer": 6, "water_deer": 2}, bursts={"water_deer": 1})
    out = tmp_path / "advice"
    assert main(advise_args(root, out, "--ratios", "0.5,0.1")) == 2
    assert "one ratio" in capsys.readouterr().err
    assert main(advise_args(root, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'water_deer' has" in err and "add photos" in err
    assert not (out / "runs").exists()  # nothing written by a refused command
    assert main(advise_args(write_site(tmp_path / "p2"), out, "--seeds", "1")) == 2
    assert "--seeds" in capsys.readouterr().err


def test_predict_refuses_what_is_not_a_saved_model_or_a_photo_folder(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    photos = write_site(tmp_path / "photos")
    assert main(["predict", str(bad), str(photos)]) == 2
    assert "is not a model saved by" in capsys.readouterr().err
    assert main(["predict", str(bad), str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(bad), str(tmp_path / "empty")]) == 2
    assert "holds no image files" in capsys.readouterr().err


def _unreadable(root):
    (root / "water_deer" / "broken.png").write_bytes(b"not a png")


def _missing_in_csv(root):
    (root / "metadata.csv").write_text("file,location\nroe_deer/nope.png,a\n")


def _one_location(root):
    csv_text = (root / "metadata.csv").read_text()
    (root / "metadata.csv").write_text(
        "\n".join(
            line.replace(line.split(",")[2], "water_deer-site0") if line.startswith("water_deer/") else line
            for line in csv_text.splitlines()
        )
        + "\n"
    )


@pytest.mark.parametrize(
    "change,words",
    [
        (_unreadable, "cannot read image"),
        (_missing_in_csv, "is not a photo of"),
        (_one_location, "class 'water_deer' is in 1 location(s)"),
    ],
)
def test_advise_on_bad_photos_or_metadata_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, change, words):
    root = write_site(tmp_path / "photos")
    change(root)
    out = tmp_path / "advice"
    assert main(advise_args(root, out, "--split-by", "location")) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_the_default_contenders_are_the_regimes_declared_family_and_say_so():
    from bench.advise import contenders
    from bench.gridfile import read_family

    for pretrained, grid in ((False, "round4_confirm_scratch.toml"), (True, "round4_confirm_transfer.toml")):
        methods, why = contenders(pretrained)
        family = read_family(str(Path(__file__).parents[1] / "grids" / grid))
        declared = {m for contrast in family["contrasts"] for m in contrast}
        assert methods[:2] == ["os", "ce"] and set(methods) == {"os", "ce"} | declared
        assert grid in why


def test_an_undecided_race_says_how_large_a_difference_its_seeds_could_miss():
    """From the README example's committed records (results/advice/animals): os and la cannot be told apart at 5
    seeds, so the advice names the minimum detectable difference, and ce (beaten) is not among the choices."""
    from bench.advise import Race, advice_text, choose

    runs = Path(__file__).parents[1] / "results" / "advice" / "animals" / "runs"
    race = Race()
    race.add([r for r in (json.loads(p.read_text()) for p in runs.glob("*.json")) if r["spec"]["val_per_class"]])
    d = race.decide("os")
    choice, why = choose(d, race)
    assert sorted(d.may_be_best) == ["la", "os"] and choice == "os" and "choose by cost" in why
    text = advice_text(d, race, choice, why, "os", ["horse", "dog"])
    [line] = [x for x in text.splitlines() if "could go unseen" in x]
    assert f"la {d.mde['la']:.3f}" in line and d.mde["la"] > 0
