"""``cxrbench pack`` and ``cxrbench unpack``: a fitted generator out of one cache and into another.

* ``cxrbench pack GENERATOR --spec SPEC [--seed S] [--real-data SIZE] --out DIR|FILE.tar``: the fit
  that the spec's generator row (by label, else plugin name) gets on the spec's training data is
  found in the cache - the same fit key a run computes (generation.py) - and written as a pack
  (packs.py) with its generator card (cards.py). The card lists the rows of the spec's run folder
  (``--run``, default ``runs/<spec name>``) whose cells used the fit. A row with several fits in the
  spec (``fit_seed: per-seed``, a real-data axis, a sweep of a training option) needs ``--seed`` /
  ``--real-data`` to name one. Nothing is fitted: a fit not in the cache is an error.
* ``cxrbench unpack PACK [--cache-dir DIR]``: check the pack and install its fit into the cache;
  a run whose spec asks for exactly that fit then reuses it. A spec row's ``fit_from: PACK`` does
  the same and also checks the pack against the row (fit_from.py).

This module imports nothing heavy at import time (``cxrbench --help`` stays light).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from cxrbench.errors import CxrbenchError

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``pack`` and ``unpack`` subcommands (added to the CLI by cxrbench.cli)."""
    from cxrbench.cli import _real_data_size

    pack = sub.add_parser("pack", help="write a fitted generator from the cache as a self-describing folder or .tar "
                                       "(safetensors weights, fit key and what it hashes, cost, generator card)")
    pack.add_argument("generator", metavar="GENERATOR",
                      help="the spec's generator row: its label, else its plugin name")
    pack.add_argument("--spec", required=True, help="the spec the generator was fitted under (its data and options)")
    pack.add_argument("--out", required=True, metavar="DIR|FILE.tar", help="a new (or empty) folder, or a .tar file")
    pack.add_argument("--seed", type=int, help="the fit of this seed (fit_seed: per-seed rows)")
    pack.add_argument("--real-data", type=_real_data_size, metavar="SIZE",
                      help="the fit of this real-data size (specs with a real_data axis)")
    pack.add_argument("--dataset", help="the training dataset (grid specs with several)")
    pack.add_argument("--cache-dir", help="the cache holding the fit (default: $CXRBENCH_CACHE or ~/.cache/cxrbench)")
    pack.add_argument("--data-root", help="folder with the dataset (default: $CXRBENCH_DATA_ROOT, then the spec)")
    pack.add_argument("--run", metavar="DIR",
                      help="run folder whose records the card lists (default: runs/<spec name>)")
    unpack = sub.add_parser("unpack", help="check a pack (checksums, format) and install its fit into the cache, so "
                                           "runs reuse it as if fitted here")
    unpack.add_argument("pack", metavar="PACK", help="a pack folder or .tar file written by `cxrbench pack`")
    unpack.add_argument("--cache-dir", help="the cache to install into (default: $CXRBENCH_CACHE or ~/.cache/cxrbench)")


def cmd_pack(args) -> int:
    from cxrbench.packs import write_pack

    found = find_fit(args)
    out = write_pack(found["folder"], found["meta"], found["card"], Path(args.out))
    meta = found["meta"]
    size = sum(p.stat().st_size for p in ([out] if out.is_file() else out.rglob("*")) if p.is_file())
    print(f"packed {meta['label']} (fit {meta['fit_key']}, {meta['training_data']['fitted_on']}, "
          f"{len(found['records'])} record(s) on its card) -> {out} ({size / 1e6:.1f} MB)")
    return 0


def cmd_unpack(args) -> int:
    from cxrbench.packs import unpack
    from cxrbench.runner import _default_cache_root

    cache = Path(args.cache_dir) if args.cache_dir else _default_cache_root()
    target, meta = unpack(Path(args.pack), cache)
    print(f"installed {meta['label']} (plugin {meta['generator']} {meta['hashed']['version']}, fit {meta['fit_key']}, "
          f"fitted on {meta['training_data']['fitted_on']}) -> {target}")
    _say_if_unusable(meta)
    return 0


def _say_if_unusable(meta: dict) -> None:
    """A pack of another plugin version or source installs fine but no run here computes its key: say so."""
    from cxrbench.identity import source_fingerprint
    from cxrbench.registry import get_plugins

    plugins = get_plugins()
    entry = plugins.generators.get(meta["generator"]) if meta["generator"] in plugins.generators else None
    if entry is None:
        logger.warning(f"no generator plugin {meta['generator']!r} here: install it to use this fit")
        return
    here = {"version": entry.version,
            "source": source_fingerprint(plugins.load("generator", meta["generator"]).__module__)}
    for field, value in here.items():
        if meta["hashed"].get(field) != value:
            logger.warning(f"this cxrbench's {meta['generator']} {field} is {value}, the pack's "
                           f"{meta['hashed'].get(field)}: runs here compute another fit key and will not reuse it")


COMMANDS = {"pack": cmd_pack, "unpack": cmd_unpack}


# --------------------------------------------------------------------------- finding the fit


def find_fit(args) -> dict:
    """The cache entry, pack document, card and records of the fit ``args`` names (see the module doc)."""
    from cxrbench.cells import expand_cells
    from cxrbench.config import load_spec
    from cxrbench.spec_validation import validate_plugins
    from cxrbench.device import resolve_device
    from cxrbench.grid import is_grid
    from cxrbench.plan import unfitted_generator
    from cxrbench.runner import Runner, _default_cache_root

    spec = load_spec(args.spec)
    validate_plugins(spec, args.spec)
    part = _slice(spec, args.dataset, args.spec) if is_grid(spec) else spec
    run_dir = Path(args.run) if args.run else Path("runs") / spec.name
    runner = Runner(part, out=run_dir, data_root=args.data_root, cache_dir=Path(args.cache_dir) if args.cache_dir
                    else None, spec_source=args.spec, preflight=False)
    runner.device = resolve_device(runner.device_request)
    runner.cache_root = runner.cache_dir or _default_cache_root()
    users = [c for c in expand_cells(part) if c.generator is not None and c.protocol.uses_generator
             and not c.auto_baseline]
    rows = [c for c in users if c.generator.label == args.generator] or \
           [c for c in users if c.generator.name == args.generator]
    if not rows:
        labels = sorted({c.generator.label for c in users})
        raise CxrbenchError(f"pack: {args.spec} has no generator row {args.generator!r}; its rows: "
                            f"{', '.join(labels) or 'none'}")
    rows = [c for c in rows if (args.seed is None or c.seed == args.seed)
            and (args.real_data is None or c.real_data == args.real_data)]
    fits = {}
    for cell in rows:
        source = runner.training_source(cell.real_data)
        generator, key = unfitted_generator(runner, cell.generator, source)
        fits.setdefault(key, (cell, generator, source))
    if len(fits) != 1:
        what = "none matches" if not fits else f"{len(fits)} fits match"
        raise CxrbenchError(f"pack: row {args.generator!r}: {what} --seed {args.seed} --real-data {args.real_data}; "
                            "name one fit with --seed (fit_seed: per-seed) and --real-data (a real_data axis), or a "
                            "row label of one sweep value")
    key, (cell, generator, source) = next(iter(fits.items()))
    if not type(generator).capabilities.needs_training:
        raise CxrbenchError(f"pack: {cell.generator.label!r} ({cell.generator.name}) is not trained: there is no fit "
                            "to pack")
    return _describe(runner, cell, generator, source, key, run_dir)


def _slice(spec, dataset: str | None, source: str):
    from cxrbench.grid import grid_slices

    slices = grid_slices(spec)
    names = sorted({s.dataset.name for s in slices})
    chosen = [s for s in slices if s.dataset.name == (dataset or names[0])]
    if (len(names) > 1 and dataset is None) or not chosen:
        raise CxrbenchError(f"pack: {source} trains on {', '.join(names)}: name one with --dataset")
    return chosen[0]


def _fit_folder(cache_root: Path, name: str, key: str) -> Path:
    """The finished cache entry of fit ``key``: its own folder, or the truncated fit it points to."""
    from cxrbench.generation import DONE_FILE, TRUNCATED_FILE, fit_dir

    folder = fit_dir(cache_root, name, key)
    if (folder / DONE_FILE).is_file():
        return folder
    pointer = folder / TRUNCATED_FILE
    if pointer.is_file():
        return Path(json.loads(pointer.read_text())["dir"])
    raise CxrbenchError(f"pack: no fit {name}-{key} in the cache {cache_root}: run the spec first (cxrbench run --spec "
                        "...), with the same --cache-dir")


def _describe(runner, cell, generator, source, key: str, run_dir: Path) -> dict:
    """The pack document's fields, the card and the records of the fit."""
    from cxrbench import __version__, cards
    from cxrbench.generation import DONE_FILE, fit_key_fields, jsonable
    from cxrbench.hashing import content_key
    from cxrbench.quality.cost import _hours
    from cxrbench.store import code_fingerprint, git_revision

    v, spec = cell.generator, runner.spec
    entry = runner.plugins.generators.get(v.name)
    folder = _fit_folder(runner.cache_root, v.name, key)
    done = json.loads((folder / DONE_FILE).read_text())
    hashed = fit_key_fields(generator, name=v.name, version=entry.version, train=source.train,
                            fingerprint=source.fingerprint, size=spec.size)
    real = source.info.get("real_data") if cell.real_data is not None else None
    fitted_on = f"{spec.dataset.name}:train" + (f" (real_data {real['size_text']}: {len(source.train)} images)"
                                                if real else "")
    stats = done.get("fit_stats") or {}
    meta = {
        "generator": v.name, "label": v.label, "fit_key": done.get("fit_key", key), "hashed": hashed,
        "training_data": {"dataset": spec.dataset.name, "fitted_on": fitted_on, "fingerprint": source.fingerprint,
                          "train_keys": content_key(source.train.keys), "images": len(source.train),
                          "real_data": cell.real_data, "image_size": spec.size},
        "code": {"cxrbench": __version__, "code_fingerprint": code_fingerprint(), "git_revision": git_revision(),
                 "generator_source": hashed["source"], "sampling_version": str(type(generator).sampling_version)},
        "cost": {"fit_seconds": stats.get("train_seconds"), "fit_device_hours": _hours(stats.get("train_seconds")),
                 "fit_peak_memory_mb": stats.get("peak_memory_mb"), "device": stats.get("device"),
                 "fit_s": done.get("fit_s")},
    }
    records = _records_of(run_dir, meta["fit_key"])
    if records:
        from cxrbench.leaderboard.build import build_rows

        facts = cards.fit_facts([rec for _, rec in records])
        used = cards.used_by(build_rows(records), {rel for rel, _ in records})
    else:  # no run folder at hand: the card says what the pack itself knows
        pseudo = {"status": "ok", "spec": {"size": spec.size}, "cell": {"real_data": cell.real_data},
                  "dataset": {"name": spec.dataset.name, "fingerprint": source.fingerprint, "info": source.info},
                  **({"real_data": real} if real else {}),
                  "versions": {"cxrbench": __version__, "code_fingerprint": meta["code"]["code_fingerprint"]},
                  "git_revision": meta["code"]["git_revision"],
                  "generator": {"name": v.name, "label": v.label, "version": entry.version,
                                "sampling_version": meta["code"]["sampling_version"], "fit_key": meta["fit_key"],
                                "fit_seed": hashed["fit_seed"], "truncated": bool(done.get("truncated")),
                                "capabilities": dataclasses.asdict(type(generator).capabilities),
                                "options": jsonable(generator.effective_options()), "fit_stats": stats,
                                "fitted_on": fitted_on, "cost": meta["cost"]}}
        facts, used = cards.fit_facts([pseudo]), []
    return {"folder": folder, "meta": meta, "card": cards.render_card(facts, used), "records": records}


def _records_of(run_dir: Path, fit_key: str) -> list[tuple[str, dict]]:
    """(relative path, record) of the run folder's verified ok records made with fit ``fit_key``."""
    from cxrbench.store import BadRecord, read_record

    out = []
    for path in sorted((Path(run_dir) / "cells").glob("*.json")):
        try:
            rec = read_record(path)
        except BadRecord:
            continue  # a damaged or foreign file: never a source of a card
        if rec.get("status") == "ok" and (rec.get("generator") or {}).get("fit_key") == fit_key:
            out.append((f"{Path(run_dir).name}/cells/{path.name}", rec))
    return out
