"""Packaged fits: a fitted generator as a self-describing folder or tar archive (issue #32).

A pack is made from the content-addressed cache (``cxrbench pack``) and installed into another
cache (``cxrbench unpack``, or a spec row's ``fit_from:``, see fit_from.py), where runs reuse it
exactly as if it had been fitted there. Its layout::

    cxrbench-pack.json   format, fit key and everything it hashes (plugin name, version and
                         source, effective fit options, training-data fingerprint and the keys
                         of the training images - the real-data subset when there is one -,
                         size, fit seed), the training data in words, the code fingerprint,
                         the fit's cost, size + sha256 of every other file, and its own digest
    CARD.md              the generator card (cards.py): Markdown with YAML front matter
    fit/                 the cache entry as the fit left it: the weights (safetensors only),
                         configs (JSON) and cxrbench-fit.json (the fit's own record + manifest)

Nothing in a pack is ever unpickled: a file that is not ``.safetensors`` or ``.json`` is refused
when packing and when unpacking, a ``.safetensors`` file must carry a readable safetensors
header, and the generator's ``load()`` reads them with safetensors. Every file is checked
against its checksum before anything is installed; a tar member that is not a plain file or
folder, or whose name leaves the pack (absolute, ``..``), is refused. Installing is atomic: the
files are written into a temporary folder inside the cache, checked, then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from cxrbench.errors import CxrbenchError
from cxrbench.generation import DONE_FILE, fit_dir
from cxrbench.hashing import content_key
from cxrbench.integrity import entry_lock, manifest, sha256_file, verify

FORMAT = "cxrbench-pack"
FORMAT_VERSION = 1
PACK_FILE = "cxrbench-pack.json"
CARD_FILE = "CARD.md"
FIT_FOLDER = "fit"
#: the only kinds of file a fit may carry into a pack: weights as safetensors, the rest JSON
ALLOWED_SUFFIXES = (".safetensors", ".json")
#: a safetensors header larger than this is not one (the format caps it at 100 MB)
MAX_SAFETENSORS_HEADER = 100_000_000


class PackError(CxrbenchError):
    """A pack that cannot be made, read, trusted or installed (one line: what and what to do)."""


def release_name(label: str, fit_key: str) -> str:
    """The file name a pack is published under (a release asset): ``cxrbench-pack-<label>-<fit key>.tar``."""
    return f"cxrbench-pack-{slug(label)}-{fit_key}.tar"


def slug(text: str) -> str:
    """A label as a file-name part: letters, digits, ``. _ - =`` kept, anything else ``-``."""
    return "".join(c if c.isalnum() or c in "._-=" else "-" for c in str(text)).strip(".") or "generator"


# --------------------------------------------------------------------------- making a pack


def fit_files(folder: Path) -> tuple[dict, dict[str, list]]:
    """(the fit's record, {relative path: [size, sha256]} of every file a pack takes) of the cache
    entry ``folder``: the files of its manifest and the record itself, each checked first."""
    done = Path(folder) / DONE_FILE
    if not done.is_file():
        raise PackError(f"{folder}: no finished fit there ({DONE_FILE} missing); run the spec to fit it first")
    try:
        record = json.loads(done.read_text())
    except (OSError, ValueError) as exc:
        raise PackError(f"{done}: unreadable ({exc}); delete the folder and run the spec again to refit") from None
    entries = record.get("manifest") or {}
    problem = verify(entries, folder)
    if problem:
        raise PackError(f"the cached fit is damaged: {problem}; delete {folder} and run the spec again to refit")
    for rel in entries:
        check_file_kind(Path(folder) / rel, rel)
    return record, {**entries, **manifest([done], folder)}


def check_file_kind(path: Path, rel: str) -> None:
    """Refuse anything but a safetensors file with a readable header or a JSON file (never unpickled)."""
    suffix = Path(rel).suffix
    if suffix not in ALLOWED_SUFFIXES:
        raise PackError(f"{rel}: a pack carries weights only as .safetensors and everything else as .json (nothing "
                        f"is ever unpickled); this fit saved a {suffix or 'suffix-less'} file: save tensors with "
                        "cxrbench.kit.checkpoints.save_tensors")
    if suffix == ".safetensors":
        problem = _safetensors_problem(path)
        if problem:
            raise PackError(f"{rel}: not a safetensors file ({problem}); refusing it")
    else:
        try:
            json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PackError(f"{rel}: not JSON ({type(exc).__name__}); refusing it") from None


def _safetensors_problem(path: Path) -> str | None:
    """None when ``path`` starts with a safetensors header (8-byte little-endian length + JSON)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                return "shorter than its 8-byte header length"
            (length,) = struct.unpack("<Q", head)
            if not 0 < length <= MAX_SAFETENSORS_HEADER or length > Path(path).stat().st_size - 8:
                return f"header length {length} does not fit the file"
            header = json.loads(fh.read(length).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"unreadable header: {type(exc).__name__}"
    return None if isinstance(header, dict) else "its header is not a JSON object"


def write_pack(folder: Path, meta: dict[str, Any], card: str, out: Path) -> Path:
    """Write the pack of the cache entry ``folder`` to ``out`` (a new or empty folder, or a
    ``.tar`` file); ``meta``: the document's fields (fit_key, hashed, training_data, code, cost,
    label, generator). Returns ``out``."""
    from cxrbench.store import seal

    out = Path(out)
    record, files = fit_files(folder)
    if content_key(meta["hashed"]) != str(meta["fit_key"]).split("-truncated-")[0]:
        raise PackError(f"the fit key {meta['fit_key']} is not the hash of the fields given; nothing written")
    with tempfile.TemporaryDirectory(prefix=".cxrbench-pack-", dir=_temp_parent(out)) as tmp:
        stage = Path(tmp) / "pack"
        (stage / FIT_FOLDER).mkdir(parents=True)
        for rel in files:
            (stage / FIT_FOLDER / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder) / rel, stage / FIT_FOLDER / rel)
        (stage / CARD_FILE).write_text(card, encoding="utf-8")
        listed = {f"{FIT_FOLDER}/{rel}": entry for rel, entry in files.items()}
        listed.update(manifest([stage / CARD_FILE], stage))
        problem = verify(listed, stage)  # the copies are the files checked above
        if problem:
            raise PackError(f"copying the fit changed it ({problem}); check the disk and pack again")
        doc = seal({"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
                    "fit": {k: v for k, v in record.items() if k != "manifest"}, "files": listed})
        (stage / PACK_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.suffix == ".tar":
            _write_tar(stage, out)
        else:
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise PackError(f"--out {out}: exists and is not an empty folder; give a new folder or a .tar file")
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.is_dir():
                out.rmdir()
            shutil.move(str(stage), str(out))
    return out


def _temp_parent(out: Path) -> Path:
    parent = Path(out).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _write_tar(stage: Path, out: Path) -> None:
    """A reproducible archive: members in name order, no owners, no times (the same pack, the same bytes)."""
    if out.exists():
        raise PackError(f"--out {out}: exists; give a new file name (a pack is never overwritten)")
    tmp = out.with_name(f".{out.name}.tmp")

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(stage.rglob("*")):
            tar.add(path, arcname=path.relative_to(stage).as_posix(), recursive=False, filter=plain)
    os.replace(tmp, out)


# --------------------------------------------------------------------------- reading a pack


class OpenedPack:
    """A pack, checked, in a folder: ``folder`` (``fit/``, ``CARD.md``, ``cxrbench-pack.json``)
    and ``meta`` (the parsed document). A tar is extracted into a temporary folder that
    :meth:`close` removes; use it as a context manager."""

    def __init__(self, path: Path, scratch: Path | None = None):
        self.path = Path(path)
        self._tmp = None
        if not self.path.exists():
            raise PackError(f"{self.path}: no such pack; give the folder or .tar file `cxrbench pack` wrote")
        if self.path.is_dir():
            self.folder = self.path
        else:
            self._tmp = tempfile.mkdtemp(prefix=".cxrbench-unpack-", dir=scratch)
            self.folder = Path(self._tmp)
            safe_extract(self.path, self.folder)
        self.meta = verify_pack(self.folder, self.path)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> OpenedPack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def safe_extract(archive: Path, into: Path) -> None:
    """Extract a pack's tar member by member: only plain files and folders, each name inside
    ``into`` (no absolute path, no ``..``, no link, device or fifo); anything else is refused
    before a byte of it is written."""
    try:
        tar = tarfile.open(archive, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise PackError(f"{archive}: not a readable tar archive ({type(exc).__name__}); give the file `cxrbench pack` "
                        "wrote") from None
    root = Path(into).resolve()
    with tar:
        members = tar.getmembers()
        for m in members:
            parts = Path(m.name).parts
            if m.name.startswith(("/", "\\")) or Path(m.name).is_absolute() or ".." in parts or not parts:
                raise PackError(f"{archive}: member {m.name!r} points outside the pack; refusing the archive")
            if not (m.isfile() or m.isdir()):
                raise PackError(f"{archive}: member {m.name!r} is not a plain file or folder (a link or device); "
                                "refusing the archive")
            if not (root / m.name).resolve().is_relative_to(root):
                raise PackError(f"{archive}: member {m.name!r} points outside the pack; refusing the archive")
        for m in members:
            target = root / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            with src, open(target, "wb") as fh:
                shutil.copyfileobj(src, fh)


def verify_pack(folder: Path, shown: Path | None = None) -> dict:
    """The pack document of ``folder`` after every check: its digest, its format, the fit key
    against the fields it hashes, every listed file's size and sha256, no unlisted file, and
    every file's kind. Raises :class:`PackError` naming the first problem."""
    from cxrbench.store import DIGEST_KEY, record_digest

    where = shown or folder
    doc_path = Path(folder) / PACK_FILE
    try:
        meta = json.loads(doc_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackError(f"{where}: not a cxrbench pack ({PACK_FILE} missing)") from None
    except (OSError, ValueError) as exc:
        raise PackError(f"{where}: {PACK_FILE} is unreadable ({type(exc).__name__}); the pack is damaged") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PackError(f"{where}: {PACK_FILE} is not a cxrbench pack document")
    if meta.get("format_version") != FORMAT_VERSION:
        raise PackError(f"{where}: pack format version {meta.get('format_version')!r}; this cxrbench reads "
                        f"{FORMAT_VERSION}: use the cxrbench version that wrote it")
    digest = meta.get(DIGEST_KEY)
    if not isinstance(digest, dict) or digest.get("sha256") != record_digest(meta):
        raise PackError(f"{where}: {PACK_FILE} does not match its digest (edited or damaged); refusing the pack")
    hashed, key = meta.get("hashed"), str(meta.get("fit_key"))
    if not isinstance(hashed, dict) or content_key(hashed) != key.split("-truncated-")[0]:
        raise PackError(f"{where}: its fit key {key} is not the hash of the fields it lists (edited); "
                        "refusing the pack")
    files = meta.get("files")
    if not isinstance(files, dict) or f"{FIT_FOLDER}/{DONE_FILE}" not in files:
        raise PackError(f"{where}: {PACK_FILE} lists no fit ({FIT_FOLDER}/{DONE_FILE}); the pack is incomplete")
    present = {p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file()} - {PACK_FILE}
    extra = sorted(present - set(files))
    if extra:
        raise PackError(f"{where}: {extra[0]} is not listed in {PACK_FILE} (added after packing); refusing the pack")
    problem = verify(files, folder)
    if problem:
        shown_problem = problem.replace(str(folder), str(where)) if shown else problem
        raise PackError(f"tampered or damaged pack: {shown_problem}; refusing it (get the pack again)")
    for rel in files:
        if rel.startswith(f"{FIT_FOLDER}/"):
            check_file_kind(Path(folder) / rel, rel)
    return meta


# --------------------------------------------------------------------------- installing


def install(pack: OpenedPack, cache_root: Path, fit_key: str | None = None) -> Path:
    """Install ``pack``'s fit into ``cache_root`` under ``fit_key`` (default: the pack's own) and
    return the cache entry. An entry already finished there is kept (same key, same model).
    Atomic: the files go into a temporary folder inside the cache, are checked against the
    pack's checksums, and the folder is renamed into place (into an existing unfinished entry,
    the fit's record goes last, so no reader sees a half-installed fit as finished)."""
    meta = pack.meta
    name, key = meta["generator"], fit_key or meta["fit_key"]
    target = fit_dir(cache_root, name, key)
    with entry_lock(target, f"the {name} fit"):
        if (target / DONE_FILE).is_file() and _finished(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            fit_src = pack.folder / FIT_FOLDER
            entries = {rel[len(FIT_FOLDER) + 1:]: e for rel, e in meta["files"].items()
                       if rel.startswith(f"{FIT_FOLDER}/")}
            for rel in entries:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(fit_src / rel, tmp / rel)
            if key != meta["fit_key"]:  # installed under another key: its record says which
                record = json.loads((tmp / DONE_FILE).read_text())
                record.update(fit_key=key, packed_fit_key=meta["fit_key"])
                (tmp / DONE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
                entries.pop(DONE_FILE)
            problem = verify(entries, tmp)
            if problem:
                raise PackError(f"installing the pack changed a file ({problem}); check the disk and unpack again")
            if not target.exists():
                os.replace(tmp, target)
            else:
                for p in sorted(tmp.rglob("*"), key=lambda q: q.name == DONE_FILE):
                    if p.is_file():
                        (target / p.relative_to(tmp)).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(p, target / p.relative_to(tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _finished(folder: Path) -> bool:
    try:
        return verify(json.loads((folder / DONE_FILE).read_text()).get("manifest") or {}, folder) is None
    except (OSError, ValueError):
        return False


def unpack(path: Path, cache_root: Path) -> tuple[Path, dict]:
    """``cxrbench unpack``: check the pack at ``path`` and install its fit under its own key.
    Returns (cache entry, pack document)."""
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    with OpenedPack(path, scratch=cache_root) as pack:
        return install(pack, cache_root), pack.meta
