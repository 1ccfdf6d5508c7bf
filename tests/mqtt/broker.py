"""The MQTT broker the MQTT tests use: Mosquitto on 127.0.0.1:1883 (``.ci/run`` starts it).

In CI (``CI=true``) a broker that does not answer fails the test: the
binding must be tested there. Elsewhere the test is skipped with the reason.
Each test uses its own CSE-ID (:func:`unique_cse_id`), so its topics differ
from those of tests running at the same time against the same broker.
"""

from __future__ import annotations

import os
import secrets
import socket

import pytest

HOST = "127.0.0.1"
PORT = 1883
URL = f"mqtt://{HOST}:{PORT}"


def broker_up() -> bool:
    """Whether something accepts connections on the broker's port."""
    try:
        with socket.create_connection((HOST, PORT), timeout=1.0):
            return True
    except OSError:
        return False


def require_broker() -> None:
    """Fail (CI) or skip (elsewhere) when no broker listens on 127.0.0.1:1883."""
    if broker_up():
        return
    why = f"no MQTT broker on {HOST}:{PORT} (install and start Mosquitto; .ci/run does in CI)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def unique_cse_id() -> str:
    """A CSE-ID no other test uses: its request topics are its own."""
    return "/id-mq" + secrets.token_hex(4)
