"""Transport security for the HTTP binding: TLS, bearer tokens, OAuth 2.0 client credentials.

Everything here sits beside the binding, not in the request pipeline: the
binding asks :class:`~cse.security.guard.Guard` whether the
``X-M2M-Origin`` of a request is backed by a valid token, and the pipeline
(``cse.core``, ``cse.csf``) keeps trusting ``Request.fr`` as before.

* :mod:`.settings` -- the ``[tls]``, ``[auth]``, ``[auth_client]`` sections.
* :mod:`.guard` -- verifying tokens on inbound requests, minting tokens.
* :mod:`.token_endpoint` -- ``POST /oauth2/token`` (client credentials grant).
* :mod:`.tokens` -- the token this CSE presents to its peers (static, self-minted, or obtained).
* :mod:`.keys` -- reading token keys from the configured files.
* :mod:`.tls` -- SSL contexts for serving and for outbound requests.
* :mod:`.devcerts` -- a throwaway CA, certificates, keys and secrets for tests and samples.

The token codec itself is :mod:`cse.core.jwt`, on PyJWT (the AE SDK uses it too).
Submodules are imported where needed; importing the package loads nothing.
"""

__all__: list[str] = []
