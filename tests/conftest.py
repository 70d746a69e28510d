"""Suite-wide settings: an isolated cache, quiet progress bars, small CPU thread pools, every
cell record the suite writes checked against the record schema (CXRBENCH_CHECK_RECORDS=1), and
cxrbench's log records on stderr as the command line shows them."""

import logging
import os

import pytest


def pytest_configure(config):
    os.environ.setdefault("CXRBENCH_PROGRESS", "0")
    # every record the suite writes (runner, Ray executor, rescore; subprocesses inherit it) is
    # checked against harness/record.schema.json by RunStore.write: a non-conforming one raises
    os.environ.setdefault("CXRBENCH_CHECK_RECORDS", "1")
    # One intra-op thread: tiny models gain nothing from more, and on a busy 2-core runner
    # every small op waits for a descheduled thread (measured here: a CLI run in the example
    # plugin test took 496 s with 2 threads under load). Subprocesses inherit the variable.
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


@pytest.fixture(autouse=True)
def cli_logging():
    """Tests that call the library read its progress and warnings on stderr, as a `cxrbench`
    command prints them (the library configures no handler itself); reset for every test, since
    a test of -q / -v leaves the console at its level."""
    from cxrbench.logs import log_to_stderr

    log_to_stderr(logging.INFO)


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
