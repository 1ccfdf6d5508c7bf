"""Access control: ``acpi`` evaluation (TS-0004 7.3.3.15, docs/onem2m.md "Access control").

Rules, in order:

1. The admin originator and this CSE's own CSE-ID may do everything.
2. The *effective* resource is the target itself, or for types without
   ``acpi`` (contentInstance) its parent.
3. If the effective resource lists ACPs in ``acpi``: grant when any rule of
   any referenced ACP matches the originator (``all``, exact, or ``*``
   wildcard), the operation bit, and every context it states (``actw`` time
   windows; rules with ``acip``/``aclr`` contexts never match, since the CSE
   does not know the client's address or location). An ACP itself is checked
   against its own ``pvs``.
4. Otherwise (no ``acpi``), the default policy: the owner of the resource or
   of any ancestor below the CSEBase (the AE that created it, or the AE
   itself) may do everything. On the CSEBase, registered originators may
   RETRIEVE and DISCOVER; any AE resource may be DISCOVERed by registered
   originators (so peers can find session-capable AEs, flow 1 step 6).
5. A request served under an established session may touch the resources
   at or below the granted endpoint AEs, whatever their ACPs say: the
   target accepted the session (docs/sessions.md "What a session
   authorizes"). The grant never covers an UPDATE or DELETE of the AE
   resource itself, nor an ACP (an ACP is governed by its ``pvs`` alone),
   nor anything in a ``sessions`` collection (rule 6). The grant is an
   explicit argument (:data:`Grant`), given only by the SMG's session gate,
   so every widening of rights is visible at its call site.
6. A ``sessions`` collection and everything below it (docs/sessions.md
   "Who sees sessions"), whatever ACPs the AE carries and whatever session
   grant the request has: the admin and this CSE; the AE the collection
   belongs to (it owns it); for a session and its children, also its two
   endpoint AEs (compared as SP-relative AE-IDs) and the peer SMGs it has a
   nextHop to. Nobody else, not even for a subscription to the collection.
   A neighbour CSE may create a session in an AE's ``sessions`` collection
   (the session CSF then checks the rest).
"""

from __future__ import annotations

import re
from functools import lru_cache

from cse.core.context import Context
from cse.core.errors import OriginatorHasNoPrivilege
from cse.core.ports import Doc
from cse.core.schedule import Schedule

from . import originators

__all__ = ["Grant", "Permission", "allowed", "check", "check_acpi_update", "in_sessions", "is_privileged", "owns",
           "session_grants", "session_party", "within"]

Grant = frozenset[str] | None
"""A session grant: the ris of the endpoint AEs a session-based request may
act at or below (None: no session)."""


SESSIONS_TY, SESSION_TY, POLICY_TY, NEXT_HOP_TY = 9001, 9002, 9006, 9004
SMG_TYPES = frozenset(range(SESSIONS_TY, POLICY_TY + 1))
SUBSCRIPTION_TY = 23


class Permission:
    """``acop`` bits."""

    CREATE = 1
    RETRIEVE = 2
    UPDATE = 4
    DELETE = 8
    NOTIFY = 16
    DISCOVER = 32


_OP_NAMES = {1: "CREATE", 2: "RETRIEVE", 4: "UPDATE", 8: "DELETE", 16: "NOTIFY", 32: "DISCOVER"}


def is_privileged(ctx: Context, originator: str | None) -> bool:
    """Admin or the CSE itself."""
    return originator is not None and (
        originator == ctx.identity.admin or originator == ctx.identity.csi)


async def check(ctx: Context, originator: str | None, perm: int, doc: Doc, grant: Grant = None) -> None:
    """Raise 4103 unless ``originator`` (with the session ``grant``) holds ``perm`` on ``doc``."""
    if not await allowed(ctx, originator, perm, doc, grant):
        raise OriginatorHasNoPrivilege(
            f"originator '{originator}' has no {_OP_NAMES.get(perm, perm)} privilege "
            f"on '{doc.get('_srn', doc.get('ri'))}'")


async def allowed(ctx: Context, originator: str | None, perm: int, doc: Doc, grant: Grant = None) -> bool:
    """Whether ``originator`` (with the session ``grant``) holds ``perm`` on
    ``doc`` (see module docstring)."""
    if originator is None:
        return False
    if is_privileged(ctx, originator):
        return True
    ty = doc["ty"]
    # rule 6: never a session grant, never an ACP (in_sessions holds only for these
    # types: the type test first spares every other request the await)
    if (ty in SMG_TYPES or ty == SUBSCRIPTION_TY) and await in_sessions(ctx, doc):
        return await _sessions_rule(ctx, originator, perm, doc)
    store = ctx.store
    if ty == 1:  # an ACP: its own pvs governs it, whatever the session
        return _acp_grants(doc.get("pvs"), originator, perm, ctx)
    if grant is not None and await session_grants(ctx, perm, doc, grant):
        return True
    effective = doc
    if not ctx.registry.get(ty).has_acpi and doc.get("pi"):
        parent = await store.get(doc["pi"])
        if parent is not None:
            effective = parent
    acpi = effective.get("acpi")
    if acpi:
        for acp_id in acpi:
            acp = await _resolve_acp(ctx, acp_id)
            if acp is not None and _acp_grants(acp.get("pv"), originator, perm, ctx):
                return True
        return False
    return await _default_policy(ctx, originator, perm, effective)


async def session_grants(ctx: Context, perm: int, doc: Doc, grant: frozenset[str]) -> bool:
    """Whether the session ``grant`` covers ``perm`` on ``doc`` (rule 5):
    data at or below an endpoint AE, but never a change of the AE itself.
    The caller has already excluded ACPs and ``sessions`` subtrees."""
    if doc["ty"] == 2 and perm in (Permission.UPDATE, Permission.DELETE):
        return False
    return await within(ctx, doc, grant)


async def in_sessions(ctx: Context, doc: Doc) -> bool:
    """Whether ``doc`` is a ``sessions`` collection or below one: an SMG
    resource, or a subscription whose parent is a ``sessions`` collection
    (nothing else may be created there)."""
    if doc["ty"] in SMG_TYPES:
        return True
    if doc["ty"] == SUBSCRIPTION_TY and doc.get("pi"):
        parent = await ctx.store.get(doc["pi"])
        return parent is not None and parent["ty"] == SESSIONS_TY
    return False


async def _sessions_rule(ctx: Context, originator: str, perm: int, doc: Doc) -> bool:
    """Rule 6 for ``doc`` in a ``sessions`` subtree (the admin and this CSE
    were already let through)."""
    if await owns(ctx, originator, doc):
        return True  # the AE the collection belongs to (or what it created there)
    if doc["ty"] == SESSIONS_TY:
        # a peer SMG bringing a session to one of our AEs (docs/sessions.md, flow 1 step 9)
        return perm == Permission.CREATE and await _neighbour_cse(ctx, originator)
    if SESSION_TY <= doc["ty"] <= POLICY_TY:
        return await session_party(ctx, originator, doc)
    return False


async def within(ctx: Context, doc: Doc, roots: frozenset[str]) -> bool:
    """Whether ``doc`` is one of ``roots`` (ris) or below one of them (at most
    ``limits.max_depth`` levels up: no resource is created deeper)."""
    cur: Doc | None = doc
    for _ in range(ctx.identity.max_depth):
        if cur is None or cur["ty"] == 5:
            return False
        if cur["ri"] in roots:
            return True
        cur = await ctx.store.get(cur["pi"]) if cur.get("pi") else None
    return False


async def owns(ctx: Context, originator: str | None, doc: Doc) -> bool:
    """Whether ``originator`` owns ``doc`` or any ancestor below the CSEBase
    (at most ``limits.max_depth`` levels up: no resource is created deeper)."""
    if originator is None:
        return False
    cur: Doc | None = doc
    depth = 0
    while cur is not None and cur["ty"] != 5 and depth < ctx.identity.max_depth:
        if cur.get("_own") == originator:
            return True
        cur = await ctx.store.get(cur["pi"]) if cur.get("pi") else None
        depth += 1
    return False


async def _default_policy(ctx: Context, originator: str, perm: int, doc: Doc) -> bool:
    ty = doc["ty"]
    if ty == 5:
        return perm in (Permission.RETRIEVE, Permission.DISCOVER) and await _registered(ctx, originator)
    if await owns(ctx, originator, doc):
        return True
    if ty == 2 and perm == Permission.DISCOVER:
        return await _registered(ctx, originator)
    return False


async def _neighbour_cse(ctx: Context, originator: str) -> bool:
    """A CSE registered here, or our registrar (it has a remoteCSE)."""
    if not originator.startswith("/") or "/" in originator[1:]:
        return False
    return any(d["ty"] == 16 for d in await ctx.store.lookup("csi", originator))


async def session_party(ctx: Context, originator: str, doc: Doc) -> bool:
    """Whether ``originator`` is an endpoint or a neighbour SMG of the
    session ``doc`` is (or is below)."""
    cur: Doc | None = doc
    for _ in range(4):
        if cur is None or cur["ty"] == SESSION_TY:
            break
        cur = await ctx.store.get(cur["pi"])
    if cur is None or cur["ty"] != SESSION_TY:
        return False
    me = originator if originator.startswith("/") else f"{ctx.identity.csi}/{originator}"
    if me in (cur.get("iep"), cur.get("tep")):
        return True
    if originator.startswith("/") and "/" not in originator[1:]:
        return any(h.get("csi") == originator for h in await ctx.store.children(cur["ri"], NEXT_HOP_TY))
    return False


async def _registered(ctx: Context, originator: str) -> bool:
    """An AE registered here, or an originator of a CSE a registered remote
    CSE leads to (docs/security.md "Originators and remote CSEs")."""
    return await originators.registered(ctx, originator)


async def check_acpi_update(ctx: Context, originator: str | None, doc: Doc) -> None:
    """Raise 4103 unless ``originator`` may change ``doc``'s ``acpi`` (TS-0001
    9.6.1.3.2; docs/security.md "Access control").

    The ACPs concerned are those ``doc`` references now: UPDATE in the
    ``pvs`` of any one of them is needed (whoever holds it can already
    rewrite that ACP's ``pv`` to grant anything, so asking for all of them
    would add nothing). Without ``acpi`` -- or when none of the referenced
    ACPs exists any more -- the default owner policy decides: the owner may
    set it. ``pv`` rights and a session grant never suffice, and removing
    ``acpi`` (``null`` or ``[]``) needs exactly the same. The admin and this
    CSE may always.
    """
    if originator is None:
        raise OriginatorHasNoPrivilege("an acpi UPDATE needs an originator")
    if is_privileged(ctx, originator):
        return
    acps = [acp for acp in [await _resolve_acp(ctx, ref) for ref in doc.get("acpi") or ()] if acp is not None]
    where = doc.get("_srn", doc.get("ri"))
    if acps:
        if any(_acp_grants(acp.get("pvs"), originator, Permission.UPDATE, ctx) for acp in acps):
            return
        raise OriginatorHasNoPrivilege(
            f"originator '{originator}' may not change acpi of '{where}': that needs UPDATE in the "
            f"selfPrivileges (pvs) of one of its accessControlPolicies ({', '.join(a['ri'] for a in acps)[:200]})")
    if await owns(ctx, originator, doc):
        return
    raise OriginatorHasNoPrivilege(
        f"originator '{originator}' may not change acpi of '{where}': it has no accessControlPolicy, "
        "so only its owner (or the admin) may set one")


async def _resolve_acp(ctx: Context, acp_id: str) -> Doc | None:
    csi = ctx.identity.csi
    ref = acp_id[len(csi) + 1:] if acp_id.startswith(csi + "/") else acp_id
    doc = await ctx.store.get(ref)
    if doc is None and "/" in ref:
        doc = await ctx.store.get_by_path(ref)
    return doc if doc is not None and doc["ty"] == 1 else None


def _acp_grants(privileges: object, originator: str, perm: int, ctx: Context) -> bool:
    if not isinstance(privileges, dict):
        return False
    for rule in privileges.get("acr") or ():
        if not (rule.get("acop", 0) & perm):
            continue
        if not any(_originator_matches(p, originator) for p in rule.get("acor") or ()):
            continue
        if _contexts_match(rule.get("acco"), ctx):
            return True
    return False


def _originator_matches(pattern: str, originator: str) -> bool:
    if pattern == "all" or pattern == originator:
        return True
    if "*" in pattern:
        return _wildcard(pattern).fullmatch(originator) is not None
    return False


@lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def _contexts_match(acco: object, ctx: Context) -> bool:
    if not acco:
        return True
    now = ctx.clock.now()
    for context in acco if isinstance(acco, list) else ():
        if context.get("acip") or context.get("aclr"):
            continue
        windows = context.get("actw")
        if windows and not _schedule(tuple(windows)).is_open(now):
            continue
        return True
    return False


@lru_cache(maxsize=256)
def _schedule(entries: tuple[str, ...]) -> Schedule:
    return Schedule(entries)
