"""Speed of the quality report (speed goals live in benchmarks, not in timed unit tests).

    python benchmarks/perf/quality_speed.py [--n 5000] [--size 32] [--threads 1]
Goal (issue #13): every metric of a 5,000-image synthetic set at 32 px in under 2 minutes on a
2-core CPU, once the reference CNN is trained (it is trained once per dataset and size, cached,
and timed apart here). Real set: 5,000 phantom radiographs; "synthetic" set: 5,000 others.
"""

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cxrbench.config import QualitySettings
from cxrbench.contracts import Split
from cxrbench.plugins.datasets.phantom import PhantomDataset, PhantomOptions
from cxrbench.quality.synthetic import synthetic_quality


def phantom_split(n: int, size: int, seed: int) -> Split:
    ds = PhantomDataset(None, PhantomOptions(n_train=n, n_val=2, n_test=2, render_size=size, seed=seed))
    recs = [r for r in ds.records() if r.split == "train"]
    images = torch.from_numpy(np.stack([ds.read_image(r) for r in recs]))[:, None]
    labels = torch.tensor([r.labels for r in recs], dtype=torch.float32)
    return Split(name="train", images=images, labels=labels, label_names=ds.label_names,
                 patient_ids=[r.patient_id for r in recs], keys=[r.key for r in recs])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    real, syn = phantom_split(a.n, a.size, 0), phantom_split(a.n, a.size, 1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QualitySettings(features=["domain"])
        start = time.perf_counter()
        from cxrbench.quality.features import reference_classifier

        reference_classifier(real, cache_dir=Path(tmp), progress=False)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        report = synthetic_quality(syn.images, syn.labels, real, settings=settings, cache_dir=Path(tmp),
                                   out_dir=Path(tmp) / "cell", seed=0, progress=False)
        total = time.perf_counter() - start
    machine = f"{platform.processor() or platform.machine()}, {a.threads} torch thread(s)"
    print(f"reference CNN training (once per dataset and size, cached): {train_s:.1f} s")
    print(f"quality report of {a.n} images at {a.size} px vs {a.n} real: {total:.1f} s  [{machine}]  "
          f"goal < 120 s: {'met' if total < 120 else 'MISSED'}")
    print(f"  domain FD {report['features']['domain']['fd']:.3f}, precision "
          f"{report['features']['domain']['prdc']['precision']:.3f}, near copies "
          f"{report['memorization']['pixels']['near_copy_fraction']:.3f}")


if __name__ == "__main__":
    main()
