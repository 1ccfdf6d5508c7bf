"""Store operations committed atomically with a request's effect.

Why: the session gate remembers the answer to each session-based request
by its request ID, so a redelivery (a store-and-forward retry after a crash
or a timeout) is answered from that memory instead of being executed again.
If the effect (say, the created contentInstance) and that memory were two
commits, a crash between them would keep the effect and lose the memory,
and the redelivery would execute a second time. So the gate sets
:data:`EFFECT_TAG` while it serves a request, and the data CSF adds the
tag's operations to the commit that carries the effect (the first one only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar

from .ports import Op

__all__ = ["EffectTag", "EFFECT_TAG", "with_effect"]


class EffectTag:
    """Extra ops for the first effect commit of the request being served;
    ``make`` sees that commit's ops (e.g. to learn the created ``ri``)."""

    __slots__ = ("_make", "used")

    def __init__(self, make: Callable[[Sequence[Op]], list[Op]]) -> None:
        self._make = make
        self.used = False


EFFECT_TAG: ContextVar[EffectTag | None] = ContextVar("cse_effect_tag", default=None)


def with_effect(ops: list[Op]) -> list[Op]:
    """``ops`` plus, once per tagged request, the tag's operations."""
    tag = EFFECT_TAG.get()
    if tag is None or tag.used:
        return ops
    tag.used = True
    return [*ops, *tag._make(ops)]
