"""The leaderboard: every cell record of one or more results folders as tables, a page and plots.

:func:`build_leaderboard` reads ``RESULTS_DIR/cells/*.json`` of each folder, builds one row per
configuration over its seeds (:func:`cxrbench.leaderboard.build.build_rows`) and writes into
``out``::

    leaderboard.md / .csv / .tex   the table (Markdown, CSV with unrounded numbers, LaTeX)
    index.html                     one static page: sortable, filterable, inline CSS/JS only
    plots/*.png, plots/*.svg       AUROC vs ratio, domain FD vs AUROC, cost vs AUROC
    learning-curves.md             only when a record has the real-data axis (``real_data:``): per
                                   curve group its table and plain reading (cxrbench.learning_curves),
                                   also a section of index.html; plots/learning-curve.png / .svg
    external.md                    only when a record has external test sets or subgroups: transfer
                                   gaps, each set's floor and ceiling, Kendall's tau of the rankings,
                                   subgroup tables (leaderboard/shift.py), also a section of
                                   index.html; plots/subgroups.png / .svg
    segmentation.md                only for records of task: segmentation (kept out of the AUROC
                                   table): Dice / HD95 per row with floor, ceiling, paired
                                   differences and mask adherence (leaderboard/segmentation.py)
    cards/<label>-<fit key>.md     a generator card per learned generator fit (cxrbench.cards), linked
                                   from its rows in every table (main and sections); the fit's pack
                                   is published as a release asset
    records/<folder>/cells/*.json  a verbatim copy of every record read
    assets/<folder>/cells/<cell>/  the contact sheet (and memorization pairs) shown for a row, and
                                   every record's predictions on each test set: what its numbers
                                   were computed from, so a copy of records + assets can be
                                   rescored, rebuilt, and extended without re-running references

The output is a pure function of the inputs: no dates, no absolute paths, everything sorted, so
building twice gives byte-identical files. A results folder is named by its last path component
(``-2``, ``-3``... when two share one, in the order of their full paths). ``out`` must be empty,
missing, or an earlier leaderboard (whose files are replaced).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cxrbench.errors import CxrbenchError

TABLE_FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "index.html")
OWNED_DIRS = ("records", "assets", "plots", "cards")
#: files of ours written only for some inputs: removed before a rebuild, so none is left stale
OPTIONAL_FILES = ("learning-curves.md", "external.md", "segmentation.md")


def build_leaderboard(results_dirs, out, schema=None) -> dict:
    """Build the leaderboard of ``results_dirs`` into ``out``; ``schema``: a Schema, a YAML path or
    None (the default). Returns a summary: rows, records, sources, statuses, files, notes."""
    from cxrbench import cards
    from cxrbench.aggregate import AGGREGATE_METHOD
    from cxrbench.leaderboard import curve_plot, curves, plots, render, segmentation, shift
    from cxrbench.leaderboard.build import _dedupe, build_rows, display_columns
    from cxrbench.leaderboard.schema import Schema, load_schema

    schema = schema if isinstance(schema, Schema) else load_schema(schema)
    sources = name_sources(results_dirs)
    items, notes = load_records(sources)
    # segmentation records have their own section (Dice, HD95): the table's columns are AUROC's
    rows = build_rows([(rel, rec) for rel, rec in items if "segmenter" not in rec], schema)
    out = Path(out)
    _prepare(out)
    for rel, _ in items:
        _copy(sources[rel.split("/", 1)[0]] / rel.split("/", 1)[1], out / "records" / rel)
    notes += _copy_assets(rows, sources, out)
    kept = _dedupe(items)[0]
    find_predictions = _predictions_finder(kept, sources, out)
    notes += _ship_predictions(kept, find_predictions)
    notes += cards.write_cards(rows, kept, out)  # one per learned fit; sets row["cards"]
    cards_of = cards.card_finder(kept)  # the section rows link to the same cards, found from their records
    columns = display_columns(rows, schema)
    figures, plot_notes = plots.write_plots(rows, out / "plots")
    groups = curves.curve_groups((rec for _, rec in kept), cards_of)
    curve_figure = curve_plot.write_curve_plot(groups, out / "plots")
    figures += [curve_figure] if curve_figure else []
    shifted = shift.sections([rec for _, rec in kept], find_predictions, cards_of=cards_of)
    subgroup_figure = shift.write_subgroup_plot(shifted["subgroups"], out / "plots")
    figures += [subgroup_figure] if subgroup_figure else []
    has_shift = bool(shifted["external"] or shifted["subgroups"])
    seg_groups = segmentation.groups(segmentation.segmentation_records(rec for _, rec in kept), cards_of)
    if seg_groups:
        notes.append(f"segmentation: {segmentation.FILE} ({len(seg_groups)} table(s))")
    if has_shift:
        notes.append(f"external test sets and subgroups: {shift.FILE} ({len(shifted['external'])} external "
                     f"comparison(s), {len(shifted['subgroups'])} subgroup table(s))")
    if rows:  # the AUROC plots and pooling say nothing about a leaderboard without classification cells
        notes += _network_notes(rows) + plot_notes + [f"AUROC / AUPR over seeds: {AGGREGATE_METHOD}"]
    if groups:
        notes.append(f"learning curves over the real-data axis: {curves.FILE} ({len(groups)} group(s)); every "
                     "size is tested on the same full test set")
    for rel in sorted(p for r in rows for p in r["ignored_records"]):
        notes.append(f"{rel}: a second copy of a cell already counted; not counted again")
    texts = {
        "leaderboard.md": render.render_markdown(rows, columns, notes),
        "leaderboard.csv": render.render_csv(rows, columns),
        "leaderboard.tex": render.render_latex(rows, columns),
        "index.html": render.render_html(rows, columns, notes, figures, sorted(sources),
                                         (curves.render_html(groups) if groups else [])
                                         + (shift.render_html(shifted) if has_shift else [])
                                         + (segmentation.render_html(seg_groups) if seg_groups else [])),
    }
    if groups:
        texts[curves.FILE] = curves.render_markdown(groups, curve_figure)
    if has_shift:
        texts[shift.FILE] = shift.render_markdown(shifted, subgroup_figure)
    if seg_groups:
        texts[segmentation.FILE] = segmentation.render_markdown(seg_groups)
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8")
    statuses: dict[str, int] = {}
    for r in rows:
        kind = r["status"].split(":")[0].split(" (")[0]
        statuses[kind] = statuses.get(kind, 0) + 1
    return {
        "rows": len(rows), "records": len(items), "sources": sorted(sources),
        "statuses": dict(sorted(statuses.items())),
        "files": sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()),
        "plots": [f["name"] for f in figures], "notes": notes,
    }


def name_sources(results_dirs) -> dict[str, Path]:
    """{name: folder}: each folder's last path component, made unique in the order of full paths."""
    folders = sorted({Path(d).resolve() for d in results_dirs})
    if not folders:
        raise CxrbenchError("leaderboard: give at least one results folder (the --out of a run)")
    named: dict[str, Path] = {}
    for folder in folders:
        if not (folder / "cells").is_dir():
            raise CxrbenchError(f"{folder}: not a results folder (no cells/ inside); give the --out of a run")
        base, n = folder.name or "results", 1
        name = base
        while name in named:
            n += 1
            name = f"{base}-{n}"
        named[name] = folder
    return named


SEAL_SCRIPT = "benchmarks/seal_records.py"


def load_records(sources: dict[str, Path]) -> tuple[list[tuple[str, dict]], list[str]]:
    """[(relative path, record)] of every cells/*.json, each verified against its digest; a
    published table is built only from records whose numbers can be checked, so an edited,
    truncated or unsealed record stops the build in one line naming the file. A JSON file that
    is not a cell record is skipped with a note."""
    from cxrbench.store import DIGEST_KEY, BadRecord, read_record

    items, notes = [], []
    for name in sorted(sources):
        for path in sorted((sources[name] / "cells").glob("*.json")):
            rel = f"{name}/cells/{path.name}"
            try:
                record = read_record(path)
            except BadRecord as exc:
                if "not a cell record" in str(exc):
                    notes.append(f"{rel}: not a cell record (no 'cell' key); skipped")
                    continue
                raise CxrbenchError(f"leaderboard: {exc} (or remove it): a leaderboard is built only from "
                                    "verified records") from None
            if DIGEST_KEY not in record:
                raise CxrbenchError(f"leaderboard: {path}: carries no digest (written before cxrbench sealed "
                                    f"records); check it, then seal it with python {SEAL_SCRIPT} {sources[name]}")
            items.append((rel, record))
    return items, notes


def _prepare(out: Path) -> None:
    """Make ``out`` ready: refuse a non-empty folder that is not a leaderboard, clear our own files."""
    if out.exists() and not out.is_dir():
        raise CxrbenchError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not all((out / f).is_file() for f in TABLE_FILES):
        raise CxrbenchError(f"{out}: not empty and not an earlier leaderboard; give an empty or new --out folder")
    for d in OWNED_DIRS:
        if (out / d).is_dir():
            shutil.rmtree(out / d)
    for f in OPTIONAL_FILES:
        if (out / f).is_file():
            (out / f).unlink()
    out.mkdir(parents=True, exist_ok=True)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _copy_assets(rows: list[dict], sources: dict[str, Path], out: Path) -> list[str]:
    """Copy each row's images into ``out/assets`` and set ``row["assets"]`` to their relative
    paths. Looked for beside the record first (a copied results folder keeps them there), then
    where the record says (the run may have written them into another folder)."""
    notes = []
    for row in rows:
        row["assets"] = {}
        for kind, art in sorted((row.get("artifacts") or {}).items()):
            folder, rel = art["record"].split("/", 1)
            cell_dir = rel[: -len(".json")] if rel.endswith(".json") else rel
            candidates = [sources[folder] / cell_dir / art["name"]] if folder in sources else []
            if art.get("given"):
                candidates.append(Path(art["given"]))
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                notes.append(f"{art['record']}: {kind.replace('_', ' ')} {art['name']} not found; not shown")
                continue
            target = f"assets/{folder}/{cell_dir}/{art['name']}"
            _copy(found, out / target)
            row["assets"][kind] = target
    return notes


def _ship_predictions(items: list[tuple[str, dict]], find) -> list[str]:
    """Copy every record's predictions files (each test set's, and the tuning set's) into
    ``out/assets`` (through ``find``). Why: the paired comparisons (DeLong vs real-only and vs the
    noise control) and ``cxrbench rescore`` read them; a leaderboard that kept records only forced
    whoever extends it to re-run every reference, which on another CPU scores differently and so
    outdates every cell compared with it. A record whose test-set predictions are gone is counted
    in one note (re-running it restores them)."""
    missing = []
    for rel, rec in items:
        wanted = ((rec.get("artifacts") or {}).get("predictions") or {})
        if any(find(rec, tname) is None for tname in sorted(wanted)):
            missing.append(rel)
        if (rec.get("artifacts") or {}).get("tuning_predictions"):
            find(rec, TUNING)  # what `rescore --threshold` re-chooses thresholds on; optional
    if not missing:
        return []
    return [f"{len(missing)} record(s) without their predictions files (e.g. {missing[0]}): their numbers stand, "
            "but rescoring them, or pairing a new cell with them, re-runs them first"]


#: ``find``'s name for the tuning-set predictions (not a test set)
TUNING = "tuning"


def _predictions_finder(items: list[tuple[str, dict]], sources: dict[str, Path], out: Path):
    """``find(record, test_set)``: the record's predictions file for that test set (or, for
    :data:`TUNING`, its tuning-set predictions), beside the
    record first (a copied results folder keeps it there), then where the record says; None.
    A file found is copied into ``out/assets/<folder>/cells/<cell>/``, so the published
    leaderboard carries what its rankings were computed from and rebuilds from itself."""
    where = {id(rec): rel for rel, rec in items}

    def find(rec: dict, tname: str) -> Path | None:
        artifacts = rec.get("artifacts") or {}
        given = artifacts.get("tuning_predictions") if tname == TUNING else (artifacts.get("predictions") or {}).get(tname)
        rel = where.get(id(rec))
        if not given or rel is None:
            return None
        folder, inner = rel.split("/", 1)
        name = str(given).replace("\\", "/").rsplit("/", 1)[-1]
        cell_dir = inner[: -len(".json")]
        candidates = [sources[folder] / cell_dir / name] if folder in sources else []
        found = next((c for c in candidates + [Path(given)] if c.is_file()), None)
        if found is None:
            return None
        target = out / "assets" / folder / cell_dir / name
        if not target.is_file():
            _copy(found, target)
        return target

    return find


def _network_notes(rows: list[dict]) -> list[str]:
    nets = sorted({(k, v) for r in rows for k, v in (r.get("feature_networks") or {}).items()})
    return [f"feature network {name!r}: {identity} (fidelity numbers of different networks never share a column)"
            for name, identity in nets]
