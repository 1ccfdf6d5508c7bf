"""Per-originator request rate: a token bucket per originator, in memory.

Why (docs/security.md "Limits"): without it one AE can keep the CSE busy
for everybody (20,000 creates in 5 s). Each originator has a bucket of
``burst`` requests that refills at ``rate`` requests per second; a request
that finds it empty is answered 5207 with an ``m2m:dbg`` naming the limit
and when to come back, before anything else is done for it. The admin and
the CSE itself are never limited.

The buckets are kept for the most recently seen :data:`TRACKED` originators
only (forgetting one refills it), so a flood of new originators cannot grow
memory without bound. Time comes from the injected clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from .errors import RSC
from .ids import normalize_originator
from .messages import Request, Response
from .ports import Clock

__all__ = ["RequestRate", "TRACKED"]

#: How many originators' buckets are remembered (least recently seen first out).
TRACKED = 10_000


class RequestRate:
    """Admits or refuses each incoming request by its originator's bucket."""

    def __init__(self, rate: float, burst: int, clock: Clock, *, csi: str, exempt: frozenset[str]) -> None:
        self.rate = rate  # requests per second; 0: no limit
        self.burst = burst if burst > 0 else max(1, math.ceil(rate))
        self.clock = clock
        self.csi = csi
        self.exempt = exempt
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # originator -> (tokens, at)

    def refusal(self, req: Request) -> Response | None:
        """None when ``req`` may go on, else the 5207 answer to it."""
        if self.rate <= 0:
            return None
        who = normalize_originator(req.fr, self.csi) or ""
        if who in self.exempt:
            return None
        now = self.clock.now()
        buckets = self._buckets
        tokens, at = buckets.pop(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            buckets[who] = (tokens - 1.0, now)
            if len(buckets) > TRACKED:
                buckets.popitem(last=False)
            return None
        buckets[who] = (tokens, now)
        wait = (1.0 - tokens) / self.rate
        return Response(rsc=int(RSC.NOT_ACCEPTABLE), rqi=req.rqi, rvi=req.rvi, pc={"m2m:dbg": (
            f"originator '{who[:80]}' sends more than {self.rate:g} requests per second "
            f"(limits.requests_per_s, burst {self.burst}); retry in {wait:.2f} s")})
