"""CUDA code paths: the parts that can run on the CPU run here; the rest skip with a stated reason."""

import pytest
import torch

from bench.executors import RunOptions, run_local
from bench.spec import numerics
from bench.train import Normaliser, augment

from .conftest import tiny_specs

CUDA = torch.cuda.is_available()
NO_CUDA = "needs a CUDA GPU (scripts/gpu_check.sh runs it on one)"
CUDA_NUMERICS = numerics("cuda", "auto", None)


def test_channels_last_normaliser_gives_the_same_values():
    x = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    a = Normaliser([0.5, 0.4, 0.3], [0.2, 0.2, 0.25], torch.device("cpu"), channels_last=False)(x)
    b = Normaliser([0.5, 0.4, 0.3], [0.2, 0.2, 0.25], torch.device("cpu"), channels_last=True)(x)
    assert b.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b)


def test_augmentation_generator_is_reproducible():
    x = torch.randint(0, 255, (16, 1, 12, 12), dtype=torch.uint8)
    a = augment(x, 2, torch.Generator().manual_seed(5))
    b = augment(x, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
def test_bf16_channels_last_training_on_cuda(tmp_path):
    recs = run_local(
        tiny_specs(["ce", "os+fsc", "supcon", "cb"], numerics=CUDA_NUMERICS),
        tmp_path,
        torch.device("cuda"),
        RunOptions(plain=True),
    ).written
    assert all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    assert all(r["env"]["device_type"] == "cuda" for r in recs)


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
def test_compiled_training_on_cuda_matches_eager_closely(tmp_path):
    specs = tiny_specs(["ce"], numerics=CUDA_NUMERICS)
    eager = run_local(specs, tmp_path / "e", torch.device("cuda"), RunOptions(plain=True)).written[0]
    compiled = run_local(specs, tmp_path / "c", torch.device("cuda"), RunOptions(plain=True, compile=True)).written[0]
    assert compiled["status"] == "ok", compiled.get("error")
    assert abs(compiled["history"][0]["loss"] - eager["history"][0]["loss"]) < 0.05
