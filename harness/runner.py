"""The runner: spec -> cells -> records. The harness, not the plugins, owns the protocol.

One cell: fit (or load cached) generator -> generate -> post-process -> build the training set
-> train the classifier with the protocol's fixed recipe -> evaluate on every real test set ->
write one self-describing record. A cell that raises is recorded as failed and the others go
on; a finished cell is never recomputed.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrbench import __version__, protocols
from cxrbench.cells import Cell, GeneratorVariant, expand_cells, refuse_relabelled
from cxrbench.celldata import (
    all_images, check_leakage, check_loaded, external_name, namespaced, predictions_path, read_scores,
    recipe_fields, write_predictions,
)
from cxrbench.config import BenchmarkSpec, plugin_options, to_dict
from cxrbench.contracts import SyntheticBatch, options_to_dict
from cxrbench.errors import CxrbenchError, DatasetError
from cxrbench.hashing import content_key
from cxrbench.pairing import unpaired_reference, why_outdated
from cxrbench.store import RunStore, atomic_write_json, code_fingerprint, git_revision

RECORD_SCHEMA = "cxrbench.cell/1"

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    out: Path
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class CellWork:
    """What the steps of one cell hand each other (filled in order by Runner.run_cell)."""

    cell: Cell
    cell_id: str
    adir: Path
    timings: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    #: training data as (kind, uint8 images, targets: labels or masks, see tasks/); kind "real" or "synthetic"
    parts: list[tuple] = field(default_factory=list)
    #: leakage-guard groups: patient ids (namespaced by dataset identity) each model learned from
    patients: dict[str, list[str]] = field(default_factory=dict)
    source: Any = None
    externals: list = field(default_factory=list)
    #: optional external test sets whose data was not found: name and reason, in the record
    skipped_externals: list = field(default_factory=list)
    #: per external test set: what its label map gives on the test images (labelmaps.map_counts)
    label_maps: dict = field(default_factory=dict)
    train_name: str = ""
    train_ds: Any = None
    train_split: Any = None
    val: Any = None
    generator_record: dict | None = None
    tuning_slice: SyntheticBatch | None = None
    tune_images: Any = None
    #: what the model is tuned on: labels (classification) or masks (segmentation)
    tune_targets: Any = None
    tune_desc: str = ""
    #: the tuning images' keys and patients, for the stored tuning-set predictions
    tune_keys: Any = None
    tune_patients: Any = None
    #: the fitted generator of a generator cell (its masks are a segmentation pair's targets)
    generator: Any = None
    test_sets: dict = field(default_factory=dict)

    def add_part(self, kind: str, images, labels) -> None:
        self.parts.append((kind, images, labels))

    @contextmanager
    def timed(self, key: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] = round(time.perf_counter() - start, 3)


class Runner:
    def __init__(
        self,
        spec: BenchmarkSpec,
        *,
        out: Path,
        data_root: str | None = None,
        cache_dir: Path | None = None,
        device: str | None = None,
        progress: bool | None = None,
        plugins=None,
        spec_source: str = "<spec>",
        preflight: bool = True,
        verify_data: bool = False,
        keep_stale: bool = False,
    ):
        from cxrbench.registry import get_plugins, load_plugins

        from cxrbench.tasks import get_task

        self.spec = spec
        self.spec_source = spec_source
        #: what the cells train and score (tasks/): classification or segmentation
        self.task = get_task(spec.task)
        self.store = RunStore(out)
        self.data_root = data_root
        self.progress = progress
        if plugins is None:
            plugins = load_plugins(allow=spec.plugins) if spec.plugins is not None else get_plugins()
        self.plugins = plugins
        self.device_request = device or spec.device
        self.cache_dir = Path(cache_dir) if cache_dir else None
        #: cheap contract checks of every plugin before the first cell (cxrbench.checking.preflight)
        self.preflight = preflight
        #: hash every source image file and re-decode those whose bytes changed (datastamps.py)
        self.verify_data = verify_data
        #: reuse a finished cell whose plugins changed since (marked stale) instead of re-running it
        self.keep_stale = keep_stale
        self._datasets: dict[str, Any] = {}
        #: what pre-flight's generate() calls cost per generator row (hosted models): recorded once
        self.preflight_costs: dict[str, dict] = {}
        self._generators: dict[str, tuple[Any, dict]] = {}
        #: mask-adherence estimators by training data (quality/adherence.py)
        self._estimators: dict[str, Any] = {}
        #: a slice of a grid run (harness/grid.py): the parent writes the run's resolved spec
        self._in_grid = False

    # ------------------------------------------------------------------ top level

    def run(self) -> RunSummary:
        from cxrbench.device import resolve_device
        from cxrbench.grid import is_grid, run_grid

        if is_grid(self.spec):
            return run_grid(self)
        self.device = resolve_device(self.device_request)
        self.cache_root = self.cache_dir or _default_cache_root()
        cells = expand_cells(self.spec)
        summary = RunSummary(self.store.out)
        from cxrbench.integrity import clean_stale_temps

        stale = clean_stale_temps(self.store.out, self.cache_root)
        if stale:
            logger.info(f"removed {len(stale)} temporary file(s) left by interrupted runs (e.g. {stale[0]})")
        logger.info(f"{len(cells)} cells -> {self.store.out} (device {self.device})")
        todo = [c for c in cells if self.cell_status(c)[0] != "finished"]
        self.refuse_relabelled(cells)
        if todo and self.preflight:
            from cxrbench.checking import preflight

            preflight(self, todo)  # a broken plugin stops the run here, before anything trains
        if todo:  # decode the training dataset once, up front: a bad file is one line, not N failed cells
            self.dataset(self.spec.dataset)
            self._packed_fits(todo)  # a pack that does not match the spec is refused here, in one line
        if not self._in_grid:  # only once nothing stopped the run: a refused run writes nothing
            atomic_write_json(self.store.out / "spec.resolved.json", to_dict(self.spec))
        # Another run of the same spec into the same folder may be computing a cell right now:
        # leave it, do the others, then wait for it and reuse its record (never computed twice).
        # A cell compared with one of those (its real-only baseline, its noise control) waits too:
        # its comparisons need that cell's finished record and predictions.
        deferred, waiting = [], {}
        for n, cell in enumerate(cells, 1):
            ref = next((r for r in cell.references() if r.id in waiting), None)
            if ref is not None:
                deferred.append((n, cell, f"compared with {ref.id}, which another run is computing; waiting"))
            elif not self._run_locked(n, len(cells), cell, summary, blocking=False):
                deferred.append((n, cell, "another run is computing it; waiting"))
            else:
                continue
            waiting[cell.id] = cell
        for n, cell, why in deferred:
            logger.info(f"[{n}/{len(cells)}] {cell.id}: {why}")
            self._run_locked(n, len(cells), cell, summary, blocking=True)
        self._write_summary()
        return summary

    def _packed_fits(self, cells: list[Cell]) -> None:
        """Check, install and load every packed fit (a row's ``fit_from``) the cells need, before any
        cell runs: the cells then take them from the memo of :meth:`fitted_generator`."""
        for cell in cells:
            if cell.generator is not None and cell.generator.fit_from is not None and cell.protocol.uses_generator:
                source = self.training_source(cell.real_data)
                self.fitted_generator(cell.generator, source.train, source.fingerprint)

    def refuse_relabelled(self, cells: list[Cell]) -> None:
        """A finished record is reused by its id, which names a generator row by its label alone:
        refuse a label that now stands for other options (cells.refuse_relabelled)."""
        refuse_relabelled(cells, lambda c: self.store.load(f"{c.id}__{self._context_key(c)}"), self.plugins,
                          self.spec_source)

    def _run_locked(self, n: int, total: int, cell: Cell, summary: RunSummary, *, blocking: bool) -> bool:
        """Run (or reuse) one cell under its lock; False when another run holds it (non-blocking)."""
        from cxrbench.integrity import CellLock

        cell_id = f"{cell.id}__{self._context_key(cell)}"
        lock = CellLock(self.store.record_path(cell_id))
        if not lock.acquire(blocking):
            return False
        try:
            status, reasons = self.cell_status(cell)
            if status == "finished":
                kept = f" (STALE, kept by --keep-stale: {'; '.join(reasons)})" if reasons else ""
                logger.info(f"[{n}/{total}] {cell.id}: finished before, skipped{kept}")
                summary.skipped.append(cell_id)
                return True
            if status == "stale":
                logger.info(f"[{n}/{total}] {cell.id}: finished before with other plugin code ({'; '.join(reasons)}): "
                            "re-running")
            elif status == "outdated":
                logger.info(f"[{n}/{total}] {cell.id}: finished before, but {reasons[0]}: re-running")
            logger.info(f"[{n}/{total}] {cell.id}: running")
            start = time.perf_counter()
            try:
                unpaired = unpaired_reference(self.store.out, cell, self._finished)
                if unpaired:  # refused before training: nothing is lost
                    raise CxrbenchError(unpaired)
                record = self.run_cell(cell, cell_id)
                summary.ok.append(cell_id)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one failing cell must not stop the others
                record = self._failed_record(cell, cell_id, exc)
                summary.failed.append(cell_id)
                where = self.store.record_path(cell_id)
                logger.error(f"[{n}/{total}] {cell.id}: FAILED: {type(exc).__name__}: {exc} (traceback in {where})")
            record["timings"]["total_s"] = round(time.perf_counter() - start, 3)
            self.store.write(cell_id, record)
            logger.debug(f"[{n}/{total}] {cell.id}: record {self.store.record_path(cell_id)}, "
                         f"timings {record['timings']}")
            if record["status"] == "ok":
                logger.info(f"[{n}/{total}] {cell.id}: {_headline(record)}")
            return True
        finally:
            lock.release()

    def cell_status(self, cell: Cell) -> tuple[str, list[str]]:
        """("finished" | "stale" | "outdated" | "to run", why): a finished cell whose plugins' identities
        (name, version, sampling_version, source; identity.py) changed since is stale and re-run,
        unless ``keep_stale`` (then "finished", with the reasons). ``run`` and ``--dry-run`` both
        ask this, so they agree on every cell. "outdated" (re-run too): see pairing.why_outdated."""
        from cxrbench.identity import cell_identity, stale_reasons

        record = self.store.load(f"{cell.id}__{self._context_key(cell)}")
        if not record or record.get("status") != "ok":
            return "to run", []
        reasons = stale_reasons(record.get("plugin_identity"), cell_identity(self, cell))
        if reasons and not self.keep_stale:
            return "stale", reasons
        why = why_outdated(self.store.out, cell, record, self.store.load)
        if why:
            return "outdated", [why]
        return "finished", reasons

    def _context_key(self, cell: Cell) -> str:
        """Everything run-level a cell's result depends on; part of every cell id, so a
        changed dataset, size or classifier never reuses an old record. The post-processing
        chain is part of it only for cells that use a generator: a real-only baseline is the
        same with or without `--postprocess proxy-filter`, and is reused."""
        s = self.spec
        own = to_dict(list(cell.generator.postprocess)) if cell.generator is not None else []
        chain = own + to_dict(s.postprocess) if cell.protocol.uses_generator else []

        def ref(r):  # these only decide whether a set is skipped or refused: not result inputs
            return {k: v for k, v in to_dict(r).items() if k not in ("optional", "min_positives", "min_negatives")}

        return content_key(
            {
                "dataset": ref(s.dataset), "external": [ref(r) for r in s.external], "size": s.size,
                "classifier": to_dict(s.classifier), "postprocess": chain,
                "evaluation": evaluation_key(s.evaluation), "preprocessing": s.preprocessing,
                "data_root": str(self._dataset_root(s.dataset)),
                **self.task.context(s),
            },
            8,
        )

    # ------------------------------------------------------------------ datasets

    def _dataset_root(self, ref) -> Path | None:
        from cxrbench.datasets import resolve_data_root

        # --data-root is a folder of datasets (one sub-folder each): it serves external test sets too
        return resolve_data_root(self.data_root, ref.root)

    def dataset_plugin(self, ref):
        """A fresh instance of the dataset plugin of ``ref``: options parsed, data root resolved."""
        cls = self.plugins.load("dataset", ref.name)
        options = plugin_options(cls, ref.options, "dataset.options", self.spec_source)
        root = self._dataset_root(ref)
        if root is not None and getattr(cls, "default_subdir", "") and (root / cls.default_subdir).is_dir():
            root = root / cls.default_subdir
        if cls.needs_root and root is None:
            raise DatasetError(
                f"dataset {ref.name!r} needs a data root: pass --data-root, set "
                f"CXRBENCH_DATA_ROOT, or give dataset.root in the spec"
            )
        return cls(root, options)

    def dataset(self, ref):
        """Load (once per run) a dataset: decoded through the shared, memory-mapped cache."""
        from cxrbench.datasets import Preprocessing, load_dataset

        key = json.dumps(to_dict(ref), sort_keys=True)
        if key not in self._datasets:
            prep = Preprocessing(**self.spec.preprocessing)
            start = time.perf_counter()
            loaded = load_dataset(
                self.dataset_plugin(ref), size=self.spec.size, preprocessing=prep,
                cache_dir=self.cache_root, progress=self.progress, verify_data=self.verify_data,
            )
            loaded.info.setdefault("load_s", round(time.perf_counter() - start, 3))
            check_loaded(ref.name, loaded)
            self._datasets[key] = loaded
        return self._datasets[key]

    def training_source(self, real_data=None):
        """The training dataset as a cell of real-data size ``real_data`` sees it: its train and
        val splits cut to the nested, stratified subset of that size (harness/subsets.py), its
        test sets whole. ``None``: the whole dataset. Generators, post-processors that learn, the
        classifier and the tuning split all take their real data from here, so nothing learns from
        a real image outside the subset."""
        from cxrbench.subsets import subset_dataset

        loaded = self.dataset(self.spec.dataset)
        if real_data is None:
            return loaded
        key = ("real_data", repr(real_data))
        if key not in self._datasets:
            self._datasets[key] = subset_dataset(loaded, real_data, seed=self.spec.subsets.seed,
                                                 tuning_min_per_class=self.spec.subsets.tuning_min_per_class)
        return self._datasets[key]

    # ------------------------------------------------------------------ generators

    def fitted_generator(self, variant: GeneratorVariant, train, fingerprint: str):
        """Fit a generator on the real train split, or load it from the content-addressed cache
        (see generation.py: keyed by effective options and steps, never by wall time)."""
        from cxrbench.generation import fit_or_load

        cls = self.plugins.load("generator", variant.name)
        options = plugin_options(cls, variant.options, f"generators[{variant.label}].options", self.spec_source)
        cls.check_options(options, self.spec.size)
        entry = self.plugins.generators.get(variant.name)
        memo = content_key({"name": variant.name, "options": options_to_dict(options), "train": fingerprint,
                            "train_keys": content_key(train.keys), "size": self.spec.size,
                            "fit_from": [variant.fit_from, variant.fit_from_data_differs]})
        if memo not in self._generators:
            generator = cls(options, size=self.spec.size, device=self.device)
            preset = generator.effective_options().get("preset")
            if preset is not None:
                given = "" if "preset" in (variant.options or {}) else " (the default; options: {preset: ...} to change)"
                logger.info(f"generator {variant.label}: preset {preset!r}{given}")
            if variant.fit_from is not None:  # a packed fit: checked against the spec, never trained
                from cxrbench.fit_from import load_from_pack

                info = load_from_pack(generator, variant, name=variant.name, version=entry.version, train=train,
                                      fingerprint=fingerprint, size=self.spec.size, cache_root=self.cache_root,
                                      spec_source=self.spec_source)
            else:
                info = fit_or_load(generator, name=variant.name, version=entry.version, train=train,
                                   fingerprint=fingerprint, size=self.spec.size, cache_root=self.cache_root,
                                   progress=self.progress)
            self._generators[memo] = (generator, info)
        return self._generators[memo]

    def adherence_estimator(self, train):
        """The learned lung-field estimator of mask adherence for this training data (trained
        once, cached; quality/adherence.py), or None when the dataset has no masks."""
        from cxrbench.quality.adherence import reference_estimator

        if train.masks is None:
            return None
        key = content_key(train.keys)
        if key not in self._estimators:
            self._estimators[key] = reference_estimator(train, self.spec.size, self.cache_root, self.device)
        return self._estimators[key]

    # ------------------------------------------------------------------ one cell

    def run_cell(self, cell: Cell, cell_id: str) -> dict:
        """One cell, step by step; each step reads and fills the cell's :class:`CellWork`."""
        w = CellWork(cell, cell_id, self.store.artifact_dir(cell_id))
        with w.timed("datasets_s"):
            self._real_data(w)
        if cell.protocol.uses_generator:
            from cxrbench.cell_synthetic import synthetic_step

            synthetic_step(self, w)
        self._tuning_set(w)
        self._test_sets(w)
        with w.timed(f"{self.task.model_key}_train_s"):
            result, built, recipe = self.task.train(self, w)
        with w.timed("evaluate_s"):
            evaluation = self.task.evaluate(self, w, result.model)
        return self._ok_record(w, result, built, recipe, evaluation)

    # ---- the steps of a cell

    def _real_data(self, w: CellWork) -> None:
        """The real training split of this protocol (labels in the source dataset's space)."""
        spec, proto = self.spec, w.cell.protocol
        w.source = self.training_source(w.cell.real_data)
        w.externals = []
        for i, ref in enumerate(spec.external):
            try:
                w.externals.append((external_name(spec, i), self.dataset(ref), ref))
            except DatasetError as exc:
                if not ref.optional:
                    raise
                w.skipped_externals.append({"name": external_name(spec, i), "reason": str(exc)})
                logger.info(f"external[{i}] {ref.name}: skipped (optional, its data is not here): {exc}")
        if proto.external_training:
            if not w.externals:
                raise CxrbenchError(f"{proto.id} needs a second dataset: add it under 'external:' in the spec")
            w.train_name, w.train_ds, ref = w.externals[0]
            w.train_split, w.val = (self._in_source_labels(s, w.train_ds, ref, 0) for s in (w.train_ds.train, w.train_ds.val))
        else:
            w.train_name, w.train_ds = spec.dataset.name, w.source
            w.train_split, w.val = w.source.train, w.source.val
        if proto.uses_real_train:
            w.add_part("real", w.train_split.images, self.task.real_targets(w.train_split, w.train_name))
            w.patients["classifier-train"] = namespaced(w.train_ds, w.train_split.patient_ids)

    def _tuning_set(self, w: CellWork) -> None:
        """The real validation split, or (synthetic-only.v2) the held-out synthetic slice."""
        if w.tuning_slice is not None:
            w.tune_images = w.tuning_slice.images
            w.tune_targets = self.task.synthetic_targets(w.tuning_slice, w.generator, len(w.source.label_names))
            w.tune_desc = f"synthetic tuning slice (n={len(w.tuning_slice.conditions)}; no real image or label)"
            w.tune_keys = [f"syn-tune-{i:06d}" for i in range(len(w.tuning_slice.conditions))]  # manifest names
            w.tune_patients = w.tune_keys
        else:
            w.tune_images, w.tune_targets = w.val.images, self.task.real_targets(w.val, w.train_name)
            w.tune_desc = f"{w.train_name}:val (real, n={len(w.val)})"
            w.tune_keys, w.tune_patients = list(w.val.keys), list(w.val.patient_ids)
            w.patients["tuning"] = namespaced(w.train_ds, w.val.patient_ids)

    def _test_sets(self, w: CellWork) -> None:
        """Every real test set (labels mapped into the source label space), then the leakage
        guard: no test patient in anything the classifier or the generator learned or tuned on."""
        name = self.spec.dataset.name
        w.test_sets = {f"{name}:test": w.source.tests["test"]}
        tests = {f"{name}:test": namespaced(w.source, w.source.tests["test"].patient_ids)}
        for i, (ext_name, ext, ref) in enumerate(w.externals):
            split = all_images(ext) if ref.test == "all" else ext.tests["test"]
            tname = f"{ext_name}:{'all' if ref.test == 'all' else 'test'}"
            w.test_sets[tname] = self._in_source_labels(split, ext, ref, i, counts_to=w.label_maps, test_name=tname)
            tests[tname] = namespaced(ext, split.patient_ids)
        check_leakage({**w.patients, **tests})

    def _ok_record(self, w: CellWork, result, built, recipe, evaluation: dict) -> dict:
        from cxrbench.device import hardware_summary
        from cxrbench.generation import jsonable

        spec = self.spec
        kinds = [p[0] for p in w.parts for _ in range(len(p[1]))]
        return {
            **self._record_header(w.cell, w.cell_id),
            "status": "ok",
            "hardware": hardware_summary(self.device),
            "dataset": {"name": spec.dataset.name, "fingerprint": w.source.fingerprint, "info": jsonable(w.source.info)},
            "external": [{"name": n, "fingerprint": d.fingerprint, "test": r.test, "labels": dict(r.labels),
                          # what the label map gives on the test images (labelmaps.map_counts)
                          **({"label_map": w.label_maps[n]} if n in w.label_maps else {}),
                          "info": jsonable(d.info)} for n, d, r in w.externals],
            "external_skipped": w.skipped_externals,
            **({"real_data": w.source.info["real_data"]} if w.cell.real_data is not None else {}),
            "generator": w.generator_record,
            "training_set": {
                "dataset": w.train_name, "n": len(kinds), "n_real": kinds.count("real"),
                "n_synthetic": kinds.count("synthetic"), **self.task.training_set_record(w), "tuning_set": w.tune_desc,
            },
            self.task.model_key: self.task.model_record(self, w, result, built, recipe),
            **evaluation,
            "timings": w.timings,
            "artifacts": w.artifacts,
        }

    def _in_source_labels(self, split, dataset, ref, i: int, counts_to: dict | None = None, test_name: str = ""):
        """``split`` of an external dataset with its labels read through the spec's label map
        (labelmaps.py). For a test split (``counts_to``) the map's counts are kept for the record,
        and a map that leaves too few positives or negatives stops the cell, naming the counts."""
        from cxrbench.labelmaps import check_counts, map_counts, remap_split, resolve_label_map

        source_names = self.dataset(self.spec.dataset).label_names
        label_map = resolve_label_map(source_names, dataset.label_names, ref.labels, f"external[{i}]", ref.name)
        if counts_to is not None:
            counts = map_counts(split.labels, dataset.label_names, label_map)
            check_counts(counts, min_positives=ref.min_positives, min_negatives=ref.min_negatives,
                         where=f"external[{i}] {ref.name}", what=test_name or split.name)
            counts_to[test_name.split(":")[0]] = counts
        if label_map.is_identity(len(dataset.label_names)) and tuple(dataset.label_names) == tuple(source_names):
            return split
        return remap_split(split, label_map)

    def _baseline_record(self, cell: Cell) -> dict | None:
        return self._finished(cell.baseline()) if cell.protocol.uses_generator else None

    def predictions_of(self, record: dict, test_set: str) -> Path | None:
        """A finished cell's predictions file for ``test_set`` in this run (celldata.predictions_path)."""
        return predictions_path(self.store.out, record, test_set)

    def _finished(self, cell: Cell | None) -> dict | None:
        """The stored record of ``cell`` when it finished ok, else None."""
        if cell is None:
            return None
        record = self.store.load(f"{cell.id}__{self._context_key(cell)}")
        return record if record and record.get("status") == "ok" else None

    def _record_header(self, cell: Cell, cell_id: str) -> dict:
        return {
            "schema": RECORD_SCHEMA,
            "cell_id": cell_id,
            "cell": cell.describe(),
            "protocol": cell.protocol.recipe(cell.schedule),
            "spec": to_dict(self.spec),
            "spec_source": self.spec_source,
            "versions": self._versions(),
            "plugin_identity": self._identity(cell),
            "git_revision": git_revision(),
            "seeds": {"cell": cell.seed},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "timings": {},
        }

    def _identity(self, cell: Cell) -> dict:
        from cxrbench.identity import cell_identity

        return cell_identity(self, cell)

    def _versions(self) -> dict:
        import platform

        from cxrbench.library_versions import library_versions

        versions = {"cxrbench": __version__, "code_fingerprint": code_fingerprint(),
                    "python": platform.python_version(), "libraries": library_versions(), "plugins": {}}
        for e in self.plugins.all_entries():
            versions["plugins"][f"{e.kind}:{e.name}"] = {"version": e.version, "distribution": e.source.distribution}
        return versions

    def _failed_record(self, cell: Cell, cell_id: str, exc: BaseException) -> dict:
        return {
            **self._record_header(cell, cell_id),
            "status": "failed",
            "error": {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(),
                      "cause": type(exc.__cause__).__name__ if exc.__cause__ is not None else None},
        }

    def _write_summary(self) -> None:
        """All comparisons against the baseline in this run, Bonferroni-corrected across them."""
        from cxrbench.evaluation import bonferroni

        rows = []
        for rec in self.store.records():
            for tname, comp in (rec.get("comparisons") or {}).items():
                for label, c in (comp.get("labels") or {}).items():
                    if c.get("p_value") is not None:
                        rows.append({"cell_id": rec["cell_id"], "test_set": tname, "label": label, **c})
        adjusted = bonferroni([r["p_value"] for r in rows]) if rows else []
        for r, p in zip(rows, adjusted):
            r["p_bonferroni"] = p
        from cxrbench.aggregate import aggregate

        atomic_write_json(self.store.out / "summary.json", {
            "comparisons": rows, "n_comparisons": len(rows),
            # one row per configuration over its seeds (see aggregate.py)
            "aggregates": aggregate(self.store.records()),
        })


# ---------------------------------------------------------------------- helpers


def _default_cache_root() -> Path:
    from cxrbench.datasets import default_cache_dir

    return Path(default_cache_dir())


def _headline(record: dict) -> str:
    parts = []
    for tname, m in record.get("metrics", {}).items():
        macro = m.get("macro", {})
        metric = "dice" if "dice" in macro else "auroc"  # segmentation / classification
        auc, ci = macro.get(metric), macro.get(f"{metric}_ci")
        if auc is not None and ci:
            parts.append(f"{tname} {'Dice' if metric == 'dice' else 'AUROC'} {auc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]")
    return "; ".join(parts) or "ok"


def evaluation_key(evaluation) -> dict:
    """The evaluation settings as part of a cell's context: the subgroup settings count only when
    subgroups are asked for (they add a report and change no score), so specs written before
    they existed keep their cell ids."""
    from cxrbench.config import SUBGROUP_SETTINGS

    data = to_dict(evaluation)
    if not data.get("subgroups"):
        for key in ("subgroups", *SUBGROUP_SETTINGS):
            data.pop(key, None)
    return data
