"""Resource type declarations: data only, plus this tiny loader.

``types/*.json`` declares each resource type once (type number, short name,
allowed parents, per-attribute create/update policy and JSON Schema);
``types/_universal.json`` the universal/common attributes; ``schemas/`` the
shared JSON Schema definitions they reference as ``common#/$defs/...``.
``cse.core.registry`` turns these into validators at start-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["load_type_declarations", "load_universal", "load_common_schema"]

_HERE = Path(__file__).resolve().parent


def load_type_declarations() -> list[dict[str, Any]]:
    """Every ``types/**/*.json`` except ``_universal.json``, sorted by path
    (specializations live in a folder named after their base type)."""
    out = []
    for path in sorted((_HERE / "types").rglob("*.json")):
        if path.name.startswith("_"):
            continue
        decl = json.loads(path.read_text(encoding="utf-8"))
        decl["_file"] = str(path.relative_to(_HERE / "types"))
        out.append(decl)
    return out


def load_universal() -> dict[str, Any]:
    """The universal/common attribute declarations."""
    universal: dict[str, Any] = json.loads((_HERE / "types" / "_universal.json").read_text(encoding="utf-8"))
    return universal


def load_common_schema() -> dict[str, Any]:
    """The shared JSON Schema definitions (``common#/$defs/...``)."""
    common: dict[str, Any] = json.loads((_HERE / "schemas" / "common.schema.json").read_text(encoding="utf-8"))
    return common
