"""Memorisation: is a synthetic image a (near) copy of a training image?

Each synthetic sample's nearest training neighbour is set against the training set's own
leave-one-out nearest-neighbour distances: a generator that copies puts samples far closer
to some training image than training images ever are to each other. A sample is a *near copy*
when its distance is at most the ``quantile`` (default 1%) of those train->train distances.

numpy only (torch tensors are accepted and converted); PIL is imported by
:func:`save_worst_pairs` alone. :func:`as_float` and :func:`distance_chunks` are shared with
:mod:`.prdc` and :mod:`.fidelity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrbench.errors import CxrbenchError

__all__ = ["as_float", "distance_chunks", "nearest", "NearestTrain", "memorization", "image_memorization",
           "save_worst_pairs"]


def as_float(x, dtype=np.float64) -> np.ndarray:
    """``x`` (numpy array, torch tensor, list) as a numpy array of ``dtype``.

    Always convert before any arithmetic: uint8 pixels wrap around (``3 - 5 == 254``) and
    their squares overflow, which silently turns a far pair into a near one.
    """
    if hasattr(x, "detach"):  # a torch tensor; duck-typed so that torch need not be imported
        x = x.detach().cpu().numpy()
    return np.asarray(x).astype(dtype, copy=False)


def distance_chunks(a: np.ndarray, b: np.ndarray, *, chunk: int = 1024, same: bool = False):
    """Yield ``(lo, hi, d)``: the float64 Euclidean distances ``d`` from rows ``a[lo:hi]`` to
    every row of ``b``, ``chunk`` query rows at a time (memory: ``chunk * len(b) * 8`` bytes).

    Same arithmetic as sklearn's ``euclidean_distances`` (what the reference ``prdc`` package
    uses): ``|x|^2 + |y|^2 - 2 x.y``, clipped at 0; ``same=True`` (b is a) zeroes the diagonal,
    which the dot-product route leaves at rounding noise instead of 0.
    """
    bb = np.einsum("ij,ij->i", b, b)
    for lo in range(0, len(a), chunk):
        x = a[lo : lo + chunk]
        d = -2.0 * (x @ b.T)
        d += np.einsum("ij,ij->i", x, x)[:, None]
        d += bb[None, :]
        np.maximum(d, 0.0, out=d)
        if same:
            r = np.arange(len(x))
            d[r, lo + r] = 0.0
        yield lo, lo + len(x), np.sqrt(d, out=d)


def _nearest(q: np.ndarray, r: np.ndarray, skip: np.ndarray | None, chunk: int):
    """Nearest row of float64 ``r`` for each float64 row of ``q``; ``skip[i]`` lists columns of
    ``r`` that query ``i`` may not pick. Search in float32 (twice the BLAS speed), on data
    centred on the reference mean so the dot-product route loses little to cancellation;
    the returned distances are then recomputed exactly in float64 for the chosen pairs."""
    if len(r) == 0 or (skip is not None and len(r) <= skip.shape[1]):
        raise CxrbenchError("nearest: the reference set has no row a query may be matched to")
    centre = r.mean(0)
    r32 = (r - centre).astype(np.float32)
    rr = np.einsum("ij,ij->i", r32, r32)
    dist = np.empty(len(q))
    idx = np.empty(len(q), dtype=np.int64)
    for lo in range(0, len(q), chunk):
        x = (q[lo : lo + chunk] - centre).astype(np.float32)
        # |x-y|^2 = |x|^2 - 2x.y + |y|^2; |x|^2 is the same for every y, so the argmin skips it
        s = rr[None, :] - 2.0 * (x @ r32.T)
        if skip is not None:
            s[np.arange(len(x))[:, None], skip[lo : lo + len(x)]] = np.inf
        j = s.argmin(1)
        idx[lo : lo + len(x)] = j
        dist[lo : lo + len(x)] = np.linalg.norm(q[lo : lo + chunk] - r[j], axis=1)
    return dist, idx


def nearest(query, reference, *, exclude_self: bool = False, chunk: int = 1024):
    """Euclidean nearest neighbour in ``reference`` of each row of ``query``.

    Inputs: (N, ...) arrays or tensors of any dtype (uint8 pixels included: converted to
    float64 first), flattened per row. ``exclude_self=True`` means ``query`` *is*
    ``reference``: row i may not match itself (leave-one-out). Returns ``(distances, indices)``,
    float64 (Q,) exact distances and int64 (Q,) row indices into ``reference``.
    """
    q, r = as_float(query), as_float(reference)
    q, r = q.reshape(len(q), -1), r.reshape(len(r), -1)
    if q.shape[1] != r.shape[1]:
        raise CxrbenchError(f"nearest: query rows have {q.shape[1]} values, reference rows {r.shape[1]}")
    skip = None
    if exclude_self:
        if len(q) != len(r):
            raise CxrbenchError("nearest: exclude_self=True needs query to be the reference set")
        skip = np.arange(len(q))[:, None]
    return _nearest(q, r, skip, chunk)


@dataclass
class NearestTrain:
    """Per synthetic sample: ``distances`` (M,) float64 to the nearest training image,
    ``nn_index`` (M,) its index in the training set, ``flipped`` (M,) bool, true where the
    nearest reference was that image's mirror image."""

    distances: np.ndarray
    nn_index: np.ndarray
    flipped: np.ndarray


def memorization(syn, train, *, flips: bool = True, quantile: float = 0.01, chunk: int = 1024):
    """Near-copy detection of synthetic samples against the training set.

    ``syn`` (M, D) and ``train`` (N, D) are features or flattened pixels; (M, C, H, W) images
    are accepted too, and only then does ``flips=True`` add the horizontally mirrored training
    images as references (a flipped copy is still a copy; augmentation makes them common).
    ``d_syn``: distance of each synthetic sample to its nearest reference. ``d_train``: the
    leave-one-out distance of each training image to the *same* reference set, never matching
    itself nor its own mirror image, so both are measured alike. ``threshold =
    quantile(d_train, quantile)``; a near copy is ``d_syn <= threshold``.

    Returns ``(summary, details)``. ``summary`` (JSON-ready): median_nn, median_nn_train,
    relative_median (median d_syn / median d_train; ~1 for a generator that does not copy,
    towards 0 for one that does), near_copy_fraction, near_copy_threshold, quantile, n (= M),
    flips (whether mirrored references were used). ``details``: a :class:`NearestTrain`
    (per-sample d_syn, nearest training index, whether the match was mirrored).
    """
    if not 0.0 < quantile <= 1.0:
        raise CxrbenchError(f"memorization: quantile must be in (0, 1], got {quantile}")
    s, t = as_float(syn), as_float(train)
    if s.shape[1:] != t.shape[1:]:
        raise CxrbenchError(f"memorization: synthetic rows {s.shape[1:]} and training rows {t.shape[1:]} differ")
    n = len(t)
    if n < 2 or len(s) < 1:
        raise CxrbenchError(f"memorization: needs >= 2 training and >= 1 synthetic rows, got {n} and {len(s)}")
    use_flips = bool(flips and t.ndim == 4)
    ref = t.reshape(n, -1)
    if use_flips:  # rows n..2n-1 are the mirrored images; index % n maps back to the source
        ref = np.concatenate([ref, t[..., ::-1].reshape(n, -1)])
    d_syn, j = _nearest(s.reshape(len(s), -1), ref, None, chunk)
    own = np.arange(n)[:, None]
    d_train, _ = _nearest(ref[:n], ref, np.hstack([own, own + n]) if use_flips else own, chunk)

    threshold = float(np.quantile(d_train, quantile))
    med, med_train = float(np.median(d_syn)), float(np.median(d_train))
    summary = {
        "median_nn": med,
        "median_nn_train": med_train,
        "relative_median": med / med_train if med_train > 0 else float("nan"),
        "near_copy_fraction": float(np.mean(d_syn <= threshold)),
        "near_copy_threshold": threshold,
        "quantile": quantile,
        "n": int(len(s)),
        "flips": use_flips,
    }
    return summary, NearestTrain(distances=d_syn, nn_index=j % n, flipped=j >= n)


def image_memorization(syn_images, train_images, *, flips: bool = True, quantile: float = 0.01, chunk: int = 1024):
    """:func:`memorization` on (N, C, H, W) images (uint8 or float; compared as float64 pixel
    values), mirrored training images included when ``flips``. Same ``(summary, details)``."""
    s, t = as_float(syn_images), as_float(train_images)
    if s.ndim != 4 or t.ndim != 4:
        raise CxrbenchError(f"image_memorization: expects (N, C, H, W) images, got {s.shape} and {t.shape}")
    return memorization(s, t, flips=flips, quantile=quantile, chunk=chunk)


def _gray_u8(img: np.ndarray) -> np.ndarray:
    """First channel of one (C, H, W) image as uint8 (float values rounded and clipped)."""
    x = np.asarray(img)[0]
    return x if x.dtype == np.uint8 else np.clip(np.rint(x), 0, 255).astype(np.uint8)


def save_worst_pairs(syn_images, train_images, nn_index, distances, path, *, n: int = 8,
                     flipped=None, gap: int = 2) -> np.ndarray:
    """Write a grayscale PNG of the ``n`` closest synthetic/training pairs, closest first.

    One pair per row: synthetic image left, its nearest training image right (mirrored where
    ``flipped`` says the match was the mirror image, so the two look alike), ``gap`` white
    pixels between images and rows. Images are (N, C, H, W), the first channel is shown.
    Returns the indices of the synthetic images shown, in order.
    """
    from PIL import Image

    syn = syn_images.detach().cpu().numpy() if hasattr(syn_images, "detach") else np.asarray(syn_images)
    train = train_images.detach().cpu().numpy() if hasattr(train_images, "detach") else np.asarray(train_images)
    nn_index, distances = np.asarray(nn_index), np.asarray(distances, dtype=np.float64)
    order = np.argsort(distances, kind="stable")[:n]
    if len(order) == 0:
        raise CxrbenchError("save_worst_pairs: no synthetic images to show")
    h, w = syn.shape[-2:]
    canvas = np.full((len(order) * (h + gap) - gap, 2 * w + gap), 255, dtype=np.uint8)
    for row, i in enumerate(order):
        real = _gray_u8(train[nn_index[i]])
        if flipped is not None and np.asarray(flipped)[i]:
            real = real[:, ::-1]
        y = row * (h + gap)
        canvas[y : y + h, :w] = _gray_u8(syn[i])
        canvas[y : y + h, w + gap :] = real
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return order
