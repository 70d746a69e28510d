"""Shared fixtures of the learned-generator tests (the contract kit brings its own)."""

import pytest

from cxrbench.testing import make_toy_split


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is faster and far steadier."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_split():
    return make_toy_split(64, 16, seed=3)


@pytest.fixture(scope="session")
def other_toy_split():
    return make_toy_split(64, 16, seed=4)
