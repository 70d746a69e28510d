"""CITATION.cff and `cxrbench cite`: one source, valid CFF 1.2.0, every dataset plugin cited.

The repository's CITATION.cff is the source; harness/CITATION.cff is the copy shipped in the
package (read by `cxrbench cite` from an installed wheel) and must stay byte-identical.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import cxrbench
from cxrbench import citation
from cxrbench.cli import main
from cxrbench.plugins import BUILTINS

REPO = Path(__file__).resolve().parents[2]
ROOT_CFF = REPO / "CITATION.cff"
PACKAGED_CFF = REPO / "harness" / "CITATION.cff"

# The CFF 1.2.0 schema's keys (https://citation-file-format.github.io/1.2.0/schema), the subset
# of its rules a hand-written file can break: unknown keys, required keys, types, patterns.
ROOT_KEYS = {"abstract", "authors", "cff-version", "commit", "contact", "date-released", "doi", "identifiers",
             "keywords", "license", "license-url", "message", "preferred-citation", "references", "repository",
             "repository-artifact", "repository-code", "title", "type", "url", "version"}
REFERENCE_KEYS = {
    "abbreviation", "abstract", "authors", "collection-doi", "collection-title", "collection-type", "commit",
    "conference", "contact", "copyright", "data-type", "database", "database-provider", "date-accessed",
    "date-downloaded", "date-published", "date-released", "department", "doi", "edition", "editors",
    "editors-series", "end", "entry", "filename", "format", "identifiers", "institution", "isbn", "issn", "issue",
    "issue-date", "issue-title", "journal", "keywords", "languages", "license", "license-url", "loc-end",
    "loc-start", "location", "medium", "month", "nihmsid", "notes", "number", "number-volumes", "pages",
    "patent-states", "pmcid", "publisher", "recipients", "repository", "repository-artifact", "repository-code",
    "scope", "section", "senders", "start", "status", "term", "thesis-type", "title", "translators", "type", "url",
    "version", "volume", "volume-title", "year", "year-original"}
PERSON_KEYS = {"address", "affiliation", "alias", "city", "country", "email", "family-names", "given-names",
               "name-particle", "name-suffix", "orcid", "post-code", "region", "tel", "website"}
ENTITY_KEYS = {"address", "alias", "city", "country", "date-end", "date-start", "email", "fax", "location", "name",
               "orcid", "post-code", "region", "tel", "website"}
REFERENCE_TYPES = {
    "art", "article", "audiovisual", "bill", "blog", "book", "catalogue", "conference-paper", "conference", "data",
    "database", "dictionary", "edited-work", "encyclopedia", "film-broadcast", "generic", "government-document",
    "grant", "hearing", "historical-work", "legal-case", "legal-rule", "magazine-article", "manual", "map",
    "multimedia", "music", "newspaper-article", "pamphlet", "patent", "personal-communication", "proceedings",
    "report", "serial", "slides", "software-code", "software-container", "software-executable",
    "software-virtual-machine", "software", "sound-recording", "standard", "statute", "thesis", "unpublished",
    "video", "website"}
INTEGER_KEYS = {"end", "start", "pages", "volume", "year", "year-original", "month", "number-volumes", "loc-start",
                "loc-end"}
DOI = re.compile(r"^10\.\d{4,9}(\.\d+)?/[A-Za-z0-9:/_;\-\.\(\)\[\]\\]+$")
URL = re.compile(r"^(https|http|ftp|sftp)://.+")
#: dataset plugins with nothing to cite: the phantom is rendered by cxrbench itself ("Citation: none")
UNCITED_DATASETS = {"phantom"}


@pytest.fixture(scope="module")
def cff():
    return yaml.safe_load(ROOT_CFF.read_text(encoding="utf-8"))


def _check_authors(where, authors):
    assert isinstance(authors, list) and authors, f"{where}: authors must be a non-empty list"
    for a in authors:
        allowed = ENTITY_KEYS if "name" in a else PERSON_KEYS
        assert set(a) <= allowed, f"{where}: author keys {sorted(set(a) - allowed)} are not CFF"
        assert all(isinstance(v, str) and v for v in a.values()), f"{where}: author {a}"
    assert len({tuple(sorted(a.items())) for a in authors}) == len(authors), f"{where}: duplicate author"


def _check_common(where, entry):
    if "doi" in entry:
        assert DOI.match(entry["doi"]), f"{where}: doi {entry['doi']!r}"
    for key in ("url", "repository-code", "repository", "license-url"):
        if key in entry:
            assert URL.match(entry[key]), f"{where}: {key} {entry[key]!r}"
    for ident in entry.get("identifiers", []):
        assert ident.get("type") in {"doi", "url", "swh", "other"} and ident.get("value"), f"{where}: {ident}"
        if ident["type"] == "doi":
            assert DOI.match(ident["value"]), f"{where}: identifier doi {ident['value']!r}"
        if ident["type"] == "url":
            assert URL.match(ident["value"]), f"{where}: identifier url {ident['value']!r}"
    if "keywords" in entry:
        assert all(isinstance(k, str) and k for k in entry["keywords"]), where


def test_citation_cff_is_valid_cff_1_2_0(cff):
    assert cff["cff-version"] == "1.2.0"
    assert set(cff) <= ROOT_KEYS, sorted(set(cff) - ROOT_KEYS)
    for key in ("authors", "cff-version", "message", "title"):
        assert cff.get(key), f"required key {key} missing"
    assert cff["title"] == "cxrbench" and cff["type"] == "software" and cff["license"] == "Apache-2.0"
    assert cff["authors"] == [{"name": "cxrbench contributors"}]
    assert "only variable" in cff["abstract"]
    _check_authors("root", cff["authors"])
    _check_common("root", cff)
    refs = cff["references"]
    assert len(refs) >= 20
    seen = set()
    for ref in refs:
        where = ref.get("title", "?")
        assert set(ref) <= REFERENCE_KEYS, f"{where}: {sorted(set(ref) - REFERENCE_KEYS)} are not CFF"
        assert ref.get("type") in REFERENCE_TYPES, f"{where}: type {ref.get('type')!r}"
        assert isinstance(ref.get("title"), str) and ref["title"], where
        _check_authors(where, ref.get("authors"))
        _check_common(where, ref)
        for key in INTEGER_KEYS & set(ref):
            assert isinstance(ref[key], int) and not isinstance(ref[key], bool), f"{where}: {key} must be an integer"
        if "status" in ref:
            assert ref["status"] in {"abstract", "advance-online", "in-preparation", "in-press", "preprint",
                                     "submitted"}, where
        assert set(ref.get("keywords", [])) & {"dataset", "method"}, f"{where}: keyword dataset or method"
        assert ref.get("notes"), f"{where}: notes say what in cxrbench uses it"
        assert ref["title"] not in seen, f"{where}: listed twice"
        seen.add(ref["title"])


def test_version_is_the_package_version(cff):
    assert str(cff["version"]) == cxrbench.__version__


def test_packaged_copy_is_identical_to_the_repository_file():
    assert PACKAGED_CFF.read_bytes() == ROOT_CFF.read_bytes(), (
        "harness/CITATION.cff (shipped in the package) differs from CITATION.cff: "
        "cp CITATION.cff harness/CITATION.cff")


def test_cite_reads_the_packaged_file():
    """What `cxrbench cite` reads is the repository's file (in a checkout, and in CI's install)."""
    assert citation.cff_text() == ROOT_CFF.read_text(encoding="utf-8")


def test_every_dataset_plugin_is_cited(cff):
    datasets = [name for kind, name, _, _ in BUILTINS if kind == "datasets"]
    assert "kermany" in datasets and "phantom" in datasets
    text = [f"{r['title']} {r.get('notes', '')}" for r in cff["references"] if "dataset" in r.get("keywords", [])]
    for name in datasets:
        if name in UNCITED_DATASETS:
            continue
        assert any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", t) for t in text), \
            f"dataset plugin {name!r} has no reference naming it in its title or notes"


def test_dataset_docstring_citations_are_in_the_file(cff):
    """Every quoted title in a dataset plugin's "Citation" text is a reference title (the
    docstrings and the file cite the same papers)."""
    def norm(s):
        return " ".join(s.replace("\u2013", "-").split()).lower()

    titles = {norm(r["title"]) for r in cff["references"]}
    quoted = []
    for path in sorted((REPO / "plugins" / "datasets").glob("*.py")):
        quoted += [(path.name, norm(t)) for t in re.findall(r'\(\d{4}\),\s*"([^"]+)"', path.read_text())]
    assert len(quoted) >= 8
    missing = [(f, t) for f, t in quoted if t not in titles]
    assert not missing, missing


def test_methods_cited_in_docstrings_are_in_the_file(cff):
    """The studies and methods the generators, protocols and metrics name by author."""
    authors = {a.get("family-names") for r in cff["references"] for a in r["authors"]}
    for name in ("Khosravi", "Prakash", "Peng", "Ho", "Rombach", "Rubin", "DeLong", "Naeem", "Miyato", "Zhao",
                 "Karras", "Sun", "Obuchowski"):
        assert name in authors, name


def test_cite_text_prints_the_software_and_kermany(capsys):
    assert main(["cite"]) == 0
    out = capsys.readouterr().out
    assert f"cxrbench (version {cxrbench.__version__})" in out
    assert "Kermany D. S. et al. (2018). Identifying Medical Diagnoses and Treatable Diseases by Image-Based " \
           "Deep Learning. Cell 172(5):1122-1131." in out
    assert "doi:10.17632/rscbjbr9sj.2" in out
    assert out.index("Datasets") < out.index("Studies and methods")


def test_cite_bibtex_has_one_entry_per_reference(cff, capsys):
    assert main(["cite", "--format", "bibtex"]) == 0
    out = capsys.readouterr().out
    keys = re.findall(r"^@(\w+)\{([^,]+),$", out, flags=re.M)
    assert len(keys) == len(cff["references"]) + 1  # + the software itself
    assert keys[0] == ("software", "cxrbench")
    assert len({k for _, k in keys}) == len(keys), "duplicate BibTeX keys"
    assert out.count("{") == out.count("}")
    assert "@article{kermany2018identifying," in out
    assert "author = {Kermany, Daniel S. and others}" in out
    assert "author = {van Ginneken, Bram and Stegmann, Mikkel B. and Loog, Marco}" in out
    assert "eprint = {2311.09402}" in out


def test_cite_cff_prints_the_file(capsys):
    assert main(["cite", "--format", "cff"]) == 0
    assert capsys.readouterr().out == ROOT_CFF.read_text(encoding="utf-8")


def test_cite_command_is_light_and_exits_0():
    """The console command, in a fresh interpreter: exit 0, the Kermany reference, no torch."""
    probe = ("import sys\nfrom cxrbench import cli\ncode = cli.main(['cite'])\n"
             "print('HEAVY=' + ','.join(m for m in ('torch', 'diffusers', 'timm') if m in sys.modules))\n"
             "sys.exit(code)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Identifying Medical Diagnoses and Treatable Diseases" in out.stdout
    assert out.stdout.rstrip().endswith("HEAVY="), out.stdout[-300:]
