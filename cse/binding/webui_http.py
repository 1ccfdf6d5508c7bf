"""``/webui``: the web console's static files and its live request log (docs/webui.md).

Not oneM2M, like /health and /metrics (cse.binding.ops_http): the paths
below ``/webui`` are reserved (resource IDs the CSE assigns never take this
name) and answered before the oneM2M mapping.

The console has no powers of its own. Its pages talk to the CSE through the
ordinary oneM2M HTTP API, from the browser, as the originator the user
chooses; access control applies to them exactly as to any client. What is
served here is:

* the console's files, fixed at start-up from the package's ``cse/webui``
  folder (a name not in that folder is 404: no path is ever joined to a
  directory, so ``..`` reaches nothing);
* ``/webui/config.json``: the CSE-ID and CSEBase name the pages start from
  (both are shown by the CSEBase to anyone anyway);
* ``/webui/log``: the live request log as server-sent events, to the admin
  originator only (docs/webui.md "Live request log"): ``X-M2M-Origin`` must
  be ``[cse] admin`` and, when bearer tokens are on (docs/security.md), the
  token must allow it, exactly as for a oneM2M request. The browser sends
  both headers with ``fetch`` (an ``EventSource`` cannot send headers).

Every answer carries a Content-Security-Policy allowing scripts, styles and
connections from this origin only, and no inline script: a resource name
holding ``<script>`` that slipped past the pages' escaping still would not run.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from cse.core.errors import M2MError
from cse.observe.requestlog import FeedFull, RequestFeed

if TYPE_CHECKING:
    from cse.security.binding import BindingSecurity

__all__ = ["WebConsole", "STATIC_DIR", "PREFIX", "CSP"]

PREFIX = "/webui"
STATIC_DIR = Path(__file__).resolve().parent.parent / "webui"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


def _headers(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def _error(status: int, rsc: int, message: str, extra: dict[str, str] | None = None) -> web.Response:
    headers = {**_headers("application/json"), "X-M2M-RSC": str(rsc), **(extra or {})}
    return web.Response(status=status, body=json.dumps({"m2m:dbg": message}).encode(), headers=headers)


class WebConsole:
    """Answers ``/webui`` and below (module docstring)."""

    def __init__(self, feed: RequestFeed | None, *, admin: str, cse_id: str, cse_name: str,
                 security: BindingSecurity | None = None, static_dir: Path = STATIC_DIR,
                 heartbeat_s: float = 15.0) -> None:
        """``feed``: the live request log (None: /webui/log is 404);
        ``heartbeat_s``: how often a quiet log stream gets a comment line, so
        a reader that went away is noticed and let go."""
        self.feed = feed
        self.admin = admin
        self.security = security
        self.heartbeat_s = heartbeat_s
        self.files: dict[str, tuple[bytes, str]] = {}
        for path in sorted(static_dir.iterdir()) if static_dir.is_dir() else []:
            if path.is_file() and not path.name.startswith((".", "_")):
                ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                self.files[path.name] = (path.read_bytes(), ctype)
        self.config = json.dumps({"cseId": cse_id, "cseName": cse_name}).encode()

    @staticmethod
    def serves(raw_path: str) -> bool:
        """Whether ``raw_path`` (with its query) is the console's."""
        path = raw_path.partition("?")[0]
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path.partition("?")[0]
        if request.method not in ("GET", "HEAD"):
            return _error(405, 4005, f"{path} answers GET only")
        if path == PREFIX:
            return web.Response(status=301, headers={**_headers("text/plain"), "Location": PREFIX + "/"})
        name = path[len(PREFIX) + 1:] or "index.html"
        if name == "config.json":
            return web.Response(status=200, body=self.config, headers=_headers("application/json"))
        if name == "log" and self.feed is not None and request.method == "GET":
            return await self._log(request, self.feed)
        found = self.files.get(name)
        if found is None:
            return _error(404, 4004, f"the web console has no file {name[:100]!r}")
        body, ctype = found
        return web.Response(status=200, body=body, headers=_headers(ctype))

    def _refusal(self, request: web.BaseRequest) -> web.Response | None:
        """Why this request may not read the log (None: it may)."""
        if self.security is not None:
            try:
                self.security.check(request.headers)
            except M2MError as exc:
                return _error(403, int(exc.rsc), exc.message, getattr(exc, "http_headers", {}))
        if request.headers.get("X-M2M-Origin") != self.admin:
            return _error(403, 4103, "the live request log is open to the admin originator only ([cse] admin)")
        return None

    async def _log(self, request: web.BaseRequest, feed: RequestFeed) -> web.StreamResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        try:
            sub = feed.subscribe()
        except FeedFull as exc:
            return _error(503, 5207, str(exc), {"Retry-After": "5"})
        resp = web.StreamResponse(status=200, headers={**_headers("text/event-stream"), "Cache-Control": "no-store"})
        try:
            await resp.prepare(request)
            await resp.write(f"event: open\ndata: {json.dumps({'buffer': feed.buffer})}\n\n".encode())
            while True:
                batch = await sub.next(self.heartbeat_s)
                if batch is None:
                    if sub.dropped:
                        note = {"reason": f"this reader fell {feed.buffer} entries behind and was dropped"}
                        await resp.write(f"event: dropped\ndata: {json.dumps(note)}\n\n".encode())
                    break
                if not batch:
                    await resp.write(b": quiet\n\n")
                    continue
                await resp.write(b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in batch))
        except (ConnectionError, RuntimeError):
            pass  # the reader went away (aiohttp raises ClientConnectionResetError, a ConnectionError)
        finally:
            feed.unsubscribe(sub)
        return resp
