"""Contact sheet of a fitted generator at its native resolution, beside real images of the same labels.

A cell's contact sheet shows its images at the cell's size (32 px in the Kermany benchmarks);
this one shows what the generator itself draws (64 px for ldm small), each image with the mask
it was conditioned on (generators that take masks), and a row of real training images per
label for comparison. The fit is read from the cache (``cxrbench run --dry-run`` lists it):

    python benchmarks/native_sheet.py --fit $CXRBENCH_CACHE/generators/ldm-<key> --generator ldm \\
        --dataset kermany --data-root ../shared/data --out ldm-native.png [--option sampler=sde-dpmsolver++]

Nothing is trained: the command fails in one line when the fit folder holds no finished fit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", required=True, help="a fitted-generator folder of the cache")
    p.add_argument("--generator", required=True, help="the generator plugin that wrote it")
    p.add_argument("--dataset", default="phantom", help="dataset plugin for the real row (default phantom)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--per-label", type=int, default=6, help="images per label value (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a sampling option (YAML value), e.g. sampler=sde-dpmsolver++ (repeatable)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch

    from cxrbench.contracts import Condition
    from cxrbench.datasets import load_dataset, resolve_data_root
    from cxrbench.errors import CxrbenchError
    from cxrbench.kit import resize_uint8
    from cxrbench.registry import get_plugins
    from cxrbench.sheets import contact_sheet

    try:
        plugins = get_plugins()
        if not (Path(args.fit) / "config.json").is_file():
            raise CxrbenchError(f"{args.fit}: no config.json, not a finished fit (run the benchmark first)")
        from cxrbench.checking import parse_options
        from cxrbench.config import plugin_options

        cls = plugins.load("generator", args.generator)
        options = parse_options(args.option)
        gen = cls(plugin_options(cls, options, "--option", "native_sheet")) if options else cls()
        gen.load(Path(args.fit))
        gen.size = size = gen.native_size
        ds = plugins.load("dataset", args.dataset)(resolve_data_root(args.data_root, None))
        train = load_dataset(ds, size=size, progress=False).train
    except CxrbenchError as exc:
        print(f"native_sheet: {exc}", file=sys.stderr)
        return 2
    names = list(gen.encoder.label_names)
    conds = [Condition(labels=(float(y),) + (0.0,) * (len(names) - 1), seed=args.seed * 1000 + i)
             for y in (0, 1) for i in range(args.per_label)]
    with torch.no_grad():
        images = gen.generate(conds)
    masks = gen.conditioning_masks(conds, size) if hasattr(gen, "conditioning_masks") else None
    out = contact_sheet(images, conds, names, Path(args.out), per_row=2 * args.per_label if masks is not None else args.per_label,
                        masks=masks)
    print(f"{out}: {len(conds)} {args.generator} images at {size} px", file=sys.stderr)
    real_conds, real = [], []
    for y in (0, 1):
        idx = (train.labels[:, 0] == y).nonzero().flatten()[: args.per_label]
        real.append(resize_uint8(train.images[idx], size))
        real_conds += [Condition(labels=(float(y),) + (0.0,) * (len(names) - 1), seed=int(i)) for i in idx]
    ref = contact_sheet(torch.cat(real), real_conds, names, Path(args.out).with_name(Path(args.out).stem + "-real.png"),
                        per_row=args.per_label)
    print(f"{ref}: real {args.dataset} training images of the same labels", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
