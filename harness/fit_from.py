"""A generator row's ``fit_from: PATH``: its fit comes from a pack (packs.py), never from training.

The pack is checked (checksums, digest, fit key) and compared field by field with what the spec
asks for - everything a fit key hashes: the generator plugin, its version and source code, the
effective fit options, the image size, the fit seed, the training-data fingerprint and the keys of
the training images (the real-data subset). Any difference is refused in one line naming the field,
the pack's value and the spec's. Only the training data may be overridden, and only explicitly
(``fit_from_data_differs: true`` on the row): every cell then records what differs
(``generator.fit_from.data_differs``). The fit is installed into the cache under the pack's own key,
so a model trained on other data never stands in for a local fit of the spec's data, and loaded;
a pack that cannot be loaded fails the cell instead of training.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cxrbench.generation import DONE_FILE, fit_key_fields, plugin_call
from cxrbench.packs import OpenedPack, PackError, install

#: the fields of a fit key a row may accept differing with ``fit_from_data_differs: true``
DATA_FIELDS = ("train", "train_keys")
#: what each hashed field is called in a refusal
FIELD_NAMES = {
    "generator": "generator plugin", "version": "plugin version", "source": "generator source code",
    "options": "options", "size": "image size", "fit_seed": "fit seed",
    "train": "training-data fingerprint", "train_keys": "training images (the real-data subset)",
}
OVERRIDE_KEY = "fit_from_data_differs"

logger = logging.getLogger(__name__)


def resolve_pack_path(fit_from: str, spec_source: str) -> Path:
    """``fit_from`` as a path: absolute as given; relative to the spec file's folder when the spec
    came from a file (so a spec and its packs move together), else to the current folder."""
    path = Path(fit_from).expanduser()
    if path.is_absolute():
        return path
    spec_file = Path(spec_source)
    return (spec_file.parent / path) if spec_file.is_file() else path


def differences(packed: dict[str, Any], wanted: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, pack's value, spec's value) of every hashed field that differs, options key by key."""
    out = []
    for field in FIELD_NAMES:
        a, b = packed.get(field), wanted.get(field)
        if field == "options" and isinstance(a, dict) and isinstance(b, dict):
            out += [(f"options.{k}", a.get(k, "(unset)"), b.get(k, "(unset)"))
                    for k in sorted(set(a) | set(b)) if a.get(k, "(unset)") != b.get(k, "(unset)")]
        elif a != b:
            out.append((field, a, b))
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refusal(where: str, field: str, packed: Any, wanted: Any, meta: dict) -> str:
    name = FIELD_NAMES.get(field.split(".")[0], field)
    shown = field if field.startswith("options.") else name
    head = f"{where}: the pack's {shown} differs: pack {_short(packed)}, spec {_short(wanted)}"
    if field in DATA_FIELDS:
        fitted_on = (meta.get("training_data") or {}).get("fitted_on") or "other data"
        return (f"{head} (the pack was fitted on {fitted_on}); set {OVERRIDE_KEY}: true on the row to use it anyway "
                "(recorded in every cell), or leave fit_from out to fit on this spec's data")
    if field == "source":
        code = meta.get("code") or {}
        return (f"{head}; the pack was made by cxrbench {code.get('cxrbench')} (git {code.get('git_revision')}): run "
                "that version, or leave fit_from out to refit with this code")
    return f"{head}; give the row the pack's value, or leave fit_from out to fit what the spec asks for"


def load_from_pack(generator, variant, *, name: str, version: str, train, fingerprint: str, size: int,
                   cache_root: Path, spec_source: str) -> dict[str, Any]:
    """Install the fit of ``variant.fit_from`` into the cache and load it into ``generator``; the
    fit info a cell records (as :func:`cxrbench.generation.fit_or_load` returns it, ``cached``
    true) with ``fit_from``: the pack, its digest and key, and what of the data differs."""
    from cxrbench.integrity import verify

    where = f"generators[{variant.label}].fit_from"
    path = resolve_pack_path(variant.fit_from, spec_source)
    wanted = fit_key_fields(generator, name=name, version=version, train=train, fingerprint=fingerprint, size=size)
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    try:
        pack = OpenedPack(path, scratch=Path(cache_root))
    except PackError as exc:
        raise PackError(f"{where}: {exc}") from None
    with pack:
        meta = pack.meta
        diffs = differences(meta["hashed"], wanted)
        for field, packed, asked in diffs:
            if field not in DATA_FIELDS or not variant.fit_from_data_differs:
                raise PackError(_refusal(where, field, packed, asked, meta))
        target = install(pack, Path(cache_root))
    record = json.loads((target / DONE_FILE).read_text())
    problem = verify(record.get("manifest") or {}, target)
    if problem:  # installed a moment ago from checked files: the disk is at fault, not the pack
        raise PackError(f"{where}: the installed fit is damaged ({problem}); delete {target} and run again")
    with plugin_call("generator", name, "load"):
        generator.load(target)
    differs = {field: {"pack": packed, "spec": asked} for field, packed, asked in diffs}
    logger.info(f"generator {variant.label}: loaded packed fit {meta['fit_key']} from {path}"
        + (f" (training data DIFFERS: {', '.join(differs)}; {OVERRIDE_KEY})" if differs else ""))
    return {
        "fit_key": record.get("fit_key", meta["fit_key"]), "fit_seed": record.get("fit_seed", wanted["fit_seed"]),
        "cached": True, "truncated": bool(record.get("truncated")), "fit_stats": record.get("fit_stats") or {},
        "fit_s": record.get("fit_s"),
        "fit_from": {"pack": str(path), "pack_digest": (meta.get("digest") or {}).get("sha256"),
                     "fit_key": meta["fit_key"], "fitted_on": (meta.get("training_data") or {}).get("fitted_on"),
                     "code_fingerprint": (meta.get("code") or {}).get("code_fingerprint"),
                     "data_differs": differs or None},
    }
