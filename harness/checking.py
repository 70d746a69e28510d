"""A plugin's contract checks without pytest: ``cxrbench check NAME`` and the pre-flight of a run.

``cxrbench check NAME`` runs every check of the plugin's contract kit (the same functions the
pytest kits call, :mod:`cxrbench.testing`) on toy data, or for a dataset on its own files (the
embedded ``phantom`` needs none), and prints one line per check: ``PASS``, ``FAIL`` or ``SKIP``
with its message. Exit status: 0 when nothing failed, 1 when a check failed, 2 for an unknown
name or bad options.

:func:`preflight` runs before the first cell of ``cxrbench run``: cheap checks (no training) of
every plugin in the plan, so that a broken plugin stops the run in seconds with one line, not
after the real-only baseline has trained.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from cxrbench.errors import CxrbenchError, DatasetError, PluginError

logger = logging.getLogger(__name__)

KIT_MODULES = {
    "generator": "cxrbench.testing.generator_contract",
    "postprocessor": "cxrbench.testing.postprocessor_contract",
    "classifier": "cxrbench.testing.classifier_contract",
    "dataset": "cxrbench.testing.dataset_contract",
    "segmenter": "cxrbench.testing.segmenter_contract",
}
KIND_WORDS = {"generator": "generator", "postprocessor": "post-processor", "classifier": "classifier",
              "dataset": "dataset", "segmenter": "segmenter"}


class PreflightError(PluginError):
    """A plugin failed a pre-flight check: the run stops before its first cell."""


@dataclass
class CheckResult:
    name: str
    status: str  # PASS, FAIL or SKIP
    message: str
    seconds: float


def _flat(text: str) -> str:
    return " ".join(str(text).split())


def run_checks(checks: list[Callable], setup: Any) -> Iterator[CheckResult]:
    """Run each ``check(setup, tmp)`` in a fresh temporary folder; never raises for a plugin's fault."""
    from cxrbench.testing.base import CheckNotRun, CheckSkipped, ContractViolation, check_doc, check_name, one_line

    for fn in checks:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="cxrbench-check-") as tmp:
            try:
                fn(setup, Path(tmp))
                status, message = "PASS", check_doc(fn)
            except CheckNotRun as exc:  # it applies but could not run: not a pass
                status, message = "NOT CHECKED", str(exc)
            except CheckSkipped as exc:  # it does not apply to this plugin
                status, message = "SKIP", str(exc)
            except ContractViolation as exc:
                status, message = "FAIL", str(exc)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - the plugin raised: that check failed
                status, message = "FAIL", f"raised {one_line(exc)}"
        yield CheckResult(check_name(fn), status, _flat(message), time.perf_counter() - start)


# --------------------------------------------------------------------------- cxrbench check


def find_plugin(plugins, name: str, kind: str | None):
    """(kind, registry entry) of ``name``; a PluginError with did-you-mean when unknown or ambiguous."""
    from cxrbench.registry import KINDS

    if kind is not None:
        return kind, plugins.registry(kind).get(name, failed=plugins.failed)
    found = [k for k in KINDS if name in plugins.registry(k)]
    if len(found) > 1:
        raise PluginError(f"{name!r} is a {' and a '.join(found)}; say which with --kind")
    if found:
        return found[0], plugins.registry(found[0]).get(name)
    everything = {e.name: e.kind for e in plugins.all_entries()}
    close = difflib.get_close_matches(name, list(everything), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(f'{c!r} ({everything[c]})' for c in close)}?" if close else ""
    failed = f" Plugins that failed to load: {'; '.join(plugins.failed)}" if plugins.failed else ""
    raise PluginError(f"unknown plugin {name!r}{hint} (`cxrbench plugins` lists them all).{failed}")


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["steps=4", "name=x"]`` -> ``{"steps": 4, "name": "x"}`` (values read as YAML scalars)."""
    import yaml

    from cxrbench.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def make_setup(kind: str, cls: type, options: dict, *, size: int, data_root: str | None, device: str,
               cache_root: Path):
    """The kit setup ``cxrbench check`` runs: the kits' own defaults, at ``size``."""
    module = importlib.import_module(KIT_MODULES[kind])
    if kind == "generator":
        fields = {f.name for f in dataclasses.fields(cls.Options)} if dataclasses.is_dataclass(cls.Options) else set()
        if "preset" in fields and "preset" not in options:
            options = {**options, "preset": "tiny"}  # seconds on a CPU, as the kit's tests use
        return module.GeneratorSetup(cls, options, size=size, device=device)
    if kind == "postprocessor":
        return module.PostprocessorSetup(cls, options, size=size, device=device, may_drop=True)
    if kind == "classifier":
        return module.ClassifierSetup(cls, options, sizes=(size,))
    if kind == "segmenter":
        return module.SegmenterSetup(cls, options, sizes=(size,))
    from cxrbench.datasets import resolve_data_root

    root = resolve_data_root(data_root, None)
    if root is not None and getattr(cls, "default_subdir", "") and (root / cls.default_subdir).is_dir():
        root = root / cls.default_subdir
    return module.DatasetSetup(cls, options, root, size=size, cache_root=cache_root)


def check_command(name: str, *, kind: str | None = None, options: list[str] | None = None, size: int = 32,
                  data_root: str | None = None, device: str = "cpu", out=print) -> int:
    """Run every contract check of plugin ``name``; print one line each; 0 = every check passed or
    does not apply; 1 = one failed, or could not run (NOT CHECKED, e.g. a dataset without a data root)."""
    from cxrbench.registry import get_plugins

    plugins = get_plugins()
    kind, entry = find_plugin(plugins, name, kind)
    cls = entry.load()
    opts = parse_options(options)
    from cxrbench.testing.base import build_options

    build_options(cls, opts, "--option")  # unknown keys and bad types: a ConfigError (exit 2) up front
    module = importlib.import_module(KIT_MODULES[kind])
    with tempfile.TemporaryDirectory(prefix="cxrbench-check-cache-") as cache:
        setup = make_setup(kind, cls, opts, size=size, data_root=data_root, device=device, cache_root=Path(cache))
        shown = getattr(setup, "options", None) or {}
        out(f"{KIND_WORDS[kind]} {name!r} ({entry.source.distribution} {entry.source.version}), size {size}"
            + (f", options {shown}" if shown else "") + f": {len(module.CHECKS)} checks")
        counts = {"PASS": 0, "FAIL": 0, "SKIP": 0, "NOT CHECKED": 0}
        start = time.perf_counter()
        for result in run_checks(module.CHECKS, setup):
            counts[result.status] += 1
            out(f"{result.status}  {result.name:<38} {result.message}")
            sys.stdout.flush()
    not_run = counts["NOT CHECKED"]
    out(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped (do not apply)"
        + (f", {not_run} NOT CHECKED (see above: e.g. give --data-root)" if not_run else "")
        + f" in {time.perf_counter() - start:.1f} s")
    # a check that could not run is not a pass: a script must not read this as success
    return 1 if counts["FAIL"] or not_run else 0


# --------------------------------------------------------------------------- pre-flight


@contextmanager
def _guard(kind: str, name: str, step: str):
    """Any failure inside becomes one PreflightError line naming the plugin (and the method)."""
    from cxrbench.testing.base import ContractViolation, one_line

    try:
        yield
    except PreflightError:
        raise
    except (ContractViolation, CxrbenchError) as exc:
        text = _flat(exc)
        named = f"{name!r}" in text  # the plugin's own error usually names it already
        who = "" if named else f"{KIND_WORDS[kind]} {name!r}: "
        raise PreflightError(f"pre-flight: {who}{text}") from exc
    except Exception as exc:  # noqa: BLE001 - a plugin bug, named
        raise PreflightError(
            f"pre-flight: {KIND_WORDS[kind]} {name!r} failed in {step}: {_flat(one_line(exc))}") from exc


@contextmanager
def _rng_preserved():
    """The pre-flight must not change what the run draws: restore every global RNG."""
    import random

    import numpy as np
    import torch

    state_py, state_np = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(state_py)
    np.random.set_state(state_np)


def preflight(runner, cells) -> None:
    """Cheap contract checks of every plugin the cells use, before any of them runs (no training):

    * each dataset: built with its options, ``records()`` listed, the first record decodes to a
      2-D uint8/uint16 array and has one label per label name;
    * the classifier: built for the run's labels and size; a 2-image forward gives finite float
      logits (2, num_labels); for task segmentation the segmenter instead: built for 1 and 2 mask
      classes at the run's size, a 2-image forward gives finite float logits (2, C, size, size);
    * each post-processor: built; on a 2-image batch it returns a SyntheticBatch of uint8
      (N', 1, size, size) keeping the conditions in order;
    * each generator: built with its options and ``check_options`` passed; one the runner never
      fits (``sees_training_data=False``) also generates 2 images twice: uint8 (2, 1, size, size),
      the same both times.

    Raises :class:`PreflightError` (one line naming the plugin and the problem) on the first failure.
    """
    start = time.perf_counter()
    spec = runner.spec
    with _rng_preserved():
        label_names = _preflight_dataset(runner, spec.dataset)
        for ref in spec.external:
            try:
                _preflight_dataset(runner, ref)
            except PreflightError as exc:
                # an optional external set whose data is absent is skipped by the run (logged there)
                if not (ref.optional and isinstance(exc.__cause__, DatasetError)):
                    raise
        if getattr(spec, "task", "classification") == "segmentation" and getattr(spec, "segmenter", None):
            _preflight_segmenter(runner)
        else:
            _preflight_classifier(runner, len(label_names))
        for i, ref in enumerate(spec.postprocess):
            _preflight_postprocessor(runner, i, ref, len(label_names))
        seen: set[str] = set()
        for cell in cells:
            variant = cell.generator
            if variant is None or not cell.protocol.uses_generator:
                continue
            from cxrbench.hashing import content_key

            key = content_key({"name": variant.name, "options": variant.options})
            if key not in seen:
                seen.add(key)
                _preflight_generator(runner, variant, len(label_names))
                for i, ref in enumerate(variant.postprocess):  # the generator's own chain
                    _preflight_postprocessor(runner, i, ref, len(label_names))
    # the training dataset, decoded and checked (patients in two splits, unreadable files) before
    # the line below: "passed" is said only once every check has run
    runner.dataset(spec.dataset)
    logger.info(f"pre-flight checks passed ({time.perf_counter() - start:.1f} s)")


def _preflight_dataset(runner, ref) -> tuple[str, ...]:
    from cxrbench.testing.base import require
    from cxrbench.testing.dataset_contract import check_image_array

    with _guard("dataset", ref.name, "records()"):
        ds = runner.dataset_plugin(ref)
        ds.target_size, ds.cache_root = runner.spec.size, runner.cache_root
        records = list(ds.records())
        require(records, "records() returned no images")
    first = records[0]
    with _guard("dataset", ref.name, f"read_image({first.key!r})"):
        names = tuple(ds.label_names)
        require(len(first.labels) == len(names), f"record {first.key!r} has {len(first.labels)} labels; expected "
                                                  f"{len(names)} ({', '.join(names)})")
        check_image_array(ds.read_image(first), f"read_image({first.key!r})")
    return names


def _preflight_classifier(runner, num_labels: int) -> None:
    from cxrbench.config import plugin_options
    from cxrbench.testing.classifier_contract import check_logits, forward

    ref, size = runner.spec.classifier, runner.spec.size
    with _guard("classifier", ref.name, "check_options()"):
        cls = runner.plugins.load("classifier", ref.name)
        options = plugin_options(cls, ref.options, "classifier.options", runner.spec_source)
        cls.check_options(options, size)
    with _guard("classifier", ref.name, "build()"):
        built = cls(options).build(num_labels, size, False)
    with _guard("classifier", ref.name, "forward()"):
        check_logits(forward(built.module, size), 2, num_labels, f"forward of 2 images at {size} px")
    # a classifier that ignores num_labels passes the line above whenever its fixed width happens
    # to be the dataset's label count (1 for Kermany): ask for another width too
    other = num_labels + 1
    with _guard("classifier", ref.name, f"build(num_labels={other})"):
        wider = cls(options).build(other, size, False)
    with _guard("classifier", ref.name, "forward()"):
        check_logits(forward(wider.module, size), 2, other,
                     f"forward of 2 images at {size} px built for num_labels={other} (the output width must follow "
                     "num_labels)")


def _preflight_segmenter(runner) -> None:
    """The spec's segmenter: check_options, then built for 1 and 2 mask classes at the run's size,
    a 2-image forward gives finite float logits (2, C, size, size) (the output must follow
    num_classes and keep the input's size)."""
    from cxrbench.config import plugin_options
    from cxrbench.testing.segmenter_contract import check_mask_logits, forward

    ref, size = runner.spec.segmenter, runner.spec.size
    with _guard("segmenter", ref.name, "check_options()"):
        cls = runner.plugins.load("segmenter", ref.name)
        options = plugin_options(cls, ref.options, "segmenter.options", runner.spec_source)
        cls.check_options(options, size)
    for classes in (1, 2):
        with _guard("segmenter", ref.name, f"build(num_classes={classes})"):
            built = cls(options).build(classes, size, False)
        with _guard("segmenter", ref.name, "forward()"):
            check_mask_logits(forward(built.module, size), 2, classes, size,
                              f"forward of 2 images at {size} px built for num_classes={classes}")


def _preflight_postprocessor(runner, i: int, ref, num_labels: int) -> None:
    from cxrbench.config import plugin_options
    from cxrbench.contracts import SyntheticBatch
    from cxrbench.testing.postprocessor_contract import check_batch_output, toy_batch

    size = runner.spec.size
    with _guard("postprocessor", ref.name, "check_options()"):
        cls = runner.plugins.load("postprocessor", ref.name)
        options = plugin_options(cls, ref.options, f"postprocess[{i}].options", runner.spec_source)
        cls.check_options(options, size)
        step = cls(options, device=runner.device)
    if getattr(cls, "needs_real_train", False):
        return  # it cannot run before prepare() has seen the real training split
    before = toy_batch(2, size, num_labels=num_labels, constant=False)
    with _guard("postprocessor", ref.name, "__call__()"):
        after = step(SyntheticBatch(before.images.clone(), list(before.conditions)))
        check_batch_output(before, after, size, may_drop=True, who="a 2-image batch")


def _preflight_generator(runner, variant, num_labels: int) -> None:
    import torch

    from cxrbench.config import plugin_options
    from cxrbench.contracts import Condition
    from cxrbench.testing.base import require
    from cxrbench.testing.generator_contract import expect_images

    size = runner.spec.size
    with _guard("generator", variant.name, "check_options()"):
        cls = runner.plugins.load("generator", variant.name)
        options = plugin_options(cls, variant.options, f"generators[{variant.label}].options", runner.spec_source)
        cls.check_options(options, size)
    with _guard("generator", variant.name, "__init__()"):
        gen = cls(options, size=size, device=runner.device)
        if getattr(gen, "cache_dir", False) is None:  # as fit_or_load sets it: the run's cache
            gen.cache_dir = runner.cache_root / variant.name
    if getattr(cls.capabilities, "sees_training_data", True):
        return  # generate() needs fit() first: checked at run time (seed check) instead
    conds = [Condition(labels=tuple(float((i + j) % 2) for j in range(num_labels)), seed=7919 + i) for i in range(2)]
    with _guard("generator", variant.name, "generate()"):
        a, b = gen.generate(conds), gen.generate(conds)
        if hasattr(gen, "generation_stats"):  # what pre-flight paid for (a hosted model): in the first record
            runner.preflight_costs[variant.label] = gen.generation_stats()
        expect_images(a, 2, size, "generate(2 conditions)")
        require(torch.equal(a.cpu(), b.cpu()), "generate() gave other images for the same conditions and seeds; draw "
                                               "noise from torch.Generator().manual_seed(condition.seed)")
