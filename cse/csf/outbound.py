"""Where the CSE may send requests it was asked to send (docs/security.md "Outbound requests").

AEs hand the CSE URLs: ``nu`` and ``su`` of subscriptions, ``X-M2M-RTU``
of non-blocking requests, their own ``poa``. Without a policy the CSE
would send to whatever they name -- a cloud metadata service, a router's
admin page, another tenant's service -- so every such URL is checked here
before anything is sent to it:

* only ``http``/``https`` URLs with a host, and ``mqtt``/``mqtts`` ones
  (TS-0010; their host is the broker the request goes through, checked
  like any other host: docs/bindings.md "MQTT");
* the host's addresses (a literal address, or what the name resolves to:
  every address must pass, so a name cannot smuggle in a denied one) must
  not be in any ``deny`` network, and must be in an ``allow`` network when
  ``allow`` is set. IPv4-mapped IPv6 addresses are checked as the IPv4
  address they carry.

:class:`VerifiedTargets` remembers which targets answered a verification
request (TS-0004 7.4.8.2.1: ``{"m2m:sgn": {"vrq": true, ...}}``) with 2000
on behalf of which originator, so that every target is asked once before
its first notification and not again for every notification. The memory
is in memory only and bounded: after a restart (or once an entry is
evicted) a target is simply asked again before its next notification.

The module does not resolve names itself: the composition root passes a
``resolve`` callable (the binding's, ``getaddrinfo``), so the CSF stays free
of sockets and tests can see every lookup.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cse.core.errors import BadRequest, TargetNotReachable
from cse.core.ids import normalize_originator
from cse.core.serialization import JSON

__all__ = ["Address", "Destination", "OutboundPolicy", "Resolve", "VerifiedTargets", "DEFAULT_DENY",
           "is_url", "strip_ct", "parse_networks"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the host's addresses as strings; raises OSError when the name does not resolve.
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]

# Link-local (where cloud metadata services live: 169.254.169.254 on AWS,
# GCP, Azure, OpenStack, ...) and the metadata addresses outside it: AWS's
# IPv6 IMDS, Azure's WireServer, Alibaba Cloud's metadata service.
DEFAULT_DENY: tuple[str, ...] = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "168.63.129.16/32",
                                 "100.100.100.200/32")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``ip_network`` of each value (a plain address is a /32 or /128); ValueError names the bad one."""
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            raise ValueError(f"'{value}' is not an IP network ({exc})") from None
    return tuple(out)


_LITERAL_MAX = 4096  # allowed address URLs remembered by OutboundPolicy.check


def _is_address(host: str) -> bool:
    """Whether ``host`` (as urlsplit gives it) is an IP address rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


#: URL schemes the CSE sends to, and the port each defaults to.
SCHEMES = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}


def is_url(target: str) -> bool:
    """An http(s) or mqtt(s) URL (as opposed to an entity ID such as an AE-ID)."""
    return target.startswith(("http://", "https://", "mqtt://", "mqtts://"))


def strip_ct(url: str) -> str:
    """Remove the ``ct=`` serialization hint a ``nu`` URL may carry (docs/onem2m.md "subscription")."""
    if "ct=" not in url:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ct"]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a notification goes: a URL that passed the policy and the
    concurrency ``lane`` it shares with every other URL on the same address
    and port -- or, ``remote``, an entity on another CSE (``url`` is its ID,
    reached through the CSEs). ``rvi`` is the release to speak when the
    target is an AE whose ``srv`` is known (None: the default;
    :func:`cse.core.messages.rvi_for`). ``channel``: the ri of an AE with
    ``rr`` false reached through its pollingChannel instead of a URL
    (docs/onem2m.md "pollingChannel"). ``media``: the serialization the
    target prefers (cse/csf/content_serialization.py)."""

    url: str
    lane: str
    remote: bool = False
    rvi: str | None = None
    channel: str | None = None
    media: str = JSON


class OutboundPolicy:
    """The ``[outbound]`` allow/deny networks and the per-request target cap."""

    def __init__(self, *, allow: Sequence[str] = (), deny: Sequence[str] = DEFAULT_DENY,
                 resolve: Resolve, max_targets: int = 16) -> None:
        self.allow = parse_networks(allow)
        self.deny = parse_networks(deny)
        self.resolve = resolve
        self.max_targets = max_targets
        # URL -> its destination, for URLs whose host is an address: the
        # verdict depends on nothing else (a name is resolved every time)
        self._literal: dict[str, Destination] = {}

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` may not be sent to, or None."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for net in self.deny:
            if address.version == net.version and address in net:
                return f"{address} is in the denied network {net} ([outbound] deny)"
        if self.allow and not any(address.version == net.version and address in net for net in self.allow):
            return f"{address} is not in any allowed network ([outbound] allow)"
        return None

    def allows(self, address: str) -> bool:
        """Whether the address (text, as a resolver gives it) may be connected to."""
        try:
            return self.refusal(ipaddress.ip_address(address.split("%", 1)[0])) is None
        except ValueError:
            return False

    async def check(self, url: str) -> Destination:
        """The destination of ``url`` if the policy lets the CSE send there.

        Raises 4000 for a URL the policy refuses (or one that is not an
        http(s) or mqtt(s) URL with a host), 5103 for a name that does not resolve.
        An allowed URL naming an address is remembered (at most
        ``_LITERAL_MAX``): every notification to an AE's ``poa`` asks again.
        """
        known = self._literal.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in SCHEMES or not host:
            raise BadRequest(f"notification target '{url[:100]}' is not an http(s) or mqtt(s) URL with a host")
        try:
            port = parts.port or SCHEMES[parts.scheme]
        except ValueError:
            raise BadRequest(f"notification target '{url[:100]}' has an invalid port") from None
        addresses = await self._addresses(url, host, port)
        for address in addresses:
            why = self.refusal(address)
            if why is not None:
                raise BadRequest(f"notification target '{url[:100]}' is refused by the outbound policy: {why}")
        first = addresses[0]
        where = f"[{first}]" if first.version == 6 else str(first)
        dest = Destination(url, f"{parts.scheme}://{where}:{port}")
        if _is_address(host):
            if len(self._literal) >= _LITERAL_MAX:
                self._literal.clear()
            self._literal[url] = dest
        return dest

    async def _addresses(self, url: str, host: str, port: int) -> list[Address]:
        """The literal address, or every address the name resolves to."""
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            found = await self.resolve(host, port)
        except OSError as exc:
            raise TargetNotReachable(f"notification target '{url[:100]}': cannot resolve '{host[:100]}' "
                                     f"({exc.strerror or type(exc).__name__})") from None
        if not found:
            raise TargetNotReachable(f"notification target '{url[:100]}': '{host[:100]}' has no address")
        return [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]

    def check_count(self, targets: Sequence[str], what: str) -> None:
        """4000 when ``targets`` has more than ``max_targets`` entries: a list
        of 5,000 copies of one target is refused, not shortened."""
        if len(targets) > self.max_targets:
            raise BadRequest(f"{what} lists {len(targets)} targets; at most {self.max_targets} are allowed "
                             "([outbound] max_targets)")

    def fan_out(self, targets: Iterable[str], csi: str) -> list[str]:
        """The distinct ``targets``, in order, at most ``max_targets`` of them:
        what one event is sent to. A URL's ``ct`` hint and the SP-relative
        form of an own-CSE AE-ID do not make a target different. A URL is
        kept as first given, ``ct`` included: the notifier reads the hint
        (cse/csf/content_serialization.py) and removes it before sending."""
        seen: dict[str, str] = {}
        for target in targets:
            if not target:
                continue
            key = strip_ct(target) if is_url(target) else (normalize_originator(target, csi) or target)
            seen.setdefault(key, target if is_url(target) else key)
            if len(seen) >= self.max_targets:
                break
        return list(seen.values())


class VerifiedTargets:
    """Which (originator, target) pairs answered a verification request with
    2000 (module docstring); the ``size`` most recently used are kept."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __contains__(self, key: tuple[str, str]) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def add(self, key: tuple[str, str]) -> None:
        """Remember ``key`` as verified."""
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def forget(self, key: tuple[str, str]) -> None:
        """A target that refused a verification is asked again next time."""
        self._seen.pop(key, None)
