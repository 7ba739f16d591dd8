"""Issue 39 item 1: a user's photos with locations and bursts. A random split puts frames of one burst in
train and test (warned, with the count and an example pair); `--split-by location` keeps every location on
one side; bad metadata is one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.runner import DataCache

CLASSES = {"roe_deer": 6, "water_deer": 4}  # locations per class
BURST = 5  # frames per location: one scene, shifted a pixel or two


def write_site(root, classes=CLASSES, burst=BURST, seed=0, bursts=None):
    """Per class and location one smooth random scene (a 6 x 6 grid upsampled to 48 px), its burst of
    shifted frames, and a metadata.csv naming each frame's location and sequence."""
    rng = np.random.default_rng(seed)
    rows = ["file,label,location,sequence"]
    for cls, n_loc in classes.items():
        (root / cls).mkdir(parents=True)
        for loc in range(n_loc):
            scene = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).resize((56, 56), Image.BILINEAR)
            for k in range((bursts or {}).get(cls, burst)):
                dx, dy = rng.integers(0, 3, 2)
                frame = scene.crop((dx, dy, dx + 48, dy + 48))
                name = f"{cls}/{cls}_{loc}_{k}.png"
                frame.save(root / name)
                rows.append(f"{name},{cls},{cls}-site{loc},{cls}-site{loc}-burst")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def run_args(root, out) -> list[str]:
    return ["run", "--dataset", "folder", "--data-root", str(root), "--split-by", "location", "--preset", "tiny",
            "--classes", "roe_deer,water_deer", "--methods", "ce", "--ratios", "0.5", "--plain",
            "--out", str(out)]  # fmt: skip


def test_a_random_split_of_bursts_is_warned_and_split_by_location_keeps_each_location_on_one_side(tmp_path):
    root = write_site(tmp_path / "photos")
    random = DataCache(str(root), None).get("folder")[1]
    [warn] = [n for n in random.notes if n.startswith("warning:") and "near-identical" in n]
    assert "test photo(s) have a near-identical training photo" in warn and "--split-by" in warn

    src, data = DataCache(str(root), None, split_by="location").get("folder")
    assert not any("near-identical" in n for n in data.notes)
    import csv

    rows = list(csv.DictReader((root / "metadata.csv").read_text().splitlines()))
    loc = {str((root / r["file"]).resolve()): r["location"] for r in rows}
    paths = [p for p, _ in sorted(loc.items())]
    # which side each location landed on, through the source's own split of the photos in scan order
    from datasets.folder import _scan

    _, samples, _ = _scan(root)
    ordered = [loc[str(Path(p).resolve())] for p, _ in samples]
    assert len(paths) == len(ordered) == data.train_y.numel() + data.test_y.numel()
    sides = {}
    n_train = data.train_y.numel()
    from datasets.split import grouped_split

    tr, te = grouped_split(np.array([lb for _, lb in samples]), ordered, list(CLASSES), "location")
    assert len(tr) == n_train
    for i in tr:
        sides.setdefault(ordered[i], set()).add("train")
    for i in te:
        sides.setdefault(ordered[i], set()).add("test")
    assert all(len(s) == 1 for s in sides.values())
    assert set(data.test_y.tolist()) == {0, 1} and set(data.train_y.tolist()) == {0, 1}
    assert data.digest != random.digest  # another split: other run keys


@pytest.mark.slow
def test_a_grid_on_grouped_photos_runs_and_records_the_split(tmp_path):
    root = write_site(tmp_path / "photos")
    out = tmp_path / "runs"
    argv = [*run_args(root, out), "--executor", "local"]
    assert main(argv) == 0
    [rec] = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert rec["spec"]["data_digest"] and 0 <= rec["metrics"]["balanced_acc"] <= 1


@pytest.mark.parametrize(
    "change,words",
    [
        (lambda root: (root / "metadata.csv").write_text("file,location\nroe_deer/nope.png,a\n"), "is not a photo of"),
        (
            lambda root: (root / "metadata.csv").write_text(
                (root / "metadata.csv").read_text().replace("roe_deer,roe_deer-site0", "water_deer,roe_deer-site0", 1)
            ),
            "but the photo is in the 'roe_deer' folder",
        ),
        (lambda root: (root / "metadata.csv").unlink(), "metadata.csv is missing"),
    ],
)
def test_bad_metadata_is_one_line_and_nothing_is_written(tmp_path, capsys, change, words):
    root = write_site(tmp_path / "photos")
    change(root)
    out = tmp_path / "runs"
    argv = run_args(root, out)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not list(out.glob("*.json"))


def test_a_class_seen_at_one_location_only_cannot_be_split_by_location(tmp_path, capsys):
    root = write_site(tmp_path / "photos", classes={"roe_deer": 5, "water_deer": 1})
    argv = run_args(root, tmp_path / "runs")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "class 'water_deer' is in 1 location(s) (water_deer-site0), all on the" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_the_readmes_own_photos_command_works_as_written_on_50_common_and_10_rare(tmp_path, capsys):
    """Issue 38 item 5: the README's command, taken from README.md itself, on a folder of 50 water deer and
    10 roe deer at 5 locations each (plus --out, and --preset tiny --plain to keep the test short): it trains
    on the folder's own imbalance (--ratios natural by default) with every location on one side."""
    import re
    import shlex

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    [cmd] = [c for c in re.findall(r"```bash\n(.*?)```", readme, re.S) if "--dataset folder" in c]
    argv = shlex.split(cmd.replace("\\\n", " "))
    assert argv[:3] == ["python", "-m", "bench"]
    root = write_site(tmp_path / "traps", classes={"water_deer": 5, "roe_deer": 5},
                      bursts={"water_deer": 10, "roe_deer": 2})  # fmt: skip
    argv = [str(root) if a == "~/traps" else a for a in argv[3:]]
    out = tmp_path / "runs"
    assert main([*argv, "--out", str(out), "--preset", "tiny", "--plain"]) == 0
    printed = capsys.readouterr().out
    assert "--ratios natural is 1:" in printed
    recs = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert {r["spec"]["method"] for r in recs} == {"ce", "os", "os+fsc"}
    # every training photo of both classes: the split's counts, not a subsample
    from bench.runner import DataCache

    data = DataCache(str(root), None, split_by="location").get("folder")[1]
    pool = [int((data.train_y == data.classes.index(c)).sum()) for c in ("water_deer", "roe_deer")]
    assert {tuple(r["counts"]["train"]) for r in recs} == {tuple(pool)} and pool[1] < pool[0]
