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


def _json_files(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """``(relative path, file)`` of every ``*.json`` below ``folder``."""
    out: list[tuple[str, Traversable]] = []
    for entry in folder.iterdir():
        if entry.is_dir():
            out.extend(_json_files(entry, f"{prefix}{entry.name}/"))
        elif entry.name.endswith(".json"):
            out.append((f"{prefix}{entry.name}", entry))
    return out


def load_type_declarations() -> list[dict[str, Any]]:
    """Every ``types/**/*.json`` except ``_universal.json``, sorted by path
    (specializations live in a folder named after their base type)."""
    out = []
    for rel, path in sorted(_json_files(_root().joinpath("types")), key=lambda e: e[0]):
        if rel.rsplit("/", 1)[-1].startswith("_"):
            continue
        decl = _json(path)
        decl["_file"] = rel
        out.append(decl)
    return out


def load_universal() -> dict[str, Any]:
    """The universal/common attribute declarations."""
    return _json(_root().joinpath("types", "_universal.json"))


def load_common_schema() -> dict[str, Any]:
    """The shared JSON Schema definitions (``common#/$defs/...``)."""
    return _json(_root().joinpath("schemas", "common.schema.json"))
