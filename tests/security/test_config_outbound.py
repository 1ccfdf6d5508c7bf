"""[outbound]: validated at start-up like every other section (docs/configuration.md).

Why: the outbound policy is what keeps the CSE off metadata services and
out of internal networks; a typo in it must stop the CSE with a message
naming the key, never leave the defaults silently in place or a list
half-parsed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cse.config import ConfigError, load_config
from cse.csf.outbound import DEFAULT_DENY


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text('[cse]\ncse_id = "/id-cse1"\nname = "cse1"\n' + text)
    return load_config(str(path))


def test_defaults() -> None:
    out = load_config(None).outbound
    assert out.allow == () and out.deny == DEFAULT_DENY
    assert "169.254.0.0/16" in out.deny and "fe80::/10" in out.deny
    assert (out.max_targets, out.max_subscriptions, out.max_in_flight, out.max_per_target,
            out.max_per_originator) == (16, 100, 64, 4, 16)


def test_a_full_section_loads(tmp_path: Path) -> None:
    out = load(tmp_path, '[outbound]\nallow = ["10.0.0.0/8", "::1"]\ndeny = ["169.254.0.0/16"]\n'
                         "max_targets = 4\nmax_subscriptions = 10\nmax_in_flight = 32\nmax_per_target = 2\n"
                         "max_per_originator = 8\n").outbound
    assert out.allow == ("10.0.0.0/8", "::1") and out.deny == ("169.254.0.0/16",)
    assert (out.max_targets, out.max_subscriptions, out.max_in_flight, out.max_per_target,
            out.max_per_originator) == (4, 10, 32, 2, 8)


@pytest.mark.parametrize(("text", "message"), [
    ("[outbound]\nalow = []\n", "unknown key 'outbound.alow' (known: allow, deny, max_in_flight, max_pending, "
                                "max_pending_per_target, max_per_originator, max_per_target, max_subscriptions, "
                                "max_targets)"),
    ('[outbound]\ndeny = "169.254.0.0/16"\n', "'outbound.deny' must be list, got str"),
    ("[outbound]\ndeny = [1]\n", "'outbound.deny' must be a list of str, got int 1"),
    ('[outbound]\nallow = ["10.0.0.1/8"]\n', "'outbound.allow': '10.0.0.1/8' is not an IP network"),
    ('[outbound]\ndeny = ["metadata.google.internal"]\n',
     "'outbound.deny': 'metadata.google.internal' is not an IP network"),
    ("[outbound]\nmax_targets = 0\n", "'outbound.max_targets' must be at least 1, got 0"),
    ("[outbound]\nmax_per_target = true\n", "'outbound.max_per_target' must be int, got bool"),
])
def test_mistakes_are_errors_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert message in str(info.value), str(info.value)
