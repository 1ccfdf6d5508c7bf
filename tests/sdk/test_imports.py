"""ae_sdk may import cse.core only (docs/architecture.md "Dependency direction")."""

from __future__ import annotations

import ast
from pathlib import Path

import ae_sdk

SDK = Path(ae_sdk.__file__).resolve().parent


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "cse":  # from cse import core -> cse.core
                names.extend(f"cse.{a.name}" for a in node.names)
            else:
                names.append(node.module)
    return names


def test_sdk_imports_only_cse_core() -> None:
    files = sorted(SDK.rglob("*.py"))
    assert files
    bad = [(f.name, m) for f in files for m in _imported_modules(f)
           if (m == "cse" or m.startswith("cse.")) and not (m == "cse.core" or m.startswith("cse.core."))]
    assert not bad, f"ae_sdk must import nothing from cse but cse.core: {bad}"


def test_public_surface() -> None:
    for name in ae_sdk.__all__:
        assert hasattr(ae_sdk, name), name
    assert {"AEClient", "HttpTransport", "InProcessTransport", "NotificationServer",
            "M2MResponseError", "TransportError", "Transport"} <= set(ae_sdk.__all__)
