"""`cxrbench cite`: how to cite cxrbench, and the datasets and methods it builds on.

Everything comes from one file, the repository's ``CITATION.cff`` (Citation File Format 1.2.0),
shipped inside the package as ``cxrbench/CITATION.cff`` (package data; a test keeps the copy
identical to the repository's), so an installed wheel prints the same as a checkout:

- ``--format text`` (default): the software citation, then the datasets, then the methods, one
  reference a line, each with what in cxrbench uses it;
- ``--format bibtex``: one ``@entry`` for the software and one per reference;
- ``--format cff``: the file itself.

Cheap to import: PyYAML is imported when a citation is read.
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from typing import Any

FORMATS = ("text", "bibtex", "cff")
#: an author ``name: others`` stands for the remaining authors
OTHERS = "others"


def cff_text() -> str:
    """The packaged CITATION.cff, verbatim."""
    return resources.files("cxrbench").joinpath("CITATION.cff").read_text(encoding="utf-8")


def load() -> dict[str, Any]:
    """The packaged CITATION.cff as a mapping (YAML dates, if any, stay as YAML reads them)."""
    import yaml

    data = yaml.safe_load(cff_text())
    if not isinstance(data, dict):
        raise ValueError("CITATION.cff is not a YAML mapping")
    return data


# ------------------------------------------------------------------ text


def _person(author: dict[str, Any]) -> str:
    if "name" in author:
        return str(author["name"])
    family = " ".join(str(author[k]) for k in ("name-particle", "family-names") if author.get(k))
    initials = " ".join("-".join(p.strip(".")[0] + "." for p in token.split("-") if p.strip("."))
                        for token in str(author.get("given-names", "")).split())
    suffix = f" {author['name-suffix']}" if author.get("name-suffix") else ""
    return f"{family} {initials}{suffix}".strip()


def authors_text(authors: list[dict[str, Any]]) -> str:
    """``Family I., Family I. et al.`` (an author named ``others`` prints as ``et al.``)."""
    named = [_person(a) for a in authors if a.get("name") != OTHERS]
    more = any(a.get("name") == OTHERS for a in authors)
    if len(named) > 6:
        named, more = named[:3], True
    return ", ".join(named) + (" et al." if more else "")


def _identifiers(ref: dict[str, Any]) -> list[str]:
    out = [f"doi:{ref['doi']}"] if ref.get("doi") else []
    for ident in ref.get("identifiers") or []:
        value = str(ident["value"])
        out.append(f"doi:{value}" if ident.get("type") == "doi" else value)
    if ref.get("url"):
        out.append(str(ref["url"]))
    return out


def _venue(ref: dict[str, Any]) -> str:
    venue = ref.get("journal") or ref.get("collection-title") or (ref.get("publisher") or {}).get("name") or ""
    if not venue and ref.get("status") == "preprint":
        arxiv = any(str(i.get("value", "")).lower().startswith("arxiv:") for i in ref.get("identifiers") or [])
        venue = "arXiv preprint" if arxiv else "preprint"
    if ref.get("volume"):
        venue += f" {ref['volume']}"
        if ref.get("issue"):
            venue += f"({ref['issue']})"
    if ref.get("start"):
        pages = f"{ref['start']}-{ref['end']}" if ref.get("end") else f"{ref['start']}"
        venue += f":{pages}" if ref.get("volume") else f", {pages}"
    return venue.strip()


def reference_text(ref: dict[str, Any]) -> str:
    """One line: authors (year). Title. Venue. Identifiers."""
    parts = [f"{authors_text(ref['authors'])} ({ref.get('year', 'n.d.')}). {str(ref['title']).rstrip('.')}."]
    venue = _venue(ref)
    if venue:
        parts.append(f"{venue}.")
    ids = _identifiers(ref)
    if ids:
        parts.append("; ".join(ids) + ".")
    return " ".join(parts)


def software_text(cff: dict[str, Any]) -> str:
    who = authors_text(cff["authors"])
    line = f"{who}. {cff['title']} (version {cff['version']}) [software]. License {cff['license']}."
    for key in ("doi", "url", "repository-code"):
        if cff.get(key):
            line += f" {'doi:' if key == 'doi' else ''}{cff[key]}."
    return line


def _group(ref: dict[str, Any]) -> str:
    return "dataset" if "dataset" in (ref.get("keywords") or []) else "method"


def format_text(cff: dict[str, Any]) -> str:
    refs = cff.get("references") or []
    lines = [str(cff.get("message", "")).strip(), "", "  " + software_text(cff)]
    for group, heading in (("dataset", "Datasets read by the built-in dataset plugins (cite those you ran on):"),
                           ("method", "Studies and methods the protocols, generators and metrics follow:")):
        chosen = [r for r in refs if _group(r) == group]
        if not chosen:
            continue
        lines += ["", heading]
        for ref in chosen:
            lines.append("  - " + reference_text(ref))
            if ref.get("notes"):
                lines.append(f"    used by: {ref['notes']}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ BibTeX

_BIBTEX_TYPES = {"article": "article", "conference-paper": "inproceedings", "book": "book", "data": "misc",
                 "software": "software"}
_LATEX_SPECIAL = str.maketrans({"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"})


def _tex(value: Any) -> str:
    return " ".join(str(value).split()).translate(_LATEX_SPECIAL)


def _bib_person(author: dict[str, Any]) -> str:
    if "name" in author:
        return OTHERS if author["name"] == OTHERS else "{" + _tex(author["name"]) + "}"
    family = " ".join(_tex(author[k]) for k in ("name-particle", "family-names") if author.get(k))
    given = _tex(author.get("given-names", ""))
    return f"{family}, {given}" if given else family


def _key(ref: dict[str, Any], taken: set[str]) -> str:
    first = next((a for a in ref["authors"] if a.get("name") != OTHERS), {})
    who = first.get("family-names") or first.get("name") or "anon"
    word = next((w for w in re.findall(r"[A-Za-z0-9]+", str(ref["title"]))
                 if w.lower() not in {"a", "an", "the", "on", "of", "for", "with"}), "")
    base = re.sub(r"[^A-Za-z0-9]", "", f"{who}{ref.get('year', '')}{word}").lower() or "ref"
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}{chr(ord('a') + n - 1)}"
    taken.add(key)
    return key


def bibtex_entry(ref: dict[str, Any], key: str) -> str:
    preprint = ref.get("status") == "preprint" and not (ref.get("journal") or ref.get("collection-title"))
    kind = "misc" if preprint else _BIBTEX_TYPES.get(str(ref.get("type")), "misc")
    fields: list[tuple[str, str]] = [("author", " and ".join(_bib_person(a) for a in ref["authors"])),
                                     ("title", "{" + _tex(ref["title"]) + "}")]
    if ref.get("journal"):
        fields.append(("journal", _tex(ref["journal"])))
    if ref.get("collection-title"):
        fields.append(("booktitle", _tex(ref["collection-title"])))
    if ref.get("publisher"):
        fields.append(("publisher", _tex(ref["publisher"]["name"])))
    for name in ("volume", "year", "version"):
        if ref.get(name) is not None:
            fields.append((name, _tex(ref[name])))
    if ref.get("issue") is not None:
        fields.append(("number", _tex(ref["issue"])))
    if ref.get("start") is not None:
        fields.append(("pages", f"{ref['start']}--{ref['end']}" if ref.get("end") else str(ref["start"])))
    dois = [ref["doi"]] if ref.get("doi") else []
    for ident in ref.get("identifiers") or []:
        value = str(ident["value"])
        if ident.get("type") == "doi":
            dois.append(value)
        elif value.lower().startswith("arxiv:"):
            fields += [("eprint", value.split(":", 1)[1]), ("archiveprefix", "arXiv")]
    if dois:
        fields.append(("doi", dois[0]))
    if ref.get("url"):
        fields.append(("url", str(ref["url"])))
    if ref.get("license"):
        fields.append(("license", _tex(ref["license"])))
    if ref.get("notes"):
        fields.append(("note", "cxrbench: " + _tex(ref["notes"])))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@{kind}{{{key},\n{body}\n}}"


def format_bibtex(cff: dict[str, Any]) -> str:
    taken = {"cxrbench"}
    software = {"type": "software", "title": f"{cff['title']}", "authors": cff["authors"],
                "version": cff.get("version"), "license": cff.get("license"), "url": cff.get("repository-code")
                or cff.get("url"), "doi": cff.get("doi")}
    entries = [bibtex_entry({k: v for k, v in software.items() if v}, "cxrbench")]
    entries += [bibtex_entry(ref, _key(ref, taken)) for ref in cff.get("references") or []]
    return "\n\n".join(entries) + "\n"


# ------------------------------------------------------------------ command


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``cite`` subcommand's parser (added to the CLI by cxrbench.cli)."""
    cite = sub.add_parser("cite", help="how to cite cxrbench and the datasets and studies it builds on "
                                       "(from the packaged CITATION.cff)")
    cite.add_argument("--format", choices=FORMATS, default="text",
                      help="text (default): readable references; bibtex: one @entry each; cff: the file itself")
    return cite


def run(args: argparse.Namespace) -> int:
    """``cxrbench cite``: print the citation in the chosen format; exit 0."""
    fmt = getattr(args, "format", "text")
    if fmt == "cff":
        print(cff_text(), end="")
    else:
        cff = load()
        print(format_bibtex(cff) if fmt == "bibtex" else format_text(cff), end="")
    return 0
