"""Reading a spec file as a hostile user might write it: every problem is one line naming the file.

``yaml.safe_load`` is safe against code execution but not against the rest: a binary or
Latin-1 file raises UnicodeDecodeError, a duplicate key silently keeps the last value, a
20,000-deep document overflows the stack, and a few lines of aliases ("billion laughs") expand
to gigabytes in the first code that walks the result. This reader refuses all of them before
anything else sees the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxrbench.errors import ConfigError

#: limits no real spec comes near (the largest in benchmarks/ is ~2 KB, depth 5, no alias)
MAX_BYTES = 1_000_000
MAX_DEPTH = 50
MAX_ALIASES = 100
#: values after alias expansion (a spec with 10,000 values is already absurd)
MAX_VALUES = 100_000


def _loader_class():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses duplicate keys and counts alias uses."""

        aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    mark = self.peek_event().start_mark
                    raise ConfigError(f"more than {MAX_ALIASES} YAML aliases (line {mark.line + 1}); "
                                      "write the values out")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeLoader reports unhashable keys itself
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(f"duplicate key {key!r} at line {line} (first at line {seen[key]}); "
                                      "keep one")
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _measure(data: Any) -> tuple[int, int]:
    """(values after alias expansion, depth), without expanding: shared objects are counted by
    identity with memoisation, so a billion-laughs document is measured in linear time."""
    sizes: dict[int, tuple[int, int]] = {}

    def walk(obj: Any, depth: int) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(obj, (dict, list)):
            return 1, 0
        if id(obj) in sizes:
            return sizes[id(obj)]
        children = list(obj.keys()) + list(obj.values()) if isinstance(obj, dict) else obj
        total, deepest = 1, 0
        for child in children:
            n, d = walk(child, depth + 1)
            total += n
            deepest = max(deepest, d + 1)
            if total > MAX_VALUES:
                raise ConfigError(f"expands to more than {MAX_VALUES:,} values (YAML aliases?); a spec is small")
        sizes[id(obj)] = (total, deepest)
        return total, deepest

    return walk(data, 0)


def read_spec_yaml(path: str | Path) -> Any:
    """The parsed YAML document of ``path``; every problem a ConfigError naming the file."""
    import yaml

    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"{source}: spec file not found; see benchmarks/ for examples")
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(raw):,} bytes is too large for a spec (at most {MAX_BYTES:,})")
    if b"\x00" in raw:
        raise ConfigError(f"{source}: a binary file, not a YAML spec")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "save the spec as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_loader_class())  # noqa: S506 - a SafeLoader subclass
        _measure(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read (at most {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{source}: not valid YAML{at}: {problem}") from None
    return data
