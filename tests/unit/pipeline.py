"""Small helpers shared by the pipeline test modules."""

from __future__ import annotations

from typing import Any

__all__ = ["dbg"]


def dbg(resp: Any) -> str:
    """The ``m2m:dbg`` text of an error response (asserting there is one)."""
    assert isinstance(resp.pc, dict), resp.pc
    text = resp.pc.get("m2m:dbg")
    assert isinstance(text, str) and text, resp.pc
    return text
