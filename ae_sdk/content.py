"""Small pure helpers for oneM2M JSON content (TS-0004 8.4; docs/onem2m.md "Resource types").

* :data:`ROOTS` -- resource type number -> JSON root (``3`` -> ``m2m:cnt``).
* :func:`wrap` / :func:`unwrap` -- add or remove the single ``m2m:<sn>`` member.
* :func:`notified_resource` -- the resource inside a notification's
  ``nev.rep`` (``{"m2m:cin": {...}}`` -> ``{...}``).

Example::

    def on_notify(sgn: dict) -> None:
        cin = notified_resource(sgn)
        if cin is not None:
            print(cin["con"])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ROOTS", "is_root", "notified_resource", "root_for", "unwrap", "wrap"]

ROOTS: dict[int, str] = {
    1: "m2m:acp", 2: "m2m:ae", 3: "m2m:cnt", 4: "m2m:cin", 5: "m2m:cb", 6: "m2m:dlv",
    9: "m2m:grp", 14: "m2m:nod", 15: "m2m:pch", 16: "m2m:csr", 17: "m2m:req",
    18: "m2m:sch", 23: "m2m:sub", 24: "m2m:smd", 28: "m2m:fcnt", 29: "m2m:ts", 30: "m2m:tsi",
    48: "m2m:crs", 58: "m2m:fcin",
    # Session Management (docs/sessions.md "Resource types")
    9001: "m2m:sesc", 9002: "m2m:sess", 9003: "m2m:sep", 9004: "m2m:nhp", 9005: "m2m:spc",
    9006: "m2m:spo",
}


def root_for(ty: int) -> str:
    """The JSON root of resource type ``ty``; unknown types raise ValueError."""
    try:
        return ROOTS[ty]
    except KeyError:
        raise ValueError(
            f"resource type {ty} has no known JSON root: pass the content already wrapped, "
            'e.g. {"m2m:xyz": {...}}') from None


def is_root(key: str) -> bool:
    """Whether ``key`` is a resource's JSON root: ``m2m:<sn>``, or a
    specialization's own namespace (``cod:binSh``, ``hd:tempe``) -- one ``:``
    between short names."""
    ns, sep, name = key.partition(":")
    return bool(sep) and ns.isalnum() and name.isalnum()


def _is_wrapped(attrs: Mapping[str, Any]) -> bool:
    return len(attrs) == 1 and is_root(next(iter(attrs)))


def wrap(ty: int | None, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``{"m2m:<sn>": attrs}``; content already wrapped is returned as it is."""
    if _is_wrapped(attrs):
        return dict(attrs)
    if ty is None:
        raise ValueError("cannot wrap content without its resource type")
    return {root_for(ty): dict(attrs)}


def unwrap(pc: Any) -> dict[str, Any]:
    """The attributes inside a single-member ``m2m:`` object.

    ``{"m2m:cnt": {...}}`` -> ``{...}``; no content -> ``{}``; anything else
    (``{"m2m:uri": "..."}``, ``{"m2m:uril": [...]}``) is returned unchanged.
    """
    if pc is None:
        return {}
    if isinstance(pc, dict) and len(pc) == 1:
        key, value = next(iter(pc.items()))
        if is_root(key) and isinstance(value, dict):
            return value
    return pc if isinstance(pc, dict) else {"value": pc}


def notified_resource(notification: Mapping[str, Any]) -> dict[str, Any] | None:
    """The resource representation carried in ``nev.rep`` of an ``m2m:sgn``.

    Accepts the inner ``m2m:sgn`` object (what subscription callbacks get) or
    the whole body. Returns None for verification/deletion notifications and
    for ``rep`` forms that are not a resource (e.g. ``nct`` 3 gives
    ``{"m2m:uri": ...}``, returned as None).
    """
    sgn = notification.get("m2m:sgn", notification)
    if not isinstance(sgn, Mapping):
        return None
    nev = sgn.get("nev")
    rep = nev.get("rep") if isinstance(nev, Mapping) else None
    if isinstance(rep, dict) and len(rep) == 1:
        value = next(iter(rep.values()))
        if isinstance(value, dict):
            return value
    return None
