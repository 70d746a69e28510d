"""The JSON Schema of a cell record, and a check of records against it.

Contract
--------
* ``record.schema.json`` (shipped in the package, draft 2020-12) describes the required
  top-level keys and their types: of every record (schema, cell_id, cell, protocol, spec,
  versions, status), of an ok record (metrics, training_set, generator as an object or null,
  classifier or segmenter, timings, artifacts; per test set the macro AUROC or Dice with its
  interval) and of a failed one (error with type and message). Other keys are allowed.
* :func:`validate_record` returns the problems of one parsed record, one line each, each naming
  the JSON Pointer path of the offending value (``/metrics: missing (required)``,
  ``/cell/seed: expected integer, got str``); an empty list means the record conforms.
* By default the built-in validator is used (no dependency): it implements exactly the subset
  of JSON Schema the shipped schema uses (:data:`SUPPORTED_KEYWORDS`) and refuses a schema with
  any other keyword, so the two cannot drift apart silently. ``engine="jsonschema"`` uses the
  ``jsonschema`` package instead (a one-line error naming it when it is not installed);
  ``engine="auto"`` uses it when installed.
* :func:`check_written_record` is what ``RunStore.write`` calls when ``CXRBENCH_CHECK_RECORDS=1``
  (the test suite sets it): it raises :class:`RecordSchemaError` listing the problems.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from cxrbench.errors import CxrbenchError

SCHEMA_PATH = Path(__file__).with_name("record.schema.json")
CHECK_ENV = "CXRBENCH_CHECK_RECORDS"

#: the JSON Schema keywords the built-in validator implements (annotations included)
SUPPORTED_KEYWORDS = frozenset({
    "$schema", "$id", "$defs", "$ref", "title", "description",
    "type", "enum", "const", "required", "properties", "additionalProperties", "minProperties",
    "items", "minItems", "maxItems", "pattern", "minLength", "minimum",
    "allOf", "anyOf", "if", "then", "else",
})


class RecordSchemaError(CxrbenchError):
    """A record the runner was about to write does not conform to record.schema.json."""


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    """The shipped schema (parsed once)."""
    return json.loads(SCHEMA_PATH.read_text())


def schema_keywords(schema: Any) -> set[str]:
    """Every keyword used anywhere in ``schema`` (the names under properties / $defs excluded)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                found.add(key)
                if key in ("properties", "$defs"):
                    for sub in value.values():
                        walk(sub)
                elif key in ("enum", "const", "required"):
                    continue
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return found


def _pointer(path: tuple) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else "/"


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def _type_name(v: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](v) and not (name == "integer" and isinstance(v, float)):
            return name
    return type(v).__name__


class _Validator:
    """The built-in validator of the keyword subset :data:`SUPPORTED_KEYWORDS`."""

    def __init__(self, root: dict):
        unknown = schema_keywords(root) - SUPPORTED_KEYWORDS
        if unknown:
            raise ValueError(f"record schema uses keywords the built-in validator does not implement: "
                             f"{sorted(unknown)}")
        self.root = root

    def resolve(self, ref: str) -> dict:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported, got {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def errors(self, value: Any, schema: Any, path: tuple = ()) -> list[str]:
        if schema is True or schema == {}:
            return []
        if schema is False:
            return [f"{_pointer(path)}: not allowed here"]
        out: list[str] = []
        if "$ref" in schema:
            out += self.errors(value, self.resolve(schema["$ref"]), path)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_TYPES[t](value) for t in types):
                shown = json.dumps(value, default=str)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                return out + [f"{_pointer(path)}: expected {' or '.join(types)}, got {_type_name(value)} ({shown})"]
        if "const" in schema and value != schema["const"]:
            out.append(f"{_pointer(path)}: must be {json.dumps(schema['const'])}, got {json.dumps(value, default=str)}")
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{_pointer(path)}: must be one of {', '.join(json.dumps(e) for e in schema['enum'])}, "
                       f"got {json.dumps(value, default=str)}")
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                out.append(f"{_pointer(path)}: shorter than {schema['minLength']} character(s)")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                out.append(f"{_pointer(path)}: {value!r} does not match {schema['pattern']!r}")
        if _TYPES["number"](value) and "minimum" in schema and value < schema["minimum"]:
            out.append(f"{_pointer(path)}: {value} is below the minimum {schema['minimum']}")
        if isinstance(value, dict):
            for key in schema.get("required", []):
                if key not in value:
                    out.append(f"{_pointer(path + (key,))}: missing (required)")
            if "minProperties" in schema and len(value) < schema["minProperties"]:
                out.append(f"{_pointer(path)}: needs at least {schema['minProperties']} entr(ies), has {len(value)}")
            props = schema.get("properties", {})
            for key, sub in props.items():
                if key in value:
                    out += self.errors(value[key], sub, path + (key,))
            if "additionalProperties" in schema:
                for key in value:
                    if key not in props:
                        out += self.errors(value[key], schema["additionalProperties"], path + (key,))
        if isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                out.append(f"{_pointer(path)}: needs at least {schema['minItems']} item(s), has {len(value)}")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                out.append(f"{_pointer(path)}: allows at most {schema['maxItems']} item(s), has {len(value)}")
            if "items" in schema:
                for i, item in enumerate(value):
                    out += self.errors(item, schema["items"], path + (i,))
        for sub in schema.get("allOf", []):
            out += self.errors(value, sub, path)
        if "anyOf" in schema:
            branches = [self.errors(value, sub, path) for sub in schema["anyOf"]]
            if all(branches):
                out.append(f"{_pointer(path)}: matches none of {len(branches)} alternatives "
                           f"(first: {branches[0][0]})")
        if "if" in schema:
            if not self.errors(value, schema["if"], path):
                if "then" in schema:
                    out += self.errors(value, schema["then"], path)
            elif "else" in schema:
                out += self.errors(value, schema["else"], path)
        return out


@functools.lru_cache(maxsize=1)
def _builtin() -> _Validator:
    return _Validator(load_schema())


def jsonschema_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("jsonschema") is not None


def _with_jsonschema(record: Any) -> list[str]:
    try:
        import jsonschema
    except ImportError:
        raise CxrbenchError("record validation with engine='jsonschema' needs jsonschema: pip install jsonschema") from None
    validator = jsonschema.Draft202012Validator(load_schema())
    problems = []
    for err in sorted(validator.iter_errors(record), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(f"{_pointer(tuple(err.absolute_path))}: {err.message}")
    return problems


def validate_record(record: Any, engine: str = "builtin") -> list[str]:
    """The problems of ``record`` against record.schema.json, one line each (empty: it conforms).
    ``engine``: builtin (default), jsonschema, or auto (jsonschema when installed)."""
    if engine == "auto":
        engine = "jsonschema" if jsonschema_available() else "builtin"
    if engine == "jsonschema":
        return _with_jsonschema(record)
    if engine != "builtin":
        raise ValueError(f"unknown engine {engine!r}: builtin, jsonschema or auto")
    return _builtin().errors(record, load_schema())


def check_written_record(record: dict, where: str | Path = "") -> None:
    """Raise :class:`RecordSchemaError` when ``record`` (about to be written to ``where``) does
    not conform; used by ``RunStore.write`` under ``CXRBENCH_CHECK_RECORDS=1``."""
    problems = validate_record(record)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... {len(problems) - 10} more" if len(problems) > 10 else "")
        raise RecordSchemaError(f"record {where or record.get('cell_id', '?')} does not conform to "
                                f"record.schema.json: {shown}")
