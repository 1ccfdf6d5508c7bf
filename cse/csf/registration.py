"""AE registration (TS-0004 7.4.5.2.1, docs/onem2m.md "AE registration").

The AE-ID comes from the originator: empty or ``C`` -> a new ``C`` stem,
``S`` -> a new ``S`` stem (this CSE assigns S stems itself; it does not
create an ``<AEAnnc>`` on an IN-CSE), a full ``C...``/``S...`` stem is used as
given (re-registration or pre-provisioned); a stem already registered is
4117. The AE's ``ri`` and ``aei`` are the stem, its default ``rn`` too, and the
AE owns itself (default access policy, ``cse.csf.access``).
"""

from __future__ import annotations

import re
from typing import Any

from cse.core.context import Context
from cse.core.errors import BadRequest, OriginatorHasAlreadyRegistered
from cse.core.ids import new_ri
from cse.core.messages import Request
from cse.core.ports import Doc, Op, Put

from .hooks import TypeHooks
from .smg.model import SESSIONS_RN, sessions_doc

__all__ = ["AE_HOOKS", "assign_ae_id", "check_app_id"]

_STEM = re.compile(r"[A-Za-z0-9._-]{1,255}")


async def assign_ae_id(ctx: Context, req: Request, attrs: dict[str, Any]) -> tuple[str, str | None]:
    """The new AE's stem (also its ri) and owner."""
    fr = req.fr or ""
    if fr in ("", "C", "S"):
        stem = new_ri(fr or "C", 12)
    elif fr[0] in "CS" and "/" not in fr and len(fr) > 1:
        stem = fr
    else:
        raise BadRequest(
            f"originator '{fr}' cannot register an AE: use an empty originator, 'C', 'S', "
            "or an AE-ID stem starting with C or S")
    if _STEM.fullmatch(stem) is None:
        raise BadRequest(f"AE-ID '{stem}' may contain only letters, digits, '-', '_' and '.'")
    if await ctx.store.get(stem) is not None:
        raise OriginatorHasAlreadyRegistered(f"an AE with AE-ID '{stem}' is already registered")
    return stem, stem


def check_app_id(api: str, rvi: str) -> None:
    """App-IDs start with R (registered) or N (non-registered); ``r`` is
    tolerated for release 2a/3 clients."""
    if api[0] in "RN" or (api[0] == "r" and rvi in ("2a", "3")):
        return
    raise BadRequest(f"App-ID (api) '{api}' must start with 'R' or 'N'")


async def _on_create(ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
    check_app_id(doc["api"], req.rvi)
    doc["aei"] = doc["ri"]
    if "smg" in (doc.get("scp") or ()):  # session-capable: its sessions collection (docs/sessions.md)
        return [Put(sessions_doc(doc, doc["ct"]))]
    return []


async def _on_update(ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
    if "smg" in (new.get("scp") or ()) and await ctx.store.child_by_name(new["ri"], SESSIONS_RN) is None:
        return [Put(sessions_doc(new, new["lt"]))]
    return []


AE_HOOKS = TypeHooks(identify=assign_ae_id, on_create=_on_create, on_update=_on_update)
