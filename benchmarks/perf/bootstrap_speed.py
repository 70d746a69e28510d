"""Speed of the bootstrap CI (speed goals live in benchmarks, not in timed unit tests).

    python benchmarks/perf/bootstrap_speed.py
Goal: 1,000 resamples of AUROC on 624 images (the Kermany test set) well under 1 s.
"""

import platform
import timeit

import numpy as np

from cxrbench.evaluation import auroc, bootstrap_ci

rng = np.random.default_rng(0)
y = (rng.random(624) < 0.625).astype(float)
s = rng.normal(size=624) + y
groups = rng.integers(0, 427, size=624)
for name, kw in [("per image", {}), ("per patient", {"groups": groups})]:
    best = min(timeit.repeat(lambda: bootstrap_ci(auroc, y, s, n_resamples=1000, **kw), number=1, repeat=5))
    print(f"bootstrap_ci(auroc, n=624, 1000 resamples, {name}): {best:.3f} s  [{platform.processor() or platform.machine()}]")
