"""Result content shaping: how a resource leaves the CSE (``rcn``, ``drt``).

Internal keys (``_srn``, ``_own``, ...) never leave; a resource is the single
member ``m2m:<sn>``; child references are ``{"nm","typ","val"}`` with ``val``
the structured address (``drt`` 1) or the ri (``drt`` 2), CSE-relative
(TS-0004 8.4; docs/onem2m.md "Result content"). An answer that crosses CSEs
carries its references SP-relative instead (:func:`refs_sp_relative`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cse.core.errors import BadRequest
from cse.core.ids import sp_relative
from cse.core.messages import Operation
from cse.core.ports import Doc
from cse.core.registry import Registry

__all__ = [
    "public",
    "wrap",
    "address",
    "addresses",
    "child_ref",
    "RCN_ALLOWED",
    "RCN_DEFAULT",
    "check_rcn",
    "partial",
    "refs_sp_relative",
    "originator_is_local",
]

# rcn values each operation accepts, and the default (docs/onem2m.md "Result content").
RCN_ALLOWED: dict[Operation, frozenset[int]] = {
    Operation.CREATE: frozenset({0, 1, 2, 3, 9}),
    Operation.RETRIEVE: frozenset({1, 4, 5, 6, 8}),
    Operation.UPDATE: frozenset({0, 1, 9}),
    Operation.DELETE: frozenset({0, 1, 4, 5, 6, 8}),
}
RCN_DEFAULT: dict[Operation, int] = {
    Operation.CREATE: 1, Operation.RETRIEVE: 1, Operation.UPDATE: 1, Operation.DELETE: 0,
}
DISCOVERY_RCN = frozenset({6, 11})


def check_rcn(op: Operation, rcn: int | None, discovery: bool = False) -> int:
    """The effective rcn for ``op``; 4000 when it does not apply."""
    if discovery:
        if rcn is None:
            return 11
        if rcn not in DISCOVERY_RCN:
            raise BadRequest(f"rcn={rcn} is not valid for discovery (use 11 for a URI list or 6 for child references)")
        return rcn
    if rcn is None:
        return RCN_DEFAULT.get(op, 0)
    allowed = RCN_ALLOWED.get(op, frozenset())
    if rcn not in allowed:
        if rcn == 7:
            raise BadRequest("rcn=7 (original resource) applies only to announced resources")
        raise BadRequest(
            f"rcn={rcn} is not valid for {op.name} (allowed: {', '.join(map(str, sorted(allowed)))})")
    return rcn


def public(doc: Doc) -> dict[str, Any]:
    """The resource's attributes without internal keys."""
    return {k: v for k, v in doc.items() if k[0] != "_"}


def wrap(registry: Registry, doc: Doc, attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"m2m:<sn>": attrs}`` for ``doc`` (attrs default to its public view)."""
    return {registry.of(doc).root: public(doc) if attrs is None else attrs}


def address(doc: Doc, drt: int) -> str:
    """CSE-relative structured address or ri."""
    addr: str = doc["_srn"] if drt == 1 else doc["ri"]
    return addr


def addresses(docs: Iterable[Doc], drt: int) -> list[str]:
    """:func:`address` of each (the choice made once: a discovery answers with up to thousands)."""
    key = "_srn" if drt == 1 else "ri"
    return [doc[key] for doc in docs]


def child_ref(doc: Doc, drt: int) -> dict[str, Any]:
    """A ``childResourceRef`` entry."""
    return {"nm": doc["rn"], "typ": doc["ty"], "val": address(doc, drt)}


def partial(doc: Doc, names: Iterable[str]) -> dict[str, Any]:
    """Only the attributes named in ``atrl`` (4000 for names the resource lacks
    entirely in its type is the caller's job; absent values are omitted)."""
    return {n: doc[n] for n in names if n in doc and n[0] != "_"}


def originator_is_local(originator: str | None, csi: str) -> bool:
    """Whether ``originator`` is served by the CSE ``csi`` itself: one of its
    AEs (a stem), its admin, or the CSE. Anything SP-relative or absolute
    naming another CSE is not."""
    if not originator or not originator.startswith("/"):
        return True
    return originator == csi or originator.startswith(csi + "/")


def refs_sp_relative(pc: Any, csi: str) -> Any:
    """``pc`` with the CSE-relative references of a discovery or child-reference
    result (``m2m:uril`` entries, ``m2m:rrl`` ``val``s) made SP-relative
    (``/id-in/cse-in/ae``, ``/id-in/cnt123``) for the CSE ``csi`` that hosts
    them. A CSE-relative ID means nothing at another CSE: the hosting CSE's
    form is only for an originator of its own (TS-0004 7.3.2.8,
    docs/onem2m.md "Forwarding"). Entries already SP-relative or absolute
    stay; anything else in ``pc`` is returned as it is."""
    if not isinstance(pc, dict):
        return pc

    def fix(ref: Any) -> Any:
        return sp_relative(csi, ref) if isinstance(ref, str) and ref and not ref.startswith("/") else ref

    out = pc
    uril = pc.get("m2m:uril")
    if isinstance(uril, list):
        out = {**out, "m2m:uril": [fix(u) for u in uril]}
    rrl = pc.get("m2m:rrl")
    if isinstance(rrl, dict) and isinstance(rrl.get("rrf"), list):
        rrf = [{**r, "val": fix(r["val"])} if isinstance(r, dict) and "val" in r else r for r in rrl["rrf"]]
        out = {**out, "m2m:rrl": {**rrl, "rrf": rrf}}
    return out
