"""The release artefacts: the sdist and the wheel hold everything the package needs, and the CLI
works from the wheel installed on its own (not from this source tree).

What `python -m build` does, offline and without build isolation: the sdist is built from a copy
of the working tree (git's tracked and untracked-but-not-ignored files), then the wheel from that
sdist (pip wheel of the tarball), so a file missing from either shows here. The wheel is installed
into a fresh virtual environment (``python -m venv --without-pip``, then ``pip --python``) whose
third-party packages come from the suite's own site-packages through a folder of symlinks that
leaves out every file of the suite's cxrbench install (an editable finder or a regular copy), so
nothing of this checkout can shadow the wheel. Nothing is installed into the environment running
the tests and nothing is written into the repository.

Skipped, with the reason, where setuptools >= the build-system's minimum or pip is missing
(``pip install ".[test]"`` brings setuptools).
"""

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import cxrbench

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.packaging

DATA_FILES = ("cxrbench/py.typed", "cxrbench/CITATION.cff", "cxrbench/leaderboard/default-schema.yaml",
              "cxrbench/leaderboard/page.css", "cxrbench/leaderboard/page.js")
BUILTIN_GROUPS = {"builtin-generators": "cxrbench.plugins.generators", "builtin-datasets": "cxrbench.plugins.datasets",
                  "builtin-classifiers": "cxrbench.plugins.classifiers",
                  "builtin-postprocessors": "cxrbench.plugins.postprocessors",
                  "builtin-segmenters": "cxrbench.plugins.segmenters"}
IGNORED = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".venv", "runs",
                                 ".cxrbench-cache", ".pytest_cache")
RUN_SPEC = """spec_version: 1
name: wheel-smoke
description: real-only tiny-cnn on a small phantom, from the installed wheel
dataset: {name: phantom, options: {n_train: 48, n_val: 24, n_test: 24}}
size: 16
classifier: {name: tiny-cnn}
protocols: [{name: real-only, schedule: quick}]
seeds: [0]
evaluation: {bootstrap_resamples: 20}
quality: {enabled: false}
"""


def _min_setuptools() -> tuple[int, ...]:
    found = re.search(r'"setuptools>=([\d.]+)"', (REPO / "pyproject.toml").read_text())
    return tuple(int(x) for x in found.group(1).split(".")) if found else (0,)


def _skip_without_build_tools() -> None:
    need = _min_setuptools()
    try:
        have = tuple(int(x) for x in re.findall(r"\d+", metadata.version("setuptools"))[:3])
    except metadata.PackageNotFoundError:
        pytest.skip("setuptools is not installed here: the wheel is built offline, without build isolation "
                    "(pip install '.[test]' brings it)")
    if have < need:
        pytest.skip(f"setuptools {'.'.join(map(str, have))} < {'.'.join(map(str, need))} (the build-system's "
                    "minimum): the wheel is built offline, without build isolation")
    try:
        metadata.version("pip")
    except metadata.PackageNotFoundError:
        pytest.skip("pip is not installed here: it builds the wheel from the sdist and installs it")


def _source_files() -> list[str]:
    """The working tree as a release sees it: git's tracked and untracked-but-not-ignored files."""
    if shutil.which("git") and (REPO / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True)
        if out.returncode == 0:
            return [f for f in out.stdout.decode().split("\0") if f and (REPO / f).is_file()]
    return []


def _copy_tree(dest: Path) -> None:
    files = _source_files()
    if not files:  # not a git checkout: everything but build products and caches
        shutil.copytree(REPO, dest, ignore=IGNORED, symlinks=True)
        return
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel, follow_symlinks=False)


def _run(cmd, **kw):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(source copy, sdist, wheel) built offline from a copy of the working tree."""
    _skip_without_build_tools()
    root = tmp_path_factory.mktemp("release")
    src, dist = root / "src", root / "dist"
    src.mkdir()
    dist.mkdir()
    _copy_tree(src)
    build_sdist = "import sys\nfrom setuptools import build_meta\nprint(build_meta.build_sdist(sys.argv[1]))\n"
    name = _run([sys.executable, "-c", build_sdist, dist], cwd=src).stdout.strip().splitlines()[-1]
    sdist = dist / name
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
          "-w", dist, sdist], cwd=root)
    (wheel,) = dist.glob("*.whl")
    return {"src": src, "sdist": sdist, "wheel": wheel, "root": root}


def _version_of(src: Path) -> str:
    return re.search(r'^__version__ = "([^"]+)"', (src / "harness" / "__init__.py").read_text(), re.M).group(1)


def _modules(src: Path) -> list[str]:
    """Every file of harness/ and plugins/ (source and data, no bytecode) as its wheel path."""
    out = []
    for folder, prefix in (("harness", "cxrbench"), ("plugins", "cxrbench/plugins")):
        for f in sorted((src / folder).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                out.append(f"{prefix}/{f.relative_to(src / folder).as_posix()}")
    return out


def test_packages_and_package_data_cover_the_source_tree():
    """pyproject lists every package folder and every non-Python file of harness/ and plugins/
    (a new subpackage or asset left out of the list would be missing from the wheel)."""
    tomllib = pytest.importorskip("tomllib")
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, data = set(cfg["packages"]), cfg.get("package-data", {})
    for folder, prefix in (("harness", "cxrbench"), ("plugins", "cxrbench.plugins")):
        assert cfg["package-dir"][prefix] == folder
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            package = ".".join((prefix, *rel))
            assert package in listed, f"{init.parent} is not in [tool.setuptools] packages as {package}"
        for f in (REPO / folder).rglob("*"):
            if not f.is_file() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts:
                continue
            package = ".".join((prefix, *f.parent.relative_to(REPO / folder).parts))
            assert f.name in data.get(package, []), f"{f} is not in [tool.setuptools.package-data] {package!r}"
    assert 'version = { attr = "cxrbench.__version__" }' in (REPO / "pyproject.toml").read_text()


def test_wheel_holds_the_package_and_its_metadata(built):
    src, wheel = built["src"], built["wheel"]
    version = _version_of(src)
    assert version == cxrbench.__version__
    assert wheel.name == f"cxrbench-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"cxrbench-{version}.dist-info"
        meta = z.read(f"{info}/METADATA").decode()
        entry_points = z.read(f"{info}/entry_points.txt").decode()
        packaged_cff = z.read("cxrbench/CITATION.cff")
    missing = [m for m in _modules(src) if m not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert not [m for m in DATA_FILES if m not in names]
    assert any(n.startswith("cxrbench/tasks/") for n in names)
    assert f"{info}/licenses/LICENSE" in names
    assert packaged_cff == (src / "CITATION.cff").read_bytes()
    assert not [n for n in names if not n.startswith(("cxrbench/", f"{info}/"))], "stray top-level files"
    assert re.search(rf"^Version: {re.escape(version)}$", meta, re.M)  # one version source
    assert re.search(r"^License-Expression: Apache-2\.0$", meta, re.M)
    assert re.search(r"^Requires-Python: >=3\.10$", meta, re.M)
    eps = configparser.ConfigParser(delimiters=("=",))
    eps.optionxform = str
    eps.read_string(entry_points)
    assert dict(eps["console_scripts"]) == {"cxrbench": "cxrbench.cli:main"}
    assert dict(eps["cxrbench"]) == BUILTIN_GROUPS
    assert dict(eps["pytest11"]) == {"cxrbench": "cxrbench.pytest_plugin"}


def test_sdist_holds_the_sources_and_release_files(built):
    src, sdist = built["src"], built["sdist"]
    top = sdist.name[: -len(".tar.gz")]
    with tarfile.open(sdist) as t:
        names = {n[len(top) + 1:] for n in t.getnames() if n.startswith(top + "/")}
    for rel in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "CITATION.cff", "PKG-INFO"):
        assert rel in names, rel
    wanted = [f"{folder}/{f.relative_to(src / folder).as_posix()}" for folder in ("harness", "plugins")
              for f in (src / folder).rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    assert not [w for w in wanted if w not in names], "not in the sdist"


# ------------------------------------------------------------------ the wheel, installed on its own


def _site_packages_of_this_python() -> list[Path]:
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return [Path(d) for d in dict.fromkeys(dirs) if Path(d).is_dir()]


def _dependency_farm(dest: Path) -> Path:
    """Symlinks to every entry of this interpreter's site-packages except the files of its own
    cxrbench distribution (the editable finder and .pth, or the installed package) and its metadata."""
    dest.mkdir()
    own: set[str] = set()
    try:
        dist = metadata.distribution("cxrbench")
        own |= {Path(str(f)).parts[0] for f in (dist.files or []) if not str(f).startswith("..")}
        own.add(Path(str(dist._path)).name)  # its dist-info folder
    except metadata.PackageNotFoundError:
        pass
    for site in _site_packages_of_this_python():
        for entry in site.iterdir():
            name = entry.name
            if name in own or name.startswith(("__editable__", "cxrbench")) or (dest / name).exists():
                continue
            (dest / name).symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def installed(built):
    """The wheel in a fresh venv; its other dependencies from this interpreter, minus cxrbench."""
    root = built["root"]
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    if not python.exists():  # pragma: no cover - Windows layout
        pytest.skip("the fresh venv has no bin/python (not a POSIX layout)")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet",
          built["wheel"]])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())
    farm = _dependency_farm(root / "deps")
    # processed at start-up: the farm's own .pth files (none of them cxrbench's) run as usual
    (site / "zz_cxrbench_test_deps.pth").write_text(f"import site; site.addsitedir({str(farm)!r})\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    env.update(PYTHONNOUSERSITE="1", CXRBENCH_CACHE=str(root / "cache"), CXRBENCH_PROGRESS="0",
               OMP_NUM_THREADS="1", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    work = root / "work"  # cwd outside the source tree: nothing of it on sys.path
    work.mkdir()
    return {"python": python, "cli": venv / "bin" / "cxrbench", "site": site, "env": env, "cwd": work}


PROBE = """
import json, sys
from importlib import metadata
import cxrbench, cxrbench.plugins, cxrbench.tasks
from cxrbench.store import code_fingerprint
dists = [str(d._path) for d in metadata.distributions() if (d.metadata["Name"] or "").lower() == "cxrbench"]
print(json.dumps({
    "file": cxrbench.__file__, "plugins": cxrbench.plugins.__file__, "tasks": cxrbench.tasks.__file__,
    "version": cxrbench.__version__, "dist_version": metadata.version("cxrbench"), "dists": dists,
    "eps": sorted([ep.name, ep.value] for ep in metadata.entry_points(group="cxrbench")),
    "pytest11": sorted([ep.name, ep.value] for ep in metadata.entry_points(group="pytest11") if ep.name == "cxrbench"),
    "finders": [type(f).__name__ if not isinstance(f, type) else f.__name__ for f in sys.meta_path],
    "fingerprint": code_fingerprint(),
}))
"""


def test_installed_wheel_is_the_only_cxrbench(built, installed):
    from cxrbench.store import fingerprint_files

    out = _run([installed["python"], "-c", PROBE], env=installed["env"], cwd=installed["cwd"])
    got = json.loads(out.stdout.strip().splitlines()[-1])
    site = str(installed["site"])
    for key in ("file", "plugins", "tasks"):
        assert got[key].startswith(site), f"{key} imported from {got[key]}, not the wheel in {site}"
    assert got["version"] == got["dist_version"] == _version_of(built["src"])
    assert got["dists"] == [str(installed["site"] / f"cxrbench-{got['version']}.dist-info")], got["dists"]
    assert got["eps"] == sorted([k, v] for k, v in BUILTIN_GROUPS.items()), got["eps"]
    assert got["pytest11"] == [["cxrbench", "cxrbench.pytest_plugin"]]
    assert not [f for f in got["finders"] if "Editable" in f], got["finders"]
    # every code file of the tree it was built from is in the wheel, byte for byte
    src = built["src"]
    assert got["fingerprint"] == fingerprint_files({"cxrbench.plugins": src / "plugins", "cxrbench": src / "harness"})


def test_cli_from_the_wheel_lists_plugins_cites_and_runs(built, installed):
    cli, env, cwd = installed["cli"], installed["env"], installed["cwd"]
    version = _version_of(built["src"])
    assert _run([cli, "--version"], env=env, cwd=cwd).stdout.strip() == f"cxrbench {version}"

    listing = _run([cli, "plugins"], env=env, cwd=cwd).stdout
    names = {line.split()[0] for line in listing.splitlines() if line.strip()}
    assert {"phantom", "kermany", "ddpm", "ldm", "tiny-cnn", "proxy-filter", "tiny-unet"} <= names, listing

    cite = _run([cli, "cite"], env=env, cwd=cwd).stdout
    assert "Identifying Medical Diagnoses and Treatable Diseases by Image-Based Deep Learning" in cite

    spec = cwd / "wheel-smoke.yaml"
    spec.write_text(RUN_SPEC)
    out = cwd / "run"
    run = subprocess.run([str(cli), "run", "--spec", str(spec), "--out", str(out), "--device", "cpu",
                          "--no-progress", "--threads", "1"], env=env, cwd=cwd, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    assert records and all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    versions = records[0]["versions"]
    assert versions["cxrbench"] == version
    assert "AUROC" in run.stdout
