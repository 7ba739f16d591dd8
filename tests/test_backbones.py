"""Backbones by name (issue 34 item 1-2): torchvision and timm models train with every kind of method, their
taps come from the libraries' feature-extraction APIs, and their ImageNet weights load offline through the
libraries' own loading code."""

from __future__ import annotations

import json

import pytest
import torch

from bench.backbones import TAPS, build_library_model
from bench.cli import main

TINY = ["run", "--dataset", "synthetic", "--task", "fine", "--preset", "tiny", "--ratios", "0.25", "--plain",
        "--executor", "local"]  # fmt: skip


def _records(out):
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


@pytest.mark.slow
@pytest.mark.parametrize(
    "model,extra", [("timm:resnet18", []), ("mobilenet_v3_small", []), ("convnext_tiny", ["--image-size", "32"])]
)
def test_a_library_backbone_trains_ce_and_os_fsc_with_fsc_on_its_last_two_stages(model, extra, tmp_path):
    out = tmp_path / "runs"
    assert main([*TINY, "--model", model, "--methods", "ce,os+fsc", *extra, "--out", str(out)]) == 0
    recs = {r["spec"]["method"]: r for r in _records(out)}
    assert set(recs) == {"ce", "os+fsc"} and all(r["spec"]["model"] == model for r in recs.values())
    assert recs["ce"]["model_info"]["backbone"] == model
    fsc_terms = [h["fsc"] for h in recs["os+fsc"]["history"] if "fsc" in h]
    assert fsc_terms and all(0 < v < 4 for v in fsc_terms)  # the MSE of cosines against 0/1 targets: in (0, 4]


def test_the_taps_are_the_libraries_stages_and_the_classifier_sees_layer4():
    """timm's feature_info channels for the three stages before the last; layer4 is the pre-logits
    features (forward_head(pre_logits=True)) that `fc` classifies, as in the suite's ResNet."""
    import timm

    m = build_library_model("timm:mobilenetv3_small_050", 2, 1)
    ref = timm.create_model("mobilenetv3_small_050", num_classes=0, in_chans=1)
    assert m.widths[:3] == [f["num_chs"] for f in ref.feature_info][-4:-1] and m.widths[3] == ref.head_hidden_size
    x = torch.randn(3, 1, 32, 32)
    m.eval()
    logits, feats = m(x, TAPS)
    assert set(feats) == set(TAPS) and [feats[t].shape[1] for t in TAPS] == m.widths
    assert torch.allclose(logits, m.fc(feats["layer4"])) and torch.allclose(m(x)[0], logits, atol=1e-6)
    tv = build_library_model("resnet50", 2, 1)
    assert tv.widths == [256, 512, 1024, 2048]  # torchvision's layer1..layer4 by resolution


@pytest.mark.parametrize("model", ["timm:resnet18", "mobilenet_v3_small"])
def test_tune_freezes_the_stem_and_the_earlier_stages_of_a_library_backbone(model):
    m = build_library_model(model, 2, 1)
    head = {id(p) for part in m.frozen_modules("head") for p in part.parameters()}
    assert head == {id(p) for p in m.trunk.parameters()}  # a linear probe: the whole trunk
    last1 = {id(p) for part in m.frozen_modules("last:1") for p in part.parameters()}
    last2 = {id(p) for part in m.frozen_modules("last:2") for p in part.parameters()}
    assert last2 < last1 < head and not m.frozen_modules("full")
    with pytest.raises(Exception, match="stages to tune; choose last:1 to last:4"):
        m.frozen_modules("last:5")


def test_unknown_models_and_a_model_too_coarse_for_the_images_are_one_line(tmp_path, capsys):
    for model, words in [
        ("resnet181", "did you mean resnet18"),
        ("timm:convnext_tiniest", "timm has no model 'convnext_tiniest'"),
        ("convnext_tiny", "cannot take this data's 16 px images"),
    ]:
        assert main([*TINY, "--methods", "ce", "--model", model, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert (
        main([*TINY, "--methods", "ce", "--model", "mobilenet_v3_small", "--width", "0.5", "--out", str(tmp_path)]) == 2
    )
    assert "--width scales the suite's resnet18 only" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.slow
def test_imagenet_weights_load_offline_through_torchvisions_and_timms_own_loaders(tmp_path, monkeypatch):
    """There is no internet here, so the ImageNet weights are written where each library looks first, with
    the right shapes (the values are a fresh model's: this checks the loading path, not ImageNet features):
    torchvision's `get_state_dict` reads $TORCH_HOME/hub/checkpoints/<file of its URL>; timm's
    `create_model(pretrained=True)` calls huggingface_hub's `hf_hub_download`, which in offline mode reads
    the hub cache's snapshot of the model's repository. The record says where the weights came from, the
    key holds the cached file's digest, and the images are resized and normalised as the weights expect."""
    import huggingface_hub.constants as hf
    import safetensors.torch
    import timm
    import torchvision.models as tvm

    from datasets.base import sha256_of

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    w = tvm.get_model_weights("mobilenet_v3_small").DEFAULT
    tv_file = tmp_path / "torch" / "hub" / "checkpoints" / w.url.rsplit("/", 1)[1]
    tv_file.parent.mkdir(parents=True)
    torch.save(tvm.mobilenet_v3_small().state_dict(), tv_file)

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    repo = timm.models.get_pretrained_cfg("resnet18").hf_hub_id  # timm/resnet18.a1_in1k
    snap = tmp_path / "hf" / f"models--{repo.replace('/', '--')}"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("0" * 40)
    (snap / "snapshots" / ("0" * 40)).mkdir(parents=True)
    timm_file = snap / "snapshots" / ("0" * 40) / "model.safetensors"
    safetensors.torch.save_file(timm.create_model("resnet18").state_dict(), timm_file)

    for model, extra, file in [
        ("mobilenet_v3_small", [], tv_file),
        ("timm:resnet18", ["--image-size", "32"], timm_file),
    ]:
        out = tmp_path / model.replace(":", "_")
        argv = [*TINY, "--methods", "ce", "--model", model, "--pretrained", "imagenet", *extra, "--out", str(out)]
        assert main(argv) == 0
        [rec] = _records(out)
        info = rec["model_info"]["weights"]
        assert rec["spec"]["weights"] == "imagenet" and rec["spec"]["weights_sha256"] == sha256_of(file)
        assert info["pretrained_cfg"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
        assert rec["model_info"]["input_size"] == (None if extra else 224)  # --image-size overrides the weights'
        assert rec["model_info"]["input_mean"] == pytest.approx(
            [(0.485 + 0.456 + 0.406) / 3]
        )  # grey: the mean of the three channels
    tv_source = _records(tmp_path / "mobilenet_v3_small")[0]["model_info"]["weights"]["source"]
    assert tv_source == w.url
    assert _records(tmp_path / "timm_resnet18")[0]["model_info"]["weights"]["source"] == repo


def test_imagenet_weights_missing_from_the_cache_offline_are_one_line(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    argv = [*TINY, "--methods", "ce", "--model", "timm:resnet18", "--pretrained", "imagenet", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "is not in the Hugging Face cache" in err and len(err.splitlines()) == 1
