"""The session story (the call flows of docs/sessions.md), end to end, against a running pair of CSEs.

    python samples/session_demo.py [CSE1-URL [CSE2-URL]]

URLs default to $CSE_URL_CSE1 / $CSE_URL_CSE2 (set by ``python -m cse.cluster
... --run``), else http://127.0.0.1:8081 and http://127.0.0.1:8082 (the pair
of ``samples/pair``); the CSE-IDs to $CSE_ID_CSE1 / $CSE_ID_CSE2 (set the
same way), else /id-cse1 and /id-cse2. The whole thing in one command, from a fresh checkout::

    pip install -e . && python -m cse.cluster samples/pair --var var/demo --run "python samples/session_demo.py"

AE1 (registered at CSE1) and AE2 (at CSE2), both built with the SDK, go
through the three call flows of docs/sessions.md, and every line says which
step it shows:

* flow 1 -- both CSEs know each other with ``scp`` smg (step 1), the AEs
  register as session capable (2), AE2 listens to its session events (3-5),
  AE1 discovers AE2 through CSE1 (6), AE1 establishes a session that AE2
  accepts (7-17), AE1 adds a session policy that both CSEs hold (18-23);
* flow 2, immediate -- AE1 creates a contentInstance in AE2's container1
  through the session, its content encrypted end to end; AE2 is told (typ 2)
  and reads it back in clear;
* flow 2, store-and-forward -- the policy becomes store-and-forward at CSE1
  with a window opening a few seconds ahead: the next CREATE is answered
  1001 and stored at CSE1, and delivered once the window opens;
* flow 3 -- AE1 terminates the session; AE2 hears it (typ 3); the old
  session ID is refused (4004) at both CSEs.

``--ae2-transport ws`` runs AE2 over a WebSocket to CSE2 (TS-0020) and
``--ae2-transport mqtt`` over MQTT through CSE2's broker (TS-0010; CSE2
needs ``[mqtt] enabled``, as in ``samples/pair-mqtt``): AE2 then opens no
port at all, and is still the target of the session -- the offer, the
session events and the termination reach it on its own connection
(docs/bindings.md)::

    python -m cse.cluster samples/pair --var var/demo --run "python samples/session_demo.py --ae2-transport ws"
    python -m cse.cluster samples/pair-mqtt --var var/demo-mqtt \
        --run "python samples/session_demo.py --ae2-transport mqtt"

A summary table ends the run; the exit code is 0 only if every step is OK.
AE names are unique per run and both AEs are deregistered at the end, so
the demo can run again against the same pair. Every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ae_sdk import (
    AEClient,
    HttpTransport,
    M2MResponseError,
    MqttTransport,
    PendingResult,
    Session,
    SessionOffer,
    WsTransport,
)
from ae_sdk.session_crypto import canonical, derive_keys, is_token, mac, sp_relative_to
from cse.core.messages import Operation, Request
from cse.core.timestamps import format_ts

CSI1, CB1 = "/id-cse1", "cse1"
CSI2, CB2 = "/id-cse2", "cse2"
ADMIN = "CAdmin"
STEP_TIMEOUT = 15.0    # upper bound of any one step (not a performance target)
WINDOW_LEAD = 4.0      # the store-and-forward window opens this many seconds ahead
WINDOW_LENGTH = 60.0   # ... and stays open this long
OPS = {1: "CREATE", 2: "RETRIEVE", 3: "UPDATE", 4: "DELETE"}

F1, F2I, F2S, F3 = "flow 1", "flow 2 (immediate)", "flow 2 (store-and-forward)", "flow 3"

# (flow, steps, what the step shows): the summary lists every one, run or not
PLAN: list[tuple[str, str, str]] = [
    (F1, "step 1", "each CSE holds a remoteCSE for the other, scp smg"),
    (F1, "step 2", "AE1 and AE2 registered, session capable"),
    (F1, "steps 3-5", "AE2 (and AE1) subscribed to their session events"),
    (F1, "step 6", "discovery through CSE1 finds AE2 on CSE2"),
    (F1, "steps 7-9", "AE1 asks for a session with AE2"),
    (F1, "steps 10-13", "CSE2 asks AE2, AE2 accepts"),
    (F1, "steps 14-17", "session stored at both CSEs, AE1 gets sid and key"),
    (F1, "steps 18-23", "a session policy, held by both CSEs"),
    (F2I, "setup", "AE2 has container1"),
    (F2I, "step 1", "AE1 creates an encrypted contentInstance via the session"),
    (F2I, "steps 2-16", "checked, forwarded at once, created: 2001 to AE1"),
    (F2I, "steps 17-19", "AE2 told: session event typ 2"),
    (F2I, "steps 20-27", "AE2 retrieves and decrypts"),
    (F2S, "setup", "policy: store-and-forward at CSE1, window ahead"),
    (F2S, "step 1", "AE1 sends a session-based CREATE"),
    (F2S, "steps 2-6", "stored at CSE1: 1001"),
    (F2S, "steps 7-16", "forwarded in the window: 2001"),
    (F2S, "steps 17-19", "AE2 told: session event typ 2"),
    (F2S, "steps 20-27", "AE2 reads the new value"),
    (F3, "steps 1-3", "AE1 terminates, CSE1 tells CSE2"),
    (F3, "steps 4-6", "AE2's session sees typ 3"),
    (F3, "steps 7-10", "session gone at both CSEs"),
    (F3, "step 11", "AE1's SDK dropped the session"),
    (F3, "after", "the old sid is refused (4004) at both CSEs"),
    ("cleanup", "-", "AE1 and AE2 deregistered"),
]


def short(text: str, n: int = 12) -> str:
    return text if len(text) <= n else text[:n] + "..."


def clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(epoch)) + " UTC"


def window_sch(start: float, end: float) -> list[str]:
    """oneM2M schedule entries (sec min hour day month dow year, UTC) open
    exactly for the whole seconds [floor(start), floor(end)]: one entry per
    UTC minute touched, so a window across a minute (hour, day, year)
    boundary is still exact."""
    t, e = math.floor(start), math.floor(end)
    out: list[str] = []
    while t <= e:
        tm = time.gmtime(t)
        last = min(e, t - tm.tm_sec + 59)
        out.append(f"{tm.tm_sec}-{time.gmtime(last).tm_sec} {tm.tm_min} {tm.tm_hour} {tm.tm_mday} "
                   f"{tm.tm_mon} * {tm.tm_year}")
        t = last + 1
    return out


class StepFailed(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise StepFailed(what)


@dataclass
class Story:
    """Prints the narrative and keeps each step's result for the summary."""

    results: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def say(self, flow: str, step: str, text: str) -> None:
        print(f"[{flow}, {step}] {text}", flush=True)

    async def run(self, flow: str, step: str, action: Callable[[], Awaitable[None]],
                  timeout: float = STEP_TIMEOUT) -> None:
        """Run one step with a deadline; a failure is printed, recorded, and ends the story."""
        try:
            await asyncio.wait_for(action(), timeout)
        except Exception as exc:  # every failure of a step is reported the same way
            if isinstance(exc, TimeoutError) and not str(exc):
                text = f"no result within {timeout:g} s"
            elif isinstance(exc, M2MResponseError):
                text = f"{exc.rsc} {exc.dbg or ''}".strip()
            else:
                text = f"{type(exc).__name__}: {exc}"
            self.results[(flow, step)] = "FAIL"
            self.notes[(flow, step)] = text
            self.say(flow, step, f"FAIL: {text}")
            raise StepFailed(text) from exc
        self.results[(flow, step)] = "OK"

    def summary(self) -> bool:
        elapsed = time.monotonic() - self.started
        print("\nSUMMARY", flush=True)
        width = max(len(f) for f, _, _ in PLAN)
        print(f"  {'flow':<{width}}  {'step':<11}  result  what")
        ok = 0
        for flow, step, what in PLAN:
            result = self.results.get((flow, step), "SKIP")
            ok += result == "OK"
            note = f"  ({self.notes[(flow, step)][:80]})" if (flow, step) in self.notes else ""
            print(f"  {flow:<{width}}  {step:<11}  {result:<6}  {what}{note}")
        if ok == len(PLAN):
            print(f"ALL {len(PLAN)} STEPS OK in {elapsed:.1f} s", flush=True)
            return True
        print(f"{len(PLAN) - ok} OF {len(PLAN)} STEPS NOT OK (FAIL or SKIP) in {elapsed:.1f} s", flush=True)
        return False


class Demo:
    def __init__(self, url1: str, url2: str, admin: str, ae2_transport: str = "http",
                 mqtt_url: str = "mqtt://127.0.0.1:1883", csi1: str = CSI1, csi2: str = CSI2) -> None:
        self.url1, self.url2 = url1, url2
        self.csi1, self.csi2 = csi1, csi2
        self.ae2_transport, self.mqtt_url = ae2_transport, mqtt_url
        run = time.strftime("%H%M%S", time.gmtime()) + secrets.token_hex(2)
        self.rn1, self.rn2 = f"demo-ae1-{run}", f"demo-ae2-{run}"
        self.story = Story()
        self.admin1 = self._client(url1, CB1, self.csi1, originator=admin)
        self.admin2 = self._client(url2, CB2, self.csi2, originator=admin)
        self.ae1 = self._client(url1, CB1, self.csi1)
        self.ae2 = self._ae2_client()
        self.offers: list[SessionOffer] = []
        self.s1: Session | None = None
        self.s2: Session | None = None
        self.pending: PendingResult | None = None
        self.opens = 0.0
        self.rqi1 = ""
        self.cin1: dict[str, Any] = {}
        self.old: tuple[str, bytes, str, str] = ("", b"", "", "")

    @staticmethod
    def _client(url: str, cb: str, csi: str, originator: str | None = None) -> AEClient:
        return AEClient(HttpTransport(url, timeout=STEP_TIMEOUT), cse_name=cb, cse_id=csi, originator=originator)

    def _ae2_client(self) -> AEClient:
        """AE2 over HTTP (a notification server on a port of its own), over a
        WebSocket to CSE2 or over MQTT through CSE2's broker: then it opens no
        port, and the session offer and events reach it on that connection
        (docs/bindings.md)."""
        if self.ae2_transport == "ws":
            ws_url = "ws" + self.url2[len("http"):] if self.url2.startswith("http") else self.url2
            return AEClient(WsTransport(ws_url, timeout=STEP_TIMEOUT), cse_name=CB2, cse_id=self.csi2)
        if self.ae2_transport == "mqtt":
            return AEClient(MqttTransport(self.mqtt_url, cse_id=self.csi2, timeout=STEP_TIMEOUT),
                            cse_name=CB2, cse_id=self.csi2)
        return self._client(self.url2, CB2, self.csi2)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def ae1_id(self) -> str:
        return f"{self.csi1}/{self.ae1.originator}"

    @property
    def ae2_id(self) -> str:
        return f"{self.csi2}/{self.ae2.originator}"

    @property
    def ae2_sp(self) -> str:
        """AE2's structured SP-relative path."""
        return f"{self.csi2}/{CB2}/{self.rn2}"

    def sessions(self) -> tuple[Session, Session]:
        assert self.s1 is not None and self.s2 is not None
        return self.s1, self.s2

    async def next_update(self, s: Session, rqi: str) -> dict[str, Any]:
        """AE2's next typ 2 event for request ``rqi`` (others are skipped)."""
        while True:
            sevt = await s.next_update(STEP_TIMEOUT)
            if sevt.get("rqi") == rqi:
                return sevt

    async def stale_sid_request(self, client: AEClient, to: str, sid: str, key: bytes) -> tuple[int, str]:
        """A RETRIEVE of ``to`` marked and signed with a session that has ended
        (the SDK itself refuses to send one): (rsc, dbg) of the CSE's answer."""
        req: Request = client.build(Operation.RETRIEVE, to)
        ot = format_ts(time.time())
        k_mac, _ = derive_keys(key, sid)
        text = canonical(Operation.RETRIEVE.name, sp_relative_to(to, client.cse_id), sid, req.rqi, ot, b"")
        resp = await client.transport.send(replace(req, sid=sid, body=b"", ot=ot, smac=mac(k_mac, text)))
        dbg = resp.pc.get("m2m:dbg", "") if isinstance(resp.pc, dict) else ""
        return resp.rsc, str(dbg)

    # -- flow 1 ------------------------------------------------------------------------------
    async def f1_remote_cses(self) -> None:
        csr1 = await self.admin1.retrieve(f"{CB1}/{self.csi2.lstrip('/')}")
        csr2 = await self.admin2.retrieve(f"{CB2}/{self.csi1.lstrip('/')}")
        for who, csr, peer in (("CSE1", csr1, self.csi2), ("CSE2", csr2, self.csi1)):
            check(csr.get("csi") == peer and "smg" in (csr.get("scp") or []),
                  f"{who}'s remoteCSE for {peer} lacks csi {peer} / scp smg: {csr}")
        self.story.say(F1, "step 1", f"CSE1 {self.csi1} holds remoteCSE '{csr1['rn']}' for {csr1['csi']} "
                       f"(poa {csr1.get('poa')}, scp {csr1['scp']})")
        self.story.say(F1, "step 1", f"CSE2 {self.csi2} holds remoteCSE '{csr2['rn']}' for {csr2['csi']} "
                       f"(poa {csr2.get('poa')}, scp {csr2['scp']})  [read as the admin]")

    async def f1_register(self) -> None:
        for name, client, rn, csi in (("AE1", self.ae1, self.rn1, self.csi1),
                                      ("AE2", self.ae2, self.rn2, self.csi2)):
            poa = [self.mqtt_url] if client is self.ae2 and self.ae2_transport == "mqtt" else None
            ae = await client.register(rn, api=f"N{rn.split('-')[1]}", scp=["smg"], poa=poa)
            sessions = await client.retrieve(f"{client.cse_name}/{rn}/sessions")
            check(sessions.get("ty") == 9001, f"{name} has no sessions collection (ty 9001)")
            over = self.ae2_transport if client is self.ae2 else "http"
            self.story.say(F1, "step 2", f"{name} registered at {csi} over {over} as {ae['aei']} ('{rn}', "
                           f"session capable: scp {ae.get('scp')}, poa {ae.get('poa')}; the CSE made its "
                           "'sessions' collection)")

    def decide(self, offer: SessionOffer) -> dict[str, Any] | bool:
        """AE2's answer to an establishment question (before the CSE hears it)."""
        self.offers.append(offer)
        accept = offer.initiator == self.ae1_id
        epa = {"role": "sensor", "unit": "Celsius"}
        self.story.say(F1, "steps 10-13", f"CSE2 asks AE2 (session event typ 1): session {short(offer.sid)} "
                       f"from {offer.initiator}, epa {offer.epa}, key {offer.kid} ({offer.alg}) -> AE2 "
                       + (f"ACCEPTS, answering 2000 with its epa {epa}" if accept else "REJECTS (unknown initiator)"))
        return epa if accept else False

    async def f1_listen(self) -> None:
        sub2 = await self.ae2.enable_sessions(self.decide)
        server = self.ae2.notifications
        check(server is not None, "AE2 has no notification receiver")
        assert server is not None
        # over HTTP the SDK's receiver is a server on a port of AE2's own; over ws/mqtt its URL is the AE-ID
        # (or the broker's mqtt:// address and the AE-ID), and no port is opened (docs/bindings.md)
        where = (f"AE2 listens on {server.url}" if server.url.startswith(("http://", "https://"))
                 else f"AE2 opens no port: they reach it on its {self.ae2_transport} connection")
        self.story.say(F1, "steps 3-5", f"AE2 subscribed to {CB2}/{self.rn2}/sessions (sub '{sub2['rn']}', "
                       f"nu {sub2['nu'][0]}; {where}): verification answered, 2001")
        await self.ae1.enable_sessions(lambda offer: False)
        self.story.say(F1, "steps 3-5", f"AE1 subscribed to {CB1}/{self.rn1}/sessions too (to hear "
                       f"terminations; it declines offers): 2001")

    async def f1_discover(self) -> None:
        found = await self.ae1.discover(f"{self.csi2}/{CB2}", ty=2, scp="smg")
        match = [u for u in found if u.rstrip("/").endswith(f"/{self.rn2}") or u.endswith(str(self.ae2.originator))]
        check(bool(match), f"AE2 ('{self.rn2}') not in the discovery result {found}")
        self.story.say(F1, "step 6", f"AE1 -> CSE1: RETRIEVE /~{self.csi2}/{CB2}?fu=1&ty=2&scp=smg, forwarded to "
                       f"CSE2: {len(found)} session-capable AE(s), AE2 among them: {match[0]} (SP-relative)")

    async def f1_establish(self) -> None:
        epa = {"role": "collector"}
        self.story.say(F1, "steps 7-9", f"AE1 -> CSE1: CREATE session (ty 9002) in {CB1}/{self.rn1}/sessions, "
                       f"tep {self.ae2_id}, epa {epa}; CSE1 allocates sid and key, sends the create to CSE2")
        self.s1 = await self.ae1.establish(self.ae2_id, epa=epa)

    async def f1_asked(self) -> None:
        assert self.s1 is not None
        check(any(o.sid == self.s1.sid for o in self.offers), "AE2 was never asked about this session")

    async def f1_established(self) -> None:
        assert self.s1 is not None
        self.s2 = await self.ae2.next_session(STEP_TIMEOUT)
        s1, s2 = self.sessions()
        check(s1.sid == s2.sid and s1.key == s2.key, "AE1 and AE2 do not hold the same sid and key")
        at1 = await self.ae1.retrieve(s1.path or "", rcn=4)
        at2 = await self.ae2.retrieve(s2.path or "", rcn=4)
        check(at1.get("sst") == 2 and at2.get("sst") == 2, f"session state not 2: {at1.get('sst')}, {at2.get('sst')}")
        kids = sorted(str(c.get("rn")) for v in at1.values() if isinstance(v, list)
                      for c in v if isinstance(c, dict) and "rn" in c)
        self.story.say(F1, "steps 14-17", f"CSE2 stored it as {s2.path} and answered 2001; "
                       f"CSE1 stored it as {s1.path} ({', '.join(kids) or 'children not listed'})")
        self.story.say(F1, "steps 14-17", f"AE1 got 2001: sid {short(s1.sid)}, state sst {at1['sst']} "
                       f"(established), key {s1.kid}, AE2's epa {s1.peer_epa}; AE2 holds the same sid and key")

    async def f1_policy(self) -> None:
        s1, s2 = self.sessions()
        pol = await s1.add_policy(1, rn="delivery")
        copy = await s2.policy("delivery")
        check(copy.get("spt") == 1, f"CSE2's copy of the policy: {copy}")
        self.story.say(F1, "steps 18-23", f"AE1 -> CSE1: CREATE sessionPolicy '{pol['rn']}' (spt {pol['spt']}: "
                       f"immediate); CSE1 replicated it to CSE2 before answering 2001; CSE2's copy: spt {copy['spt']}")

    # -- flow 2, immediate ---------------------------------------------------------------------
    async def f2_container(self) -> None:
        cnt = await self.ae2.create_container(self.rn2, "container1")
        self.story.say(F2I, "setup", f"AE2 created {self.ae2_sp}/container1 (ri {cnt['ri']})")

    async def f2i_create(self) -> None:
        s1, s2 = self.sessions()
        s1.peer_ae_path = self.ae2_sp          # structured paths below AE2, as found by discovery
        self.story.say(F2I, "step 1", f"AE1 -> CSE1: CREATE contentInstance 'reading-1' (con '21.5' encrypted "
                       f"by the SDK) in {self.ae2_sp}/container1, with X-M2M-SID, X-M2M-OT, X-M2M-SMAC")
        cin = await s1.create("container1", 4, {"rn": "reading-1", "cnf": "text/plain:0", "con": "21.5"})
        check(isinstance(cin, dict), f"expected an immediate answer, got {cin!r}")
        assert isinstance(cin, dict) and self.ae1.last_response is not None
        self.rqi1 = self.ae1.last_response.rqi
        check(self.ae1.last_response.rsc == 2001 and is_token(cin.get("con")),
              f"answer {self.ae1.last_response.rsc}, con {cin.get('con')!r}")
        self.cin1 = cin

    async def f2i_delivered(self) -> None:
        s1, s2 = self.sessions()
        at1, at2 = await s1.refresh(), await s2.refresh()
        h1 = [h for h in at1.get("hst", []) if h.get("rqi") == self.rqi1]
        h2 = [h for h in at2.get("hst", []) if h.get("rqi") == self.rqi1]
        check(bool(h1) and bool(h2), "the exchange is missing from a session history (hst)")
        self.story.say(F2I, "steps 2-16", f"CSE1 and CSE2 checked sid, MAC and target; policy 'delivery' is "
                       f"immediate, so no step 6: CSE2 created it and AE1 got 2001 at once "
                       f"(con stored as {short(self.cin1['con'], 24)}); hst at CSE1: rsc {h1[-1]['rsc']}, "
                       f"at CSE2: rsc {h2[-1]['rsc']}")

    async def f2i_event(self) -> None:
        _, s2 = self.sessions()
        sevt = await self.next_update(s2, self.rqi1)
        check(sevt.get("typ") == 2 and sevt.get("res") == f"{self.ae2_sp}/container1/reading-1",
              f"unexpected event {sevt}")
        self.story.say(F2I, "steps 17-19", f"AE2 got session event typ {sevt['typ']}: "
                       f"{OPS.get(sevt.get('op'), sevt.get('op'))} of {sevt['res']} (rqi {sevt['rqi']}), answered 2000")

    async def f2i_read(self) -> None:
        _, s2 = self.sessions()
        raw = await s2.retrieve(f"{CB2}/{self.rn2}/container1/reading-1", decrypt=False)
        assert isinstance(raw, dict)
        plain = s2.decrypt_text(raw["con"])
        check(plain == "21.5", f"decrypted {plain!r}, expected '21.5'")
        self.story.say(F2I, "steps 20-27", f"AE2 -> CSE2: RETRIEVE {CB2}/{self.rn2}/container1/reading-1 in "
                       f"the session: 2000, con {short(raw['con'], 24)} (still encrypted); AE2's SDK "
                       f"decrypts it: '{plain}'")

    # -- flow 2, store-and-forward -------------------------------------------------------------
    async def f2s_policy(self) -> None:
        s1, s2 = self.sessions()
        self.opens = float(math.ceil(time.time() + WINDOW_LEAD))
        sch = window_sch(self.opens, self.opens + WINDOW_LENGTH)
        await s1.update_policy("delivery", spt=2, sch=sch, hop=self.csi1)
        copy = await s2.policy("delivery")
        check(copy.get("spt") == 2 and copy.get("sch") == sch, f"CSE2's copy of the policy: {copy}")
        self.story.say(F2S, "setup", f"AE1 turns policy 'delivery' into store-and-forward at CSE1 (spt 2, hop "
                       f"{self.csi1}), window {clock(self.opens)} - {clock(self.opens + WINDOW_LENGTH)} "
                       f"(opens in {self.opens - time.time():.1f} s), sch {sch}; CSE2's copy updated too")

    async def f2s_create(self) -> None:
        s1, _ = self.sessions()
        self.story.say(F2S, "step 1", f"AE1 -> CSE1: CREATE contentInstance 'reading-2' (con '22.0' encrypted) "
                       f"in {self.ae2_sp}/container1, session-based and signed")
        result = await s1.create("container1", 4, {"rn": "reading-2", "cnf": "text/plain:0", "con": "22.0"})
        check(isinstance(result, PendingResult),
              f"answered at once ({self.ae1.last_response.rsc if self.ae1.last_response else '?'}), "
              f"not stored: did the window open early?")
        assert isinstance(result, PendingResult)
        self.pending = result

    async def f2s_stored(self) -> None:
        pending = self.pending
        assert pending is not None
        check(pending.rsc == 1001 and time.time() < self.opens, f"answer {pending.rsc} at {clock(time.time())}")
        ref = pending.ref if "/" in pending.ref else self.ae1.ri_path(pending.ref)
        req = await self.ae1.retrieve(ref)
        try:
            await self.ae2.retrieve(f"{CB2}/{self.rn2}/container1/reading-2")
            raise StepFailed("reading-2 is already at CSE2")
        except M2MResponseError as exc:
            check(exc.rsc == 4004, f"reading-2 at CSE2: {exc.rsc}")
        self.story.say(F2S, "steps 2-6", f"stored at CSE1, waiting for the window: CSE1 answered {pending.rsc} "
                       f"with <request> {pending.ref} (rs {req.get('rs')}: pending); CSE2 has no reading-2 yet")

    async def f2s_forwarded(self) -> None:
        pending = self.pending
        assert pending is not None
        sent = time.monotonic()
        ors = await pending.result(timeout=WINDOW_LEAD + STEP_TIMEOUT)   # polls <request>, bounded
        waited, now = time.monotonic() - sent, time.time()
        check(now >= self.opens, f"delivered at {clock(now)}, before the window opened")
        check(ors.get("rsc") == 2001, f"the stored CREATE ended with {ors.get('rsc')}: {ors.get('pc')}")
        self.story.say(F2S, "steps 7-16", f"the window opened at {clock(self.opens)}: CSE1 forwarded the "
                       f"stored CREATE (same sid, rqi {pending.rqi}), CSE2 created it; the PendingResult "
                       f"resolved after {waited:.1f} s: {ors['rsc']}")

    async def f2s_event(self) -> None:
        _, s2 = self.sessions()
        assert self.pending is not None
        sevt = await self.next_update(s2, self.pending.rqi)
        check(sevt.get("res") == f"{self.ae2_sp}/container1/reading-2", f"unexpected event {sevt}")
        self.story.say(F2S, "steps 17-19", f"AE2 got session event typ {sevt['typ']}: "
                       f"{OPS.get(sevt.get('op'), sevt.get('op'))} of {sevt['res']} (rqi {sevt['rqi']})")

    async def f2s_read(self) -> None:
        _, s2 = self.sessions()
        latest = await s2.retrieve(f"{CB2}/{self.rn2}/container1/la")
        assert isinstance(latest, dict)
        check(latest.get("rn") == "reading-2" and latest.get("con") == "22.0", f"latest is {latest}")
        self.story.say(F2S, "steps 20-27", f"AE2 -> CSE2: RETRIEVE container1/la in the session: "
                       f"'{latest['rn']}', decrypted '{latest['con']}'")

    # -- flow 3 -------------------------------------------------------------------------------
    async def f3_terminate(self) -> None:
        s1, _ = self.sessions()
        self.old = (s1.sid, s1.key, s1.path or "", self.sessions()[1].path or "")
        dbg = await s1.terminate()
        check(dbg is None, f"a hop could not be reached: {dbg}")
        self.story.say(F3, "steps 1-3", f"AE1 -> CSE1: DELETE {s1.path}; CSE1 sent the termination to its "
                       f"nextHop {self.csi2} and answered 2002")

    async def f3_peer_told(self) -> None:
        _, s2 = self.sessions()
        why = await s2.wait_terminated(STEP_TIMEOUT)
        check(why == 1 and s2.sid not in self.ae2.sessions, f"why {why}")
        self.story.say(F3, "steps 4-6", f"AE2's session {short(s2.sid)} got session event typ 3 (why {why}: "
                       f"deleted by the peer), answered 2000; AE2's SDK dropped it")

    async def f3_gone(self) -> None:
        _, _, path1, path2 = self.old
        for who, admin, path in (("CSE1", self.admin1, path1), ("CSE2", self.admin2, path2)):
            try:
                await admin.retrieve(path)
                raise StepFailed(f"{who} still holds {path}")
            except M2MResponseError as exc:
                check(exc.rsc == 4004, f"{who}: {exc.rsc}")
        self.story.say(F3, "steps 7-10", f"both CSEs removed the session and its children, keys and stored "
                       f"requests: {path1} and {path2} are 4004 now")

    async def f3_local(self) -> None:
        s1, _ = self.sessions()
        check(s1.terminated and s1.sid not in self.ae1.sessions, "AE1 still has the session")
        self.story.say(F3, "step 11", f"AE1's SDK dropped the session (terminated, why {s1.why})")

    async def f3_stale(self) -> None:
        sid, key, _, _ = self.old
        at1 = await self.stale_sid_request(self.ae1, f"{self.ae2_sp}/container1", sid, key)
        at2 = await self.stale_sid_request(self.ae2, f"{CB2}/{self.rn2}/container1", sid, key)
        check(at1[0] == 4004 and at2[0] == 4004, f"old sid answered {at1[0]} at CSE1, {at2[0]} at CSE2")
        self.story.say(F3, "after", f"AE1 -> CSE1 with the old sid {short(sid)}: {at1[0]} ({at1[1]})")
        self.story.say(F3, "after", f"AE2 -> CSE2 with the old sid {short(sid)}: {at2[0]} ({at2[1]})")

    async def cleanup(self) -> None:
        gone = []
        for name, client, rn in (("AE1", self.ae1, self.rn1), ("AE2", self.ae2, self.rn2)):
            if client.originator is not None:
                await client.deregister()
                gone.append(f"{name} ('{rn}')")
        self.story.say("cleanup", "-", f"{' and '.join(gone)} deregistered" if gone else "no AE to deregister")

    # -- the story --------------------------------------------------------------------------
    async def main(self) -> bool:
        story = self.story
        print(f"Session demo: CSE1 {self.csi1} at {self.url1}, CSE2 {self.csi2} at {self.url2}; "
              f"AE1 '{self.rn1}', AE2 '{self.rn2}'", flush=True)
        steps: list[tuple[str, str, Callable[[], Awaitable[None]], float]] = [
            (F1, "step 1", self.f1_remote_cses, STEP_TIMEOUT),
            (F1, "step 2", self.f1_register, STEP_TIMEOUT),
            (F1, "steps 3-5", self.f1_listen, STEP_TIMEOUT),
            (F1, "step 6", self.f1_discover, STEP_TIMEOUT),
            (F1, "steps 7-9", self.f1_establish, STEP_TIMEOUT + 15),  # CSEs' own establishment deadline
            (F1, "steps 10-13", self.f1_asked, STEP_TIMEOUT),
            (F1, "steps 14-17", self.f1_established, STEP_TIMEOUT),
            (F1, "steps 18-23", self.f1_policy, STEP_TIMEOUT),
            (F2I, "setup", self.f2_container, STEP_TIMEOUT),
            (F2I, "step 1", self.f2i_create, STEP_TIMEOUT),
            (F2I, "steps 2-16", self.f2i_delivered, STEP_TIMEOUT),
            (F2I, "steps 17-19", self.f2i_event, STEP_TIMEOUT),
            (F2I, "steps 20-27", self.f2i_read, STEP_TIMEOUT),
            (F2S, "setup", self.f2s_policy, STEP_TIMEOUT),
            (F2S, "step 1", self.f2s_create, STEP_TIMEOUT),
            (F2S, "steps 2-6", self.f2s_stored, STEP_TIMEOUT),
            (F2S, "steps 7-16", self.f2s_forwarded, WINDOW_LEAD + STEP_TIMEOUT + 5),
            (F2S, "steps 17-19", self.f2s_event, STEP_TIMEOUT),
            (F2S, "steps 20-27", self.f2s_read, STEP_TIMEOUT),
            (F3, "steps 1-3", self.f3_terminate, STEP_TIMEOUT),
            (F3, "steps 4-6", self.f3_peer_told, STEP_TIMEOUT),
            (F3, "steps 7-10", self.f3_gone, STEP_TIMEOUT),
            (F3, "step 11", self.f3_local, STEP_TIMEOUT),
            (F3, "after", self.f3_stale, STEP_TIMEOUT),
        ]
        assert [(f, s) for f, s, _, _ in steps] + [("cleanup", "-")] == [(f, s) for f, s, _ in PLAN]
        try:
            for flow, step, action, timeout in steps:
                await story.run(flow, step, action, timeout)
        except StepFailed:
            print("(the story stops at the first failed step)", flush=True)
        finally:
            try:
                await story.run("cleanup", "-", self.cleanup)
            except StepFailed:
                pass
            for client in (self.ae1, self.ae2, self.admin1, self.admin2):
                await client.close()
        return story.summary()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The seed's session story (flows 1-3) against a pair of CSEs.")
    p.add_argument("cse1", nargs="?", default=os.environ.get("CSE_URL_CSE1", "http://127.0.0.1:8081"),
                   help="CSE1's URL (default: $CSE_URL_CSE1, else http://127.0.0.1:8081)")
    p.add_argument("cse2", nargs="?", default=os.environ.get("CSE_URL_CSE2", "http://127.0.0.1:8082"),
                   help="CSE2's URL (default: $CSE_URL_CSE2, else http://127.0.0.1:8082)")
    p.add_argument("--admin", default=ADMIN, help="the CSEs' admin originator, to show their remoteCSEs "
                   "and check what they hold (default CAdmin)")
    p.add_argument("--ae2-transport", choices=("http", "ws", "mqtt"), default="http",
                   help="how AE2 talks to CSE2: http (default; it listens on a port of its own for "
                   "notifications), ws (one WebSocket to CSE2, no open port) or mqtt (through the broker of "
                   "CSE2's [mqtt], no open port)")
    p.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883", help="the broker, with --ae2-transport mqtt")
    p.add_argument("--cse1-id", default=os.environ.get("CSE_ID_CSE1", CSI1),
                   help=f"CSE1's CSE-ID (default: $CSE_ID_CSE1, else {CSI1})")
    p.add_argument("--cse2-id", default=os.environ.get("CSE_ID_CSE2", CSI2),
                   help=f"CSE2's CSE-ID (default: $CSE_ID_CSE2, else {CSI2})")
    args = p.parse_args(argv)
    demo = Demo(args.cse1, args.cse2, args.admin, ae2_transport=args.ae2_transport, mqtt_url=args.mqtt_url,
                csi1=args.cse1_id, csi2=args.cse2_id)
    return 0 if asyncio.run(demo.main()) else 1


if __name__ == "__main__":
    sys.exit(main())
