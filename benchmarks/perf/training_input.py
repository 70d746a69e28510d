"""Classifier training speed from the preprocessed cache against the in-memory ceiling (issue
#15, perf item b).

    python benchmarks/perf/training_input.py [--dataset kermany --data-root DIR] [--size 32]
        [--classifier resnet18] [--steps 60] [--batch 64] [--device auto]

(1) the pipeline: the dataset decoded once into the harness's preprocessed cache (memory-mapped
uint8), then ``train_classifier`` exactly as a cell runs it (batches gathered by index, moved
to the device, augmented there); (2) the ceiling: the same loop over random uint8 tensors of the
same shape already in memory. Target (CPU and GPU): (1) >= 80% of (2). Without a data root it
uses the embedded phantom set. Prints a table and writes JSON with the machine.
"""

import argparse
import os
import shutil
import tempfile
import time

from machine import machine_info, write_result


def images_per_s(images, labels, classifier: str, size: int, steps: int, batch: int, device: str) -> float:
    import torch

    from cxrbench.config import plugin_options
    from cxrbench.registry import get_plugins
    from cxrbench.training import TrainRecipe, build_seeded, train_classifier

    cls = get_plugins().load("classifier", classifier)
    clf = cls(plugin_options(cls, {}, "o", "perf"))
    recipe = TrainRecipe(epochs=1000, batch_size=batch, max_steps=steps, selection="last", ema_decay=None,
                         augment=("hflip", "affine"))
    build = lambda: build_seeded(clf, labels.shape[1], size, False, seed=0)  # noqa: E731
    train_classifier(build(), images, labels, None, None, recipe=TrainRecipe(epochs=1, batch_size=batch, max_steps=3,
                     selection="last", ema_decay=None), device=device, seed=0, progress=False)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    result = train_classifier(build(), images, labels, None, None, recipe=recipe, device=device, seed=0, progress=False)
    return result.images_seen / result.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=None, help="default: kermany when CXRBENCH_DATA_ROOT holds it, else phantom")
    ap.add_argument("--data-root", default=os.environ.get("CXRBENCH_DATA_ROOT"))
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classifier", default="resnet18")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cache-dir", default=None, help="default: a fresh temporary folder")
    ap.add_argument("--out", default="benchmarks/perf/results/training_input.json")
    a = ap.parse_args()

    import torch

    from cxrbench.config import plugin_options
    from cxrbench.datasets import load_dataset, resolve_data_root
    from cxrbench.device import resolve_device
    from cxrbench.registry import get_plugins

    device = resolve_device(a.device)
    root = resolve_data_root(a.data_root, None)
    name = a.dataset or ("kermany" if root is not None and (root / "kermany").is_dir() else "phantom")
    cls = get_plugins().load("dataset", name)
    opts = {} if name != "phantom" else {"n_train": 2000, "n_val": 50, "n_test": 50}
    ds_root = (root / getattr(cls, "default_subdir", "")) if name != "phantom" and root is not None else root
    cache = a.cache_dir or tempfile.mkdtemp(prefix="cxrbench-perf-")
    start = time.perf_counter()
    data = load_dataset(cls(ds_root, plugin_options(cls, opts, "o", "perf")), size=a.size, cache_dir=cache, progress=False)
    decode_s = time.perf_counter() - start
    train = data.train
    cached = images_per_s(train.images, train.labels, a.classifier, a.size, a.steps, a.batch, device)
    memory = images_per_s(torch.randint(0, 256, tuple(train.images.shape), dtype=torch.uint8),
                          torch.as_tensor(train.labels, dtype=torch.float32).clone(), a.classifier, a.size, a.steps,
                          a.batch, device)
    ratio = cached / memory
    print(f"{name} train split {tuple(train.images.shape)} decoded in {decode_s:.1f} s ({device})")
    print(f"{a.classifier} {a.size} px, {a.steps} steps of {a.batch}: from the cache {cached:8.1f} img/s, "
          f"in-memory ceiling {memory:8.1f} img/s, ratio {ratio:.2f} (target >= 0.80)")
    write_result(a.out, {"benchmark": "training_input", "machine": machine_info(device), "dataset": name,
                         "train_images": int(train.images.shape[0]), "size": a.size, "classifier": a.classifier,
                         "steps": a.steps, "batch": a.batch, "decode_s": round(decode_s, 2),
                         "from_cache_img_s": round(cached, 1), "in_memory_img_s": round(memory, 1),
                         "ratio": round(ratio, 3), "target_ratio": 0.8})
    if not a.cache_dir:  # a cache of our own making (the "from the cache" images were read from it)
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
