"""What the HTTP binding calls, and how the composition root builds it from the configuration.

:class:`BindingSecurity` is the binding's single entry point: serve the
token endpoint, check a request's token before the pipeline sees it, add
the token of a fresh registration to the answer. :func:`build_security`
assembles that, the SSL contexts and the outbound token source from a
:class:`~cse.config.Config`, loading every key and certificate once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ssl import SSLContext
from typing import TYPE_CHECKING

from aiohttp import web

from cse.core.messages import Request, Response

from .guard import Guard
from .tls import client_context, server_context
from .token_endpoint import TOKEN_PATH, TokenEndpoint
from .tokens import TokenSource, outbound_tokens

if TYPE_CHECKING:
    from cse.config import Config

__all__ = ["BindingSecurity", "Security", "build_security"]


class BindingSecurity:
    """Token checks (when ``[auth] enabled``) and the token endpoint (when clients are configured)."""

    def __init__(self, guard: Guard | None, endpoint: TokenEndpoint | None) -> None:
        self.guard = guard
        self.endpoint = endpoint

    async def intercept(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """The token endpoint's answer for a request to it; None for every oneM2M request."""
        if self.endpoint is not None and request.raw_path.partition("?")[0] == TOKEN_PATH:
            return await self.endpoint.handle(request)
        return None

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise :class:`~cse.security.guard.AuthFailure` unless the token allows the originator."""
        if self.guard is not None:
            self.guard.check(headers)

    def response_headers(self, req: Request, resp: Response) -> dict[str, str]:
        """Extra headers for a successful answer (the token of a CSE-assigned AE-ID)."""
        return self.guard.registration_headers(req, resp) if self.guard is not None else {}


@dataclass(frozen=True)
class Security:
    """Everything security-related the composition root hands to the binding and the outbound client."""

    server_ssl: SSLContext | None
    client_ssl: SSLContext | None
    binding: BindingSecurity | None
    tokens: TokenSource | None

    @property
    def scheme(self) -> str:
        return "https" if self.server_ssl is not None else "http"


def build_security(config: Config, clock: Callable[[], float] = time.time) -> Security:
    """Load keys and certificates (start-up only) and build the pieces."""
    auth = config.auth
    signer = Guard(auth, config.cse.cse_id, clock=clock) if (auth.enabled or auth.can_sign) else None
    endpoint = TokenEndpoint(signer, auth.clients) if signer is not None and auth.clients else None
    checker = signer if auth.enabled else None
    binding = BindingSecurity(checker, endpoint) if checker is not None or endpoint is not None else None
    return Security(server_ssl=server_context(config.tls), client_ssl=client_context(config.tls),
                    binding=binding, tokens=outbound_tokens(config.auth_client, signer, config.cse.cse_id))
