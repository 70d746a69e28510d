"""Seal records written before cxrbench sealed them (a one-off migration).

    python benchmarks/seal_records.py RESULTS_DIR [RESULTS_DIR ...] [--check]

Adds ``digest`` (sha256 of the record's canonical JSON, cxrbench.store.seal) to every
``cells/*.json`` that has none, rewriting it in the store's format. A record that already has
a digest is verified, never re-sealed: one that fails its digest stops the script (it was
edited or damaged: re-run the cell instead). Sealing says "these numbers are the ones I checked";
run it only on records whose provenance you trust (e.g. committed, reviewed results).
Sealing adds the digest and nothing else: ``git_revision`` stays what the run wrote (the commit
of the code that made the record; null for records made by a copy of the code without its
GIT_REVISION file, see benchmarks/freeze_code.py), and the digest covers it.
``--check`` changes nothing and exits 1 when some record is unsealed or fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from cxrbench.store import DIGEST_KEY, BadRecord, atomic_write_json, read_record, seal

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="results folders (each holding cells/)")
    p.add_argument("--check", action="store_true", help="only report; exit 1 if anything is unsealed or fails")
    args = p.parse_args(argv)
    sealed = verified = 0
    for folder in map(Path, args.folders):
        if not (folder / "cells").is_dir():
            print(f"{folder}: not a results folder (no cells/ inside)", file=sys.stderr)
            return 2
        for path in sorted((folder / "cells").glob("*.json")):
            try:
                record = read_record(path)
            except BadRecord as exc:
                print(f"seal_records: {exc}", file=sys.stderr)
                return 1
            if DIGEST_KEY in record:
                verified += 1
                continue
            if args.check:
                print(f"seal_records: {path}: carries no digest", file=sys.stderr)
                return 1
            atomic_write_json(path, seal(record))
            json.loads(path.read_text())  # read back: the file is whole
            sealed += 1
    print(f"{sealed} record(s) sealed, {verified} already sealed and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
