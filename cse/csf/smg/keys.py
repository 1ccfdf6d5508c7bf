"""The stored session keys at start-up (docs/security.md "Keys at rest").

Session keys are stored wrapped under the store key (:mod:`cse.core.keyring`).
Before a CSE serves anything it looks at every stored session once:

* keys wrapped with *another* store key, or that do not unwrap, mean the key
  file is missing, replaced or damaged: the composition root refuses to
  start rather than lose the sessions silently (a lost key file cannot be
  recreated);
* keys stored in plain (by an earlier version) are wrapped now, by an
  outcome the caller applies.

Reads only; the caller decides and applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cse.core.context import Context
from cse.core.keyring import Keyring, KeyringError
from cse.core.outcome import Outcome
from cse.core.ports import Doc, Put

from .model import SESSION_TY, SESSIONS_RN

__all__ = ["KeyCheck", "check_stored_keys", "stored_sessions"]


@dataclass(frozen=True)
class KeyCheck:
    """What :func:`check_stored_keys` found."""

    sessions: int = 0
    foreign: dict[str, int] = field(default_factory=dict)  # other store key id -> sessions wrapped with it
    broken: list[str] = field(default_factory=list)  # sids whose key does not unwrap with this keyring
    upgrade: Outcome = field(default_factory=Outcome)  # wraps keys stored in plain
    plain: int = 0

    @property
    def usable(self) -> bool:
        """Every stored key unwraps (or is plain and about to be wrapped)."""
        return not self.foreign and not self.broken


async def stored_sessions(ctx: Context) -> list[Doc]:
    """Every session stored here: under each AE's ``sessions`` and the
    CSEBase's (transit), found by walking down from the CSEBase."""
    store = ctx.store
    holders = [ctx.identity.cb_ri, *(ae["ri"] for ae in await store.children(ctx.identity.cb_ri, 2))]
    out: list[Doc] = []
    for ri in holders:
        sessions = await store.child_by_name(ri, SESSIONS_RN)
        if sessions is not None:
            out.extend(await store.children(sessions["ri"], SESSION_TY))
    return out


async def check_stored_keys(ctx: Context, keyring: Keyring) -> KeyCheck:
    """Check that every stored session key unwraps with ``keyring``; the
    outcome wrapping the ones stored in plain."""
    foreign: dict[str, int] = {}
    broken: list[str] = []
    ops: list[Put] = []
    sessions = await stored_sessions(ctx)
    for doc in sessions:
        scr, sid = doc.get("_scr"), str(doc.get("sid", ""))
        if not isinstance(scr, dict):
            continue
        key_id = Keyring.wrapped_with(scr)
        if key_id is None:
            if isinstance(scr.get("key"), str):
                ops.append(Put({**doc, "_scr": keyring.wrap(sid, scr)}))
            continue
        if key_id != keyring.key_id:
            foreign[key_id] = foreign.get(key_id, 0) + 1
            continue
        try:
            keyring.unwrap(sid, scr)
        except KeyringError:
            broken.append(sid)
    return KeyCheck(len(sessions), foreign, broken, Outcome(ops=list(ops)), len(ops))
