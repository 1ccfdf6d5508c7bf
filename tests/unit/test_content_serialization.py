"""Which serialization a notification target gets (cse/csf/content_serialization.py;
docs/onem2m.md "Serializations").

Why: an AE that lists CBOR first in ``csz`` must get CBOR, one that lists
something we do not speak first must still get the first one we do, and a
URL's ``ct=`` hint decides for URL targets, an ``mqtt://`` URL naming a local
AE asks that AE; everything else stays JSON.
"""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.serialization import CBOR, JSON, negotiate, preferred
from cse.csf.content_serialization import notification_media


class Docs:
    """Just the ``get`` of a store, over a dict."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs

    async def get(self, ri: str) -> dict[str, Any] | None:
        return self.docs.get(ri)


@pytest.mark.parametrize("csz, media", [
    (None, JSON),
    ([], JSON),
    (["application/cbor"], CBOR),
    (["application/vnd.onem2m-res+cbor", "application/json"], CBOR),
    (["application/json", "application/cbor"], JSON),
    (["application/xml", "application/cbor"], CBOR),   # the first one we speak
    (["application/xml"], JSON),
])
def test_preferred_is_the_first_csz_entry_we_speak(csz: list[str] | None, media: str) -> None:
    assert preferred(csz) == media


async def test_notification_media_by_target() -> None:
    store = Docs({"Ccb": {"ty": 2, "ri": "Ccb", "csz": ["application/cbor"]},
                  "Cjs": {"ty": 2, "ri": "Cjs"},
                  "cnt1": {"ty": 3, "ri": "cnt1", "csz": ["application/cbor"]}})
    assert await notification_media(store, "/id-in", "Ccb") == CBOR
    assert await notification_media(store, "/id-in", "/id-in/Ccb") == CBOR
    assert await notification_media(store, "/id-in", "Cjs") == JSON
    assert await notification_media(store, "/id-in", "cnt1") == JSON
    assert await notification_media(store, "/id-in", "Cgone") == JSON
    assert await notification_media(store, "/id-in", "http://127.0.0.1:9/n?ct=cbor") == CBOR
    assert await notification_media(store, "/id-in", "http://127.0.0.1:9/n?a=1&ct=json") == JSON
    assert await notification_media(store, "/id-in", "http://127.0.0.1:9/n") == JSON
    # an mqtt URL names its receiver (TS-0010): a local AE there is asked like its AE-ID; ct= still wins
    assert await notification_media(store, "/id-in", "mqtt://127.0.0.1:1883/Ccb") == CBOR
    assert await notification_media(store, "/id-in", "mqtt://127.0.0.1:1883/Ccb?ct=json") == JSON
    assert await notification_media(store, "/id-in", "mqtt://127.0.0.1:1883/Cjs") == JSON
    assert await notification_media(store, "/id-in", "mqtt://127.0.0.1:1883") == JSON
    assert await notification_media(store, "/id-in", "http://127.0.0.1:9/Ccb") == JSON


@pytest.mark.parametrize("accept, request_media, chosen", [
    (None, "application/cbor", "application/cbor"),
    ("*/*", "application/vnd.onem2m-res+cbor", "application/vnd.onem2m-res+cbor"),
    ("application/*;q=0.9, application/cbor", "application/json", "application/cbor"),
    ("application/cbor;q=0.5, application/json;q=0.5", "application/json", "application/cbor"),  # tie: first
    ("application/cbor;q=abc, application/json", "application/json", "application/json"),
    ("APPLICATION/CBOR", "application/json", "application/cbor"),
])
def test_negotiate(accept: str | None, request_media: str, chosen: str) -> None:
    assert negotiate(accept, request_media) == chosen
