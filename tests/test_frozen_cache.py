"""The frozen-trunk cache (issue 34 item 3): with `--augment none`, the frozen part of a `--tune head` /
`last:N` model is computed once per image, and the run is the one computed every step, up to float32
summation order; where the cache cannot apply, the record says why."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from bench.models import build_model
from bench.runner import DataCache
from bench.train import pick_device, train_and_evaluate
from datasets import build_task
from methods import parse_method

from .conftest import tiny_specs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    src, data = DataCache(None, None).get("synthetic")
    start = build_model(2, data.train_x.shape[1], data.train_x.shape[2], 0.125)
    for m in start.modules():  # statistics a trained start would have: the cache must use them (eval mode)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.2)
            m.running_var.fill_(1.5)
    w = tmp_path_factory.mktemp("start") / "start.pt"
    torch.save(start.state_dict(), w)
    return src, data, str(w)


@pytest.mark.parametrize("tune,meth", [("head", "os+fsc"), ("last:1", "crt"), ("last:3", "ce")])
def test_cached_and_every_step_runs_agree(setup, tune, meth):
    src, data, w = setup
    [spec] = tiny_specs([meth], train_changes={"weights": w, "tune": tune, "augment": "none", "steps": 30})
    task = build_task(data, "synthetic", src.pairs, "fine", spec.ratio, 0)
    res = {c: train_and_evaluate(spec, task, parse_method(meth), pick_device("cpu"), cache_frozen=c) for c in (0, 1)}
    assert all(s["frozen_cache"] == "on" for s in res[1]["timings"]["frozen_cache"])
    assert all(s["frozen_cache"] == "turned off" for s in res[0]["timings"]["frozen_cache"])
    for a, b in zip(res[0]["history"], res[1]["history"]):
        assert a.keys() == b.keys() and all(
            a[k] == (pytest.approx(b[k], rel=1e-4, abs=1e-5) if k != "stage" else b[k]) for k in a
        ), (a, b)
    assert res[0]["metrics"]["balanced_acc"] == res[1]["metrics"]["balanced_acc"]


def test_the_record_says_why_the_cache_is_off(setup):
    src, data, w = setup
    cases = [
        ("ce", {"tune": "head"}, "the images are augmented every step"),
        ("mixup", {"tune": "head", "augment": "none"}, "transforms the images every step"),
        ("supcon2", {"tune": "last:1", "augment": "none"}, "augmented views"),
    ]
    for method, changes, why in cases:
        [spec] = tiny_specs([method], train_changes={"weights": w, **changes})
        task = build_task(data, "synthetic", src.pairs, "fine", spec.ratio, 0)
        res = train_and_evaluate(spec, task, parse_method(method), pick_device("cpu"))
        assert why in res["timings"]["frozen_cache"][0]["frozen_cache"], method


def test_augment_none_is_its_own_key_and_the_default_keeps_old_keys():
    [spec] = tiny_specs(["ce"])
    assert "augment" not in spec.canonical()  # crop+flip, the augmentation every older record used
    assert replace(spec, augment="none").key != spec.key
