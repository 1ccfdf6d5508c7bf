"""The outbound policy (cse/csf/outbound.py): which URLs the CSE may send to.

Why: AEs hand the CSE URLs (``nu``, ``su``, ``X-M2M-RTU``, ``poa``); without
a policy the CSE sends to whatever they name, cloud metadata services
included. Every address a target stands for must pass the deny list
(link-local and metadata addresses by default) and, when set, the allow
list -- a name that resolves to a denied address, or an IPv4 address
dressed up as IPv6, must not get through. No network here: names are
resolved by a stub that records what it was asked (the last test sends
to a loopback receiver by the name ``localhost``).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from cse.binding.http_client import HttpOutbound, PolicyResolver
from cse.core.errors import BadRequest, TargetNotReachable
from cse.core.messages import Operation, Request
from cse.csf.outbound import DEFAULT_DENY, OutboundPolicy, VerifiedTargets, parse_networks
from tests.notify_receiver import Receiver


class Names:
    """A resolver stub: fixed answers, every lookup recorded."""

    def __init__(self, answers: dict[str, Sequence[str]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(-2, "Name or service not known")
        return self.answers[host]


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.0.1:8080/notify",
    "http://[fe80::1]/notify",
    "http://[fe80::1%25lo]:9/notify",
    "http://[::ffff:169.254.169.254]/latest",     # IPv4-mapped IPv6
    "http://[fd00:ec2::254]/latest/meta-data",    # AWS IMDS over IPv6
    "http://168.63.129.16/machine",               # Azure WireServer
    "https://100.100.100.200/latest/meta-data",   # Alibaba Cloud metadata
])
async def test_default_deny_refuses_link_local_and_metadata_without_a_lookup(url: str) -> None:
    names = Names()
    policy = OutboundPolicy(resolve=names)
    with pytest.raises(BadRequest) as info:
        await policy.check(url)
    assert "refused by the outbound policy" in info.value.message and "[outbound] deny" in info.value.message
    assert names.asked == []


async def test_a_name_is_checked_by_every_address_it_resolves_to() -> None:
    names = Names({"metadata.google.internal": ["169.254.169.254"],
                   "sneaky.example": ["127.0.0.1", "169.254.169.254"],
                   "decimal": ["169.254.169.254"]})
    policy = OutboundPolicy(resolve=names)
    for host in ("metadata.google.internal", "sneaky.example", "decimal"):
        with pytest.raises(BadRequest) as info:
            await policy.check(f"http://{host}/computeMetadata/v1/")
        assert "169.254.169.254 is in the denied network 169.254.0.0/16" in info.value.message
    assert names.asked == ["metadata.google.internal", "sneaky.example", "decimal"]


async def test_loopback_is_allowed_by_default_and_names_share_a_lane_with_their_address() -> None:
    policy = OutboundPolicy(resolve=Names({"localhost": ["127.0.0.1"]}))
    by_name = await policy.check("http://localhost:9000/a")
    by_address = await policy.check("http://127.0.0.1:9000/b?x=1")
    assert by_name.url == "http://localhost:9000/a"
    assert by_name.lane == by_address.lane == "http://127.0.0.1:9000"
    assert (await policy.check("http://[::1]:9000/c")).lane == "http://[::1]:9000"


async def test_allow_list_admits_only_its_networks() -> None:
    policy = OutboundPolicy(allow=["::1/128"], resolve=Names({"localhost": ["127.0.0.1"]}))
    assert (await policy.check("http://[::1]:8000/notify")).url == "http://[::1]:8000/notify"
    for url in ("http://127.0.0.1:8000/admin/reboot?x=1", "http://localhost:8000/admin"):
        with pytest.raises(BadRequest) as info:
            await policy.check(url)
        assert "127.0.0.1 is not in any allowed network ([outbound] allow)" in info.value.message


async def test_deny_wins_over_allow() -> None:
    policy = OutboundPolicy(allow=["169.254.0.0/16"], resolve=Names())
    with pytest.raises(BadRequest):
        await policy.check("http://169.254.169.254/")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http:///nohost", "gopher://x/",
                                 "http://127.0.0.1:99999/x"])
async def test_only_http_urls_with_a_host_and_port(url: str) -> None:
    with pytest.raises(BadRequest):
        await OutboundPolicy(resolve=Names()).check(url)


async def test_a_name_that_does_not_resolve_is_5103() -> None:
    with pytest.raises(TargetNotReachable) as info:
        await OutboundPolicy(resolve=Names()).check("http://nowhere.invalid/notify")
    assert "cannot resolve 'nowhere.invalid'" in info.value.message


def test_target_count_and_fan_out() -> None:
    policy = OutboundPolicy(resolve=Names(), max_targets=3)
    with pytest.raises(BadRequest) as info:
        policy.check_count(["Cae"] * 5000, "nu")
    assert info.value.message == "nu lists 5000 targets; at most 3 are allowed ([outbound] max_targets)"
    policy.check_count(["a", "b", "c"], "nu")
    # duplicates (an own-CSE SP-relative AE-ID, a ct hint) are one target; never more than the cap;
    # a URL stays as first given, its ct hint (the serialization it wants) included
    assert policy.fan_out(["Cae", "/id-in/Cae", "Cae", "http://h/n?ct=cbor", "http://h/n", ""], "/id-in") \
        == ["Cae", "http://h/n?ct=cbor"]
    assert policy.fan_out([f"http://h/{i}" for i in range(10)], "/id-in") == ["http://h/0", "http://h/1", "http://h/2"]


def test_verified_targets_are_bounded_and_forgettable() -> None:
    memory = VerifiedTargets(size=2)
    memory.add(("Ca", "http://x/1"))
    memory.add(("Cb", "http://x/1"))
    assert ("Ca", "http://x/1") in memory  # used: now the most recent
    memory.add(("Cc", "http://x/2"))
    assert ("Cb", "http://x/1") not in memory and ("Ca", "http://x/1") in memory
    memory.forget(("Ca", "http://x/1"))
    assert ("Ca", "http://x/1") not in memory


def test_networks_are_parsed_strictly() -> None:
    assert len(parse_networks(DEFAULT_DENY)) == len(DEFAULT_DENY)
    with pytest.raises(ValueError, match=r"'169\.254\.1\.1/16' is not an IP network"):
        parse_networks(["169.254.1.1/16"])
    with pytest.raises(ValueError, match="'metadata' is not an IP network"):
        parse_networks(["metadata"])


# -- at connection time: a name cannot change its answer after the check --------------------

async def test_an_address_url_is_checked_once_a_name_every_time() -> None:
    """Every notification asks where its URL may go; an address URL's
    verdict cannot change and is remembered, a name is asked again (it
    may resolve elsewhere next time) and a refusal is never remembered."""
    names = Names({"ae.example": ["127.0.0.1"]})
    policy = OutboundPolicy(resolve=names)
    first = await policy.check("http://127.0.0.1:9/notify")
    assert await policy.check("http://127.0.0.1:9/notify") is first
    assert first.lane == "http://127.0.0.1:9"
    await policy.check("http://ae.example:9/n")
    names.answers["ae.example"] = ["169.254.169.254"]
    with pytest.raises(BadRequest):
        await policy.check("http://ae.example:9/n")
    assert names.asked == ["ae.example", "ae.example"]
    for _ in range(2):
        with pytest.raises(BadRequest):
            await policy.check("http://169.254.169.254/latest")


class FixedResolver(AbstractResolver):
    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": h, "port": port, "family": family, "proto": 0, "flags": 0}
                for h in self.hosts]

    async def close(self) -> None:
        return None


async def test_connection_time_resolution_drops_refused_addresses() -> None:
    """DNS rebinding: the name passed the check with 127.0.0.1, and answers
    169.254.169.254 when the connection is opened."""
    policy = OutboundPolicy(resolve=Names())
    mixed = PolicyResolver(policy.allows, FixedResolver("169.254.169.254", "127.0.0.1"))
    assert [r["host"] for r in await mixed.resolve("rebind.example", 80)] == ["127.0.0.1"]
    with pytest.raises(OSError, match="refused by the outbound policy"):
        await PolicyResolver(policy.allows, FixedResolver("169.254.169.254", "fe80::1")).resolve("rebind.example")


async def test_notification_urls_are_filtered_at_connection_time_peer_requests_are_not(
        receiver: Receiver) -> None:
    out = HttpOutbound(address_allowed=lambda host: False)
    req = Request(op=Operation.NOTIFY, to="Cx", fr="/id-in", rqi="r1", pc={"m2m:sgn": {"sur": "s"}})
    url = f"http://localhost:{receiver.port}/notify"
    try:
        with pytest.raises(TargetNotReachable):
            await out.send(url, req, timeout=5, exact=True)
        assert receiver.pending() == []
        resp = await out.send(f"http://localhost:{receiver.port}", req, timeout=5)  # CSE-to-CSE: not filtered
        assert resp.rsc == 2000
        assert len(receiver.pending()) == 1
    finally:
        await out.close()
