"""Generator cards: one Markdown page with YAML front matter per learned generator fit (issue #32).

A card is a pure function of the cell records made with the fit, the leaderboard rows they belong
to and the packaged CITATION.cff (for the training data's source and licence and the method's
references): the same inputs give the same bytes, so a published leaderboard's cards rebuild
exactly. The front matter holds the facts (machine-readable); the body says them in words:
architecture and parameters, training data and its licence, conditioning, cost, intended use and
limits, the leaderboard rows that used the fit, and where its pack is published.

Cards are written for fits of generators that are trained on the real data
(``capabilities.needs_training`` and ``sees_training_data``); the reference generators (``noise``,
``real``) and hosted models have no fit to describe.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cxrbench.packs import release_name, slug

CARD_VERSION = 1
CARDS_DIR = "cards"
#: conditioning capabilities, in the order a card lists them
CONDITIONING = ("labels", "demographics", "mask", "text")
#: where packs of published fits are released (the packs themselves are large: not committed)
RELEASES = "a release asset of the cxrbench repository (GitHub releases)"
#: a CITATION.cff note that states a dataset's terms of use (when it has no licence field)
TERMS_WORDS = r"terms|licen[cs]e|agreement|acknowledge"


def learned_fit(rec: Mapping) -> tuple[str, str] | None:
    """(generator plugin, fit key) of an ok record whose generator was trained on real data; else None."""
    gen = rec.get("generator") or {}
    caps = gen.get("capabilities") or {}
    if rec.get("status") != "ok" or not gen.get("fit_key") or not caps.get("needs_training") \
            or not caps.get("sees_training_data", True):
        return None
    return str(gen.get("name")), str(gen["fit_key"])


def card_name(label: str, fit_key: str) -> str:
    """``cards/<label>-<fit key>.md`` (the label made a plain file name)."""
    return f"{CARDS_DIR}/{slug(label)}-{fit_key}.md"


def group_fits(items: list[tuple[str, Mapping]]) -> dict[tuple[str, str], list[tuple[str, Mapping]]]:
    """{(plugin, fit key): [(record path, record)]} of the learned fits among ``items``, in path order."""
    fits: dict[tuple[str, str], list[tuple[str, Mapping]]] = {}
    for rel, rec in sorted(items, key=lambda item: item[0]):
        key = learned_fit(rec)
        if key is not None:
            fits.setdefault(key, []).append((rel, rec))
    return fits


def fit_labels(records: Iterable[Mapping]) -> list[str]:
    """The generator labels the records of one fit were run under, sorted (a card is named by the first)."""
    return sorted({str((r.get("generator") or {}).get("label")) for r in records})


def card_paths(items: list[tuple[str, Mapping]]) -> dict[tuple[str, str], str]:
    """{(plugin, fit key): card path} of every learned fit among ``items``: the one place a card's
    path is decided, so the card written and every table linking to it agree."""
    return {key: card_name(fit_labels(rec for _, rec in members)[0], key[1])
            for key, members in group_fits(items).items()}


def card_finder(items: list[tuple[str, Mapping]]) -> Callable[[Iterable[Mapping]], list[str]]:
    """``cards_of(records)``: the sorted card paths of the learned fits behind ``records``. A section
    table's row pools records over seeds, so per-seed fits give it several cards; records of
    noise, real or real-only give none."""
    paths = card_paths(items)

    def cards_of(records: Iterable[Mapping]) -> list[str]:
        return sorted({paths[key] for key in map(learned_fit, records) if key in paths})

    return cards_of


# --------------------------------------------------------------------------- facts


def fit_facts(records: list[Mapping]) -> dict[str, Any]:
    """What the records of one fit say about it (the first record for single-valued facts; options
    shared by every record, and those that vary between them, e.g. a guidance sweep on one fit)."""
    first = records[0]
    gen = first.get("generator") or {}
    stats = gen.get("fit_stats") or {}
    caps = gen.get("capabilities") or {}
    dataset = first.get("dataset") or {}
    info = dataset.get("info") or {}
    real = first.get("real_data") if isinstance(first.get("real_data"), Mapping) else None
    options = [(r.get("generator") or {}).get("options") or {} for r in records]
    shared = {k: v for k, v in sorted(options[0].items()) if all(o.get(k) == v for o in options)}
    varied = {k: sorted({repr(o.get(k)) for o in options}) for k in sorted(set().union(*options)) if k not in shared}
    cost = gen.get("cost") or {}
    versions = first.get("versions") or {}
    fit_from = gen.get("fit_from") or None
    return {
        "generator": gen.get("name"), "labels": fit_labels(records),
        "plugin_version": gen.get("version"), "sampling_version": gen.get("sampling_version"),
        "fit_key": gen.get("fit_key"), "fit_seed": gen.get("fit_seed"), "truncated": bool(gen.get("truncated")),
        "conditioning": [c for c in CONDITIONING if caps.get(c)],
        "parameters": stats.get("parameters"),
        "options": shared, "options_varied": varied,
        "training": {k: stats.get(k) for k in ("steps", "steps_requested", "batch_size", "native_size",
                                               "final_loss", "device") if stats.get(k) is not None},
        "training_data": {
            "dataset": dataset.get("name"), "fitted_on": gen.get("fitted_on"),
            "fingerprint": dataset.get("fingerprint"), "image_size": (first.get("spec") or {}).get("size"),
            "images": (real or {}).get("n_train") or (info.get("n") or {}).get("train"),
            "real_data": (first.get("cell") or {}).get("real_data"),
            "preprocessing": info.get("preprocessing"),
            **({"differs_from_spec": sorted((fit_from.get("data_differs") or {}))} if fit_from
               and fit_from.get("data_differs") else {}),
        },
        "cost": {k: cost.get(k) for k in ("fit_device_hours", "fit_seconds", "fit_peak_memory_mb", "device",
                                          "device_name", "torch_threads") if cost.get(k) is not None},
        "seed_check_ok": all(((r.get("generator") or {}).get("seed_check") or {}).get("ok", True) for r in records),
        "near_copy_fraction": _range(_near_copies(r) for r in records),
        "code": {"cxrbench": versions.get("cxrbench"), "code_fingerprint": versions.get("code_fingerprint"),
                 "git_revision": first.get("git_revision")},
    }


def _near_copies(rec: Mapping):
    mem = (((rec.get("generator") or {}).get("quality") or {}).get("memorization") or {})
    return (mem.get("pixels") or {}).get("near_copy_fraction")


def _range(values) -> list[float] | None:
    found = [float(v) for v in values if isinstance(v, (int, float))]
    return [min(found), max(found)] if found else None


def used_by(rows: list[Mapping], paths: set[str]) -> list[dict[str, Any]]:
    """The leaderboard rows built from any of the record ``paths``: what a card lists."""
    out = []
    for r in rows:
        if not paths.intersection(r.get("records") or []):
            continue
        auroc = (((r.get("aggregate") or {}).get("metrics") or {}).get("auroc") or {}).get("mean")
        out.append({"generator": r.get("generator"), "protocol": r.get("protocol"), "ratio": r.get("ratio"),
                    "real_data": None if r.get("real_data") is None else str(r["real_data"]),
                    "classifier": r.get("classifier"), "schedule": r.get("schedule"), "test_set": r.get("test_set"),
                    "seeds": r.get("seeds"), "status": r.get("status"),
                    "auroc": None if auroc is None else round(float(auroc), 6)})
    return out


def segmentation_uses(records: list[Mapping]) -> list[dict[str, Any]]:
    """The segmentation rows built from a fit's ``records`` (they have no row of the AUROC table):
    one per protocol / ratio / real data / segmenter / schedule / test set, with its seeds and the
    mean over seeds of the macro Dice - what a card lists beside ``used_by``."""
    groups: dict[tuple, list[tuple[int, float | None]]] = {}
    for rec in records:
        if "segmenter" not in rec or rec.get("status") != "ok":
            continue
        cell, gen = rec["cell"], (rec["cell"].get("generator") or {})
        for tname, metrics in sorted((rec.get("metrics") or {}).items()):
            key = (gen.get("label") or gen.get("name"), cell.get("protocol"), cell.get("ratio"),
                   None if cell.get("real_data") is None else str(cell["real_data"]),
                   rec["segmenter"].get("name"), cell.get("schedule"), tname)
            groups.setdefault(key, []).append((cell.get("seed"), (metrics.get("macro") or {}).get("dice")))
    out = []
    for key, seeds in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        dice = [d for _, d in seeds if d is not None]
        out.append(dict(zip(("generator", "protocol", "ratio", "real_data", "segmenter", "schedule", "test_set"), key),
                        seeds=sorted(s for s, _ in seeds),
                        dice=round(sum(dice) / len(dice), 6) if dice else None))
    return out


def references(kind: str, name: str) -> list[dict[str, Any]]:
    """The CITATION.cff references of a dataset plugin (``dataset plugin NAME`` in their notes) or
    of a generator (``NAME generator(s)``, ``NAME and X generators``): title, year, licence, link, notes."""
    from cxrbench.citation import load

    pattern = (rf"dataset plugin {re.escape(name)}\b" if kind == "dataset"
               else rf"\b{re.escape(name)}(?: and [\w-]+)? generators?\b")
    out = []
    for ref in load().get("references") or []:
        if re.search(pattern, str(ref.get("notes") or "")):
            link = f"https://doi.org/{ref['doi']}" if ref.get("doi") else ref.get("url")
            out.append({"title": str(ref.get("title")), "year": ref.get("year"), "license": ref.get("license"),
                        "link": link, "notes": str(ref.get("notes") or "")})
    return out


# --------------------------------------------------------------------------- the page


def render_card(facts: Mapping[str, Any], rows: list[Mapping[str, Any]],
                segmentation_rows: list[Mapping[str, Any]] = ()) -> str:
    """The card of one fit: YAML front matter (``facts``, its licence, rows, pack name) and Markdown.
    ``rows``: the AUROC table's rows that used it (:func:`used_by`); ``segmentation_rows``: its
    segmentation rows (:func:`segmentation_uses`), listed only when there are any."""
    import yaml

    label = facts["labels"][0]
    data = facts["training_data"]
    data_refs = references("dataset", str(data.get("dataset")))
    method_refs = references("generator", str(facts["generator"]))
    licences = sorted({str(r["license"]) for r in data_refs if r.get("license")})
    pack = release_name(label, str(facts["fit_key"]))
    front = {"cxrbench_card": CARD_VERSION, **facts, "training_data_licence": licences or None,
             "pack": {"file": pack, "published": RELEASES}, "used_by": rows}
    if segmentation_rows:
        front["used_by_segmentation"] = list(segmentation_rows)
    yaml_text = yaml.safe_dump(_plain(front), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    lines = ["---", yaml_text.rstrip(), "---", "",
             f"# Generator card: {label} (fit {facts['fit_key']})", "",
             f"`{facts['generator']}` {facts['plugin_version']} (sampling version {facts['sampling_version']}), "
             f"fit key `{facts['fit_key']}`, fit seed {facts['fit_seed']}"
             + (" - **TRUNCATED** by its time budget" if facts["truncated"] else "") + ".", ""]
    lines += ["## Architecture", "", _parameters_text(facts.get("parameters")), "",
              "Effective options recorded with its cells (preset values resolved; the sampling and runtime options "
              "among them, such as a guidance scale or a checkpoint interval, do not change the fit):", ""]
    lines += [f"- `{k}`: `{_inline(v)}`" for k, v in facts["options"].items()] or ["- (none recorded)"]
    if facts["options_varied"]:
        lines += ["", "Options that differ between the rows using this fit (sampling only: one fit serves them all):",
                  ""] + [f"- `{k}`: {', '.join(f'`{v}`' for v in vs)}" for k, vs in facts["options_varied"].items()]
    if facts["training"]:
        done = ", ".join(f"{k.replace('_', ' ')} {_inline(v)}" for k, v in facts["training"].items())
        lines += ["", f"Training: {done}."]
    if method_refs:
        lines += ["", "Method:", ""] + [_ref_line(r) for r in method_refs]
    lines += ["", "## Training data", "", _data_text(data), ""]
    if data_refs:
        lines += ["Source and licence (from cxrbench's CITATION.cff):", ""] + [_ref_line(r, licence=True)
                                                                           for r in data_refs]
    else:
        lines += [f"No source or licence of dataset `{data.get('dataset')}` is recorded in cxrbench's CITATION.cff: "
                  "check the data's own terms before sharing this fit."]
    lines += ["", "## Conditioning", "",
              ("Conditioned on " + ", ".join(facts["conditioning"]) + ".") if facts["conditioning"]
              else "Unconditional: it cannot be asked for a label.", ""]
    lines += ["## Cost", "", _cost_text(facts["cost"]), ""]
    lines += ["## Intended use and limits", ""] + _limits(facts) + [""]
    lines += ["## Leaderboard rows that used this fit", ""]
    if rows or not segmentation_rows:  # a segmentation-only fit has no AUROC row to say "none" about
        lines += _rows_table(rows) + [""]
    if segmentation_rows:
        lines += ["Segmentation rows (segmentation.md):", ""] + _rows_table(segmentation_rows, "segmenter", "dice") + [""]
    lines += ["## Getting the fit", "",
              f"Pack: `{pack}`, published as {RELEASES}; packs are not committed because they are large. "
              "Install it with "
              f"`cxrbench unpack {pack}`, or name it on the spec's generator row with `fit_from: {pack}`: a run then "
              "reuses the fit without training, after checking its checksums and that its plugin version, code, "
              "options and training data match the spec."]
    return "\n".join(lines).rstrip() + "\n"


def _plain(value):
    """Front-matter values as YAML's plain types (tuples, str subclasses such as a real-data size)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _inline(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _parameters_text(params) -> str:
    if not isinstance(params, Mapping) or not params:
        return "Parameters: not recorded by the fit."
    total = sum(v for v in params.values() if isinstance(v, (int, float)))
    parts = ", ".join(f"{k} {v:,}" for k, v in params.items() if isinstance(v, (int, float)))
    return f"Parameters: {total:,} ({parts})."


def _data_text(data: Mapping) -> str:
    text = f"Fitted on `{data.get('fitted_on') or data.get('dataset')}`"
    if data.get("images") is not None:
        text += f", {data['images']:,} images"
    if data.get("image_size") is not None:
        text += f" at {data['image_size']} px"
    text += f"; dataset fingerprint `{data.get('fingerprint')}`."
    if data.get("real_data") is not None:
        text += f" Real-data subset {data['real_data']} of the training split (nested, stratified, by patient)."
    if data.get("preprocessing"):
        prep = ", ".join(f"{k} {_inline(v)}" for k, v in sorted(data["preprocessing"].items()))
        text += f" Preprocessing: {prep}."
    if data.get("differs_from_spec"):
        text += (" **The cells were run with this pack although its training data differ from the spec's** "
                 f"(fit_from_data_differs: {', '.join(data['differs_from_spec'])}).")
    return text


def _ref_line(ref: Mapping, licence: bool = False) -> str:
    line = f"- {ref['title']}" + (f" ({ref['year']})" if ref.get("year") else "")
    if ref.get("link"):
        line += f", <{ref['link']}>"
    if licence and ref.get("license"):
        line += f"; licence: {ref['license']}"
    elif licence and re.search(TERMS_WORDS, ref["notes"]):  # e.g. "JSRT terms: research and education"
        line += f"; terms: {ref['notes']}"
    return line


def _cost_text(cost: Mapping) -> str:
    if not cost:
        return "Not recorded."
    parts = []
    if cost.get("fit_device_hours") is not None:
        parts.append(f"{cost['fit_device_hours']:.3f} device-hours to fit")
    if cost.get("fit_peak_memory_mb") is not None:
        parts.append(f"peak memory {cost['fit_peak_memory_mb']:.0f} MB")
    where = cost.get("device_name") or cost.get("device")
    if where:
        parts.append(f"on {where}" + (f" ({cost['torch_threads']} torch threads)" if cost.get("torch_threads") else ""))
    return "; ".join(parts) + "." if parts else "Not recorded."


def _limits(facts: Mapping) -> list[str]:
    data = facts["training_data"]
    out = ["- For research on synthetic training data (cxrbench's question: does it help a classifier on real "
           "patients?). Not a medical device; its images are not for diagnosis or for training clinical models "
           "without a study of their own.",
           f"- It knows only `{data.get('dataset')}` at {data.get('image_size')} px"
           + (f" ({data['images']:,} training images)" if data.get("images") is not None else "")
           + ": other hospitals, populations and sizes are outside what it was fitted on."]
    if facts["truncated"]:
        out.append("- Its training was cut short by a time budget: a longer fit may behave differently.")
    if not facts["seed_check_ok"]:
        out.append("- It failed the run-time seed check (the same seed did not give the same image, or different "
                   "seeds the same one) in at least one cell.")
    near = facts.get("near_copy_fraction")
    if near is not None:
        out.append(f"- Near copies of training images (pixel space): {near[0]:.4%} to {near[1]:.4%} of the synthetic "
                   "images over the cells that measured it; a model fitted on patients can reproduce them.")
    return out


def _rows_table(rows: list[Mapping], model: str = "classifier", metric: str = "auroc") -> list[str]:
    """The rows that used a fit as a Markdown table: AUROC-table rows (``model`` classifier, metric
    AUROC) or segmentation rows (segmenter, Dice)."""
    if not rows:
        return ["(none recorded)"]
    title = {"auroc": "AUROC", "dice": "Dice"}[metric]
    head = [f"| Row | Protocol | r | Real data | {model.capitalize()} | Schedule | Test set | Seeds ok | {title} (mean) |",
            "|---|---|---|---|---|---|---|---|---|"]
    return head + [
        "| " + " | ".join(str(v).replace("|", "\\|") for v in (
            r["generator"], r["protocol"], f"{r['ratio']:g}" if isinstance(r["ratio"], (int, float)) else r["ratio"],
            r["real_data"] or "-", r[model], r["schedule"], r["test_set"], r["seeds"],
            "-" if r[metric] is None else f"{r[metric]:.3f}")) + " |"
        for r in rows]


# --------------------------------------------------------------------------- the leaderboard's cards


def write_cards(rows: list[dict], items: list[tuple[str, Mapping]], out: Path) -> list[str]:
    """Write ``out/cards/<label>-<fit key>.md`` for every learned fit among the records ``items``
    and set ``row["cards"]`` (relative paths, sorted) on each row built from them. Returns notes."""
    fits, path_of = group_fits(items), card_paths(items)
    by_record: dict[str, str] = {}
    for key, members in sorted(fits.items()):
        facts = fit_facts([rec for _, rec in members])
        path = path_of[key]
        paths = {rel for rel, _ in members}
        target = Path(out) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_card(facts, used_by(rows, paths), segmentation_uses([rec for _, rec in members])),
                          encoding="utf-8")
        by_record.update({rel: path for rel in paths})
    for row in rows:
        row["cards"] = sorted({by_record[p] for p in row.get("records") or [] if p in by_record})
    return [f"generator cards: {CARDS_DIR}/ ({len(fits)} fit(s); packs are published as release assets, not "
            "committed)"] if fits else []


def markdown_links(text: str, row: Mapping) -> str:
    """A row's generator cell in Markdown, linked to its card(s): ``[ddpm](cards/ddpm-<key>.md)``;
    a row over several fits (``fit_seed: per-seed``) gets one link per fit after its label."""
    cards = row.get("cards") or []
    if not cards:
        return text
    shown = re.sub(r"([\[\]])", r"\\\1", text)
    if len(cards) == 1:
        return f"[{shown}]({cards[0]})"
    return f"{shown} (" + ", ".join(f"[fit {i}]({c})" for i, c in enumerate(cards, 1)) + ")"


def markdown_generator_links(lines: list[list[str]], rows: list[Mapping], column: int = 1) -> list[list[str]]:
    """A section table's Markdown cells (``lines``, already escaped for a table) with the generator
    cell (``column``) of each line linked to the cards of its row in ``rows`` (cell text unchanged
    where a row has none, so a table without learned fits reads as before)."""
    return [[markdown_links(v, row) if i == column else v for i, v in enumerate(line)]
            for line, row in zip(lines, rows)]


def html_links(escaped: str, row: Mapping) -> str:
    """The same for the page: ``escaped`` is the cell's text, already HTML-escaped."""
    import html
    from urllib.parse import quote

    cards = row.get("cards") or []
    if not cards:
        return escaped

    def href(path: str) -> str:
        return html.escape(quote(path, safe="/"), quote=True)

    if len(cards) == 1:
        return f'<a class="card" href="{href(cards[0])}">{escaped}</a>'
    return escaped + " " + " ".join(f'<a class="card" href="{href(c)}">fit {i}</a>' for i, c in enumerate(cards, 1))
