"""Full-size sanity run: 5,000 x 128 features and 5,000 x 1,024 pixels (32 px images).

Prints how long each metric takes (``pytest -s`` shows it); asserts only what must hold at this
size, never a time, so a slow shared runner cannot fail it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from cxrbench.quality import fd_ratio, frechet_distance, image_memorization, kid, prdc
from cxrbench.testing import make_toy_images


@pytest.mark.slow
def test_metrics_at_full_size():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(5000, 128)), rng.normal(size=(5000, 128)) + 0.05
    times = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t
        return out

    p = timed("prdc k=5", lambda: prdc(real, fake, k=5))
    kid_mean, _ = timed("kid 100 x 1000", lambda: kid(real, fake))
    fd = timed("frechet_distance", lambda: frechet_distance(real, fake))  # includes importing clean-fid
    ratio = timed("fd_ratio", lambda: fd_ratio(real, fake))
    assert 0.5 < p["precision"] <= 1 and 0.5 < p["coverage"] <= 1
    assert kid_mean > 0 and fd > 0 and 0 < ratio["ratio"] < 1.5

    train = make_toy_images(rng.integers(0, 2, 5000).tolist(), 32, seed=1)
    syn = make_toy_images(rng.integers(0, 2, 5000).tolist(), 32, seed=2)
    src = rng.choice(5000, 20, replace=False)
    syn[:10], syn[10:20] = train[src[:10]], train[src[10:]].flip(-1)
    summary, details = timed("image_memorization (flips)", lambda: image_memorization(syn, train))
    np.testing.assert_array_equal(details.nn_index[:20], src)
    assert (details.distances[:20] <= summary["near_copy_threshold"]).all()
    assert summary["near_copy_fraction"] < 0.03
    print("\n" + "\n".join(f"  {k:28s} {v:6.2f} s" for k, v in times.items()),
          f"\n  torch threads {torch.get_num_threads()}")
