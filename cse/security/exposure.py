"""What a CSE says at start about who can reach it (docs/security.md "Originators and remote CSEs").

Without ``[auth]`` a CSE believes every ``X-M2M-Origin``: whoever reaches
its port can claim to be its admin, any AE or any peer CSE (and then change
that CSE's ``<remoteCSE>``, so forwarding goes where the claimant says). On
a loopback address only local processes can; on any other address that is
everybody on the network, which the operator must be told in the log.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback", "open_originator_warning"]


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only
    (``localhost`` or a loopback address; a host name is not resolved)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_originator_warning(host: str, auth_enabled: bool) -> str | None:
    """The start-up warning for a CSE listening beyond loopback without
    authentication, or None when there is nothing to say."""
    if auth_enabled or is_loopback(host):
        return None
    return (f"authentication is off ([auth] enabled = false) and the CSE listens on '{host or '*'}', "
            "not a loopback address: anyone who can reach it can claim any originator "
            "(the admin, any AE, any peer CSE, and so redirect forwarding); turn on [auth] "
            "(docs/security.md) or listen on 127.0.0.1")
