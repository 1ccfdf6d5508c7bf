"""The SDK's exceptions: one base class, one per way a call can fail.

* :class:`M2MResponseError` -- the CSE answered, with an error RSC (3xxx and
  above). It carries the RSC, the ``m2m:dbg`` text and the whole Response.
* :class:`TransportError` -- no oneM2M answer at all (connection refused,
  timeout, broken HTTP exchange).
* :class:`SDKError` -- the base; also raised for misuse (e.g. subscribing
  before the notification server runs).

Example::

    try:
        await client.retrieve("myapp/missing")
    except M2MResponseError as exc:
        print(exc.rsc, exc.dbg)        # 4004 resource 'cse-in/myapp/missing' does not exist
"""

from __future__ import annotations

from cse.core.errors import RSC
from cse.core.messages import Request, Response

__all__ = ["M2MResponseError", "SDKError", "TransportError"]


class SDKError(Exception):
    """Base of every exception the AE SDK raises on purpose."""


class TransportError(SDKError):
    """The request could not be delivered or no answer came back."""


def _rsc_name(rsc: int) -> str:
    try:
        return RSC(rsc).name
    except ValueError:
        return "UNKNOWN"


class M2MResponseError(SDKError):
    """The CSE answered with an error Response Status Code.

    ``rsc`` is the code (e.g. 4004), ``dbg`` the CSE's ``m2m:dbg`` explanation
    ("" when the answer carried none), ``response`` the whole
    :class:`~cse.core.messages.Response` and ``request`` the request sent.
    """

    def __init__(self, response: Response, request: Request | None = None) -> None:
        self.response = response
        self.request = request
        self.rsc: int = response.rsc
        pc = response.pc
        dbg = pc.get("m2m:dbg") if isinstance(pc, dict) else None
        self.dbg: str = dbg if isinstance(dbg, str) else ""
        what = f"{request.op.name} {request.to}: " if request is not None else ""
        text = f"{what}{self.rsc} {_rsc_name(self.rsc)}"
        super().__init__(f"{text}: {self.dbg}" if self.dbg else text)
