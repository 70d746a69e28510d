"""The learned example plugin (examples/cxrbench-example-vae) passes its own tests, and plugins
import nothing from cxrbench but the public API.

The public API of a plugin is ``cxrbench.contracts``, ``cxrbench.errors``, ``cxrbench.hookspecs``
and ``cxrbench.kit`` (CONTRIBUTING.md). The rule is checked on the source (AST), so a lazy import
inside a method, a relative import climbing out of ``cxrbench.plugins``, an
``importlib.import_module("cxrbench...")`` call or a lazy ``"cxrbench.x:Class"`` registration
string counts as much as a top-level import. The built-in plugins obey the same rule.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "cxrbench-example-vae"
PUBLIC = ("cxrbench.contracts", "cxrbench.errors", "cxrbench.hookspecs", "cxrbench.kit")


# --------------------------------------------------------------------------- the checker


def _module_name(path: Path, root: Path, package: str) -> str:
    """plugins/datasets/mimic.py (root plugins/, package cxrbench.plugins) -> cxrbench.plugins.datasets.mimic."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(filter(None, [package, *parts]))


def cxrbench_references(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every cxrbench module ``source`` imports or names for lazy loading.

    ``module`` is the dotted name of the file (to resolve relative imports); ``is_package``
    when the file is a package's ``__init__``.
    """
    refs: list[tuple[int, str]] = []
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            refs += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb ``level - 1`` packages up from this one
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if node.module is None or origin in ("cxrbench",):
                # ``from cxrbench import kit`` / ``from . import x``: each name may be a module
                refs += [(node.lineno, f"{origin}.{alias.name}") for alias in node.names]
            else:
                refs.append((node.lineno, origin))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                refs.append((node.lineno, node.args[0].value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # a lazy registration target "package.module:Class"
            target, colon, attr = node.value.partition(":")
            if colon and attr.isidentifier() and all(p.isidentifier() for p in target.split(".")):
                refs.append((node.lineno, target))
    return [(line, name) for line, name in refs if name == "cxrbench" or name.startswith("cxrbench.")]


def public_api_violations(root: Path, package: str, own: tuple[str, ...] = ()) -> list[str]:
    """``path:line: module`` for every reference to a cxrbench module that is neither public
    nor one of ``own`` (the plugin's own package) in the .py files under ``root``."""
    allowed = PUBLIC + own
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root, package)
        for line, name in cxrbench_references(path.read_text(encoding="utf-8"), module, path.stem == "__init__"):
            if not any(name == a or name.startswith(a + ".") for a in allowed):
                found.append(f"{path.relative_to(REPO)}:{line}: {name}")
    return found


# --------------------------------------------------------------------------- the rule


def test_example_vae_imports_only_the_public_api():
    src = EXAMPLE / "src"
    assert (src / "cxrbench_example_vae" / "generator.py").is_file()
    assert public_api_violations(src, "") == []
    # and it really uses the kit (the check above would pass on a file that imports nothing)
    refs = {name for path in src.rglob("*.py")
            for _, name in cxrbench_references(path.read_text(encoding="utf-8"), path.stem)}
    assert {"cxrbench.kit", "cxrbench.hookspecs", "cxrbench.contracts"} <= refs


def test_builtin_plugins_import_only_the_public_api():
    files = list((REPO / "plugins").rglob("*.py"))
    assert len(files) > 10
    violations = public_api_violations(REPO / "plugins", "cxrbench.plugins", own=("cxrbench.plugins",))
    assert violations == [], "built-in plugins import private cxrbench modules:\n" + "\n".join(violations)


@pytest.mark.parametrize("source, module", [
    ("from cxrbench.runner import run_cell", "pkg.gen"),
    ("import cxrbench.testing", "pkg.gen"),
    ("import cxrbench", "pkg.gen"),
    ("from cxrbench import registry", "pkg.gen"),
    ("def f():\n    from cxrbench.cache import Cache", "pkg.gen"),
    ("import importlib\nimportlib.import_module('cxrbench.datasets')", "pkg.gen"),
    ("registry.add('x', 'cxrbench.evaluation.metrics:Foo')", "pkg.gen"),
    ("from ...registry import load_plugins", "cxrbench.plugins.generators.gen"),  # climbs out
    ("from .. import registry", "cxrbench.plugins.gen"),
])
def test_the_checker_catches_private_imports(source, module):
    refs = cxrbench_references(source, module)
    assert refs and not all(any(n == a or n.startswith(a + ".") for a in PUBLIC + ("cxrbench.plugins",))
                            for _, n in refs), refs


@pytest.mark.parametrize("source, module", [
    ("from cxrbench.kit import LearnedGenerator\nfrom cxrbench import errors", "pkg.gen"),
    ("import cxrbench.kit.images\nfrom cxrbench.contracts import Split", "pkg.gen"),
    ("from .chexpert import CHEXPERT_LABELS", "cxrbench.plugins.datasets.mimic"),
    ("registry.add('x', 'cxrbench.plugins.generators.gan:GANGenerator')", "cxrbench.plugins.generators"),
])
def test_the_checker_accepts_the_public_api(source, module):
    refs = cxrbench_references(source, module)
    assert all(any(n == a or n.startswith(a + ".") for a in PUBLIC + ("cxrbench.plugins",)) for _, n in refs), refs


# --------------------------------------------------------------------------- its own tests


def run_example_tests(where):
    """`python -m pytest tests` in an example package's folder, as its author would run it: the
    package comes from its source folder through PYTHONPATH, nothing is installed anywhere.
    Returns (pytest's last line, the output's tail) after checking it exited 0."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(where / "src"), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",  # leave no __pycache__ in the example's folders
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "-rfEs",
           "-c", str(where / "pyproject.toml"), "--rootdir", str(where)]
    out = subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=600)
    tail = (out.stdout + out.stderr)[-4000:]
    assert out.returncode == 0, tail
    return out.stdout.strip().splitlines()[-1], tail


@pytest.mark.slow
def test_example_vae_passes_its_own_tests():
    summary, tail = run_example_tests(EXAMPLE)
    # every contract check ran: the kit skips the label probe of a generator without labels
    assert " passed" in summary and "skipped" not in summary and "deselected" not in summary, tail
