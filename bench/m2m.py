"""Minimal oneM2M calls for setting scenarios up (register, containers,
counts) over one aiohttp session; not measured."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp

from .common import m2m_headers

__all__ = ["M2M"]

_rqi = itertools.count(1)


class M2M:
    """oneM2M over HTTP against one CSE at ``url`` (CSEBase ``cse``)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, cse: str) -> None:
        self.s = session
        self.url = url
        self.cse = cse

    async def call(self, method: str, path: str, origin: str, *, ty: int | None = None,
                   body: Any = None) -> tuple[int, Any]:
        """One request; returns (RSC, JSON body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        async with self.s.request(method, self.url + path, data=data,
                                  headers=m2m_headers(origin, ty, f"setup-{next(_rqi)}")) as r:
            raw = await r.read()
            return int(r.headers.get("X-M2M-RSC", "0")), (json.loads(raw) if raw else None)

    async def ok(self, method: str, path: str, origin: str, *, ty: int | None = None, body: Any = None,
                 want: int = 2001) -> Any:
        rsc, pc = await self.call(method, path, origin, ty=ty, body=body)
        if rsc != want:
            raise RuntimeError(f"{method} {path}: expected {want}, got {rsc}: {pc}")
        return pc

    async def register(self, rn: str, **attrs: Any) -> str:
        """Register AE ``rn`` under the CSEBase; returns its AE-ID."""
        pc = await self.ok("POST", f"/{self.cse}", "C" + rn, ty=2,
                           body={"m2m:ae": {"rn": rn, "api": "N" + rn, "rr": False, "srv": ["3"], **attrs}})
        return str(pc["m2m:ae"]["aei"])

    async def container(self, parent: str, rn: str, origin: str, **attrs: Any) -> str:
        """Create container ``rn`` under ``parent`` (CSE-relative path); returns its path."""
        await self.ok("POST", f"/{parent}", origin, ty=3, body={"m2m:cnt": {"rn": rn, **attrs}})
        return f"{parent}/{rn}"

    async def cni(self, paths: list[str], origin: str) -> int:
        """Sum of ``cni`` of the containers at ``paths``."""
        async def one(p: str) -> int:
            pc = await self.ok("GET", f"/{p}?atrl=cni", origin, want=2000)
            return int(pc["m2m:cnt"].get("cni", 0))
        return sum(await asyncio.gather(*(one(p) for p in paths)))
