"""Request and response primitives (TS-0004 section 7.2.1), frozen.

A binding builds a :class:`Request` from the wire; the pipeline never mutates
it (a changed copy is made with :func:`dataclasses.replace`). The pipeline
returns a :class:`Response`, which the binding writes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from .errors import RSC

__all__ = ["Operation", "ResponseType", "ResultContent", "Request", "Response", "SUPPORTED_RVI", "rvi_for"]

SUPPORTED_RVI = frozenset({"2a", "3", "4", "5"})
_RELEASES = ("1", "2", "2a", "3", "4", "5")  # oldest first


def rvi_for(srv: Sequence[object] | None) -> str | None:
    """The release to speak to a peer whose ``srv`` (supportedReleaseVersions)
    is known: the newest one both support. ``""`` for a peer of release 1
    or 2 only: the release version parameter exists from release 2a
    (TS-0004 7.2.1.1, TS-0009 6.4.x ``X-M2M-RVI``), so such a peer gets
    none. None when ``srv`` says nothing usable (unknown, or only newer
    releases): the caller's default applies."""
    known = [r for r in srv or () if isinstance(r, str) and r in _RELEASES]
    common = [r for r in known if r in SUPPORTED_RVI]
    if common:
        return max(common, key=_RELEASES.index)
    if known and all(r in ("1", "2") for r in known):
        return ""
    return None


class Operation(IntEnum):
    """oneM2M ``op`` values."""

    CREATE = 1
    RETRIEVE = 2
    UPDATE = 3
    DELETE = 4
    NOTIFY = 5


class ResponseType(IntEnum):
    """oneM2M ``rt`` values (docs/onem2m.md "Non-blocking requests")."""

    NON_BLOCKING_SYNCH = 1
    NON_BLOCKING_ASYNCH = 2
    BLOCKING = 3
    FLEX_BLOCKING = 4
    NO_RESPONSE = 5


class ResultContent(IntEnum):
    """oneM2M ``rcn`` values (docs/onem2m.md "Result content")."""

    NOTHING = 0
    ATTRIBUTES = 1
    HIERARCHICAL_ADDRESS = 2
    HIERARCHICAL_ADDRESS_ATTRIBUTES = 3
    ATTRIBUTES_AND_CHILDREN = 4
    ATTRIBUTES_AND_CHILD_REFS = 5
    CHILD_REFS = 6
    ORIGINAL_RESOURCE = 7
    CHILD_RESOURCES = 8
    MODIFIED_ATTRIBUTES = 9
    SEMANTIC_CONTENT = 10
    DISCOVERY_RESULT_REFERENCES = 11
    PERMISSIONS = 12


@dataclass(frozen=True, slots=True)
class Request:
    """One oneM2M request primitive, binding-independent.

    ``to`` is the target as sent (CSE-relative, SP-relative ``/csi/...`` or
    absolute ``//sp/csi/...``). ``pc`` is the parsed content (a dict) or None.
    ``query`` keeps every query parameter as a list of decoded values, for
    filter criteria and attribute filters; typed fields hold the parsed
    request parameters. ``body`` keeps the raw bytes (needed for session MACs).
    ``rvi`` empty: a request to a release 1/2 peer, sent without one (:func:`rvi_for`).
    """

    op: Operation
    to: str
    fr: str | None
    rqi: str
    rvi: str = "3"
    ty: int | None = None
    pc: dict[str, Any] | None = None
    rcn: int | None = None
    rt: int = ResponseType.BLOCKING
    rtu: tuple[str, ...] | None = None
    drt: int = 1
    atrl: tuple[str, ...] = ()
    ot: str | None = None
    rqet: str | None = None
    rset: str | None = None
    oet: str | None = None
    rp: str | None = None
    ec: int | None = None
    vsi: str | None = None
    sid: str | None = None
    smac: str | None = None
    query: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    body: bytes = b""
    media: str = "application/json"


@dataclass(frozen=True, slots=True)
class Response:
    """One oneM2M response primitive.

    ``location`` is the CREATE's Content-Location (the new resource's address)
    when the result content carries it. ``cnst``/``cnot`` are the Content
    Status and Content Offset of a result that was cut (TS-0004 6.3.4.2.44:
    1 PARTIAL_CONTENT; absent when the content is complete).
    """

    rsc: int
    rqi: str = ""
    pc: Any = None
    ot: str | None = None
    location: str | None = None
    rvi: str = "3"
    cnst: int | None = None
    cnot: int | None = None

    @property
    def ok(self) -> bool:
        """True for 1xxx/2xxx codes."""
        return self.rsc < 3000

    @staticmethod
    def error(rsc: int, message: str, rqi: str = "") -> Response:
        """An error response carrying ``m2m:dbg``."""
        return Response(rsc=rsc, rqi=rqi, pc={"m2m:dbg": message})

    @property
    def status(self) -> RSC | int:
        """The RSC as an enum where known."""
        try:
            return RSC(self.rsc)
        except ValueError:
            return self.rsc
