"""A fast yes/no check for the JSON Schema subset ``resources/`` uses.

Why: jsonschema's general validator costs about 25 µs for a contentInstance
CREATE, a third of the in-process pipeline, because it walks the schema
generically and builds error objects lazily through several layers. Valid
content is the common case, so :func:`compile_check` turns a schema into
nested closures that answer only "valid or not". The jsonschema validator
stays the authority: when the fast check says "invalid",
:mod:`cse.core.validate` runs jsonschema to find and word the error (and
accepts the content should jsonschema disagree). A differential property
test (tests/unit/test_fast_schema.py) holds the two to the same answers.

Supported keywords (draft 2020-12 semantics): type, enum (of strings),
not, anyOf, properties, additionalProperties, required, items, minItems, maxItems,
minLength, maxLength, pattern, minimum, maximum, $ref (to the common schema).
Any other assertion keyword makes :func:`compile_check` raise
:class:`Unsupported`, and the caller falls back to jsonschema for that type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Check", "Unsupported", "compile_check"]

Check = Callable[[Any], bool]

# Keywords that assert nothing (annotations and structure).
_IGNORED = frozenset({"title", "description", "$comment", "$schema", "$id", "$defs", "default", "examples",
                      "format"})


class Unsupported(Exception):
    """The schema uses a keyword this module does not implement."""


def _is_integer(x: Any) -> bool:
    # JSON Schema: 1.0 is an integer; booleans are not numbers.
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_TYPES: dict[str, Check] = {
    "string": lambda x: isinstance(x, str),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "integer": _is_integer,
    "number": _is_number,
}


def compile_check(schema: Mapping[str, Any] | bool, common: Mapping[str, Any]) -> Check:
    """A predicate equivalent to ``jsonschema.validate`` for ``schema``.

    ``$ref`` may point into ``common`` as ``common#/$defs/<name>`` (from a
    type declaration) or ``#/$defs/<name>`` (inside the common schema).
    """
    return _Compiler(common).compile(schema)


class _Compiler:
    def __init__(self, common: Mapping[str, Any]) -> None:
        self.common = common
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Mapping[str, Any] | bool) -> Check:
        if schema is True or schema == {}:
            return lambda x: True
        if schema is False:
            return lambda x: False
        if not isinstance(schema, Mapping):
            raise Unsupported(f"schema {schema!r} is not an object")
        checks: list[Check] = []
        for key, value in schema.items():
            if key in _IGNORED:
                continue
            build = getattr(self, "_kw_" + key.lstrip("$"), None)
            if build is None:
                raise Unsupported(f"keyword {key!r}")
            checks.append(build(value, schema))
        return _all(checks)

    def _kw_ref(self, ref: str, _: Mapping[str, Any]) -> Check:
        if ref in self.refs:
            return self.refs[ref]
        prefix = "common#/$defs/" if ref.startswith("common#") else "#/$defs/"
        if not ref.startswith(prefix):
            raise Unsupported(f"$ref {ref!r}")
        target = self.common.get("$defs", {}).get(ref[len(prefix):])
        if target is None:
            raise Unsupported(f"$ref {ref!r} not found")
        slot: list[Check] = []
        self.refs[ref] = lambda x: slot[0](x)  # recursion-safe placeholder
        slot.append(self.compile(target))
        self.refs[ref] = slot[0]
        return slot[0]

    def _kw_type(self, value: str | list[str], _: Mapping[str, Any]) -> Check:
        names = [value] if isinstance(value, str) else list(value)
        try:
            tests = [_TYPES[n] for n in names]
        except KeyError as exc:
            raise Unsupported(f"type {exc}") from None
        if len(tests) == 1:
            return tests[0]
        return lambda x: any(t(x) for t in tests)

    def _kw_enum(self, values: list[Any], _: Mapping[str, Any]) -> Check:
        if all(isinstance(v, str) for v in values):
            strings = frozenset(values)
            return lambda x: isinstance(x, str) and x in strings
        allowed = frozenset(_enum_key(v) for v in values)
        return lambda x: _enum_key(x, strict=False) in allowed

    def _kw_not(self, sub: Mapping[str, Any], _: Mapping[str, Any]) -> Check:
        inner = self.compile(sub)
        return lambda x: not inner(x)

    def _kw_anyOf(self, subs: list[Mapping[str, Any]], _: Mapping[str, Any]) -> Check:
        inner = [self.compile(s) for s in subs]
        return lambda x: any(c(x) for c in inner)

    def _kw_properties(self, props: Mapping[str, Any], schema: Mapping[str, Any]) -> Check:
        inner = {k: self.compile(v) for k, v in props.items()}
        extra = schema.get("additionalProperties", True)
        if extra is True:
            def check(x: Any) -> bool:
                if not isinstance(x, dict):
                    return True
                for k, v in x.items():
                    c = inner.get(k)
                    if c is not None and not c(v):
                        return False
                return True
            return check
        other = self.compile(extra)

        def check_extra(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for k, v in x.items():
                c = inner.get(k, other)
                if not c(v):
                    return False
            return True
        return check_extra

    def _kw_additionalProperties(self, extra: Any, schema: Mapping[str, Any]) -> Check:
        if "properties" in schema:
            return lambda x: True  # handled together with properties
        if extra is True:
            return lambda x: True
        other = self.compile(extra)
        return lambda x: not isinstance(x, dict) or all(other(v) for v in x.values())

    def _kw_required(self, names: list[str], _: Mapping[str, Any]) -> Check:
        keys = tuple(names)
        return lambda x: not isinstance(x, dict) or all(k in x for k in keys)

    def _kw_items(self, sub: Mapping[str, Any] | bool, _: Mapping[str, Any]) -> Check:
        inner = self.compile(sub)
        return lambda x: not isinstance(x, list) or all(inner(v) for v in x)

    def _kw_minItems(self, n: int, _: Mapping[str, Any]) -> Check:
        return lambda x: not isinstance(x, list) or len(x) >= n

    def _kw_maxItems(self, n: int, _: Mapping[str, Any]) -> Check:
        return lambda x: not isinstance(x, list) or len(x) <= n

    def _kw_minLength(self, n: int, _: Mapping[str, Any]) -> Check:
        return lambda x: not isinstance(x, str) or len(x) >= n

    def _kw_maxLength(self, n: int, _: Mapping[str, Any]) -> Check:
        return lambda x: not isinstance(x, str) or len(x) <= n

    def _kw_pattern(self, pattern: str, _: Mapping[str, Any]) -> Check:
        search = re.compile(pattern).search
        return lambda x: not isinstance(x, str) or search(x) is not None

    def _kw_minimum(self, n: float, _: Mapping[str, Any]) -> Check:
        return lambda x: not _is_number(x) or x >= n

    def _kw_maximum(self, n: float, _: Mapping[str, Any]) -> Check:
        return lambda x: not _is_number(x) or x <= n


def _enum_key(value: Any, strict: bool = True) -> tuple[str, Any]:
    """JSON equality as enum uses it: true is not 1, but 1 is 1.0."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z", None)
    if strict:
        raise Unsupported("enum of arrays or objects")
    return ("x", id(value))  # an array or object never equals a scalar


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda x: a(x) and b(x)
    frozen = tuple(checks)
    return lambda x: all(c(x) for c in frozen)
