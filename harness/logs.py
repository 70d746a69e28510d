"""Where cxrbench's log records go: the ``cxrbench`` logger hierarchy, the console and ``run.log``.

Every module logs through ``logging.getLogger(__name__)`` (all under ``cxrbench``): progress and
status at INFO, problems the run survives at WARNING, detail at DEBUG. The library installs no
handler and never calls ``basicConfig``: a program that imports cxrbench decides where records
go (unconfigured, Python prints WARNING and above on stderr). The command line configures once
per invocation (:func:`log_to_stderr`), and ``cxrbench run`` appends every record of the run,
DEBUG included, to ``<out>/run.log`` (:func:`run_log`); the worker processes of a Ray run append
theirs to the same file, each line naming its worker (:func:`log_worker_to_run_log`).

Results (tables, listings, JSON, CSV) are not log records: commands print them on stdout.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

ROOT_LOGGER = "cxrbench"
#: the file every `cxrbench run` appends to, in its run folder
RUN_LOG = "run.log"
#: the prefix of console lines (scripts and tests grep for it)
PREFIX = "[cxrbench]"
RUN_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the one at setup: a
    redirect (pytest's capture, ``contextlib.redirect_stderr``) made later still gets the lines."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass  # always the current sys.stderr


class ConsoleFormatter(logging.Formatter):
    """``[cxrbench] message``; other levels than INFO name themselves (``[cxrbench] WARNING: ...``),
    as the harness printed its warnings before it used logging."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        return f"{PREFIX} {level}{record.getMessage()}"


def verbosity_level(*, quiet: bool = False, verbose: bool = False) -> int:
    """The console's level: INFO, WARNING with ``quiet``, DEBUG with ``verbose``."""
    return logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO


def log_to_stderr(level: int = logging.INFO) -> None:
    """Show cxrbench's records of ``level`` and above on stderr, replacing an earlier call's
    handler (a program calling cxrbench.cli.main twice gets each line once). The records stop
    at the ``cxrbench`` logger: a root handler another library installs does not print them twice."""
    logger = logging.getLogger(ROOT_LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
        logger.removeHandler(old)
    handler = _CurrentStderr()
    handler.setLevel(level)
    handler.setFormatter(ConsoleFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)  # handlers choose: the console its level, run.log everything
    logger.propagate = False


def console_level() -> int | None:
    """The level of the stderr handler :func:`log_to_stderr` installed (None: none is)."""
    handler = next((h for h in logging.getLogger(ROOT_LOGGER).handlers if isinstance(h, _CurrentStderr)), None)
    return handler.level if handler is not None else None


def _header(argv: Sequence[str]) -> str:
    from cxrbench import __version__
    from cxrbench.store import git_revision

    return (f"=== cxrbench {__version__} (git {git_revision() or 'unknown'}, python {sys.version.split()[0]}, "
            f"pid {os.getpid()}, cwd {os.getcwd()}): {shlex.join(['cxrbench', *argv])}")


class _RunLogFile(logging.Handler):
    """Appends to ``run.log``. Until its folder exists, lines wait in memory: a new run folder is
    made by the run once pre-flight passed, so a run refused before that leaves no folder behind
    (its one-line error is on the console); a run that went on finds every line in the file."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.DEBUG)
        self.path, self.pending, self.stream = path, [], None
        self.setFormatter(logging.Formatter(RUN_LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.pending.append(self.format(record) + "\n")
            if self.stream is None and self.path.parent.is_dir():
                self.stream = open(self.path, "a", encoding="utf-8")
            if self.stream is not None:
                self.stream.write("".join(self.pending))
                self.stream.flush()  # line by line: a killed run keeps what it logged
                self.pending = []
        except Exception:  # noqa: BLE001 - logging must never stop a run (logging's own rule)
            self.handleError(record)

    def write_out(self) -> None:
        """Make the folder if need be and write what waits (the run ended without making it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.pending:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(self.pending))
            self.pending = []

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        super().close()


def run_log_folder() -> Path | None:
    """The folder whose run.log this process is writing now (inside :func:`run_log`), else None."""
    handler = next((h for h in logging.getLogger(ROOT_LOGGER).handlers if isinstance(h, _RunLogFile)), None)
    return handler.path.parent if handler is not None else None


def log_worker_to_run_log(folder: Path) -> None:
    """In a worker process of a run (a Ray task): append this process's cxrbench records, DEBUG
    included, to ``<folder>/run.log``, the driver's file (the run folder is shared with workers as
    their records are), each line tagged ``[worker pid N]``. Each line is one append-mode write, so
    lines of concurrent processes do not interleave within a line. A worker process serves many
    tasks: a second call for the same folder changes nothing, one for another folder moves the file."""
    logger = logging.getLogger(ROOT_LOGGER)
    path = Path(folder) / RUN_LOG
    for old in [h for h in logger.handlers if isinstance(h, _RunLogFile)]:
        if old.path == path:
            return
        logger.removeHandler(old)
        old.close()
    handler = _RunLogFile(path)
    handler.setFormatter(logging.Formatter(RUN_LOG_FORMAT.replace("%(name)s", f"[worker pid {os.getpid()}] %(name)s")))
    logger.addHandler(handler)
    if not logger.propagate:  # the console is ours (log_to_stderr): its handler keeps its own level
        logger.setLevel(logging.DEBUG)


@contextmanager
def run_log(folder: Path, argv: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """Append every cxrbench record (DEBUG and up, timestamped) to ``<folder>/run.log`` while the
    block runs, after a header naming the command line and the cxrbench version; an exception
    that ends the block is written there too (the console shows it as the CLI's one-line error).
    Yields a function that writes a line to run.log alone (what the command prints as its result)."""
    from cxrbench.library_versions import library_versions

    logger = logging.getLogger(ROOT_LOGGER)
    handler = _RunLogFile(Path(folder) / RUN_LOG)

    def to_file_only(level: int, message: str) -> None:
        handler.handle(logger.makeRecord(logger.name, level, __file__, 0, message, None, None))

    to_file_only(logging.INFO, _header(argv))
    to_file_only(logging.DEBUG, "libraries: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()))
    logger.addHandler(handler)
    level_before = logger.level
    logger.setLevel(logging.DEBUG)  # a library caller without log_to_stderr still gets a full run.log
    try:
        yield lambda message: to_file_only(logging.INFO, message)
        handler.write_out()
    except KeyboardInterrupt:
        to_file_only(logging.WARNING, "interrupted (Ctrl-C); finished cells are stored")
        raise
    except Exception as exc:
        to_file_only(logging.ERROR, f"stopped: {type(exc).__name__}: {exc}")
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level_before)
        handler.close()
