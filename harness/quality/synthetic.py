"""The quality report of one synthetic set against the real training split it imitates.

Downstream AUROC says whether synthetic data helps; this says why (and catches a generator that
games AUROC): fidelity (Frechet distance, KID, the FD ratio) and precision / recall / density /
coverage on every available feature network, diversity (MS-SSIM between same-label pairs, pixel
spread), memorization (nearest training image in pixels and in features, near copies, the worst
pairs as a PNG) and label fidelity (does the reference classifier see the label the image was
made for?). Every block that cannot be computed is recorded as ``{"skipped": reason}``; the cell
still succeeds.

Results are cached by (synthetic images and labels, real training data, settings, version), so
the cells that share a synthetic set (e.g. synthetic-only v1 and v2 of one seed) compute it once;
real-image features are cached per (dataset, size, feature network).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from cxrbench.integrity import check_file, entry_lock, quarantine, write_checksum
from cxrbench.quality import diversity, fidelity
from cxrbench.quality.memorization import image_memorization, memorization, save_worst_pairs
from cxrbench.quality.features import load_extractor, reference_classifier
from cxrbench.quality.prdc import prdc

#: bump when a metric's definition changes: cached reports are then recomputed
VERSION = "2"  # 2: KID subsets at most half of the smaller set (a real spread)
WORST_PAIRS_PNG = "memorization-worst-pairs.png"
#: a label group needs this many images on both sides for per-label fidelity
MIN_GROUP = 10


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def _guarded(fn: Callable[[], dict]) -> dict:
    """A metric block, or ``{"skipped": reason}`` when it cannot be computed."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - recorded, never fatal for the cell
        text = " ".join(str(exc).split()) or type(exc).__name__
        return {"skipped": f"failed: {type(exc).__name__}: {text[:300]}"}


def _groups(labels) -> dict[str, Any]:
    """Boolean row masks per label value: ``label{j}={v}`` (NaN = unknown, in no group)."""
    out = {}
    for j in range(labels.shape[1]):
        for v in (0.0, 1.0):
            out[f"label{j}={v:g}"] = (labels[:, j] == v).numpy()
    return out


def _real_features(extractor, train, cache_dir: Path):
    import numpy as np

    key = hashlib.sha256(f"{extractor.identity}|{_digest(train.images, train.labels)}".encode()).hexdigest()[:20]
    path = Path(cache_dir) / "quality" / f"real-features-{extractor.name}-{key}.npy"
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            quarantine(path, " ".join(str(exc).split())[:200])
    feats = extractor.fn(train.images)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(path)
    return feats


def _fidelity(real, syn, real_labels, syn_labels, settings, seed: int) -> dict:
    subset = fidelity.kid_subset_size(len(real), len(syn))
    kid_mean, kid_std = fidelity.kid(real, syn, subsets=100, subset_size=subset, seed=seed)
    out = {
        "fd": fidelity.frechet_distance(real, syn),
        # std over 100 random subsets of `subset_size` rows a side (half the smaller set at most)
        "kid": {"mean": kid_mean, "std": kid_std, "subset_size": subset, "subsets": 100},
        "fd_ratio": fidelity.fd_ratio(real, syn, seed=seed),
        "prdc": prdc(real, syn, k=settings.k),
        "per_label": {},
    }
    rg, sg = _groups(real_labels), _groups(syn_labels)
    for name, rmask in rg.items():
        smask = sg[name]
        if rmask.sum() >= MIN_GROUP and smask.sum() >= MIN_GROUP:
            out["per_label"][name] = {"n_real": int(rmask.sum()), "n_synthetic": int(smask.sum()),
                                      "fd": fidelity.frechet_distance(real[rmask], syn[smask]),
                                      "prdc": prdc(real[rmask], syn[smask], k=min(settings.k, int(smask.sum()) - 1))}
    return out


def _diversity(images, labels, train, settings, seed: int) -> dict:
    syn_ms = diversity.ms_ssim_diversity(images, labels, pairs=settings.pairs, seed=seed)
    real_ms = diversity.ms_ssim_diversity(train.images, train.labels.float(), pairs=settings.pairs, seed=seed)
    syn_px, real_px = diversity.pixel_spread(images, labels), diversity.pixel_spread(train.images, train.labels.float())
    ratio = {k: (syn_px[k] / real_px[k] if isinstance(syn_px.get(k), float) and real_px.get(k) else None)
             for k in real_px if isinstance(real_px[k], float)}
    return {"ms_ssim": {"synthetic": syn_ms, "real": real_ms},
            "pixel_spread": {"synthetic": syn_px, "real": real_px, "ratio": ratio}}


def _label_fidelity(reference, images, labels, val) -> dict:
    import torch

    def agreement(imgs, lab) -> dict:
        predicted = (reference.probabilities(imgs) >= 0.5).float()
        known = ~lab.isnan()
        out = {"agreement": float(((predicted == lab) | ~known).all(dim=1).float().mean()) if len(lab) else None}
        for name, mask in _groups(lab).items():
            rows = torch.from_numpy(mask)
            if rows.any():
                j = int(name[5:name.index("=")])
                out[name] = float((predicted[rows, j] == lab[rows, j]).float().mean())
        return out

    res = {"classifier": reference.identity, "synthetic": agreement(images, labels)}
    if val is not None and len(val):
        res["real_val"] = agreement(val.images, val.labels.float())  # the judge's own accuracy: the ceiling
    return res


def synthetic_quality(images, labels, train, *, settings, cache_dir: Path, out_dir: Path, seed: int = 0,
                      val=None, device: str = "cpu", progress: bool | None = None) -> dict:
    """The quality report of uint8 ``images`` (N, 1, H, W) made for ``labels`` (N, L float, NaN =
    unknown) against ``train`` (the real training split). Writes the worst memorization pairs to
    ``out_dir/memorization-worst-pairs.png``; returns a JSON-ready dict."""
    from cxrbench.kit.images import data_fingerprint

    start = time.perf_counter()
    labels = labels.float()
    key = hashlib.sha256(json.dumps({"synthetic": _digest(images, labels), "train": data_fingerprint(train),
                                     "settings": dataclasses.asdict(settings), "seed": seed, "version": VERSION},
                                    sort_keys=True).encode()).hexdigest()[:20]
    cache = Path(cache_dir) / "quality" / f"report-{key}"
    out_dir = Path(out_dir)
    with entry_lock(cache, "a quality report"):  # concurrent cells sharing a set compute it once
        return _cached_or_computed(images, labels, train, cache, out_dir, settings=settings, cache_dir=cache_dir,
                                   seed=seed, val=val, device=device, progress=progress, start=start)


def _cached_or_computed(images, labels, train, cache: Path, out_dir: Path, *, settings, cache_dir, seed, val,
                        device, progress, start) -> dict:
    from cxrbench.generation import jsonable

    if (cache / "report.json").is_file():
        try:
            problem = check_file(cache / "report.json")  # an edited report must not reach new records
            if problem:
                raise ValueError(problem)
            report = json.loads((cache / "report.json").read_text())
        except (OSError, ValueError) as exc:
            quarantine(cache, " ".join(str(exc).split())[:200])
        else:
            if (cache / WORST_PAIRS_PNG).is_file():
                out_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cache / WORST_PAIRS_PNG, out_dir / WORST_PAIRS_PNG)
            return {**report, "cached": True}

    report: dict[str, Any] = {"version": VERSION, "n_synthetic": int(len(images)), "n_real": int(len(train)),
                              "settings": dataclasses.asdict(settings), "features": {}}
    reference = reference_classifier(train, cache_dir=cache_dir, progress=progress, steps=settings.reference_steps)
    feats: dict[str, tuple] = {}
    for name in settings.features:
        extractor = load_extractor(name, reference=reference, device=device)
        if isinstance(extractor, str):
            report["features"][name] = {"skipped": extractor}
            continue

        def block(extractor=extractor):
            real, syn = _real_features(extractor, train, cache_dir), extractor.fn(images)
            feats[extractor.name] = (real, syn)
            return {"identity": extractor.identity, "dim": int(real.shape[1]),
                    **_fidelity(real, syn, train.labels.float(), labels, settings, seed)}

        report["features"][name] = _guarded(block)
    report["diversity"] = _guarded(lambda: _diversity(images, labels, train, settings, seed))
    report["memorization"] = _guarded(lambda: _memorization(images, train, feats, settings, cache / WORST_PAIRS_PNG))
    report["label_fidelity"] = _guarded(lambda: _label_fidelity(reference, images, labels, val))
    report["seconds"] = round(time.perf_counter() - start, 3)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / "report.json.tmp"
    report = jsonable(report)  # numpy scalars -> floats, NaN -> None
    tmp.write_text(json.dumps(report, sort_keys=True, allow_nan=False))
    tmp.replace(cache / "report.json")
    write_checksum(cache / "report.json")
    if (cache / WORST_PAIRS_PNG).is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache / WORST_PAIRS_PNG, out_dir / WORST_PAIRS_PNG)
    return {**report, "cached": False}


def _memorization(images, train, feats, settings, png: Path) -> dict:
    out: dict[str, Any] = {}
    summary, details = image_memorization(images, train.images, flips=True,
                                                       quantile=settings.near_copy_quantile)
    out["pixels"] = summary
    if "domain" in feats:
        real, syn = feats["domain"]
        out["features"], _ = memorization(syn, real, quantile=settings.near_copy_quantile)
        out["features"]["network"] = "domain"
    if settings.worst_pairs and len(images):
        png.parent.mkdir(parents=True, exist_ok=True)
        save_worst_pairs(images, train.images, details.nn_index, details.distances, png,
                                      n=settings.worst_pairs, flipped=details.flipped)
        out["worst_pairs_png"] = WORST_PAIRS_PNG
    return out
