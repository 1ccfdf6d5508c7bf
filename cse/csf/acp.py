"""accessControlPolicy checks beyond the schema (docs/onem2m.md "accessControlPolicy").

``actw`` windows must be valid schedule entries (checked once here rather
than failing at evaluation time), and ``pvs`` must keep at least one rule so
that somebody can still manage the ACP.
"""

from __future__ import annotations

from typing import Any

from cse.core.context import Context
from cse.core.errors import BadRequest
from cse.core.messages import Request
from cse.core.ports import Doc, Op
from cse.core.schedule import Schedule

from .hooks import TypeHooks

__all__ = ["ACP_HOOKS"]


def _check_rules(doc: Doc) -> None:
    for attr in ("pv", "pvs"):
        for rule in (doc.get(attr) or {}).get("acr", []):
            for context in rule.get("acco") or []:
                if context.get("actw"):
                    Schedule(context["actw"])
    if not (doc.get("pvs") or {}).get("acr"):
        raise BadRequest("selfPrivileges (pvs) must keep at least one access control rule")


async def _on_create(ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
    _check_rules(doc)
    return []


async def _on_update(ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
    _check_rules(new)
    return []


ACP_HOOKS = TypeHooks(on_create=_on_create, on_update=_on_update)
