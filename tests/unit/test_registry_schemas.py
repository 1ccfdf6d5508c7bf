"""Every resource type's CREATE and UPDATE schema is a valid JSON Schema
(2020-12): checked here, once, instead of at every start of the CSE
(cse.core.registry ``Registry.load``)."""

from __future__ import annotations

import pytest
from jsonschema import SchemaError

from cse.core import registry
from cse.core.registry import Registry


def test_the_shipped_declarations_give_valid_schemas() -> None:
    checked = Registry.load(check_schemas=True)
    assert checked.by_ty.keys() == Registry.load().by_ty.keys()


def test_a_broken_attribute_schema_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is real: a schema keyword with a wrong value fails the load."""
    real = registry._schema

    def broken(attrs: object, op: str) -> dict[str, object]:
        schema = real(attrs, op)  # type: ignore[arg-type]
        return {**schema, "type": "no-such-type"}

    monkeypatch.setattr(registry, "_schema", broken)
    with pytest.raises(SchemaError):
        Registry.load(check_schemas=True)
    Registry.load()  # the start-up path does not check
