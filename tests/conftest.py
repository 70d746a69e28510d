"""Suite-wide settings: an isolated cache, quiet progress bars, small CPU thread pools."""

import os
from pathlib import Path

import pytest


def pytest_configure(config):
    os.environ.setdefault("CXRBENCH_PROGRESS", "0")


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cxrbench-cache")
    old = os.environ.get("CXRBENCH_CACHE")
    os.environ["CXRBENCH_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("CXRBENCH_CACHE", None)
    else:
        os.environ["CXRBENCH_CACHE"] = old


def kermany_root() -> Path | None:
    """The real Kermany copy, when CXRBENCH_DATA_ROOT points at it (CI sets it)."""
    root = os.environ.get("CXRBENCH_DATA_ROOT")
    if not root:
        return None
    for candidate in (Path(root) / "kermany" / "chest_xray", Path(root) / "chest_xray"):
        if candidate.is_dir():
            return candidate.parent
    return None
