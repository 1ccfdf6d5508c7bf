"""Which originators this CSE accepts at all (docs/security.md "Originators and remote CSEs").

TS-0004 7.3.2: a receiver CSE serves (or forwards) a request only for an
originator it knows. Here that is:

* the admin originator and this CSE's own CSE-ID;
* an AE registered here (its AE-ID stem, or the SP-relative form of it);
* an originator of another CSE (``/id-cse2`` or ``/id-cse2/Cae``, or the
  absolute ``//sp/id-cse2/...``) that can only have arrived through a
  registered remote CSE: the route back to ``/id-cse2`` is that CSE's own
  ``<remoteCSE>``, one whose ``dcse`` lists it, or -- for a CSE with a
  registrar it is registered with -- the registrar, which stands for
  everything above (the same choice as forwarding, :mod:`.forwarding`).

Registrations are the exception: an AE CREATE (its originator is what the
registration makes known) and a remoteCSE CREATE (the remote CSE hook
checks its originator). Anything else is refused before the session gate,
the non-blocking CSF or the forwarder see it, so an unknown originator is
never served, never remembered and never forwarded in this CSE's name:
4000 when the originator is not an ID at all, 4103 when nobody vouches for
it. Whether a claimed originator is genuine is the binding's job (bearer
tokens, docs/security.md); this check makes sure the CSE knows it.
"""

from __future__ import annotations

from functools import lru_cache

from cse.core.context import Context
from cse.core.errors import BadRequest, OriginatorHasNoPrivilege
from cse.core.messages import Operation, Request

__all__ = ["check", "cse_of", "known_cse", "registered"]

AE_TY = 2
REMOTE_CSE_TY = 16
REGISTRATIONS = frozenset({AE_TY, REMOTE_CSE_TY})


def cse_of(originator: str) -> str | None:
    """The CSE-ID part of an SP-relative or absolute originator (None for a
    CSE-relative one, e.g. an AE-ID stem); 4000 when it is malformed."""
    if not originator.startswith("/"):
        return None
    csi = _cse_part(originator)
    if not csi:
        raise BadRequest(f"originator '{originator[:80]}' is not a valid ID: an SP-relative ID is "
                         "/<cse-id>[/<entity>], an absolute one //<sp-id>/<cse-id>[/<entity>]")
    return csi


@lru_cache(maxsize=4096)
def _cse_part(originator: str) -> str:
    """``/<cse-id>`` of ``/cse-id[/...]`` or ``//sp/cse-id[/...]``; '' when a part is empty
    (cached: every request asks, and most originators repeat)."""
    parts = originator[2:].split("/") if originator.startswith("//") else originator[1:].split("/")
    if originator.startswith("//"):
        parts = parts[1:] if len(parts) > 1 and parts[0] else []  # drop the SP-ID
    if not parts or any(not p for p in parts):
        return ""
    return "/" + parts[0]


async def known_cse(ctx: Context, csi: str) -> bool:
    """Whether a request from (an entity of) CSE ``csi`` can have reached us
    through a registered remote CSE (see module docstring)."""
    store = ctx.store
    own = await store.get(csi[1:])  # a remoteCSE's ri is its CSE-ID without the slash
    if own is not None and own["ty"] == REMOTE_CSE_TY and own.get("csi") == csi:
        return True
    for doc in await store.children(ctx.identity.cb_ri, REMOTE_CSE_TY):
        if csi in (doc.get("dcse") or ()):
            return True
    registrar = ctx.identity.registrar
    return registrar is not None and any(d["ty"] == REMOTE_CSE_TY for d in await store.lookup("csi", registrar))


async def registered(ctx: Context, originator: str) -> bool:
    """An AE registered here, or an originator of another CSE that a
    registered remote CSE leads to (malformed IDs: False)."""
    if originator.startswith("/") and not _cse_part(originator):
        return False
    return await _known(ctx, originator, cse_of(originator))


async def _known(ctx: Context, originator: str, csi: str | None) -> bool:
    if csi is None:
        doc = await ctx.store.get(originator)
        return doc is not None and doc["ty"] == AE_TY
    if csi == ctx.identity.csi:
        return False  # an own-CSE form that is not an AE-ID (those are normalised to the stem)
    return await known_cse(ctx, csi)


async def check(ctx: Context, req: Request) -> None:
    """Refuse ``req`` unless its originator is known here (4000 malformed, 4103 unknown)."""
    fr = req.fr
    if fr is None or fr == ctx.identity.admin or fr == ctx.identity.csi:
        return
    if req.op == Operation.CREATE and req.ty in REGISTRATIONS:
        return
    if not fr.startswith("/"):  # an AE-ID stem (cse_of: None): _known, inlined for every AE's request
        doc = await ctx.store.get(fr)
        if doc is not None and doc["ty"] == AE_TY:
            return
        csi = None
    else:
        csi = cse_of(fr)  # 4000 when malformed
        if await _known(ctx, fr, csi):
            return
    if csi is None:
        raise OriginatorHasNoPrivilege(
            f"originator '{fr[:80]}' is not registered with this CSE: an AE registers first "
            "(CREATE of an AE with X-M2M-Origin C, S or its AE-ID)")
    raise OriginatorHasNoPrivilege(
        f"originator '{fr[:80]}' is not accepted: CSE {csi[:80]} is not registered here and no "
        "registered remote CSE leads to it")
