"""Which serialization a notification target gets (TS-0004 contentSerialization;
docs/onem2m.md "Serializations").

The notifier decides with :func:`target_media` when it resolves a target
(the AE it read for the ``poa`` is at hand) and puts the answer in
``Request.media``; the binding (``cse.core.http_wire``) encodes the
content accordingly. The choice, in order:

* a URL target with a ``ct=`` hint (``ct=cbor`` / ``ct=json``) gets that;
* an ``mqtt(s)://host:port/<AE-ID>`` target naming a local AE (the receiver
  of TS-0010 6.4, :func:`mqtt_receiver`) gets what that AE's ``csz`` asks for,
  like the AE-ID itself;
* an AE-ID target gets the first entry of the AE's ``csz`` we speak (JSON or
  CBOR; an AE listing only XML gets JSON, the one we always speak);
* anything else gets JSON.

It never adds a target or an address.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from cse.core.ids import normalize_originator
from cse.core.ports import Doc, Store
from cse.core.serialization import CBOR, JSON, preferred

from .outbound import is_url

__all__ = ["mqtt_receiver", "notification_media", "target_media"]

_CT = {"cbor": CBOR, "json": JSON}


def _url_hint(url: str) -> str:
    if "ct=" not in url:
        return JSON
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == "ct":
            return _CT.get(value.strip().lower(), JSON)
    return JSON


def mqtt_receiver(url: str) -> str | None:
    """The entity an ``mqtt(s)://host:port/<receiver>`` URL names, None for any other URL."""
    if not url.startswith(("mqtt://", "mqtts://")):
        return None
    return urlsplit(url).path.strip("/") or None


def target_media(target: str, ae: Doc | None) -> str:
    """The media type for ``target``, given the local AE it names (None: none)."""
    if is_url(target) and (ae is None or "ct=" in target):
        return _url_hint(target)
    if ae is None or ae.get("ty") != 2:
        return JSON
    return preferred(ae.get("csz"))


async def notification_media(store: Store, csi: str, target: str) -> str:
    """The media type to send a notification to ``target`` in (module docstring)."""
    named = mqtt_receiver(target) if is_url(target) else target
    ae = await store.get(normalize_originator(named, csi) or "") if named else None
    return target_media(target, ae)
