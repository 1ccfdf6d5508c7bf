"""``GET /health`` and ``GET /metrics`` on the CSE's HTTP port (docs/configuration.md "[metrics]").

Not oneM2M: load balancers and Prometheus speak plain HTTP and carry no
X-M2M-Origin. The two paths are reserved (no resource is addressed as
``/health`` or ``/metrics``: resource IDs the CSE assigns never take these
names) and answered before the oneM2M mapping, without bearer tokens.

Who may read them (docs/security.md "Health and metrics"): ``/health`` says
only ready or not, why not, and queue depths -- no identities, keys or
addresses -- so anyone who reaches the port may read it. ``/metrics`` also
shows request counts by originator-independent labels, but traffic volumes
are operational information: it is answered only to peers in
``[metrics] allow`` (loopback by default), others get 403.
"""

from __future__ import annotations

import ipaddress
import json

from aiohttp import web

from cse.observe.metrics import CONTENT_TYPE, Metrics
from cse.observe.state import Probe

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["OpsEndpoints", "HEALTH_PATHS", "METRICS_PATH"]

HEALTH_PATHS = frozenset({"/health", "/health/ready", "/health/live"})
METRICS_PATH = "/metrics"


def _json(status: int, body: dict[str, object]) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


class OpsEndpoints:
    """Answers the reserved paths (module docstring)."""

    def __init__(self, probe: Probe, metrics: Metrics | None, *, health: bool = True,
                 metrics_allow: tuple[Network, ...] = ()) -> None:
        self.probe = probe
        self.metrics = metrics  # None: /metrics is switched off ([metrics] enabled = false)
        self.metrics_allow = metrics_allow
        self.paths = frozenset((HEALTH_PATHS if health else frozenset())
                               | ({METRICS_PATH} if metrics is not None else frozenset()))

    async def answer(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        """The answer for ``path``, one of :attr:`paths`."""
        if request.method not in ("GET", "HEAD"):
            return _json(405, {"error": f"{path} answers GET only"})
        if path == "/health/live":
            return _json(200, {"status": "alive"})  # the event loop answers: that is liveness
        if path == METRICS_PATH:
            return await self._metrics(request)
        snap = await self.probe()
        body: dict[str, object] = {
            "status": "ready" if snap.ready else "not ready",
            "checks": {"store": "writable" if snap.store_writable else "cannot write",
                       **({} if snap.registrar is None
                          else {"registrar": "registered" if snap.registrar else "not registered"})},
            "queues": {"notificationsPending": snap.notifications_pending,
                       "storedRequests": snap.stored_requests},
        }
        if not snap.ready:
            body["reasons"] = snap.reasons()
        return _json(200 if snap.ready else 503, body)

    async def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        assert self.metrics is not None
        if not self._may_read_metrics(request.remote):
            return _json(403, {"error": "/metrics is readable only from the networks in [metrics] allow"})
        text = self.metrics.render(await self.probe())
        return web.Response(status=200, body=text, headers={"Content-Type": CONTENT_TYPE,
                                                            "Cache-Control": "no-store"})

    def _may_read_metrics(self, peer: str | None) -> bool:
        if peer is None:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in net for net in self.metrics_allow)
