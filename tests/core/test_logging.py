"""Issue #32 (logging): levels on the console (-q / -v, before or after the command), run.log in
the run folder, the versions of the libraries behind the numbers in every record, and cache
locks through filelock.

One tiny phantom run (real-only, 16 px, one cell) is made with -v; the other runs reuse its cell,
so they cost a pre-flight, not a training."""

import contextlib
import io
import json
import re
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest

from cxrbench import __version__
from cxrbench.cli import main
from cxrbench.integrity import CellLock, entry_lock
from cxrbench.library_versions import LIBRARIES
from cxrbench.logs import RUN_LOG

REPO = Path(__file__).resolve().parents[2]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ")


def _run_args(folder: Path, cache: Path, *flags: str) -> list[str]:
    return ["run", "--size", "16", "--no-progress", "--bootstrap", "20", "--protocol", "real-only",
            "--schedule", "quick", "--out", str(folder), "--cache-dir", str(cache), *flags]


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one in-process `cxrbench` command."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def verbose_run(tmp_path_factory):
    """The run folder and console of one `cxrbench run ... -v` (its one cell computed)."""
    root = tmp_path_factory.mktemp("logging")
    folder, cache = root / "run", root / "cache"
    code, out, err = _cli(_run_args(folder, cache, "-v"))
    assert code == 0, err[-2000:]
    return folder, cache, out, err


def test_verbose_shows_debug_detail_and_keeps_the_prefix(verbose_run):
    _, _, out, err = verbose_run
    lines = err.splitlines()
    assert any(line.startswith("[cxrbench] DEBUG: [1/1] real-only.v1") and "timings" in line for line in lines), err
    assert any(line.startswith("[cxrbench] [1/1] real-only.v1") and line.endswith(": running") for line in lines)
    assert "1 cell(s) ran, 0 reused, 0 failed" in out  # the result stays on stdout, not in the log
    assert "[cxrbench]" not in out


def test_run_log_has_a_header_and_the_cell_lines(verbose_run):
    folder, _, _, _ = verbose_run
    lines = (folder / RUN_LOG).read_text().splitlines()
    header = lines[0]
    assert TIMESTAMP.match(header) and f"=== cxrbench {__version__} " in header
    assert header.endswith(f"cxrbench run --size 16 --no-progress --bootstrap 20 --protocol real-only --schedule quick "
                           f"--out {folder} --cache-dir {verbose_run[1]} -v")
    assert all(TIMESTAMP.match(line) for line in lines), lines
    assert any("libraries: torch " in line for line in lines)
    assert any("[1/1] real-only.v1__none__r0__quick__seed0: running" in line for line in lines)
    assert any(" DEBUG " in line and "timings" in line for line in lines)
    assert "1 cell(s) ran, 0 reused, 0 failed" in lines[-1]


def test_quiet_hides_progress_not_warnings_and_run_log_keeps_everything(verbose_run):
    folder, cache, _, _ = verbose_run
    headers_before = (folder / RUN_LOG).read_text().count("=== cxrbench ")
    code, out, err = _cli(_run_args(folder, cache, "-q"))
    assert code == 0 and "0 cell(s) ran, 1 reused" in out
    assert err == ""  # nothing went wrong: a quiet run says nothing on stderr
    damaged = folder / "cells" / "damaged.json"
    damaged.write_text("{not json")  # a record the run warns about (and never reuses)
    try:
        code, _, err = _cli(["-q", *_run_args(folder, cache)])  # the flag before the command too
        assert code == 0 and err
        assert all(line.startswith("[cxrbench] WARNING: ") and "damaged.json: unreadable" in line
                   for line in err.splitlines()), err
    finally:
        damaged.unlink()
    code, _, err = _cli(_run_args(folder, cache))  # the default: progress at INFO, no detail
    assert code == 0 and "[cxrbench] [1/1] real-only.v1__none__r0__quick__seed0: finished before, skipped" in err
    assert "DEBUG" not in err
    text = (folder / RUN_LOG).read_text()
    assert text.count("=== cxrbench ") == headers_before + 3  # appended, one header per run
    assert text.count("finished before, skipped") == 3  # the quiet runs' lines are in run.log too
    assert " WARNING cxrbench.store: " in text


def test_quiet_and_verbose_together_is_one_usage_error():
    code, out, err = _cli(["run", "-q", "-v"])
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["cxrbench: error: -q/--quiet and -v/--verbose contradict each other; give one"]


def test_a_refused_run_leaves_no_run_folder(tmp_path, monkeypatch):
    """run.log lines wait for the run to make its folder: a run refused in pre-flight still
    writes nothing (its one-line error is the whole story)."""
    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    code, _, err = _cli(["run", "--dataset", "kermany", "--size", "16", "--out", str(tmp_path / "run"),
                         "--cache-dir", str(tmp_path / "cache")])
    assert code == 2 and "needs a data root" in err
    assert not (tmp_path / "run").exists()


def test_records_name_the_installed_library_versions(verbose_run):
    folder = verbose_run[0]
    (record,) = [json.loads(p.read_text()) for p in (folder / "cells").glob("*.json")]
    libraries = record["versions"]["libraries"]
    assert sorted(libraries) == sorted(LIBRARIES)
    for name, version in libraries.items():
        try:
            assert version == metadata.version(name), name
        except metadata.PackageNotFoundError:
            assert version is None, name


# ------------------------------------------------------------------------------ locks


def test_an_entry_lock_makes_a_second_builder_wait_and_says_so(tmp_path, capsys):
    entry = tmp_path / "entry"
    held, release, order = threading.Event(), threading.Event(), []

    def first():
        with entry_lock(entry, "the test entry"):
            held.set()
            release.wait(10)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    threading.Timer(0.5, release.set).start()
    with entry_lock(entry, "the test entry"):  # blocks until the first holder leaves
        order.append("second in")
    thread.join(10)
    assert order == ["first done", "second in"]
    assert "[cxrbench] waiting: another process is building the test entry" in capsys.readouterr().err


HOLD = """
import sys, time
from cxrbench.integrity import CellLock
lock = CellLock(sys.argv[1])
assert lock.acquire(blocking=False)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_cell_lock_held_by_another_process_excludes_this_one(tmp_path):
    record = tmp_path / "cells" / "cell.json"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(record), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        mine = CellLock(record)
        assert mine.acquire(blocking=False) is False  # the other process holds it
        start = time.perf_counter()
        assert mine.acquire(blocking=True) is True  # released when the holder exits
        assert time.perf_counter() - start > 0.2
        mine.release()
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / "cells" / "cell.json.lock").is_file()  # beside the record, as before


def test_no_lock_is_posix_only_and_the_library_configures_no_logging():
    sources = [p for folder in ("harness", "plugins") for p in (REPO / folder).rglob("*.py")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert not re.search(r"\bimport fcntl\b|\bfcntl\.", text), f"{path}: locks go through filelock, not fcntl"
        assert "basicConfig(" not in text, f"{path}: the library must leave logging configuration to its caller"


def test_a_ray_task_logs_at_the_driver_s_console_level(tmp_path, monkeypatch):
    """A Ray worker starts with logging unconfigured: the job it gets carries the driver's
    console level (-q / -v), and the task's runner installs it (checked here without Ray)."""
    import logging

    from cxrbench.config import spec_from_data, to_dict
    from cxrbench.logs import console_level, log_to_stderr
    from cxrbench.ray_executor import _slice_runner, job_of
    from cxrbench.runner import Runner

    from cxrbench.device import COMPILE_ENV

    for name in ("CXRBENCH_PROGRESS", COMPILE_ENV):  # the task sets both: restored after the test
        monkeypatch.setenv(name, "0")
    spec = spec_from_data({"name": "ray-log", "dataset": {"name": "phantom"}, "size": 16,
                           "classifier": {"name": "tiny-cnn"}, "protocols": [{"name": "real-only"}]}, "test")
    runner = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "cache", device="cpu", progress=False)
    runner.cache_root = tmp_path / "cache"
    log_to_stderr(logging.DEBUG)  # the driver ran with -v
    job = job_of(runner)
    assert job["log_level"] == logging.DEBUG
    log_to_stderr(logging.WARNING)  # stands for the worker's own state before the task
    _slice_runner(job, to_dict(spec))
    assert console_level() == logging.DEBUG


def test_a_reader_that_goes_away_gets_no_traceback():
    """`cxrbench plugins | head -1`: the closed pipe ends the command quietly with status 0."""
    import subprocess
    import sys

    code = "import sys; from cxrbench.cli import main; sys.exit(main(['plugins']))"
    out = subprocess.run(f'"{sys.executable}" -c "{code}" | head -1; exit ${{PIPESTATUS[0]}}', shell=True,
                         executable="/bin/bash", capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("name") and "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
    assert out.returncode == 0


def test_a_worker_process_appends_to_the_run_log_once_per_folder(tmp_path):
    """What a Ray task does in its worker (the end-to-end check is in test_ray_executor.py): its
    lines go to the run folder's run.log tagged with its pid, a second call for the same folder
    adds no second copy, and a call for another run's folder moves the lines there."""
    import logging
    import os

    from cxrbench.logs import ROOT_LOGGER, log_worker_to_run_log, run_log_folder

    logger = logging.getLogger(ROOT_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        assert run_log_folder() is None
        first, second = tmp_path / "a", tmp_path / "b"
        first.mkdir(), second.mkdir()
        log_worker_to_run_log(first)
        log_worker_to_run_log(first)
        logger.warning("shard 3 of replica 0 stored")
        assert run_log_folder() == first
        log_worker_to_run_log(second)
        logger.warning("another run's line")
        lines = (first / RUN_LOG).read_text().splitlines()
        assert len(lines) == 1 and f"[worker pid {os.getpid()}] cxrbench: shard 3 of replica 0 stored" in lines[0]
        assert TIMESTAMP.match(lines[0])
        assert "another run's line" in (second / RUN_LOG).read_text()
    finally:
        for h in [h for h in logger.handlers if h not in saved[0]]:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
