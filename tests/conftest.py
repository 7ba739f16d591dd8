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
