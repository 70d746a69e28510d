"""Sampling speed of the diffusion generators (issue #15, perf item a).

    python benchmarks/perf/sampling_speed.py [--generators ddpm ldm] [--sizes 64 256]
        [--samplers ddim:50 dpmsolver++:20] [--cfg 0 4] [--n 8] [--preset small] [--device auto]

For each generator, output size, sampler:steps and CFG scale: images/s of ``generate()`` on a
generator fitted for one step on the embedded phantom set (sampling cost does not depend on how
well the weights were trained). CFG 0 or 1 runs one network pass per step, any other scale two
(conditional and unconditional, batched together). The target on one H100 is DDPM at 256 px
>= 50 images/s with DPM-Solver-20 (the Khosravi study: 6.84 s per image on an A100, DDIM-200).
Prints a table and writes JSON with the machine; CI-safe: --sizes 16 --n 4 --preset tiny.
"""

import argparse
import time

from machine import machine_info, write_result


def fitted(name: str, preset: str, size: int, device: str):
    from cxrbench.config import plugin_options
    from cxrbench.datasets import load_dataset
    from cxrbench.registry import get_plugins

    plugins = get_plugins()
    cls = plugins.load("generator", name)
    options = {"preset": preset, "resolution": size, "train_steps": 1}
    if name == "ldm":
        options["vae_steps"] = 1
    gen = cls(plugin_options(cls, options, "options", "sampling_speed"), size=size, device=device)
    phantom = plugins.load("dataset", "phantom")
    data = load_dataset(phantom(None, plugin_options(phantom, {"n_train": 64, "n_val": 8, "n_test": 8}, "o", "s")),
                        size=size, progress=False)
    gen.fit(data.train, progress=False)
    return gen, data.train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generators", nargs="+", default=["ddpm", "ldm"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 256])
    ap.add_argument("--samplers", nargs="+", default=["ddim:50", "dpmsolver++:20"])
    ap.add_argument("--cfg", nargs="+", type=float, default=[0.0, 4.0])
    ap.add_argument("--n", type=int, default=8, help="images per measurement (after one warm-up batch)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="benchmarks/perf/results/sampling_speed.json")
    a = ap.parse_args()

    import torch

    from cxrbench.device import resolve_device
    from cxrbench.generation import condition_for

    device = resolve_device(a.device)
    rows = []
    for name in a.generators:
        for size in a.sizes:
            gen, train = fitted(name, a.preset, size, device)
            caps = type(gen).capabilities
            conds = [condition_for(train, i % len(train), 0, 0, caps) for i in range(a.n)]
            for spec in a.samplers:
                sampler, steps = spec.split(":")
                for scale in a.cfg:
                    gen.cfg.update(sampler=sampler, sampling_steps=int(steps), cfg_scale=scale,
                                   gen_batch_size=max(1, a.n))
                    gen.generate(conds[: min(2, a.n)])  # warm-up (allocations, kernels)
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    gen.generate(conds)
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    secs = time.perf_counter() - start
                    row = {"generator": name, "preset": a.preset, "size": size, "sampler": sampler, "steps": int(steps),
                           "cfg_scale": scale, "n": a.n, "images_per_s": round(a.n / secs, 3),
                           "seconds_per_image": round(secs / a.n, 4)}
                    rows.append(row)
                    print(f"{name:5s} {size:4d} px  {sampler:12s} {steps:>4s} steps  cfg {scale:<4g} "
                          f"{row['images_per_s']:9.2f} img/s  {row['seconds_per_image']:8.3f} s/img")
    write_result(a.out, {"benchmark": "sampling_speed", "machine": machine_info(device), "rows": rows,
                         "target": "DDPM 256 px >= 50 img/s with DPM-Solver-20 on one H100"})


if __name__ == "__main__":
    main()
