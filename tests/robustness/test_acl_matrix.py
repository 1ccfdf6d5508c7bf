"""Access control matrix: originators x operations x ACP rules x resource types.

Why: access control is a table, and a table is
only trustworthy when every cell is checked. Each test below builds one
world on the in-process CSE, then walks every (originator, operation) pair
against an expectation table written out here from the oneM2M rules
(TS-0004 7.3.3.15, docs/onem2m.md "Access control", README "Access control",
docs/sessions.md "Who sees sessions") -- never derived from the code under test:

* the admin may do everything;
* without ``acpi`` only the owner (the creating AE, for its whole subtree)
  may access a resource; registered originators may DISCOVER AEs; a
  contentInstance is judged by its container's ``acpi``; a parent's
  ``acpi`` is *not* inherited by a child that can carry its own;
* with ``acpi`` only the referenced ACPs' ``pv`` rules count -- the owner
  too needs a rule; a rule grants when the originator matches (exact,
  ``all``, ``*`` wildcard), the ``acop`` bit is set and every stated
  context holds (``actw`` windows open now; ``acip``/``aclr`` never hold,
  the CSE does not evaluate them);
* an originator that never registered (no AE here, no registered remote
  CSE leading to it) is refused before any ACP is read, ``all`` included
  (docs/security.md "Originators and remote CSEs");
* an ACP is governed by its own ``pvs``;
* creating a subscription needs CREATE and RETRIEVE on the parent;
* discovery lists only resources the originator may DISCOVER;
* sessions and everything below them: the admin and the two endpoint AEs
  only, for every operation; nobody else sees or discovers them.

A denial must be 4103 with a dbg; a grant the operation's success code.
All mismatches of a world are collected and reported together.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from cse.core.messages import Operation, Response
from tests.conftest import InProc
from tests.e2e.test_smg_helpers import SessionAE

C, R, U, D, N, DISC = "C", "R", "U", "D", "N", "DISC"
CB = "cse-in"
ADMIN = "CAdmin"
_n = itertools.count()

# acop bits (TS-0004 7.3.3.15)
BITS = {C: 1, R: 2, U: 4, D: 8, N: 16, DISC: 32}
SUCCESS = {C: 2001, R: 2000, U: 2004, D: 2002, N: 2000, DISC: 2000}


def ok_codes(op: str) -> int:
    return SUCCESS[op]


async def _world(ip: InProc) -> dict[str, str]:
    """Owner AE (with a container ``base``), another AE, a granted AE; and an
    unknown originator that never registered."""
    who = {"admin": ADMIN, "unknown": "Cunknown"}
    who["owner"] = await ip.register("owner", fr="Cowner")
    who["other"] = await ip.register("other", fr="Cother")
    who["granted"] = await ip.register("granted", fr="Cgranted")
    return who


async def _acp(ip: InProc, owner: str, acr: list[dict[str, Any]]) -> str:
    r = await ip.call(Operation.CREATE, f"{CB}/owner", owner, ty=1, pc={"m2m:acp": {
        "rn": f"acp{next(_n)}", "pv": {"acr": acr}, "pvs": {"acr": [{"acor": [owner], "acop": 63}]}}})
    assert r.rsc == 2001, r.pc
    return str(r.pc["m2m:acp"]["ri"])


async def _container(ip: InProc, owner: str, acpi: list[str] | None, parent: str = f"{CB}/owner") -> str:
    rn = f"cnt{next(_n)}"
    body: dict[str, Any] = {"rn": rn}
    if acpi:
        body["acpi"] = acpi
    r = await ip.call(Operation.CREATE, parent, owner, ty=3, pc={"m2m:cnt": body})
    assert r.rsc == 2001, r.pc
    return f"{parent}/{rn}"


async def _do(ip: InProc, op: str, path: str, fr: str, owner: str, *, ty_child: int = 4,
              victim: Any = None) -> Response:
    """One operation; DELETE acts on a fresh victim made by ``victim()``."""
    if op == C:
        pc = {"m2m:cin": {"con": "x"}} if ty_child == 4 else {"m2m:cnt": {}}
        return await ip.call(Operation.CREATE, path, fr, ty=ty_child, pc=pc)
    if op == R:
        return await ip.call(Operation.RETRIEVE, path, fr)
    if op == U:
        root = "m2m:acp" if "/acp" in path else "m2m:cnt"
        return await ip.call(Operation.UPDATE, path, fr, pc={root: {"lbl": [f"u{next(_n)}"]}})
    if op == D:
        return await ip.call(Operation.DELETE, await victim() if victim else path, fr)
    raise AssertionError(op)


async def _discovered(ip: InProc, fr: str, path: str, ty: int, root: str = f"{CB}/owner") -> bool:
    """Whether discovery from ``root`` by ``fr`` lists ``path`` (a refusal at the
    root lists nothing)."""
    r = await ip.call(Operation.RETRIEVE, root, fr, query={"fu": ("1",), "ty": (str(ty),)})
    if r.rsc == 4103:
        return False
    assert r.rsc == 2000, r.pc
    return path in r.pc["m2m:uril"]


def _check(cells: list[str], what: str, resp: Response, allowed: bool, op: str) -> None:
    want = ok_codes(op) if allowed else 4103
    if resp.rsc != want:
        cells.append(f"{what}: want {want}, got {resp.rsc} {resp.pc}")
    elif not allowed and not (isinstance(resp.pc, dict) and resp.pc.get("m2m:dbg")):
        cells.append(f"{what}: 4103 without m2m:dbg")


# -- containers (and their instances) under ACP rule variants -----------------------

ORIGINATORS = ("admin", "owner", "other", "unknown", "granted")


def _hour_window(clock_now: float, open_: bool) -> str:
    hour = dt.datetime.fromtimestamp(clock_now, dt.UTC).hour
    return f"* * {hour if open_ else (hour + 12) % 24} * * * *"


# variant -> (acr rules builder(now) or None for no acpi, {originator: granted ops})
ALL_OPS = frozenset({C, R, U, D, DISC})
VARIANTS: dict[str, tuple[Any, dict[str, frozenset[str]]]] = {
    "no acpi (owner only)": (None, {"admin": ALL_OPS, "owner": ALL_OPS}),
    "acor specific, acop R+Disc": (lambda now: [{"acor": ["Cgranted"], "acop": 2 | 32}],
                                   {"admin": ALL_OPS, "granted": frozenset({R, DISC})}),
    "acor all, acop R": (lambda now: [{"acor": ["all"], "acop": 2}],
                         {"admin": ALL_OPS, "owner": frozenset({R}), "other": frozenset({R}),
                          "granted": frozenset({R})}),
    "acop C+U only (no R)": (lambda now: [{"acor": ["Cgranted"], "acop": 1 | 4}],
                             {"admin": ALL_OPS, "granted": frozenset({C, U})}),
    "acop D only": (lambda now: [{"acor": ["Cgranted"], "acop": 8}],
                    {"admin": ALL_OPS, "granted": frozenset({D})}),
    "wildcard acor Cgr*": (lambda now: [{"acor": ["Cgr*"], "acop": 63}],
                           {"admin": ALL_OPS, "granted": ALL_OPS}),
    "owner and granted listed, acop 63": (lambda now: [{"acor": ["Cowner", "Cgranted"], "acop": 63}],
                                          {"admin": ALL_OPS, "owner": ALL_OPS, "granted": ALL_OPS}),
    "actw window open now": (lambda now: [{"acor": ["Cgranted"], "acop": 63,
                                           "acco": [{"actw": [_hour_window(now, True)]}]}],
                             {"admin": ALL_OPS, "granted": ALL_OPS}),
    "actw window closed now": (lambda now: [{"acor": ["Cgranted"], "acop": 63,
                                             "acco": [{"actw": [_hour_window(now, False)]}]}],
                               {"admin": ALL_OPS}),
    "acip context (never evaluated)": (lambda now: [{"acor": ["Cgranted"], "acop": 63,
                                                     "acco": [{"acip": {"ipv4": ["127.0.0.1"]}}]}],
                                       {"admin": ALL_OPS}),
    "two rules, first does not match": (lambda now: [{"acor": ["Cother"], "acop": 2},
                                                     {"acor": ["Cgranted"], "acop": 8 | 32}],
                                        {"admin": ALL_OPS, "other": frozenset({R}),
                                         "granted": frozenset({D, DISC})}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_container_and_instance_matrix(inproc: InProc, variant: str) -> None:
    ip = inproc
    who = await _world(ip)
    owner = who["owner"]
    rules, grants = VARIANTS[variant]
    acpi = [await _acp(ip, owner, rules(ip.clock.now()))] if rules else None
    target = await _container(ip, owner, acpi)
    cin = await ip.call(Operation.CREATE, target, owner if not acpi else ADMIN, ty=4,
                        pc={"m2m:cin": {"rn": "i0", "con": "0"}})
    assert cin.rsc == 2001, cin.pc

    async def victim() -> str:
        return await _container(ip, owner, acpi)

    cells: list[str] = []
    checked = 0
    for name in ORIGINATORS:
        fr, may = who[name], grants.get(name, frozenset())
        for op in (C, R, U, D):
            resp = await _do(ip, op, target, fr, owner, victim=victim)
            _check(cells, f"[{variant}] {name} {op} container", resp, op in may, op)
            checked += 1
        # the contentInstance is judged by its container's acpi (and owner)
        resp = await ip.call(Operation.RETRIEVE, f"{target}/i0", fr)
        _check(cells, f"[{variant}] {name} R contentInstance", resp, R in may, R)
        resp = await ip.call(Operation.RETRIEVE, f"{target}/la", fr)
        _check(cells, f"[{variant}] {name} R la", resp, R in may, R)
        # a subscription needs CREATE and RETRIEVE on the parent (nu = itself: no verification)
        resp = await ip.call(Operation.CREATE, target, fr, ty=23, pc={"m2m:sub": {"nu": [fr]}})
        want_sub = C in may and R in may
        if resp.rsc != (2001 if want_sub else 4103):
            cells.append(f"[{variant}] {name} C subscription: want {2001 if want_sub else 4103}, got {resp.rsc} "
                         f"{resp.pc}")
        # discovery lists the container only with DISCOVER on it
        seen = await _discovered(ip, fr, target, 3)
        if seen != (DISC in may):
            cells.append(f"[{variant}] {name} DISC: listed={seen}, want {DISC in may}")
        checked += 4
    assert checked == len(ORIGINATORS) * 8
    assert not cells, "\n".join(cells)


async def test_parent_acpi_is_not_inherited_by_a_container(inproc: InProc) -> None:
    """The AE grants everything to everyone; its container without acpi
    still falls under the default policy (owner only)."""
    ip = inproc
    who = await _world(ip)
    owner = who["owner"]
    acp = await _acp(ip, owner, [{"acor": ["all"], "acop": 63}])
    r = await ip.call(Operation.UPDATE, f"{CB}/owner", owner, pc={"m2m:ae": {"acpi": [acp]}})
    assert r.rsc == 2004, r.pc
    target = await _container(ip, owner, None)
    cells: list[str] = []
    for name in ORIGINATORS:
        for op in (C, R, U):
            resp = await _do(ip, op, target, who[name], owner)
            _check(cells, f"{name} {op} container under an open AE", resp, name in ("admin", "owner"), op)
        # the AE itself is open to all (its acpi): anyone registered may RETRIEVE it
        resp = await ip.call(Operation.RETRIEVE, f"{CB}/owner", who[name])
        _check(cells, f"{name} R AE with acpi all", resp, name != "unknown", R)
    assert not cells, "\n".join(cells)


async def test_acp_is_governed_by_its_own_pvs(inproc: InProc) -> None:
    """pv grants Cgranted everything on the *resources* using the ACP; only
    pvs (the owner) governs the ACP itself."""
    ip = inproc
    who = await _world(ip)
    owner = who["owner"]
    acp_ri = await _acp(ip, owner, [{"acor": ["Cgranted", "Cother"], "acop": 63}])
    acp_path = f"{CB}/owner/{(await ip.call(Operation.RETRIEVE, acp_ri, ADMIN)).pc['m2m:acp']['rn']}"

    async def victim() -> str:
        return await _acp(ip, owner, [{"acor": ["Cgranted"], "acop": 63}])

    cells: list[str] = []
    for name in ORIGINATORS:
        for op in (R, U, D):
            resp = await _do(ip, op, acp_path, who[name], owner, victim=victim)
            _check(cells, f"{name} {op} ACP", resp, name in ("admin", "owner"), op)
    # the owner may give Cgranted UPDATE through pvs; then Cgranted may update the ACP
    r = await ip.call(Operation.UPDATE, acp_path, owner, pc={"m2m:acp": {
        "pvs": {"acr": [{"acor": [owner], "acop": 63}, {"acor": ["Cgranted"], "acop": 4}]}}})
    assert r.rsc == 2004, r.pc
    _check(cells, "granted U ACP after pvs grant", await _do(ip, U, acp_path, who["granted"], owner), True, U)
    _check(cells, "granted R ACP after pvs grant (U only)", await _do(ip, R, acp_path, who["granted"], owner),
           False, R)
    assert not cells, "\n".join(cells)


async def test_notify_to_an_ae_needs_the_notify_bit(inproc: InProc) -> None:
    """NOTIFY addressed to an AE (relayed to its poa) is judged by the AE's
    acpi with acop bit 16; C/R/U/D bits do not grant it."""
    from tests.notify_receiver import Receiver

    ip = inproc
    who = await _world(ip)
    owner = who["owner"]
    async with Receiver() as rcv:
        r = await ip.call(Operation.UPDATE, f"{CB}/owner", owner, pc={"m2m:ae": {"poa": [rcv.url]}})
        assert r.rsc == 2004, r.pc
        acp = await _acp(ip, owner, [{"acor": ["Cgranted"], "acop": 16},
                                     {"acor": ["Cother", "Cowner"], "acop": 63 & ~16}])
        r = await ip.call(Operation.UPDATE, f"{CB}/owner", owner, pc={"m2m:ae": {"acpi": [acp]}})
        assert r.rsc == 2004, r.pc
        cells: list[str] = []
        allowed = {"admin": True, "granted": True, "other": False, "unknown": False, "owner": False}
        for name in ORIGINATORS:
            resp = await ip.call(Operation.NOTIFY, f"{CB}/owner", who[name],
                                 pc={"m2m:sgn": {"nev": {"rep": {}, "net": 3}, "sur": "/id-in/x"}})
            _check(cells, f"{name} N AE", resp, allowed[name], N)
        assert not cells, "\n".join(cells)
        # the admin's and Cgranted's, relayed; the first preceded by a verification request
        # (docs/security.md "Outbound requests")
        assert [r.is_verification for r in rcv.received] == [True, False, False]


# -- session resources: the admin and the two endpoints only ---------------------------

SMG_TYS = (9002, 9003, 9005, 9006)


async def test_session_resources_only_for_endpoints_and_admin(inproc: InProc) -> None:
    ip = inproc
    async with SessionAE() as rcv2, SessionAE() as rcv1:
        who = await _world(ip)
        ae1 = await ip.register("ae1", fr="Cae1", scp=["smg"], poa=[rcv1.url])
        ae2 = await ip.register("ae2", fr="Cae2", scp=["smg"], poa=[rcv2.url])
        r = await ip.call(Operation.CREATE, f"{CB}/ae2/sessions", ae2, ty=23, pc={"m2m:sub": {"nu": [rcv2.url]}})
        assert r.rsc == 2001, r.pc
        r = await ip.call(Operation.CREATE, f"{CB}/ae1/sessions", ae1, ty=9002,
                          pc={"m2m:sess": {"tep": f"/id-in/{ae2}"}})
        assert r.rsc == 2001, r.pc
        sid = r.pc["m2m:sess"]["sid"]
        ses = f"{CB}/ae1/sessions/ses{sid}"
        r = await ip.call(Operation.CREATE, f"{ses}/sessionPolicies", ae1, ty=9006,
                          pc={"m2m:spo": {"rn": "p", "spt": 1}})
        assert r.rsc == 2001, r.pc
        # an ACP "all/63" on the granted AE's container must not open sessions to anyone
        who["ae1"], who["ae2"] = ae1, ae2
        parties = {"admin", "ae1", "ae2"}
        resources = {"session": ses, "session by ri": f"ses{sid}", "sessionEndpoint sep1": f"{ses}/sep1",
                     "sessionEndpoint sep2": f"{ses}/sep2", "sessionPolicies": f"{ses}/sessionPolicies",
                     "sessionPolicy": f"{ses}/sessionPolicies/p"}
        cells: list[str] = []
        names = ("admin", "ae1", "ae2", "owner", "other", "unknown", "granted")
        for name in names:
            fr = who[name]
            for what, path in resources.items():
                resp = await ip.call(Operation.RETRIEVE, path, fr)
                _check(cells, f"{name} R {what}", resp, name in parties, R)
            # UPDATE of the policy: the endpoints (and admin) may change it
            resp = await ip.call(Operation.UPDATE, f"{ses}/sessionPolicies/p", fr, pc={"m2m:spo": {"spt": 1}})
            _check(cells, f"{name} U sessionPolicy", resp, name in parties, U)
            # nobody else may create a policy in the session
            resp = await ip.call(Operation.CREATE, f"{ses}/sessionPolicies", fr, ty=9006,
                                 pc={"m2m:spo": {"rn": f"q{next(_n)}", "spt": 1}})
            _check(cells, f"{name} C sessionPolicy", resp, name in parties, C)
            # discovery from the CSEBase never lists a session to a non-party
            r = await ip.call(Operation.RETRIEVE, CB, fr, query={"fu": ("1",), "ty": (" ".join(
                map(str, SMG_TYS)),)})
            listed = r.pc.get("m2m:uril", []) if r.rsc == 2000 and isinstance(r.pc, dict) else []
            leaked = [u for u in listed if f"ses{sid}" in u]
            if name in parties and not leaked and name != "ae2":
                cells.append(f"{name} DISC: a party does not find its session ({r.rsc} {listed})")
            if name not in parties and leaked:
                cells.append(f"{name} DISC: a non-party discovers {leaked}")
            # DELETE of the session by a non-party must fail (and leave it)
            if name not in parties:
                resp = await ip.call(Operation.DELETE, ses, fr)
                _check(cells, f"{name} D session", resp, False, D)
        # an endpoint may end it
        resp = await ip.call(Operation.DELETE, f"ses{sid}", ae2)
        _check(cells, "ae2 D session", resp, True, D)
        assert not cells, "\n".join(cells)
