"""The runner: spec -> cells -> records. The harness, not the plugins, owns the protocol.

One cell: fit (or load cached) generator -> generate -> post-process -> build the training set
-> train the classifier with the protocol's fixed recipe -> evaluate on every real test set ->
write one self-describing record. A cell that raises is recorded as failed and the others go
on; a finished cell is never recomputed.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
from cxrbench.contracts import Condition, SyntheticBatch, options_to_dict
from cxrbench.errors import CxrbenchError, DatasetError, LeakageError
from cxrbench.hashing import content_key, derive_seed
from cxrbench.store import RunStore, atomic_write_json

RECORD_SCHEMA = "cxrbench.cell/1"
DEMOGRAPHIC_FIELDS = ("sex", "age", "race")


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
                log(f"[{n}/{len(cells)}] {cell.id}: FAILED: {type(exc).__name__}: {exc}")
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

    def fitted_generator(self, variant: GeneratorVariant, train, fingerprint: str, seed: int):
        """Fit a generator on the real train split, or load it from the content-addressed cache."""
        from cxrbench.device import seed_everything

        cls = self.plugins.load("generator", variant.name)
        options = plugin_options(cls, variant.options, f"generators[{variant.label}].options", self.spec_source)
        entry = self.plugins.generators.get(variant.name)
        fit_options = _fit_relevant(options)
        fit_key = content_key(
            {
                "generator": variant.name, "version": entry.version, "options": fit_options,
                "train": fingerprint, "train_keys": content_key(train.keys), "size": self.spec.size,
                "seed": seed,
            }
        )
        memo = f"{fit_key}:{content_key(options_to_dict(options))}"
        if memo in self._generators:
            return self._generators[memo]
        generator = cls(options, size=self.spec.size, device=self.device)
        info: dict[str, Any] = {"fit_key": fit_key, "cached": False}
        ckpt = self.cache_root / "generators" / f"{variant.name}-{fit_key}"
        done = ckpt / "cxrbench-fit.json"
        if cls.capabilities.needs_training and done.is_file():
            generator.load(ckpt)
            info.update(json.loads(done.read_text()), cached=True)
            log(f"generator {variant.label}: loaded fitted checkpoint {ckpt}")
        else:
            seed_everything(seed)
            start = time.perf_counter()
            if cls.capabilities.needs_training:
                # Resumable plugins checkpoint here while training.
                ckpt.mkdir(parents=True, exist_ok=True)
                if hasattr(generator, "checkpoint_dir"):
                    generator.checkpoint_dir = ckpt / "resume"
            stats = generator.fit(train, progress=self.progress) or {}
            info["fit_stats"] = _jsonable(stats)
            info["fit_s"] = round(time.perf_counter() - start, 3)
            if cls.capabilities.needs_training:
                generator.save(ckpt)
                atomic_write_json(done, {"fit_stats": info["fit_stats"], "fit_s": info["fit_s"]})
        self._generators[memo] = (generator, info)
        return generator, info

    def synthetic_set(self, cell: Cell, generator, gen_info: dict, source_train, label_names) -> tuple[SyntheticBatch, dict]:
        """r x the real training set's conditions, one replica at a time, each cached by content."""
        import numpy as np
        import torch

        from cxrbench.progress import bar

        n_real = len(source_train)
        total = int(round(cell.ratio * n_real))
        replicas = math.ceil(total / n_real) if n_real else 0
        caps = type(generator).capabilities
        all_images, all_conditions, manifest = [], [], []
        gen_seconds = 0.0
        generated = 0
        sampling_key = content_key(
            {"options": options_to_dict(generator.options), "sampling_version": type(generator).sampling_version})
        for replica in range(replicas):
            count = min(n_real, total - replica * n_real)
            # The last, partial replica takes a seeded subset of the training conditions.
            order = np.random.default_rng(derive_seed(cell.seed, "subset", replica)).permutation(n_real)[:count]
            order.sort()
            conditions = [self._condition(source_train, int(i), cell.seed, replica, caps) for i in order]
            key = content_key(
                {"fit": gen_info["fit_key"], "sampling": sampling_key, "replica": replica,
                 "conditions": content_key([(c.labels, c.seed, sorted(c.demographics.items())) for c in conditions])}
            )
            path = self.cache_root / "synthetic" / f"{cell.generator.name}-{key}.npy"
            if path.is_file():
                images = torch.from_numpy(np.load(path))
            else:
                start = time.perf_counter()
                chunks = []
                batch = 256
                for lo in bar(range(0, len(conditions), batch), desc=f"generate {cell.generator.label} replica {replica}",
                              unit="batch", enabled=self.progress):
                    chunk = generator.generate(conditions[lo : lo + batch])
                    _check_images(chunk, len(conditions[lo : lo + batch]), self.spec.size, cell.generator.name)
                    chunks.append(chunk.cpu())
                images = torch.cat(chunks) if chunks else torch.zeros((0, 1, self.spec.size, self.spec.size), dtype=torch.uint8)
                gen_seconds += time.perf_counter() - start
                generated += len(conditions)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, images.numpy())
                os.replace(tmp, path)
            all_images.append(images)
            all_conditions.extend(conditions)
            for i, c in zip(order.tolist(), conditions):
                manifest.append({"file": f"syn-r{replica:02d}-{i:06d}", "replica": replica, "seed": c.seed,
                                 "source_key": source_train.keys[i], "labels": list(c.labels)})
        images = torch.cat(all_images) if all_images else torch.zeros((0, 1, self.spec.size, self.spec.size), dtype=torch.uint8)
        batch = SyntheticBatch(images, all_conditions)
        stats = {"n": len(all_conditions), "replicas": replicas, "generated_now": generated,
                 "generate_s": round(gen_seconds, 3),
                 "seconds_per_image": round(gen_seconds / generated, 5) if generated else None}
        return batch, {"stats": stats, "manifest": manifest}

    @staticmethod
    def _condition(split, i: int, seed: int, replica: int, caps) -> Condition:
        labels = tuple(0.0 if math.isnan(v) else float(v) for v in split.labels[i].tolist())
        demo = {k: split.metadata[k][i] for k in DEMOGRAPHIC_FIELDS if k in split.metadata}
        demo = {k: v for k, v in demo.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
        mask = split.masks[i] if (caps.mask and split.masks is not None) else None
        return Condition(labels=labels, seed=derive_seed(seed, replica, i), demographics=demo,
                         mask=mask, replica=replica)

    def postprocess(self, batch: SyntheticBatch) -> SyntheticBatch:
        for i, ref in enumerate(self.spec.postprocess):
            cls = self.plugins.load("postprocessor", ref.name)
            step = cls(plugin_options(cls, ref.options, f"postprocess[{i}].options", self.spec_source), device=self.device)
            before = len(batch.conditions)
            batch = step(batch)
            _check_images(batch.images, None, self.spec.size, ref.name)
            if len(batch.conditions) > before:
                raise CxrbenchError(f"post-processor {ref.name!r} added images; a step may only keep or drop them")
        return batch

    # ------------------------------------------------------------------ one cell

    def run_cell(self, cell: Cell, cell_id: str) -> dict:
        import numpy as np
        import torch

        from cxrbench.datasets import check_patient_disjoint
        from cxrbench.device import hardware_summary, seed_everything
        from cxrbench.evaluation import compare_to_baseline, evaluate
        from cxrbench.evaluation.metrics import choose_threshold
        from cxrbench.sheets import contact_sheet
        from cxrbench.training import TrainRecipe, predict, train_classifier

        timings: dict[str, float] = {}
        tick = time.perf_counter()
        spec, proto = self.spec, cell.protocol
        source = self.dataset(spec.dataset)
        externals = [(_external_name(spec, i), self.dataset(ref)) for i, ref in enumerate(spec.external)]
        timings["datasets_s"] = round(time.perf_counter() - tick, 3)
        artifacts: dict[str, Any] = {}
        adir = self.store.artifact_dir(cell_id)

        # Real training and tuning data for this protocol.
        if proto.external_training:
            if not externals:
                raise CxrbenchError(f"{proto.id} needs a second dataset: add it under 'external:' in the spec")
            train_name, train_ds = externals[0]
        else:
            train_name, train_ds = spec.dataset.name, source
        if train_ds.label_names != source.label_names:
            raise CxrbenchError(f"label names differ: {train_ds.label_names} vs {source.label_names}")
        val = train_ds.val

        parts_images, parts_labels, parts_sources = [], [], []
        train_patients: list[str] = []
        if proto.uses_real_train:
            parts_images.append(train_ds.train.images)
            parts_labels.append(train_ds.train.labels)
            parts_sources += ["real"] * len(train_ds.train)
            train_patients = [f"{train_name}:{p}" for p in train_ds.train.patient_ids]

        generator_record = None
        if proto.uses_generator:
            tick = time.perf_counter()
            generator, gen_info = self.fitted_generator(cell.generator, source.train, source.fingerprint, cell.seed)
            timings["generator_fit_s"] = round(time.perf_counter() - tick, 3)
            tick = time.perf_counter()
            synthetic, syn_info = self.synthetic_set(cell, generator, gen_info, source.train, source.label_names)
            timings["generate_s"] = round(time.perf_counter() - tick, 3)
            tick = time.perf_counter()
            synthetic = self.postprocess(synthetic)
            timings["postprocess_s"] = round(time.perf_counter() - tick, 3)
            manifest_path = adir / "synthetic-manifest.json"
            atomic_write_json(manifest_path, syn_info["manifest"])
            artifacts["synthetic_manifest"] = str(manifest_path)
            if len(synthetic.conditions):
                artifacts["contact_sheet"] = str(contact_sheet(
                    synthetic.images, synthetic.conditions, source.label_names, adir / "contact-sheet.png"))
            syn_labels = torch.tensor([c.labels for c in synthetic.conditions], dtype=torch.float32).reshape(
                -1, len(source.label_names))
            parts_images.append(synthetic.images)
            parts_labels.append(syn_labels)
            parts_sources += ["synthetic"] * len(synthetic.conditions)
            generator_record = {
                "name": cell.generator.name, "label": cell.generator.label,
                "version": self.plugins.generators.get(cell.generator.name).version,
                "sampling_version": type(generator).sampling_version,
                "options": options_to_dict(generator.options), "capabilities": dataclasses.asdict(type(generator).capabilities),
                "fitted_on": f"{spec.dataset.name}:train", **gen_info, "synthetic": syn_info["stats"],
            }

        # Leakage guard: no test patient in any data the classifier trains on.
        test_sets = {f"{spec.dataset.name}:test": source.tests["test"]}
        for name, ext in externals:
            test_sets[f"{name}:test"] = ext.tests["test"]
        groups = {"classifier-train": train_patients, f"{train_name}:val": [f"{train_name}:{p}" for p in val.patient_ids]}
        for tname, split in test_sets.items():
            groups[tname] = [f"{tname.split(':')[0]}:{p}" for p in split.patient_ids]
        check_patient_disjoint(groups)

        train_images = torch.cat(parts_images)
        train_labels = torch.cat(parts_labels)
        train_labels_clean = torch.nan_to_num(train_labels, nan=0.0)
        training_set = {
            "dataset": train_name, "n": len(parts_sources), "n_real": parts_sources.count("real"),
            "n_synthetic": parts_sources.count("synthetic"),
            "prevalence": [round(float(v), 5) for v in train_labels_clean.mean(0).tolist()],
            "tuning_set": f"{train_name}:val (real, n={len(val)})",
        }
        if not parts_sources:
            raise CxrbenchError("empty training set")

        # Classifier with the protocol's fixed recipe.
        recipe = TrainRecipe(**_recipe_fields(TrainRecipe, proto.schedules[cell.schedule]))
        ccls = self.plugins.load("classifier", spec.classifier.name)
        classifier = ccls(plugin_options(ccls, spec.classifier.options, "classifier.options", self.spec_source))
        seed_everything(cell.seed)
        built = classifier.build(len(source.label_names), spec.size, spec.classifier.pretrained)
        tick = time.perf_counter()
        result = train_classifier(built, train_images, train_labels, val.images, val.labels,
                                  recipe=recipe, device=self.device, seed=cell.seed, progress=self.progress)
        timings["classifier_train_s"] = round(time.perf_counter() - tick, 3)

        # Evaluation on every real test set; thresholds chosen on the real tuning set.
        tick = time.perf_counter()
        val_scores = predict(result.model, val.images, device=self.device)
        thresholds = []
        for j in range(len(source.label_names)):
            y = val.labels[:, j].numpy()
            ok = ~np.isnan(y)
            both = ok.any() and len(set(y[ok].tolist())) == 2
            thresholds.append(choose_threshold(y[ok], val_scores[ok, j], method=spec.evaluation.threshold) if both else 0.5)
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
            "dataset": {"name": spec.dataset.name, "fingerprint": source.fingerprint, "info": _jsonable(source.info)},
            "external": [{"name": n, "fingerprint": d.fingerprint, "info": _jsonable(d.info)} for n, d in externals],
            "generator": generator_record,
            "training_set": training_set,
            "classifier": {
                "name": spec.classifier.name, "version": self.plugins.classifiers.get(spec.classifier.name).version,
                "weights": built.weights, "recipe": dataclasses.asdict(recipe), "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss, "history": _jsonable(result.history),
                "train_s": round(result.seconds, 3),
            },
            "thresholds": [float(t) for t in thresholds],
            "metrics": metrics,
            "comparisons": comparisons,
            "timings": timings,
            "artifacts": artifacts,
        }

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
            "error": {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()},
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
        atomic_write_json(self.store.out / "summary.json", {"comparisons": rows, "n_comparisons": len(rows)})


# ---------------------------------------------------------------------- helpers


def _external_name(spec: BenchmarkSpec, i: int) -> str:
    """A unique name for external dataset i (the same plugin may appear twice, e.g. two sites)."""
    name = spec.external[i].name
    names = [spec.dataset.name] + [r.name for r in spec.external]
    return name if names.count(name) == 1 else f"{name}-ext{i + 1}"


def _default_cache_root() -> Path:
    from cxrbench.datasets import default_cache_dir

    return Path(default_cache_dir())


def _fit_relevant(options) -> dict:
    """Options that change the fitted model. Fields marked ``metadata={"sampling": True}``
    (e.g. cfg_scale, sampler steps) only change sampling, so a sweep over them reuses one fit."""
    if not dataclasses.is_dataclass(options):
        return options_to_dict(options)
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if not f.metadata.get("sampling")}


def _recipe_fields(cls, values: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise CxrbenchError(f"protocol recipe has fields the trainer does not know: {sorted(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _check_images(images, n: int | None, size: int, who: str) -> None:
    import torch

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {tuple(getattr(images, 'shape', ()))}"
        raise CxrbenchError(f"{who!r} broke the image contract: expected uint8 (N, 1, H, W), got {got}")
    if n is not None and images.shape[0] != n:
        raise CxrbenchError(f"{who!r} returned {images.shape[0]} images for {n} conditions (must be one each)")
    if tuple(images.shape[-2:]) != (size, size):
        raise CxrbenchError(f"{who!r} returned {tuple(images.shape[-2:])} px images; the spec asks for {size}")


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


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _headline(record: dict) -> str:
    parts = []
    for tname, m in record.get("metrics", {}).items():
        macro = m.get("macro", {})
        auc, ci = macro.get("auroc"), macro.get("auroc_ci")
        if auc is not None and ci:
            parts.append(f"{tname} AUROC {auc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]")
    return "; ".join(parts) or "ok"
