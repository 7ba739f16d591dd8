import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test decodes into its own cache, never the user's ~/.cache."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


def fashion_available() -> bool:
    from datasets import get_source

    return get_source("fashion").availability().available


def numeric_gradient(f, z, eps: float = 1e-6):
    """Central differences of the scalar function `f` of the numpy array `z` (a reference formula's gradient)."""
    import numpy as np

    grad = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        hi, lo = z.copy(), z.copy()
        hi[idx] += eps
        lo[idx] -= eps
        grad[idx] = (f(hi) - f(lo)) / (2 * eps)
    return grad


def tiny_train(**changes) -> dict:
    """The `tiny` preset's training settings as GridRequest.train, with `changes` applied."""
    from bench.spec import PRESETS, TRAIN_FLAGS, numerics

    # The numerics the CLI gives a grid by default (1 thread on a CPU), so these specs' keys are the
    # CLI's; scripts/gpu_check.sh runs the suite with BENCH_TEST_DEVICE=cuda.
    device = os.environ.get("BENCH_TEST_DEVICE", "cpu").split(":")[0]
    return (
        {k: PRESETS["tiny"][k] for k in TRAIN_FLAGS}
        | {"model": "resnet18", "weights": None, "preset": "tiny", "numerics": numerics(device, "auto", 1)}
        | changes
    )


def tiny_specs(methods, ratios=(0.25,), seeds=(0,), tasks=("fine",), **kw):
    """The run specs of a tiny synthetic grid."""
    from bench.runner import DataCache, GridRequest, expand

    train = tiny_train(**{k: kw.pop(k) for k in ("steps", "numerics") if k in kw}, **kw.pop("train_changes", {}))
    req = GridRequest(
        datasets=["synthetic"],
        tasks=list(tasks),
        methods=list(methods),
        ratios=list(ratios),
        seeds=list(seeds),
        train=train,
        **kw,
    )
    return expand(req, DataCache(None, None))


def pytest_generate_tests(metafunc):
    """`method`: every registered method, as the registry stands when the test's module has been
    imported (so methods that tests register are included), plus the module's COMPOSITIONS."""
    if "method" in metafunc.fixturenames:
        import methods as M

        extra = getattr(metafunc.module, "COMPOSITIONS", [])
        metafunc.parametrize("method", sorted(M.REGISTRY) + list(extra))
