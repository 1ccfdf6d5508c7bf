"""Per-type behaviour as a few named hooks (docs/architecture.md "Module map").

The generic data CSF does what every type shares (validation, names,
timestamps, expiry, access, commit, events, result shaping). A type adds
behaviour only through these hooks, which may read the store but never write
it or send anything: they return the extra store operations to commit
together with the main change, and may adjust the new document in place
before it is stored (it is the data CSF's own copy, shared with nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cse.core.context import Context
from cse.core.messages import Request
from cse.core.outcome import Outcome
from cse.core.ports import Doc, Op

__all__ = ["TypeHooks", "Identify", "OnCreate", "OnUpdate", "OnDelete", "Verify", "PreDelete", "ViewCreated",
           "NO_HOOKS"]

# (ctx, req, attrs) -> (ri, owner): identity of a new resource.
Identify = Callable[[Context, Request, dict[str, Any]], Awaitable[tuple[str, str | None]]]
# (ctx, req, parent, new_doc) -> extra ops; may adjust new_doc. A Delete of
# new_doc's own ri among them means it is answered but never stored (a
# contentInstance its container's limits evict at once).
OnCreate = Callable[[Context, Request, Doc, Doc], Awaitable[list[Op]]]
# (ctx, req, old_doc, new_doc, changed_attrs) -> extra ops; may adjust new_doc.
OnUpdate = Callable[[Context, Request, Doc, Doc, dict[str, Any]], Awaitable[list[Op]]]
# (ctx, doc) -> extra ops to commit with the subtree deletion of doc.
OnDelete = Callable[[Context, Doc], Awaitable[list[Op]]]
# (ctx, req, new_doc) -> extra ops or None, raising to refuse. One of the two
# hooks that may talk to the outside world (through ports), because some
# resources exist only after a round trip: subscription verification
# (TS-0004 7.4.8.2.1), session establishment across CSEs (docs/sessions.md).
Verify = Callable[[Context, Request, Doc], Awaitable[list[Op] | None]]
# (ctx, req, old_doc, new_doc) -> extra ops or None, raising to refuse: the
# UPDATE counterpart of Verify (e.g. a session policy replicated to every hop).
VerifyUpdate = Callable[[Context, Request, Doc, Doc], Awaitable[list[Op] | None]]
# (ctx, doc, originator) -> (a note or None, an outcome to apply with the
# deletion): runs before a resource is deleted by a request or at expiry (not
# when an ancestor is deleted); may talk to the outside world, e.g. to carry
# a session's termination to the next hops. A note (what could not be done)
# becomes the DELETE answer's m2m:dbg.
PreDelete = Callable[[Context, Doc, str | None], Awaitable[tuple[str | None, Outcome]]]
# (doc, extra ops) -> the attributes a CREATE answers with (rcn 1/3), when
# they differ from the stored public view (e.g. credentials shown once).
ViewCreated = Callable[[Doc, list[Op]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class TypeHooks:
    """The optional hooks of one resource type."""

    identify: Identify | None = None
    on_create: OnCreate | None = None
    on_update: OnUpdate | None = None
    on_delete: OnDelete | None = None
    verify: Verify | None = None
    verify_update: VerifyUpdate | None = None
    pre_delete: PreDelete | None = None
    view_created: ViewCreated | None = None
    # Child types whose documents this type's on_create/on_update put as new
    # children of the resource: the data CSF announces each as a child
    # creation (net 3), as if a client had created it (flexContainerInstance).
    announces: frozenset[int] = frozenset()


NO_HOOKS = TypeHooks()
