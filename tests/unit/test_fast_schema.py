"""The fast schema check answers exactly as jsonschema does (differential).

:mod:`cse.core.fast_schema` only spares jsonschema the work for valid
content, so a disagreement where the fast check says "valid" would let bad
content in. Hypothesis builds attribute objects for every resource type and
operation from the declared schemas (mostly valid values, some mutated
into wrong types, lengths, patterns and shapes) and both must agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cse.core import declarations
from cse.core.fast_schema import Unsupported, compile_check
from cse.core.registry import Registry, _schema

REGISTRY = Registry.load()
COMMON = declarations.load_common_schema()
CASES = [(t, op) for t in REGISTRY.by_root.values() for op in ("create", "update")]  # specializations too

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.integers(), st.sampled_from([0.0, 1.0, -1.0, 2.5, 1e20]),
    st.floats(allow_nan=False), st.text(max_size=8), st.sampled_from(["", "a", "x" * 300, "1", "la", ".."]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=12)


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = COMMON["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def value_for(schema: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Mostly values the schema accepts, sometimes any JSON at all."""
    schema = _resolve(schema)
    valid: st.SearchStrategy[Any]
    if "anyOf" in schema:
        valid = st.one_of(*(value_for(s, depth + 1) for s in schema["anyOf"]))
    elif "enum" in schema:
        valid = st.sampled_from(schema["enum"])
    else:
        kind = schema.get("type")
        if kind == "string":
            if "pattern" in schema:
                valid = st.from_regex(schema["pattern"])
            else:
                lo, hi = schema.get("minLength", 0), schema.get("maxLength", 20)
                valid = st.text(min_size=max(0, lo - 1), max_size=min(hi + 1, 40))
                if "maxLength" in schema:  # right at the limit and one past it
                    valid = st.one_of(valid, st.text(alphabet="ab", min_size=hi, max_size=hi + 1))
        elif kind == "integer":
            lo, hi = schema.get("minimum", -3), schema.get("maximum", 100)
            valid = st.one_of(st.integers(lo - 1, hi + 1), st.integers(lo, hi).map(float))
        elif kind == "boolean":
            valid = st.booleans()
        elif kind == "array" and depth < 4:
            valid = st.lists(value_for(schema.get("items", {}), depth + 1), max_size=3)
        elif kind == "object" and depth < 4 and "properties" in schema:
            props = schema["properties"]
            valid = st.fixed_dictionaries(
                {k: value_for(props[k], depth + 1) for k in schema.get("required", [])},
                optional={k: value_for(v, depth + 1) for k, v in props.items()
                          if k not in schema.get("required", [])})
        else:
            valid = json_values
    return st.one_of(valid, valid, valid, json_values)


@st.composite
def attributes(draw: st.DrawFn, schema: Mapping[str, Any]) -> dict[str, Any]:
    props = schema["properties"]
    names = draw(st.lists(st.sampled_from(sorted(props)), max_size=6, unique=True))
    out = {n: draw(value_for(props[n])) for n in names}
    if draw(st.booleans()):
        out[draw(st.text(max_size=4))] = draw(json_values)
    return out


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@pytest.mark.parametrize("rtype,op", CASES, ids=[f"{t.name}-{op}" for t, op in CASES])
def test_fast_check_agrees_with_jsonschema(rtype: Any, op: str) -> None:
    schema = _schema(rtype.attributes, op)
    check = compile_check(schema, COMMON)
    validator = rtype.create_validator if op == "create" else rtype.update_validator
    seen = {True: 0, False: 0}

    @settings(max_examples=100, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(attributes(schema))
    def agree(attrs: dict[str, Any]) -> None:
        expected = next(validator.iter_errors(attrs), None) is None
        assert check(attrs) is expected, attrs
        seen[expected] += 1

    agree()
    assert seen[True] > 0 and seen[False] > 0, seen  # both answers were exercised


@pytest.mark.parametrize("schema,good,bad", [
    ({"type": "integer"}, [0, 1.0, -7, 10**30], [True, 1.5, "1", None, math.inf]),
    ({"type": "number", "minimum": 0}, [0, 0.5, 3], [-1, False, "2"]),
    ({"enum": [1, "a", True]}, [1, 1.0, "a", True], [2, "b", False, 0]),
    ({"type": "string", "pattern": "b"}, ["abc", "b"], ["ac", 3]),
    ({"not": {"enum": ["la"]}}, ["lb", 1], ["la"]),
    ({"type": ["string", "null"], "maxLength": 2}, [None, "ab"], ["abc", 1]),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
      "additionalProperties": False}, [{"a": 1}], [{}, {"a": 1, "b": 2}, {"a": "1"}, []]),
    ({"type": "array", "minItems": 1, "items": {"$ref": "common#/$defs/nonNegInt"}}, [[0, 2]], [[], [-1], [True]]),
])
def test_keyword_semantics(schema: dict[str, Any], good: list[Any], bad: list[Any]) -> None:
    check = compile_check(schema, COMMON)
    assert all(check(v) for v in good)
    assert not any(check(v) for v in bad)


def test_unknown_keywords_are_refused_not_ignored() -> None:
    for schema in ({"type": "string", "const": "x"}, {"oneOf": [{}]}, {"$ref": "other#/x"},
                   {"enum": [[1]]}, {"uniqueItems": True}):
        with pytest.raises(Unsupported):
            compile_check(schema, COMMON)


def test_every_declared_type_has_a_fast_check() -> None:
    missing = [t.name for t in REGISTRY.by_root.values() if t.create_check is None or t.update_check is None]
    assert missing == []
