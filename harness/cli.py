"""The `cxrbench` command line.

`--help`, `plugins` and `validate` never import torch, diffusers or timm (a test checks it):
heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cxrbench import __version__, citation, pack_cli
from cxrbench.errors import CxrbenchError
from cxrbench.logs import log_to_stderr, run_log, verbosity_level
from cxrbench.results_cli import RESULTS_COMMANDS, add_results_commands, add_show_format
from cxrbench.run_table import print_table

logger = logging.getLogger(__name__)

# Defaults of a run given by flags alone (no --spec): small enough for a CPU, offline.
DEFAULT_DATASET = "phantom"
DEFAULT_SIZE = 32
DEFAULT_CLASSIFIER = "tiny-cnn"
DEFAULT_SCHEDULE = "quick"
DEFAULT_OUT = "runs"


#: exit statuses scripts can trust (every command)
EXIT_OK, EXIT_CELLS_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUS_HELP = """exit status:
  0    every cell ok (or the command did what it was asked)
  1    some cell failed: their count is printed, each is recorded with its error and re-run next time
  2    usage or configuration error (bad flag, spec, plugin, path or data): nothing was run
  130  interrupted (Ctrl-C): finished cells are stored; the same command resumes"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrbench",
        description="Benchmark synthetic chest X-ray generators by what they do for a classifier on real patients.",
        epilog=EXIT_STATUS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cxrbench {__version__}")
    parser.add_argument("--disable-plugin", action="append", metavar="NAME",
                        help="skip a third-party plugin distribution or entry point (repeatable), "
                             "e.g. one that fails to import; same as $CXRBENCH_DISABLE_PLUGINS")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a benchmark (a spec file and/or flags) and store one record per cell",
                         epilog=EXIT_STATUS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_run_arguments(run)
    quality = sub.add_parser("quality", help="fidelity / diversity / memorization / label-fidelity report of each "
                                              "generator's synthetic set (ratio 1), without training a classifier")
    _add_run_arguments(quality)

    plugins = sub.add_parser("plugins", help="list every plugin: name, kind, version, package; with a NAME, its "
                                             "versions, presets and every option (type, default, what it does)")
    plugins.add_argument("name", nargs="?", help="one plugin: its versions, presets and options")
    plugins.add_argument("--kind", choices=["generator", "postprocessor", "classifier", "dataset", "segmenter"])

    validate = sub.add_parser("validate", help="check a spec strictly (keys, types, plugin names, options)")
    validate.add_argument("spec")
    validate.add_argument("--data-root", help="also check that every dataset of the spec (training and external) "
                                              "is there and lists its images (nothing is decoded)")

    check = sub.add_parser("check", help="run a plugin's contract checks on toy data (a dataset: on its files), "
                                          "one PASS/FAIL/SKIP line each; exit 1 on a failure")
    check.add_argument("name", help="the plugin's name (see `cxrbench plugins`)")
    check.add_argument("--kind", choices=["generator", "postprocessor", "classifier", "dataset", "segmenter"],
                       help="needed only when two kinds share the name")
    check.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="a plugin option (repeatable; values read as YAML); generators with a preset "
                            "option get preset=tiny unless given")
    check.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"image size in px (default {DEFAULT_SIZE})")
    check.add_argument("--data-root", help="a dataset's folder (default: $CXRBENCH_DATA_ROOT)")
    check.add_argument("--device", default="cpu", help="device of generators and post-processors (default cpu)")

    ray_group = run.add_argument_group("distributed execution (pip install 'cxrbench[ray]')")
    ray_group.add_argument("--executor", choices=["local", "ray"], default="local",
                           help="local: cells in this process (default); ray: fits, generation shards and cells as "
                                "Ray tasks (records identical except timing and host)")
    ray_group.add_argument("--address", help="Ray cluster to join (host:port or 'auto'; default: start a local one "
                                             "for this run); its nodes must see --cache-dir and --out")
    ray_group.add_argument("--task-cpus", type=float, default=1.0, help="CPUs each Ray task requests (default 1)")
    ray_group.add_argument("--task-gpus", type=float, default=0.0,
                           help="GPUs each Ray task requests (default: 1 when the run's device is CUDA, else 0)")
    ray_group.add_argument("--max-retries", type=int, default=2,
                           help="retries of a failed or lost Ray task before its cell is recorded as failed")
    ray_group.add_argument("--workers", type=int, help="CPUs of the local Ray cluster started for this run "
                                                       "(default: all); with --task-cpus 1, the parallel tasks")

    show = sub.add_parser("show", help="print the results table of a run directory")
    show.add_argument("run_dir")
    add_show_format(show)  # --format table|json|csv|markdown (results_cli.py)
    add_results_commands(sub)  # export, rescore (results_cli.py)

    board = sub.add_parser("leaderboard", help="tables (Markdown, CSV, LaTeX), a static HTML page and plots of one or "
                                                "more run directories, one row per configuration over seeds")
    board.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", help="a run directory (the --out of a run)")
    board.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty or an earlier leaderboard)")
    board.add_argument("--schema", metavar="FILE", help="display schema YAML (default: the one shipped, "
                                                        "cxrbench/leaderboard/default-schema.yaml)")
    citation.add_parser(sub)
    pack_cli.add_parser(sub)  # pack, unpack
    _add_verbosity_flags(parser)
    for command in {id(p): p for p in sub.choices.values()}.values():  # also after it: `cxrbench run ... -v`
        _add_verbosity_flags(command, after_command=True)
    return parser


def _add_verbosity_flags(p: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """-q / -v, accepted before and after the command. After it, an absent flag must not reset
    one given before it (argparse lets a subcommand's default overwrite the main parser's value)."""
    unset = argparse.SUPPRESS if after_command else False
    p.add_argument("-q", "--quiet", action="store_true", default=unset,
                   help="only warnings and errors on stderr (progress bars: --no-progress)")
    p.add_argument("-v", "--verbose", action="store_true", default=unset,
                   help="also debug detail on stderr (cache keys, record paths, timings)")



def _generator_rows(rows: list, wanted: str) -> list:
    """`--generator X`: the spec's row labelled X (its options, chain and label kept), else its rows
    of plugin X, else plugin X with its default options: picking one row of a spec runs that row."""
    from cxrbench.config import GeneratorRef  # lazily, as the other spec imports: `--help` stays light

    return ([r for r in rows if r.label == wanted] or [r for r in rows if r.name == wanted]
            or [GeneratorRef(name=wanted)])


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `run`, shared by `quality` (the same spec and overrides)."""
    p.add_argument("--spec", help="benchmark spec (YAML, see benchmarks/); flags below override it")
    p.add_argument("--generator", action="append",
                   help="generator (repeatable): a row of the spec by label, else its rows of that plugin name, "
                        "else that plugin with its default options; default: the spec's rows, else 'real'")
    p.add_argument("--protocol", action="append",
                     help="protocol name, e.g. synthetic-only or supplemented.v1 (repeatable); default: the spec's")
    p.add_argument("--ratio", action="append", type=float, help="synthetic-to-real ratio r (repeatable: a sweep)")
    p.add_argument("--schedule", help="classifier schedule of the protocol: quick | standard | paper (epoch-defined), "
                                      "budget-quick | budget-standard | budget-paper (fixed optimizer steps)")
    p.add_argument("--real-data", action="append", type=_real_data_size, metavar="SIZE",
                   help="real training data size (repeatable: the real-data axis): a fraction of the training split "
                        "(0.05, 1.0) or an image count (200); needs a budget-* schedule")
    p.add_argument("--dataset", action="append",
                   help=f"dataset plugin (repeatable: a grid axis of every one given); default: the spec's, else "
                        f"'{DEFAULT_DATASET}' (embedded, offline)")
    p.add_argument("--data-root", help="folder with the dataset (default: $CXRBENCH_DATA_ROOT, then the spec)")
    p.add_argument("--classifier", action="append",
                   help=f"classifier plugin (repeatable: a grid axis of every one given); default: the spec's, else "
                        f"'{DEFAULT_CLASSIFIER}'")
    p.add_argument("--postprocess", action="append", help="post-processor name, in chain order (repeatable)")
    p.add_argument("--out", help="run directory (default: runs/<spec name>)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the spec's, else auto)")
    p.add_argument("--seed", action="append", type=int, help="seed (repeatable)")
    p.add_argument("--size", type=int, help="image size in px")
    p.add_argument("--cache-dir", help="content-addressed cache (default: $CXRBENCH_CACHE or ~/.cache/cxrbench)")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for confidence intervals (default 1000)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--verify-data", action="store_true",
                   help="hash every source image file and decode again those whose bytes changed since they were "
                        "decoded (without it: those whose size or modification time changed)")
    p.add_argument("--keep-stale", action="store_true",
                   help="reuse finished cells whose plugins changed since (name, version, sampling_version or source "
                        "code): shown marked STALE; by default such cells are re-run")
    p.add_argument("--dry-run", action="store_true",
                   help="print the grid (cells, fits, synthetic replicas) and what is cached; run nothing")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the classifier and diffusion networks (worth it on long GPU runs; recorded)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; recorded in every "
                                              "record); 1 per process when several runs share a CPU")

def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the header of run.log
    if args.quiet and args.verbose:
        print("cxrbench: error: -q/--quiet and -v/--verbose contradict each other; give one", file=sys.stderr)
        return EXIT_USAGE
    log_to_stderr(verbosity_level(quiet=args.quiet, verbose=args.verbose))
    if args.command is None:
        parser.print_help()
        return 0
    if args.disable_plugin:
        from cxrbench.registry import DISABLE_ENV

        given = [x for x in os.environ.get(DISABLE_ENV, "").split(",") if x.strip()]
        os.environ[DISABLE_ENV] = ",".join(given + args.disable_plugin)
    try:
        commands = {"run": cmd_run, "plugins": cmd_plugins, "validate": cmd_validate, "check": cmd_check,
                    "show": cmd_show, "quality": cmd_quality, "leaderboard": cmd_leaderboard,
                    "cite": citation.run, **RESULTS_COMMANDS, **pack_cli.COMMANDS}
        return commands[args.command](args)
    except CxrbenchError as exc:
        print(f"cxrbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cxrbench: interrupted; finished cells are stored, re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`cxrbench plugins | head`): nothing is lost, say nothing; point
        # stdout at devnull so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def cmd_plugins(args) -> int:
    import warnings

    from tabulate import tabulate

    from cxrbench.registry import get_plugins

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = get_plugins()
    if args.name:
        from cxrbench.checking import find_plugin
        from cxrbench.plugin_help import describe_plugin

        _, entry = find_plugin(plugins, args.name, args.kind)
        print("\n".join(describe_plugin(entry)))
        return 0
    rows = [
        (e.name, e.kind, e.source.version, e.source.distribution, e.summary)
        for e in plugins.all_entries()
        if args.kind in (None, e.kind)
    ]
    print(tabulate(rows, headers=["name", "kind", "version", "package", "summary"]))
    for w in caught:
        logger.warning(str(w.message))
    return 0


def cmd_validate(args) -> int:
    from cxrbench.config import load_spec
    from cxrbench.spec_validation import validate_plugins

    spec = load_spec(args.spec)
    validate_plugins(spec, args.spec)
    from cxrbench.cells import expand_cells
    from cxrbench.grid import describe_grid, grid_slices

    n_gen = len(spec.generators)
    grid = describe_grid(spec)
    axes = grid["axes"]
    cells = sum(len(expand_cells(s)) for s in grid_slices(spec))
    model = (f"task segmentation, segmenter {spec.segmenter.name}" if spec.task == "segmentation"
             else f"classifier(s) {', '.join(axes['classifiers'])}")
    print(f"{args.spec}: ok (spec_version {spec.spec_version}, dataset(s) {', '.join(axes['datasets'])}, "
          f"{model}, {len(axes['chains'])} chain(s), "
          f"{n_gen} generator(s), {len(spec.protocols)} protocol(s), {len(spec.seeds)} seed(s): "
          f"{grid['slices']} slice(s), {cells} cell(s))")
    if args.data_root:
        _check_data(spec, args.spec, args.data_root)
    return 0


def _check_data(spec, source: str, data_root: str) -> None:
    """Every dataset of ``spec`` found under ``data_root`` and listing its images; one line each."""
    from cxrbench.errors import DatasetError
    from cxrbench.grid import grid_slices
    from cxrbench.runner import Runner

    seen = set()
    for part in grid_slices(spec):
        runner = Runner(part, out=Path(DEFAULT_OUT), data_root=data_root, spec_source=source, preflight=False)
        for ref in [part.dataset, *part.external]:
            if ref.name in seen:
                continue
            seen.add(ref.name)
            try:
                plugin = runner.dataset_plugin(ref)
                records = list(plugin.records())
            except (FileNotFoundError, NotADirectoryError) as exc:
                if ref.optional:
                    print(f"{ref.name}: not found (optional: runs skip it): {exc}")
                    continue
                raise DatasetError(f"dataset {ref.name!r}: missing {exc.filename or exc} under {plugin.root}; "
                                   f"expected layout: {plugin.describe_layout()}") from None
            except DatasetError:
                if ref.optional:
                    print(f"{ref.name}: not found (optional: runs skip it)")
                    continue
                raise
            print(f"{ref.name}: {len(records):,} images listed under {plugin.root}")
            if ref is not part.dataset:
                _check_label_map(runner, part, ref, plugin, records)


def _check_label_map(runner, spec, ref, plugin, records) -> None:
    """An external set's label map on its test images: counts printed, too few is an error."""
    from cxrbench.labelmaps import check_counts, map_counts, resolve_label_map

    i = next(k for k, r in enumerate(spec.external) if r is ref)
    source = runner.dataset_plugin(spec.dataset).label_names
    label_map = resolve_label_map(source, plugin.label_names, ref.labels, f"external[{i}]", ref.name)
    import numpy as np

    tested = [list(r.labels) for r in records if ref.test == "all" or r.split == "test"]
    labels = np.asarray(tested, dtype=np.float64).reshape(len(tested), len(plugin.label_names))
    counts = map_counts(labels, plugin.label_names, label_map)
    what = f"{ref.name}:{'all' if ref.test == 'all' else 'test'}"
    for label, c in counts.items():
        parts = ", ".join(f"{n} {e['n_pos']}" for n, e in c["external_labels"].items())
        print(f"  {what}: {label} = {c['map']!r}: {c['n_pos']} positive, {c['n_neg']} negative, "
              f"{c['n_masked']} masked (positives per external label: {parts})")
    check_counts(counts, min_positives=ref.min_positives, min_negatives=ref.min_negatives,
                 where=f"external[{i}] {ref.name}", what=what)


def cmd_check(args) -> int:
    from cxrbench.checking import check_command

    return check_command(args.name, kind=args.kind, options=args.option, size=args.size, data_root=args.data_root,
                         device=args.device)


def _check_folders(*, out: Path, cache: Path | None) -> None:
    """--out and --cache-dir must be folders (or not exist yet): refused in one line before
    anything runs, instead of a traceback after pre-flight."""
    for flag, path in (("--out", out), ("--cache-dir", cache)):
        if path is None:
            continue
        blocker = next((p for p in (path, *path.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            what = "is a file" if blocker == path else f"is inside {blocker}, which is a file"
            raise CxrbenchError(f"{flag} {path}: {what}; give a folder")
        if blocker is not None and not os.access(blocker, os.W_OK):
            raise CxrbenchError(f"{flag} {path}: {blocker} is not writable; give a folder you can write to")


def _real_data_size(text: str) -> float | int:
    """``0.05`` or ``1.0`` is a fraction, ``200`` a count (checked with the spec's rules)."""
    try:
        return int(text) if text.strip().isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: a fraction (0.05) or an image count (200)") from None


def resolve_run_spec(args):
    """The spec of a run: the --spec file (or defaults), then CLI flags on top."""
    import dataclasses

    from cxrbench.config import (
        BenchmarkSpec, ClassifierRef, DatasetRef, GeneratorRef, PluginRef, ProtocolRef, load_spec,
    )

    if args.spec:
        spec, source = load_spec(args.spec), args.spec
    else:
        spec, source = BenchmarkSpec(
            name="cli", dataset=DatasetRef(name=DEFAULT_DATASET), size=DEFAULT_SIZE,
            classifier=ClassifierRef(name=DEFAULT_CLASSIFIER),
            protocols=[ProtocolRef(name="real-only", schedule=DEFAULT_SCHEDULE)],
        ), "<command line>"
    # a flag for a grid axis replaces the whole axis
    # a flag given once replaces the spec's value; given several times, it forms that grid axis
    # from every value (never the last one silently winning)
    if args.dataset:
        if len(args.dataset) == 1:
            spec.dataset, spec.datasets = DatasetRef(name=args.dataset[0]), None
        else:
            spec.datasets = [DatasetRef(name=d) for d in args.dataset]
    if args.size:
        spec.size = args.size
    if args.classifier:
        if len(args.classifier) == 1:
            spec.classifier = dataclasses.replace(spec.classifier, name=args.classifier[0], options={})
            spec.classifiers = None
        else:
            spec.classifiers = [ClassifierRef(name=c) for c in args.classifier]
    if args.generator:
        spec.generators = [row for g in args.generator for row in _generator_rows(spec.generators, g)]
    if args.protocol:
        schedule = spec.protocols[0].schedule if spec.protocols else DEFAULT_SCHEDULE
        spec.protocols = [ProtocolRef(name=p, schedule=schedule) for p in args.protocol]
    if args.schedule:
        spec.protocols = [dataclasses.replace(p, schedule=args.schedule) for p in spec.protocols]
    if args.postprocess:
        spec.postprocess, spec.chains = [PluginRef(name=p) for p in args.postprocess], None
    if args.device:
        spec.device = args.device
    if args.seed:
        spec.seeds = list(args.seed)
    if args.real_data:
        spec.real_data = list(args.real_data)
    if args.bootstrap is not None:
        spec.evaluation.bootstrap_resamples = args.bootstrap
    if not args.spec and args.generator and not args.protocol:
        spec.protocols = [ProtocolRef(name="synthetic-only", schedule=DEFAULT_SCHEDULE)]
    if args.ratio:  # to every protocol that takes a ratio (those with a generator); never dropped
        from cxrbench import protocols

        takes = [protocols.get(p.name, source).uses_generator for p in spec.protocols]
        if not any(takes):
            raise CxrbenchError(f"--ratio: none of the protocols ({', '.join(p.name for p in spec.protocols)}) "
                                "takes a ratio; add --protocol synthetic-only or supplemented")
        spec.protocols = [dataclasses.replace(p, ratios=list(args.ratio)) if t else p
                          for p, t in zip(spec.protocols, takes)]
    # Re-validate the merged result with the same strict rules as a file.
    from cxrbench.config import spec_dict, spec_from_data
    from cxrbench.spec_validation import validate_plugins

    spec = spec_from_data(spec_dict(spec), source)
    validate_plugins(spec, source)
    return spec, source


def cmd_run(args) -> int:
    from cxrbench.device import prepare_cpu_threads

    prepare_cpu_threads(args.threads)  # before torch is imported
    if args.compile:
        from cxrbench.device import COMPILE_ENV

        os.environ[COMPILE_ENV] = "1"  # read where the networks are built, and by Ray workers
    if args.no_progress:
        os.environ["CXRBENCH_PROGRESS"] = "0"  # also reaches bars deep inside plugins
    spec, source = resolve_run_spec(args)
    out = Path(args.out or os.path.join(DEFAULT_OUT, spec.name))
    _check_folders(out=out, cache=Path(args.cache_dir) if args.cache_dir else None)
    from cxrbench.runner import Runner

    runner = Runner(
        spec, out=out, data_root=args.data_root, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        progress=False if args.no_progress else None, spec_source=source, verify_data=args.verify_data,
        keep_stale=args.keep_stale,
    )
    if args.dry_run:
        from cxrbench.plan import plan, print_plan

        print_plan(plan(runner))
        return 0
    with run_log(out, args.argv) as note:
        if args.executor == "ray":
            from cxrbench.ray_executor import RayOptions, run_on_ray

            summary = run_on_ray(runner, RayOptions(address=args.address, cpus_per_task=args.task_cpus,
                                                    gpus_per_task=args.task_gpus, max_retries=args.max_retries,
                                                    num_cpus=args.workers))
        else:
            summary = runner.run()
        n_failed = len(summary.failed)
        outcome = f"{len(summary.ok)} cell(s) ran, {len(summary.skipped)} reused, {n_failed} failed -> {out}"
        note(outcome)  # printed on stdout below, with the table: the run's result
    print_table(out, current=set(summary.ok + summary.failed + summary.skipped))
    print(f"\n{outcome}")
    if n_failed:
        print(f"cxrbench: {n_failed} cell(s) failed; each is recorded with its error in {out}/cells/; fix and re-run "
              "to retry only them", file=sys.stderr)
    return EXIT_CELLS_FAILED if n_failed else EXIT_OK


def cmd_quality(args) -> int:
    from cxrbench.device import prepare_cpu_threads

    prepare_cpu_threads(args.threads)
    if args.no_progress:
        os.environ["CXRBENCH_PROGRESS"] = "0"
    spec, source = resolve_run_spec(args)
    out = Path(args.out or os.path.join(DEFAULT_OUT, spec.name, "quality"))
    _check_folders(out=out, cache=Path(args.cache_dir) if args.cache_dir else None)
    from cxrbench.quality.command import quality_reports

    with run_log(out, args.argv):
        quality_reports(spec, source, out=out, data_root=args.data_root,
                        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                        progress=False if args.no_progress else None)
    return 0


def cmd_show(args) -> int:
    if not (Path(args.run_dir) / "cells").is_dir():
        raise CxrbenchError(f"{args.run_dir}: not a run directory (no cells/ inside); give the --out of a run")
    if getattr(args, "format", "table") != "table":
        from cxrbench.results_cli import show_formatted

        return show_formatted(args)
    print_table(Path(args.run_dir))
    return 0


def cmd_leaderboard(args) -> int:
    from cxrbench.leaderboard import build_leaderboard

    summary = build_leaderboard(args.results_dirs, Path(args.out), schema=args.schema)
    statuses = ", ".join(f"{n} {s}" for s, n in summary["statuses"].items()) or "none"
    print(f"{summary['rows']} row(s) from {summary['records']} record(s) ({statuses}) -> {args.out}")
    for name in ("index.html", "leaderboard.md", "leaderboard.csv", "leaderboard.tex"):
        print(f"  {Path(args.out) / name}")
    for note in summary["notes"]:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
