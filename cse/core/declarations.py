"""Reading the resource type declarations: the JSON of the repository's ``resources/`` folder.

``resources/types/*.json`` declares each resource type once (type number,
short name, allowed parents, per-attribute create/update policy and JSON
Schema); ``types/_universal.json`` the universal/common attributes;
``schemas/`` the shared JSON Schema definitions they reference as
``common#/$defs/...`` (docs/architecture.md "resources/").

The folder is installed as the package ``cse_resources`` (setup.py maps it),
not as a top-level ``resources`` that any other distribution could shadow or
overwrite; it is located through :mod:`importlib.resources`, so an editable
and a regular install read the same files.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

__all__ = ["PACKAGE", "load_type_declarations", "load_universal", "load_common_schema"]

#: The installed name of the repository's ``resources/`` folder.
PACKAGE = "cse_resources"


def _root() -> Traversable:
    return files(PACKAGE)


def _json(path: Traversable) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_type_declarations() -> list[dict[str, Any]]:
    """Every ``types/*.json`` except ``_universal.json``, sorted by file name."""
    out = []
    entries = sorted((p for p in _root().joinpath("types").iterdir() if p.name.endswith(".json")),
                     key=lambda p: p.name)
    for path in entries:
        if path.name.startswith("_"):
            continue
        decl = _json(path)
        decl["_file"] = path.name
        out.append(decl)
    return out


def load_universal() -> dict[str, Any]:
    """The universal/common attribute declarations."""
    return _json(_root().joinpath("types", "_universal.json"))


def load_common_schema() -> dict[str, Any]:
    """The shared JSON Schema definitions (``common#/$defs/...``)."""
    return _json(_root().joinpath("schemas", "common.schema.json"))
