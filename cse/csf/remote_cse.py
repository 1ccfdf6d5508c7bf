"""Remote CSE registration (TS-0004 7.4.4.2.1; docs/sessions.md flow 1 step 1).

Registrar side (hooks): only a CSE (originator ``/<cse-id>``) may create a
``<remoteCSE>``; its ``csi`` is the originator, its ri and default rn the
CSE-ID without the slash, and the registering CSE owns it. A second
registration of the same CSE-ID is 4117. Only that CSE (or the admin)
changes or deletes it, whatever ACPs say, so its ``poa`` -- where this CSE
forwards -- moves only with its own registration; and the descendants it
claims (``dcse``) may not take over a route this CSE already has: not this
CSE, not itself, not a CSE registered here, not our registrar, not another
remote CSE's descendant (docs/security.md "Originators and remote CSEs").

Registree side (:class:`RegistrarLink`): with ``[registrar]`` configured,
the CSE creates its ``<remoteCSE>`` at the registrar with standard
attributes only (or updates it when it exists: a restart, maybe on a new
port), retrieves the registrar's CSEBase, and creates or refreshes the
local ``<remoteCSE>`` for the registrar, so both sides hold the peer's
``poa`` and ``srv``; ``scp`` is exchanged only with a registrar whose
CSEBase shows sessions (docs/releases.md "Inter-CSE registration with any
release"). It keeps ``dcse`` at the registrar equal to the CSEs registered
here and their descendants (TS-0001 9.6.4), woken by any remoteCSE change
here. It retries with backoff while the registrar is down, checks the
registration periodically and registers again when the registrar lost it,
and deregisters on shutdown when configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from cse.core.context import Context
from cse.core.errors import (
    BadRequest,
    M2MError,
    NotImplementedOp,
    NotListening,
    OperationNotAllowed,
    OriginatorHasAlreadyRegistered,
    OriginatorHasNoPrivilege,
    TargetNotReachable,
)
from cse.core.events import Event
from cse.core.ids import new_ri
from cse.core.messages import Operation, Request, Response
from cse.core.outcome import Outcome
from cse.core.ports import Doc, Op, Outbound, Put
from cse.core.tasks import cancel_and_wait

from .access import is_privileged
from .hooks import TypeHooks
from .smg.model import SMG_TYPES

__all__ = ["REMOTE_CSE_HOOKS", "RegistrarLink", "csr_name", "session_capable"]

log = logging.getLogger("cse.remote")

REMOTE_CSE_TY = 16
# the registrar may be "not up yet" while the backoff is below this (0.5+1+2+4 s of retries): info, not warning
_QUIET_UNTIL_S = 8.0
MAX_DESCENDANTS = 1000  # bounds the dcse we send (docs/onem2m.md "Registration of CSEs")


SMG = "smg"


def session_capable(cb: dict[str, Any]) -> bool:
    """Whether a CSE whose CSEBase is ``cb`` holds sessions: ``smg`` in its
    ``scp``, or its ``srt`` listing every session resource type (a CSE that
    shows the types but not the extension attribute).  A standard CSEBase
    has neither, and then we never send it ``scp``."""
    if SMG in (cb.get("scp") or ()):
        return True
    srt = cb.get("srt")
    return isinstance(srt, list) and SMG_TYPES <= set(srt)


def csr_name(csi: str) -> str:
    """The ri/rn of the ``<remoteCSE>`` for ``csi``: the CSE-ID without slash."""
    return csi.lstrip("/")


async def _identify(ctx: Context, req: Request, attrs: dict[str, Any]) -> tuple[str, str | None]:
    fr = req.fr or ""
    if not fr.startswith("/") or "/" in fr[1:] or len(fr) < 2:
        raise OperationNotAllowed(
            f"only a CSE (originator /<cse-id>) can register a remoteCSE, not '{fr[:80]}'")
    if fr == ctx.identity.csi:
        raise BadRequest(f"CSE {fr} cannot register with itself")
    if "csi" in attrs and attrs["csi"] != fr:
        raise BadRequest(f"csi '{attrs['csi']}' does not match the originator '{fr}'")
    for doc in await ctx.store.lookup("csi", fr):
        if doc["ty"] == REMOTE_CSE_TY:
            raise OriginatorHasAlreadyRegistered(f"CSE {fr} is already registered here")
    ri = csr_name(fr)
    if await ctx.store.get(ri) is not None:
        raise OriginatorHasAlreadyRegistered(f"resource ID '{ri}' for CSE {fr} is taken")
    return ri, fr


async def _on_create(ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
    doc["csi"] = req.fr
    _check_spi(ctx, doc)
    await _check_dcse(ctx, doc)
    return []


def _check_spi(ctx: Context, doc: Doc) -> None:
    """A release 5 registree may name its service provider (``spi``). Ours is
    stored as given; another provider's CSE registering here would be an
    inter-provider (Mcc') registration, which this CSE does not implement:
    5001 rather than a registration whose routing we could not honour
    (docs/releases.md "Release 5")."""
    spi = doc.get("spi")
    own = ctx.identity.sp_id
    if spi is None or own is None or spi == "//" + own.lstrip("/"):
        return
    raise NotImplementedOp(
        f"remoteCSE {doc.get('csi')} belongs to service provider {spi[:80]}, not this CSE's "
        f"//{own.lstrip('/')}: registration across service providers (Mcc') is not implemented")


def _only_that_cse(ctx: Context, originator: str | None, doc: Doc, what: str) -> None:
    """4103 unless ``originator`` is the CSE ``doc`` stands for, the admin or this CSE."""
    if originator is not None and (originator == doc.get("csi") or is_privileged(ctx, originator)):
        return
    raise OriginatorHasNoPrivilege(
        f"originator '{str(originator)[:80]}' may not {what} the remoteCSE of {doc.get('csi')}: "
        "only that CSE (its own registration) or the admin may")


async def _on_update(ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
    _only_that_cse(ctx, req.fr, old, "change")
    if "dcse" in changed:
        await _check_dcse(ctx, new)
    return []


async def _pre_delete(ctx: Context, doc: Doc, originator: str | None) -> tuple[str | None, Outcome]:
    if originator is not None:  # None: expiry or our own deregistration
        _only_that_cse(ctx, originator, doc, "delete")
    return None, Outcome()


async def _check_dcse(ctx: Context, doc: Doc) -> None:
    """The descendants ``doc`` claims take no route this CSE already has (4103)."""
    csi = doc.get("csi")
    store = ctx.store
    others = [d for d in await store.children(ctx.identity.cb_ri, REMOTE_CSE_TY) if d["ri"] != doc["ri"]]
    for entry in doc.get("dcse") or ():
        why = None
        if entry == ctx.identity.csi:
            why = "that is this CSE"
        elif entry == csi:
            why = "that is the remote CSE itself"
        elif entry == ctx.identity.registrar:
            why = "that is this CSE's registrar"
        elif any(d["ty"] == REMOTE_CSE_TY for d in await store.lookup("csi", entry)):
            why = "that CSE is registered here itself"
        else:
            owner = next((d.get("csi") for d in others if entry in (d.get("dcse") or ())), None)
            if owner is not None:
                why = f"it is already a descendant of {owner}"
        if why is not None:
            raise OriginatorHasNoPrivilege(
                f"remoteCSE {csi} cannot list {entry[:80]} among its descendants (dcse): {why}")


REMOTE_CSE_HOOKS = TypeHooks(identify=_identify, on_create=_on_create, on_update=_on_update,
                             pre_delete=_pre_delete)


class RegistrarLink:
    """This CSE's registration with its registrar (see module docstring)."""

    def __init__(self, ctx: Context, outbound: Outbound, data: Any, *, registrar_csi: str,
                 registrar_name: str, registrar_poa: str, deregister_on_shutdown: bool = False,
                 timeout: float = 5.0, check_interval: float = 30.0, max_backoff: float = 30.0) -> None:
        self.ctx = ctx
        self.outbound = outbound
        self.data = data  # DataCSF: local create/update of the registrar's remoteCSE
        self.csi = registrar_csi
        self.name = registrar_name
        self.poa = registrar_poa
        self.deregister_on_shutdown = deregister_on_shutdown
        self.timeout = timeout
        self.check_interval = check_interval
        self.max_backoff = max_backoff
        self.registered = asyncio.Event()
        self.attempts = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        """Register in the background (start-up must not wait for the registrar)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="registrar-link")

    async def stop(self) -> None:
        """Stop retrying; deregister if configured."""
        await cancel_and_wait(self._task)
        self._task = None
        if self.deregister_on_shutdown and self.registered.is_set():
            await self.deregister()

    async def on_events(self, events: Sequence[Event]) -> None:
        """Executor listener: a remoteCSE registered, changed or went away
        here, so the descendants we announce to the registrar may have
        changed -- wake the loop now instead of at the next check."""
        if any(e.doc.get("ty") == REMOTE_CSE_TY and e.doc.get("csi") != self.csi for e in events):
            self._wake.set()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    async def _run(self) -> None:
        backoff = 0.5
        ever_registered = False
        while True:
            self._wake.clear()  # before reading the store: a change from now on wakes the next pause
            try:
                held = await self._held() if self.registered.is_set() else None
                if held is None:
                    self.registered.clear()
                    await self.register_once()
                    log.info("registered with %s at %s", self.csi, self.poa)
                    ever_registered = True
                else:
                    await self._sync_descendants(held)
                backoff = 0.5
                await self._pause(self.check_interval)
            except asyncio.CancelledError:
                raise
            except M2MError as exc:
                self.registered.clear()
                # a registrar that is not up yet (nothing listens, we were never registered,
                # still early) is how a pair starts: info; anything else, or for longer, a warning
                waiting = isinstance(exc, NotListening) and not ever_registered and backoff < _QUIET_UNTIL_S
                log.log(logging.INFO if waiting else logging.WARNING,
                        "registration with %s failed (%s); retrying in %.1f s", self.csi, exc.message, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception:
                self.registered.clear()
                log.exception("registration with %s failed; retrying in %.1f s", self.csi, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def descendants(self) -> list[str]:
        """The CSE-IDs reachable through this CSE from its registrar (TS-0001
        9.6.4 descendantCSEs): every CSE registered here and, in turn, each
        one's own descendants -- not the registrar, whose remoteCSE is here too."""
        found: set[str] = set()
        for doc in await self.ctx.store.children(self.ctx.identity.cb_ri, REMOTE_CSE_TY):
            csi = doc.get("csi")
            if not csi or csi == self.csi:
                continue
            found.add(csi)
            found.update(doc.get("dcse") or ())
        found.discard(self.ctx.identity.csi)
        found.discard(self.csi)
        return sorted(found)[:MAX_DESCENDANTS]

    async def _sync_descendants(self, held: dict[str, Any]) -> None:
        """UPDATE our remoteCSE at the registrar when its ``dcse`` is not ours.
        Kept out of the registration itself: a refused ``dcse`` (4103, a route
        the registrar already has) must not undo the registration."""
        wanted = await self.descendants()
        if sorted(held.get("dcse") or ()) == wanted:
            return
        ident = self.ctx.identity
        resp = await self._send(self._request(
            Operation.UPDATE, f"{self.csi}/{self.name}/{csr_name(ident.csi)}", {"m2m:csr": {"dcse": wanted}}))
        if resp.rsc != 2004:  # e.g. 4103: another CSE there claims one of them; the registration stands
            log.warning("%s; retrying at the next check", _failed(
                f"registrar {self.csi} refused our descendant CSEs {wanted[:10]}", resp).message)
            return
        log.info("descendant CSEs announced to %s: %s", self.csi, wanted[:10])

    # -- the procedure -------------------------------------------------------------
    def _request(self, op: Operation, to: str, pc: Any = None, ty: int | None = None) -> Request:
        return Request(op=op, to=to, fr=self.ctx.identity.csi, rqi=new_ri("reg", 12), pc=pc, ty=ty,
                       ot=self.ctx.now_ts())

    async def _send(self, req: Request) -> Response:
        return await self.outbound.send(self.poa, req, timeout=self.timeout, peer=self.csi)

    async def _own_cb(self) -> Doc:
        cb = await self.ctx.store.get(self.ctx.identity.cb_ri)
        assert cb is not None
        return cb

    async def register_once(self) -> None:
        """One full registration; raises M2MError when it cannot complete.

        The CREATE (or, when already registered, the UPDATE) carries only the
        attributes TS-0001 9.6.4 gives a ``<remoteCSE>``: a conformant
        registrar refuses anything else (4000). ``scp`` is this CSE's own
        extension, so it goes to the registrar only in a second UPDATE and only
        when the registrar's CSEBase shows it holds sessions itself
        (:func:`session_capable`), i.e. it is a CSE that knows the attribute.
        """
        self.attempts += 1
        ident = self.ctx.identity
        cb = await self._own_cb()
        mine: dict[str, Any] = {"poa": list(ident.poa), "srv": cb.get("srv", ["3"])}
        create = {"m2m:csr": {"rn": csr_name(ident.csi), "cb": f"{ident.csi}/{ident.cb_name}",
                              "csi": ident.csi, "cst": ident.cse_type, "rr": True, **mine}}
        base = f"{self.csi}/{self.name}"
        ours = f"{base}/{csr_name(ident.csi)}"
        resp = await self._send(self._request(Operation.CREATE, base, create, ty=REMOTE_CSE_TY))
        if resp.rsc in (4105, 4117):  # known there already: refresh what may have changed
            resp = await self._send(self._request(Operation.UPDATE, ours, {"m2m:csr": mine}))
        if resp.rsc not in (2001, 2004):
            raise _failed(f"registrar {self.csi} refused the registration", resp)
        held = (resp.pc or {}).get("m2m:csr") if isinstance(resp.pc, dict) else None
        resp = await self._send(self._request(Operation.RETRIEVE, base))
        if resp.rsc != 2000 or not isinstance(resp.pc, dict) or "m2m:cb" not in resp.pc:
            raise _failed(f"cannot retrieve the CSEBase of registrar {self.csi}", resp)
        peer = resp.pc["m2m:cb"]
        if peer.get("csi") != self.csi:
            raise BadRequest(f"the CSE at {self.poa} is {peer.get('csi')}, not the configured {self.csi}")
        if session_capable(peer) and "scp" in cb and (held or {}).get("scp") != cb["scp"]:
            resp = await self._send(self._request(Operation.UPDATE, ours, {"m2m:csr": {"scp": cb["scp"]}}))
            if resp.rsc != 2004:
                raise _failed(f"registrar {self.csi} refused our session capability (scp)", resp)
        await self._store_registrar(peer)
        self.registered.set()
        await self._sync_descendants(held or {})

    async def _store_registrar(self, peer: dict[str, Any]) -> None:
        """Create or refresh the local remoteCSE that represents the registrar;
        its ``scp`` says whether the registrar holds sessions (:func:`session_capable`).
        Its ``poa`` is the registrar's own, with the configured address first
        when the registrar lists it: requests forwarded there go the way the
        registration went (an ``mqtt://`` registrar over MQTT, docs/bindings.md "MQTT")."""
        poa = [p for p in peer.get("poa") or () if isinstance(p, str)] or [self.poa]
        if self.poa in poa:
            poa = [self.poa] + [p for p in poa if p != self.poa]
        attrs: dict[str, Any] = {"poa": poa, "srv": peer.get("srv", ["3"])}
        if session_capable(peer):
            attrs["scp"] = list(peer.get("scp") or [SMG])
        existing = await self.ctx.store.get(csr_name(self.csi))
        if existing is not None:
            updated = {**existing, **attrs}
            if "scp" not in attrs:
                updated.pop("scp", None)
            if updated != existing:
                updated["lt"] = self.ctx.now_ts()
                await self.ctx.apply(Outcome(ops=[Put(updated)]))
            return
        cb = await self._own_cb()
        req = Request(op=Operation.CREATE, to=self.ctx.identity.cb_name, fr=self.csi, rqi=new_ri("reg", 12),
                      ty=REMOTE_CSE_TY, pc={"m2m:csr": {
                          "cb": f"{self.csi}/{peer.get('rn', self.name)}", "cst": peer.get("cst", 1),
                          "rr": True, **attrs}})
        created = await self.data.create(req, cb)
        await self.ctx.apply(created)
        resp = created.response
        assert resp is not None
        if resp.rsc != 2001:
            raise _failed("cannot create the local remoteCSE for the registrar", resp)

    async def _held(self) -> dict[str, Any] | None:
        """Our remoteCSE as the registrar holds it; None when it lost it or
        holds an old ``poa`` (then register again)."""
        ident = self.ctx.identity
        resp = await self._send(self._request(
            Operation.RETRIEVE, f"{self.csi}/{self.name}/{csr_name(ident.csi)}"))
        if resp.rsc == 2000:
            held = (resp.pc or {}).get("m2m:csr") if isinstance(resp.pc, dict) else None
            if isinstance(held, dict) and held.get("poa") == list(ident.poa):
                return held
            return None
        if resp.rsc in (4004, 4103):  # gone, or no longer a registered originator there
            log.warning("registrar %s no longer knows this CSE: registering again", self.csi)
            return None
        raise _failed(f"registration check with {self.csi} failed", resp)

    async def deregister(self) -> None:
        """Delete our remoteCSE at the registrar, then the local one."""
        ident = self.ctx.identity
        try:
            await self._send(self._request(Operation.DELETE, f"{self.csi}/{self.name}/{csr_name(ident.csi)}"))
        except M2MError as exc:
            log.warning("deregistration at %s failed: %s", self.csi, exc.message)
        local = await self.ctx.store.get(csr_name(self.csi))
        if local is not None:
            await self.data.remove(local, None)
        self.registered.clear()


def _failed(what: str, resp: Response) -> M2MError:
    dbg = resp.pc.get("m2m:dbg") if isinstance(resp.pc, dict) else None
    return TargetNotReachable(f"{what}: {resp.rsc}" + (f" ({dbg})" if dbg else ""))
