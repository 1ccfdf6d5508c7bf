"""Name resolution for the outbound policy (cse/csf/outbound.py).

The policy needs every address a notification target's host name stands
for before anything is sent there; the CSF does no I/O itself, so the
composition root hands it this function.
"""

from __future__ import annotations

import asyncio
import socket

__all__ = ["resolve_host"]


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (``getaddrinfo``, the system resolver); OSError when it does not."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
