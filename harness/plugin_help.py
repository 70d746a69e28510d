"""`cxrbench plugins NAME`: one plugin's summary, versions, presets and every option with its
type, default and the line of documentation that explains it (issue #29: options you can find).

Option documentation is read from the plugin's Options dataclass the way its authors write it:
``#:`` comment lines above a field (one comment may introduce several fields written under it),
or ``:param name:`` entries of the class docstring (``:param a, b:`` for several).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

_FIELD = re.compile(r"^\s+([A-Za-z_]\w*)\s*:\s*[^=]")
_PARAM = re.compile(r":param\s+([\w, ]+):\s*(.*)")


def option_docs(options_cls: type) -> dict[str, str]:
    """{field name: its documentation, one line} for a dataclass and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(inspect.getmro(options_cls)):
        if not dataclasses.is_dataclass(klass):
            continue
        docs.update(_docstring_params(inspect.getdoc(klass) or ""))
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines[1:]:
            stripped = line.strip()
            if stripped.startswith("#:"):
                if pending and pending[-1] is None:  # a new comment block
                    pending = []
                pending.append(stripped[2:].strip())
            elif _FIELD.match(line) and pending:
                docs[_FIELD.match(line).group(1)] = " ".join(p for p in pending if p)
                pending.append(None)  # the block also documents the fields that follow it
            elif not stripped:
                pending = []
    return docs


def _docstring_params(doc: str) -> dict[str, str]:
    out, current = {}, None
    for line in doc.splitlines():
        m = _PARAM.search(line)
        if m:
            current = [n.strip() for n in m.group(1).split(",") if n.strip()]
            for name in current:
                out[name] = m.group(2).strip()
        elif current and line.startswith((" ", "\t")) and line.strip():
            for name in current:
                out[name] += " " + line.strip()
        else:
            current = None
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return "(required)"


def describe_plugin(entry) -> list[str]:
    """The lines ``cxrbench plugins NAME`` prints."""
    from tabulate import tabulate

    cls = entry.load()
    lines = [f"{entry.name} ({entry.kind}): {entry.summary}",
             f"  package: {entry.source.distribution} {entry.source.version}",
             f"  class version: {getattr(cls, 'version', '-')}"]
    if entry.kind == "generator":
        lines.append(f"  sampling_version: {getattr(cls, 'sampling_version', '-')}")
        caps = getattr(cls, "capabilities", None)
        if caps is not None:
            lines.append("  capabilities: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(caps).items()))
    lines.append(f"  class: {cls.__module__}.{cls.__qualname__}")
    presets = getattr(cls, "PRESETS", None) or {}
    if presets:
        lines.append("  presets: " + ", ".join(presets) + " (options: {preset: NAME}; an option left at None takes "
                     "the preset's value)")
    options_cls = getattr(cls, "Options", None)
    if options_cls is None or not dataclasses.is_dataclass(options_cls):
        lines.append("  options: none")
        return lines
    docs = option_docs(options_cls)
    hints = {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
             for f in dataclasses.fields(options_cls)}
    rows = []
    for f in dataclasses.fields(options_cls):
        default = _default(f)
        if default is None and presets:
            values = {p: v.get(f.name) for p, v in presets.items() if f.name in v}
            if values:
                default = "preset: " + ", ".join(f"{p}={v}" for p, v in values.items())
        rows.append([f.name, hints[f.name], _short(default), docs.get(f.name, "")])
    lines.append("  options:")
    lines += ["    " + row for row in tabulate(rows, headers=["option", "type", "default", "what it does"]).splitlines()]
    return lines


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
