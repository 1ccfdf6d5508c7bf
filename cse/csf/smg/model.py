"""Session Management (SMG) data: type numbers, identifiers, document builders.

Pure helpers shared by the SMG modules (docs/sessions.md "Resource types").
A session's ri is ``ses<sid>`` at every hop, so a peer can address its
neighbour's copy directly (``/<csi>/ses<sid>``) wherever it lives (under an
AE's or the CSEBase's ``sessions``). Credentials live in the internal key
``_scr`` so no generic path (RETRIEVE, discovery, notifications) can ever
show them.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from cse.core.ids import new_ri
from cse.core.ports import Doc

__all__ = [
    "SESSIONS_TY", "SESSION_TY", "ENDPOINT_TY", "NEXT_HOP_TY", "POLICIES_TY", "POLICY_TY", "SMG_TYPES",
    "SESSIONS_RN", "POLICIES_RN", "State", "Role", "Why",
    "new_sid", "new_credentials", "session_ri", "split_ae_id", "sp_ae_id",
    "sessions_doc", "endpoint_doc", "next_hop_doc", "policies_doc",
]

SESSIONS_TY = 9001
SESSION_TY = 9002
ENDPOINT_TY = 9003
NEXT_HOP_TY = 9004
POLICIES_TY = 9005
POLICY_TY = 9006
SMG_TYPES = frozenset({SESSIONS_TY, SESSION_TY, ENDPOINT_TY, NEXT_HOP_TY, POLICIES_TY, POLICY_TY})
SESSIONS_RN = "sessions"
POLICIES_RN = "sessionPolicies"


class State:
    """``sst``."""

    ESTABLISHING = 1
    ESTABLISHED = 2
    TERMINATING = 3


class Role:
    """``rol`` of a sessionEndpoint."""

    INITIATOR = 1
    TARGET = 2


class Why:
    """``why`` of a termination event."""

    DELETED = 1
    EXPIRED = 2
    PEER_LOST = 3


def new_sid() -> str:
    """A session ID: 192 random bits, URL-safe (at least 128 are needed)."""
    return secrets.token_urlsafe(24)


def new_credentials() -> dict[str, str]:
    """``scr``: a short key ID and 32 random bytes, base64url without padding."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return {"kid": secrets.token_urlsafe(6), "key": key, "alg": "A256GCM"}


def session_ri(sid: str) -> str:
    """The ri of the session with ``sid`` at every hop."""
    return f"ses{sid}"


def split_ae_id(ae_id: str, own_csi: str) -> tuple[str, str]:
    """``/id-cse2/Cae2`` -> (``/id-cse2``, ``Cae2``); a bare stem is local."""
    if ae_id.startswith("/"):
        csi, _, stem = ae_id[1:].partition("/")
        if not csi or not stem or "/" in stem:
            raise ValueError(f"'{ae_id}' is not an SP-relative AE-ID (/<cse-id>/<ae-id>)")
        return f"/{csi}", stem
    if not ae_id or "/" in ae_id:
        raise ValueError(f"'{ae_id}' is not an AE-ID")
    return own_csi, ae_id


def sp_ae_id(originator: str, own_csi: str) -> str:
    """An originator as an SP-relative AE-ID (``Cae1`` -> ``/id-cse1/Cae1``)."""
    return originator if originator.startswith("/") else f"{own_csi}/{originator}"


def _base(ty: int, rn: str, parent: Doc, now: str, et: str | None, ri: str | None = None) -> Doc:
    ri = ri or new_ri({SESSIONS_TY: "sesc", ENDPOINT_TY: "sep", NEXT_HOP_TY: "nhp",
                       POLICIES_TY: "spc"}.get(ty, "smg"))
    doc: Doc = {"ty": ty, "ri": ri, "rn": rn, "pi": parent["ri"], "ct": now, "lt": now,
                "_srn": f"{parent['_srn']}/{rn}"}
    if et is not None:
        doc["et"] = et
    if parent.get("_own") is not None:
        doc["_own"] = parent["_own"]
    return doc


def sessions_doc(parent: Doc, now: str) -> Doc:
    """The ``sessions`` collection under an AE or the CSEBase."""
    return _base(SESSIONS_TY, SESSIONS_RN, parent, now, parent.get("et"))


def endpoint_doc(session: Doc, now: str, *, aei: str, csi: str, rol: int, epa: dict[str, Any]) -> Doc:
    """A sessionEndpoint child of ``session``."""
    doc = _base(ENDPOINT_TY, f"sep{rol}", session, now, session.get("et"))
    doc.update({"aei": aei, "csi": csi, "rol": rol, "epa": epa})
    return doc


def next_hop_doc(session: Doc, now: str, *, csi: str, poa: list[str], aei: str) -> Doc:
    """A nextHop child of ``session`` toward ``csi``."""
    doc = _base(NEXT_HOP_TY, f"nhp-{csi.lstrip('/')}", session, now, session.get("et"))
    doc.update({"csi": csi, "poa": poa, "aei": aei, "nst": 1})
    return doc


def policies_doc(session: Doc, now: str) -> Doc:
    """The ``sessionPolicies`` collection of ``session``."""
    return _base(POLICIES_TY, POLICIES_RN, session, now, session.get("et"))
