"""Issue 34: pretrained starts the suite makes (`bench pretrain`), their provenance check, a start that must
fill the whole trunk, and how much of the network a run tunes (`--tune`)."""

import json

import pytest
import torch

from bench.cli import main
from bench.models import build_model, frozen_parts
from bench.spec import PRESETS
from bench.starts import SHIPPED, STARTS

from .conftest import tiny_specs

TINY = ["run", "--dataset", "synthetic", "--preset", "tiny", "--methods", "ce", "--ratios", "0.25", "--plain"]


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A real `bench pretrain` of the animals start, 5 steps (a pipeline check, not a useful start)."""
    out = tmp_path_factory.mktemp("start")
    assert main(["pretrain", "animals-other8", "--steps", "5", "--out", str(out)]) == 0
    return out / "animals-other8.pt"


@pytest.mark.slow
def test_pretrain_writes_the_start_its_config_and_a_truthful_provenance(start):
    prov = json.loads(start.with_name("animals-other8.provenance.json").read_text())
    assert prov["source"] == "animals" and len(prov["classes"]) == 8
    assert not {"horse", "dog"} & set(prov["classes"]) and prov["never_seen"] == ["horse", "dog"]
    assert prov["steps"] == 5 and prov["heldout_images"] == 8 * 200 and 0 <= prov["heldout_accuracy"] <= 1
    from datasets.base import sha256_of

    assert prov["sha256"] == sha256_of(start)
    cfg = json.loads(start.with_name("animals-other8.pt.json").read_text())
    assert set(cfg) == {"mean", "std", "stem"} and cfg["stem"] == "cifar"
    state = torch.load(start, weights_only=True)
    assert state["fc.weight"].shape[0] == 8  # its own 8-class head, skipped by a 2-class task


@pytest.mark.slow
def test_a_start_loads_the_whole_trunk_and_a_start_that_saw_a_task_class_is_refused(start, tmp_path, capsys):
    argv = ["run", "--dataset", "animals", "--task", "fine", "--preset", "tiny", "--width", "0.25", "--methods",
            "ce", "--ratios", "0.1", "--plain", "--pretrained", str(start), "--out", str(tmp_path / "a")]  # fmt: skip
    assert main(argv) == 0
    [rec] = [json.loads(p.read_text()) for p in (tmp_path / "a").glob("*.json")]
    info = rec["model_info"]["weights"]
    assert info["skipped"] == ["fc.bias", "fc.weight"] and rec["spec"]["weights_sha256"]
    # the coarse task (horse vs elephant): elephant is one of the start's classes
    coarse = [a if a != "fine" else "coarse" for a in argv]
    assert main(coarse[:-1] + [str(tmp_path / "b")]) == 2
    assert "was trained on elephant, a class of this animals task" in capsys.readouterr().err


def test_weights_whose_trunk_does_not_match_are_refused_in_one_line(tmp_path, capsys):
    """Issue 37 item 9: a full-width ResNet-18's state dict at width 0.125 used to 'load' its counters and
    fc.bias and train from scratch, exit 0. Now: exit 2, naming what did not match."""
    w = tmp_path / "full.pt"
    torch.save(build_model(2, 1, 28, 1.0).state_dict(), w)
    assert main([*TINY, "--pretrained", str(w), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "trunk tensors do not match this model (conv1.weight (64, 1, 3, 3) vs (8, 1, 3, 3)" in err
    assert len(err.splitlines()) == 1
    assert not list((tmp_path / "r").glob("*.json"))


@pytest.mark.parametrize("tune", ["head", "last:1"])
def test_tune_trains_only_its_part_and_frozen_batchnorm_keeps_its_statistics(tune, tmp_path):
    from bench.runner import DataCache
    from bench.train import pick_device, train_and_evaluate
    from datasets import build_task
    from methods import parse_method

    src, data = DataCache(None, None).get("synthetic")
    start = build_model(2, data.train_x.shape[1], data.train_x.shape[2], 0.125)
    for m in start.modules():  # BatchNorm statistics a fine-tune would move
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.3)
    w = tmp_path / "start.pt"
    torch.save(start.state_dict(), w)
    [spec] = tiny_specs(["ce"], train_changes={"weights": str(w), "tune": tune})
    task = build_task(data, "synthetic", src.pairs, "fine", spec.ratio, 0)
    model = train_and_evaluate(spec, task, parse_method("ce"), pick_device("cpu"), keep_model=True)["model"]
    before, after = start.state_dict(), model.state_dict()
    frozen = frozen_parts(tune)
    for k, v in after.items():
        if k.split(".")[0] in frozen:
            assert torch.equal(v, before[k]), k  # weights and BatchNorm statistics as the start had them
    assert not torch.equal(after["fc.weight"], before["fc.weight"])
    if tune == "last:1":
        assert not torch.equal(after["layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])
        assert "layer3" in frozen and "layer4" not in frozen


def test_a_tune_mode_the_model_lacks_is_one_line(tmp_path, capsys):
    assert main([*TINY, "--tune", "last:5", "--out", str(tmp_path)]) == 2
    assert "--tune last:5: the suite's ResNet has 4 stages to tune; choose last:1 to last:4" in capsys.readouterr().err
    assert main([*TINY, "--tune", "last:x", "--out", str(tmp_path)]) == 2
    assert "--tune last:x: choose full, head or last:N" in capsys.readouterr().err


def test_the_shipped_starts_are_there_with_provenance_that_excludes_their_tasks():
    """The starts a fresh clone runs offline: committed files whose provenance names a source and classes
    that leave out the fine pair (made by `python -m bench pretrain NAME`)."""
    for name, (source, never) in STARTS.items():
        prov = json.loads((SHIPPED / f"{name}.provenance.json").read_text())
        assert prov["source"] == source and not set(never) & set(prov["classes"])
        from datasets.base import sha256_of

        assert prov["sha256"] == sha256_of(SHIPPED / f"{name}.pt")


def test_boards_of_a_pretrained_start_are_titled_and_filed_apart_from_scratch():
    """Issue 34 item 5: a reader can never mix a transfer board with a from-scratch one."""
    from bench.report.model import Board

    from .test_report import SETTING

    setting = dict(SETTING, numerics="cpu fp32 threads=1 torch=2.14.1", precision="auto", val_per_class=0, tune="full")
    scratch = Board(setting, ["horse", "dog"])
    start = Board(dict(scratch.setting, weights="animals-other8", tune="last:1"), ["horse", "dog"])
    assert scratch.slug != start.slug and ":" not in start.slug
    assert "from=animals-other8, tune=last:1" in start.group[1] and "from=" not in scratch.group[1]
    assert "pretrained start animals-other8, tune last:1" in start.title


def test_a_torchvision_start_loads_offline_through_torchvisions_own_loader(tmp_path, monkeypatch):
    """There is no internet here: a state dict of ImageNet ResNet-18's shapes is written where torchvision's
    own `get_weight(...).get_state_dict()` looks first ($TORCH_HOME/hub/checkpoints/<file of its URL>), so the
    real loading path runs; the record says what was loaded (every trunk tensor), adapted (the 3-channel stem
    summed for 1-channel images) and skipped (the 1000-class head), with the ImageNet stem and normalisation."""
    from torchvision.models import get_weight, resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = get_weight("ResNet18_Weights.IMAGENET1K_V1").url
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(resnet18().state_dict(), cache / url.rsplit("/", 1)[1])
    out = tmp_path / "runs"
    argv = [*TINY, "--width", "1.0", "--pretrained", "ResNet18_Weights.IMAGENET1K_V1", "--out", str(out),
            "--executor", "local"]  # fmt: skip
    assert main(argv) == 0
    [rec] = [json.loads(p.read_text()) for p in out.glob("*.json")]
    info = rec["model_info"]["weights"]
    assert info["skipped"] == ["fc.bias", "fc.weight"] and info["adapted"][0].startswith("conv1.weight")
    assert info["pretrained_cfg"]["stem"] == "imagenet" and info["pretrained_cfg"]["mean"] == [0.485, 0.456, 0.406]


def test_the_transfer_preset_is_the_studys_setting_from_the_datasets_own_start():
    """`--preset transfer` resolves to the quick model from the dataset's shipped start, last:1, 1200 steps,
    recorded as quick runs: the transfer study's records at that setting are transfer runs (same keys), and
    boards of it are titled `transfer`; the same setting from scratch or another start is not."""
    from bench.cli import build_parser
    from bench.runner import DataCache, expand
    from bench.settings import RunSettings
    from bench.spec import named_budget

    def specs(*flags):
        a = build_parser().parse_args(["run", "--methods", "la", "--ratios", "0.01", "--seeds", "1", *flags])
        a.command_line = ""
        return expand(RunSettings.from_args(a).request, DataCache(None, None))

    [t] = specs("--preset", "transfer", "--dataset", "fashion")
    [q] = specs("--pretrained", "fashion-other8", "--tune", "last:1", "--steps", "1200", "--dataset", "fashion")
    assert t.key == q.key and t.weights == "fashion-other8" and t.preset == "quick"
    setting = {k: getattr(t, k) for k in ("preset", "weights", *PRESETS["transfer"]) if hasattr(t, k)}
    assert named_budget(setting) == "transfer"
    assert named_budget(setting | {"weights": None}) is None and named_budget(setting | {"weights": "x.pt"}) is None


@pytest.mark.slow
def test_the_shipped_start_runs_offline_with_last_stage_tuning(tmp_path):
    """Issue 34's 'done when': `--pretrained animals-other8 --tune last:1` from a clone, no network: the
    committed start loads whole (every trunk tensor, its own 8-class head skipped) and only the last stage
    and the head train."""
    out = tmp_path / "runs"
    argv = ["run", "--dataset", "animals", "--task", "fine", "--preset", "tiny", "--width", "0.25", "--methods",
            "ce", "--ratios", "0.1", "--plain", "--executor", "local", "--pretrained", "animals-other8",
            "--tune", "last:1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    [rec] = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert rec["spec"]["weights"] == "animals-other8" and rec["spec"]["tune"] == "last:1"
    assert rec["model_info"]["weights"]["skipped"] == ["fc.bias", "fc.weight"]
    assert rec["timings"]["frozen_cache"][0]["frozen_cache"].startswith("the images are augmented")


def test_a_feature_term_on_frozen_layers_is_warned(tmp_path, capsys):
    """Seen in the transfer study: with --tune head, os+fsc trained exactly as os (FSC's layers frozen)."""
    assert main([*TINY, "--methods", "os+fsc,la", "--tune", "head", "--steps", "2", "--executor", "local",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning: os+fsc: fsc reads layer3, layer4, which --tune head freezes" in err and "la:" not in err
    assert main([*TINY, "--methods", "os+fsc", "--tune", "last:1", "--steps", "2", "--executor", "local",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    assert "warning: os+fsc" not in capsys.readouterr().err  # layer4 trains under last:1
