"""The runner: spec -> cells -> records. The harness, not the plugins, owns the protocol.

One cell: fit (or load cached) generator -> generate -> post-process -> build the training set
-> train the classifier with the protocol's fixed recipe -> evaluate on every real test set ->
write one self-describing record. A cell that raises is recorded as failed and the others go
on; a finished cell is never recomputed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrbench import __version__, protocols
from cxrbench.cells import Cell, GeneratorVariant, expand_cells
from cxrbench.config import BenchmarkSpec, plugin_options, to_dict
from cxrbench.contracts import SyntheticBatch, options_to_dict
from cxrbench.errors import CxrbenchError, DatasetError, LeakageError
from cxrbench.generation import check_images, plugin_call
from cxrbench.hashing import content_key
from cxrbench.store import RunStore, atomic_write_json

RECORD_SCHEMA = "cxrbench.cell/1"


@dataclass
class RunSummary:
    out: Path
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def log(message: str) -> None:
    import sys

    print(f"[cxrbench] {message}", file=sys.stderr, flush=True)


def git_revision() -> str | None:
    """The git revision of the cxrbench checkout, when it is one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


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
    ):
        from cxrbench.registry import get_plugins, load_plugins

        self.spec = spec
        self.spec_source = spec_source
        self.store = RunStore(out)
        self.data_root = data_root
        self.progress = progress
        if plugins is None:
            plugins = load_plugins(allow=spec.plugins) if spec.plugins is not None else get_plugins()
        self.plugins = plugins
        self.device_request = device or spec.device
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._datasets: dict[str, Any] = {}
        self._generators: dict[str, tuple[Any, dict]] = {}

    # ------------------------------------------------------------------ top level

    def run(self) -> RunSummary:
        from cxrbench.device import resolve_device

        self.device = resolve_device(self.device_request)
        self.cache_root = self.cache_dir or _default_cache_root()
        cells = expand_cells(self.spec)
        context = self._context_key()
        summary = RunSummary(self.store.out)
        atomic_write_json(self.store.out / "spec.resolved.json", to_dict(self.spec))
        log(f"{len(cells)} cells -> {self.store.out} (device {self.device})")
        for n, cell in enumerate(cells, 1):
            cell_id = f"{cell.id}__{context}"
            if self.store.is_finished(cell_id):
                log(f"[{n}/{len(cells)}] {cell.id}: finished before, skipped")
                summary.skipped.append(cell_id)
                continue
            log(f"[{n}/{len(cells)}] {cell.id}: running")
            start = time.perf_counter()
            try:
                record = self.run_cell(cell, cell_id)
                summary.ok.append(cell_id)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one failing cell must not stop the others
                record = self._failed_record(cell, cell_id, exc)
                summary.failed.append(cell_id)
                where = self.store.record_path(cell_id)
                log(f"[{n}/{len(cells)}] {cell.id}: FAILED: {type(exc).__name__}: {exc} (traceback in {where})")
            record["timings"]["total_s"] = round(time.perf_counter() - start, 3)
            self.store.write(cell_id, record)
            if record["status"] == "ok":
                log(f"[{n}/{len(cells)}] {cell.id}: {_headline(record)}")
        self._write_summary()
        return summary

    def _context_key(self) -> str:
        """Everything run-level a cell's result depends on; part of every cell id, so a
        changed dataset, size or classifier never reuses an old record."""
        s = self.spec
        return content_key(
            {
                "dataset": to_dict(s.dataset), "external": to_dict(s.external), "size": s.size,
                "classifier": to_dict(s.classifier), "postprocess": to_dict(s.postprocess),
                "evaluation": to_dict(s.evaluation), "preprocessing": s.preprocessing,
                "data_root": str(self._dataset_root(s.dataset)),
            },
            8,
        )

    # ------------------------------------------------------------------ datasets

    def _dataset_root(self, ref) -> Path | None:
        from cxrbench.datasets import resolve_data_root

        root = resolve_data_root(self.data_root if ref is self.spec.dataset else None, ref.root)
        return root

    def dataset(self, ref):
        """Load (once per run) a dataset: decoded through the shared, memory-mapped cache."""
        from cxrbench.datasets import Preprocessing, load_dataset

        key = json.dumps(to_dict(ref), sort_keys=True)
        if key not in self._datasets:
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
            prep = Preprocessing(**self.spec.preprocessing)
            start = time.perf_counter()
            loaded = load_dataset(
                cls(root, options), size=self.spec.size, preprocessing=prep,
                cache_dir=self.cache_root, progress=self.progress,
            )
            loaded.info.setdefault("load_s", round(time.perf_counter() - start, 3))
            self._datasets[key] = loaded
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
        memo = content_key({"name": variant.name, "options": options_to_dict(options)})
        if memo not in self._generators:
            generator = cls(options, size=self.spec.size, device=self.device)
            info = fit_or_load(generator, name=variant.name, version=entry.version, train=train,
                               fingerprint=fingerprint, size=self.spec.size, cache_root=self.cache_root,
                               progress=self.progress)
            self._generators[memo] = (generator, info)
        return self._generators[memo]

    def postprocess(self, batch: SyntheticBatch) -> SyntheticBatch:
        for i, ref in enumerate(self.spec.postprocess):
            cls = self.plugins.load("postprocessor", ref.name)
            step = cls(plugin_options(cls, ref.options, f"postprocess[{i}].options", self.spec_source), device=self.device)
            before = len(batch.conditions)
            with plugin_call("post-processor", ref.name, "__call__"):
                batch = step(batch)
            check_images(batch.images, None, self.spec.size, ref.name)
            if len(batch.conditions) > before:
                raise CxrbenchError(f"post-processor {ref.name!r} added images; a step may only keep or drop them")
        return batch

    # ------------------------------------------------------------------ one cell

    def run_cell(self, cell: Cell, cell_id: str) -> dict:
        import numpy as np
        import torch

        from cxrbench.device import hardware_summary, seed_everything
        from cxrbench.evaluation import compare_to_baseline, evaluate
        from cxrbench.evaluation.metrics import choose_threshold
        from cxrbench.generation import (
            jsonable, options_record, seed_check, synthetic_training_set, synthetic_tuning_slice,
        )
        from cxrbench.sheets import contact_sheet
        from cxrbench.training import TrainRecipe, predict, train_classifier

        timings: dict[str, float] = {}
        tick = time.perf_counter()
        spec, proto = self.spec, cell.protocol
        source = self.dataset(spec.dataset)
        externals = [(_external_name(spec, i), self.dataset(ref), ref) for i, ref in enumerate(spec.external)]
        timings["datasets_s"] = round(time.perf_counter() - tick, 3)
        artifacts: dict[str, Any] = {}
        adir = self.store.artifact_dir(cell_id)

        # Real training data for this protocol (labels in the source dataset's label space).
        if proto.external_training:
            if not externals:
                raise CxrbenchError(f"{proto.id} needs a second dataset: add it under 'external:' in the spec")
            train_name, train_ds, train_ref = externals[0]
            train_split, val = (self._in_source_labels(s, train_ds, train_ref, 0) for s in (train_ds.train, train_ds.val))
        else:
            train_name, train_ds, train_ref = spec.dataset.name, source, spec.dataset
            train_split, val = source.train, source.val

        parts_images, parts_labels, parts_sources = [], [], []
        classifier_patients: list[str] = []
        if proto.uses_real_train:
            parts_images.append(train_split.images)
            parts_labels.append(train_split.labels)
            parts_sources += ["real"] * len(train_split)
            classifier_patients = _namespaced(train_ds, train_split.patient_ids)

        generator_record, generator_patients, tuning = None, [], None
        if proto.uses_generator:
            tick = time.perf_counter()
            generator, gen_info = self.fitted_generator(cell.generator, source.train, source.fingerprint)
            if getattr(type(generator).capabilities, "sees_training_data", True):
                generator_patients = _namespaced(source, source.train.patient_ids)
            timings["generator_fit_s"] = round(time.perf_counter() - tick, 3)
            checked = seed_check(generator, source.train, seed=cell.seed, size=spec.size)
            common = dict(variant_name=cell.generator.name, variant_label=cell.generator.label, seed=cell.seed,
                          source_train=source.train, size=spec.size, cache_root=self.cache_root, progress=self.progress)
            tick = time.perf_counter()
            synthetic, syn_info = synthetic_training_set(generator, gen_info, ratio=cell.ratio, **common)
            manifest = syn_info["manifest"]
            if proto.tuning == "synthetic":
                tuning, tune_info = synthetic_tuning_slice(generator, gen_info, fraction=proto.tuning_fraction,
                                                           minimum=proto.tuning_minimum, **common)
                manifest = manifest + tune_info["manifest"]
                syn_info["stats"]["tuning_slice"] = tune_info["stats"]
            timings["generate_s"] = round(time.perf_counter() - tick, 3)
            tick = time.perf_counter()
            synthetic = self.postprocess(synthetic)
            if tuning is not None:
                tuning = self.postprocess(tuning)
            timings["postprocess_s"] = round(time.perf_counter() - tick, 3)
            manifest_path = adir / "synthetic-manifest.json"
            atomic_write_json(manifest_path, manifest)
            artifacts["synthetic_manifest"] = str(manifest_path)
            if len(synthetic.conditions):
                artifacts["contact_sheet"] = str(contact_sheet(
                    synthetic.images, synthetic.conditions, source.label_names, adir / "contact-sheet.png"))
            parts_images.append(synthetic.images)
            parts_labels.append(_condition_labels(synthetic, len(source.label_names)))
            parts_sources += ["synthetic"] * len(synthetic.conditions)
            generator_record = {
                "name": cell.generator.name, "label": cell.generator.label,
                "version": self.plugins.generators.get(cell.generator.name).version,
                "sampling_version": type(generator).sampling_version, **options_record(generator),
                "capabilities": dataclasses.asdict(type(generator).capabilities),
                "fitted_on": f"{spec.dataset.name}:train" if generator_patients else None,
                **gen_info, "synthetic": syn_info["stats"], "seed_check": checked,
            }

        # The tuning set: the real validation split, or (synthetic-only.v2) a held-out synthetic slice.
        if tuning is not None:
            tune_images, tune_labels = tuning.images, _condition_labels(tuning, len(source.label_names))
            tune_desc = f"synthetic tuning slice (n={len(tuning.conditions)}; no real image or label)"
            tune_patients: list[str] = []
        else:
            tune_images, tune_labels = val.images, val.labels
            tune_desc = f"{train_name}:val (real, n={len(val)})"
            tune_patients = _namespaced(train_ds, val.patient_ids)

        # Test sets (labels mapped into the source label space), then the leakage guard: no test
        # patient in anything the classifier or the generator learned from, or tuned on.
        test_sets = {f"{spec.dataset.name}:test": source.tests["test"]}
        test_patients = {f"{spec.dataset.name}:test": _namespaced(source, source.tests["test"].patient_ids)}
        for i, (name, ext, ref) in enumerate(externals):
            split = _all_images(ext) if ref.test == "all" else ext.tests["test"]
            tname = f"{name}:{'all' if ref.test == 'all' else 'test'}"
            test_sets[tname] = self._in_source_labels(split, ext, ref, i)
            test_patients[tname] = _namespaced(ext, split.patient_ids)
        groups = {"classifier-train": classifier_patients, "generator-train": generator_patients,
                  "tuning": tune_patients, **test_patients}
        _check_leakage(groups)

        train_images = torch.cat(parts_images)
        train_labels = torch.cat(parts_labels)
        train_labels_clean = torch.nan_to_num(train_labels, nan=0.0)
        training_set = {
            "dataset": train_name, "n": len(parts_sources), "n_real": parts_sources.count("real"),
            "n_synthetic": parts_sources.count("synthetic"),
            "prevalence": [round(float(v), 5) for v in train_labels_clean.mean(0).tolist()],
            "tuning_set": tune_desc,
        }
        if not parts_sources:
            raise CxrbenchError("empty training set")

        # Classifier with the protocol's fixed recipe.
        recipe = TrainRecipe(**_recipe_fields(TrainRecipe, proto.schedules[cell.schedule]))
        ccls = self.plugins.load("classifier", spec.classifier.name)
        classifier = ccls(plugin_options(ccls, spec.classifier.options, "classifier.options", self.spec_source))
        seed_everything(cell.seed)
        with plugin_call("classifier", spec.classifier.name, "build"):
            built = classifier.build(len(source.label_names), spec.size, spec.classifier.pretrained)
        tick = time.perf_counter()
        result = train_classifier(built, train_images, train_labels, tune_images, tune_labels,
                                  recipe=recipe, device=self.device, seed=cell.seed, progress=self.progress)
        timings["classifier_train_s"] = round(time.perf_counter() - tick, 3)

        # Evaluation on every real test set; thresholds chosen on the tuning set.
        tick = time.perf_counter()
        tune_scores = predict(result.model, tune_images, device=self.device)
        thresholds = []
        for j in range(len(source.label_names)):
            y = tune_labels[:, j].numpy()
            ok = ~np.isnan(y)
            both = ok.any() and len(set(y[ok].tolist())) == 2
            thresholds.append(choose_threshold(y[ok], tune_scores[ok, j], method=spec.evaluation.threshold) if both else 0.5)
        metrics, comparisons, predictions = {}, {}, {}
        baseline = self._baseline_record(cell)
        for tname, split in test_sets.items():
            scores = predict(result.model, split.images, device=self.device)
            labels = split.labels.numpy()
            metrics[tname] = evaluate(
                scores, labels, source.label_names, patient_ids=split.patient_ids, thresholds=thresholds,
                n_resamples=spec.evaluation.bootstrap_resamples, seed=cell.seed, confidence=spec.evaluation.confidence,
            )
            pred_path = adir / f"predictions-{tname.replace(':', '-')}.csv"
            _write_predictions(pred_path, split, scores, source.label_names)
            predictions[tname] = str(pred_path)
            if baseline is not None and tname in baseline.get("artifacts", {}).get("predictions", {}):
                base_scores = _read_scores(Path(baseline["artifacts"]["predictions"][tname]), split.keys, source.label_names)
                comparisons[tname] = {"baseline": baseline["cell_id"],
                                      **compare_to_baseline(labels, scores, base_scores, source.label_names)}
        artifacts["predictions"] = predictions
        timings["evaluate_s"] = round(time.perf_counter() - tick, 3)

        return {
            **self._record_header(cell, cell_id),
            "status": "ok",
            "hardware": hardware_summary(self.device),
            "dataset": {"name": spec.dataset.name, "fingerprint": source.fingerprint, "info": jsonable(source.info)},
            "external": [{"name": n, "fingerprint": d.fingerprint, "test": r.test, "labels": dict(r.labels),
                          "info": jsonable(d.info)} for n, d, r in externals],
            "generator": generator_record,
            "training_set": training_set,
            "classifier": {
                "name": spec.classifier.name, "version": self.plugins.classifiers.get(spec.classifier.name).version,
                "weights": built.weights, "recipe": dataclasses.asdict(recipe), "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss, "history": jsonable(result.history),
                "train_s": round(result.seconds, 3),
            },
            "thresholds": [float(t) for t in thresholds],
            "metrics": metrics,
            "comparisons": comparisons,
            "timings": timings,
            "artifacts": artifacts,
        }

    def _in_source_labels(self, split, dataset, ref, i: int):
        """``split`` of an external dataset with its labels mapped onto the source dataset's."""
        from cxrbench.labelmaps import remap_split, resolve_label_map

        source = self.spec.dataset
        if tuple(dataset.label_names) == tuple(self.dataset(source).label_names) and not ref.labels:
            return split
        columns = resolve_label_map(self.dataset(source).label_names, dataset.label_names, ref.labels,
                                    f"external[{i}]", ref.name)
        return remap_split(split, columns, self.dataset(source).label_names)

    def _baseline_record(self, cell: Cell) -> dict | None:
        if not cell.protocol.uses_generator:
            return None
        base = Cell(protocols.get("real-only"), cell.schedule, 0.0, cell.seed)
        record = self.store.load(f"{base.id}__{self._context_key()}")
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
            "git_revision": git_revision(),
            "seeds": {"cell": cell.seed},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "timings": {},
        }

    def _versions(self) -> dict:
        import platform

        versions = {"cxrbench": __version__, "python": platform.python_version(), "plugins": {}}
        for mod in ("torch", "diffusers", "timm", "numpy", "sklearn"):
            try:
                versions[mod] = __import__(mod).__version__
            except Exception:  # noqa: BLE001
                versions[mod] = None
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


def _external_name(spec: BenchmarkSpec, i: int) -> str:
    """A unique name for external dataset i (the same plugin may appear twice, e.g. two sites)."""
    name = spec.external[i].name
    names = [spec.dataset.name] + [r.name for r in spec.external]
    return name if names.count(name) == 1 else f"{name}-ext{i + 1}"


def _default_cache_root() -> Path:
    from cxrbench.datasets import default_cache_dir

    return Path(default_cache_dir())


def _recipe_fields(cls, values: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise CxrbenchError(f"protocol recipe has fields the trainer does not know: {sorted(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _write_predictions(path: Path, split, scores, label_names) -> None:
    import pandas as pd

    df = pd.DataFrame({"key": split.keys, "patient_id": split.patient_ids})
    for j, name in enumerate(label_names):
        df[f"true_{name}"] = split.labels[:, j].numpy()
        df[f"score_{name}"] = scores[:, j]
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _read_scores(path: Path, keys, label_names):
    import pandas as pd

    df = pd.read_csv(path).set_index("key")
    missing = [k for k in keys[:5] if k not in df.index]
    if missing:
        raise CxrbenchError(f"baseline predictions {path} do not cover the same test images (e.g. {missing[0]})")
    return df.loc[list(keys), [f"score_{n}" for n in label_names]].to_numpy()


def _namespaced(dataset, patient_ids) -> list[str]:
    """Patient ids qualified by the dataset's identity (plugin name + content fingerprint), so the
    same data under two names (an external copy of the source, say) is recognised as the same."""
    return [f"{dataset.name}#{dataset.fingerprint[:12]}:{p}" for p in patient_ids]


def _all_images(dataset):
    """Every image of a dataset as one test split (train + val + test)."""
    import dataclasses as dc

    import torch

    parts = [dataset.train, dataset.val, *dataset.tests.values()]
    parts = [p for p in parts if len(p)]
    meta_keys = set.intersection(*(set(p.metadata) for p in parts)) if parts else set()
    return dc.replace(
        parts[0], name="all", images=torch.cat([p.images for p in parts]), labels=torch.cat([p.labels for p in parts]),
        patient_ids=[x for p in parts for x in p.patient_ids], keys=[x for p in parts for x in p.keys],
        metadata={k: [x for p in parts for x in p.metadata[k]] for k in meta_keys}, masks=None,
    )


def _condition_labels(batch: SyntheticBatch, n_labels: int):
    import torch

    return torch.tensor([c.labels for c in batch.conditions], dtype=torch.float32).reshape(-1, n_labels)


def _check_leakage(groups: dict[str, list[str]]) -> None:
    """The leakage guard. Training and tuning groups may share patients among themselves (a
    generator and a classifier both learn from the real training split); a test set may share
    none with any group."""
    from cxrbench.datasets import check_patient_disjoint

    learned = {k: v for k, v in groups.items() if k in ("classifier-train", "generator-train", "tuning")}
    seen = sorted({p for ids in learned.values() for p in ids})
    for tname, ids in groups.items():
        if tname in learned:
            continue
        try:
            check_patient_disjoint({"training or tuning data": seen, tname: ids})
        except LeakageError as exc:
            who = [k for k, v in learned.items() if set(v) & set(ids)]
            raise LeakageError(f"test set {tname} shares patients with {', '.join(who)}: {exc}") from None


def _headline(record: dict) -> str:
    parts = []
    for tname, m in record.get("metrics", {}).items():
        macro = m.get("macro", {})
        auc, ci = macro.get("auroc"), macro.get("auroc_ci")
        if auc is not None and ci:
            parts.append(f"{tname} AUROC {auc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]")
    return "; ".join(parts) or "ok"
