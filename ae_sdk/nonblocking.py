"""Non-blocking requests on the AE side (docs/onem2m.md "Non-blocking requests"; docs/sessions.md
"Store-and-forward").

A CSE that accepts a request instead of answering it at once -- ``rt=1``/``rt=2``,
or a session-based request it stores for a store-and-forward window -- answers
1001 (ACCEPTED) or 1002 with the reference of a ``<request>`` resource. Its
``rs`` stays 3 (PENDING) until the operation ran; then ``ors`` holds the
operation's result (``rsc``, ``rqi``, ``pc``, ...).

* :func:`wait_request` (``AEClient.wait_request``) polls such a ``<request>``
  until it is no longer pending and returns its ``ors``.
* :class:`PendingResult` is what session-based calls return for a 1001/1002:
  ``await pending.result(timeout)`` waits for the ``ors`` the same way.

Example::

    ref = await client.create("myapp", 3, {}, rn="slow", rt=1)
    ors = await client.wait_request(ref, 10)

    pending = await session.update("container1", {"lbl": ["x"]})   # stored by CSE1
    if isinstance(pending, PendingResult):
        ors = await pending.result(timeout=60)                      # after the window opened
        assert ors["rsc"] == 2004
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cse.core.messages import Operation, Request, Response

from .content import unwrap
from .errors import M2MResponseError
from .requester import Requester

__all__ = ["ACCEPTED_RSCS", "PendingResult", "reference_of", "wait_request"]

REQUEST_PENDING = 3
ACCEPTED_RSCS = frozenset({1001, 1002})


def reference_of(resp: Response) -> str:
    """The ``<request>`` reference of a non-blocking acknowledgement ("" if none)."""
    pc = resp.pc
    uri = pc.get("m2m:uri") if isinstance(pc, dict) else None
    return uri if isinstance(uri, str) else ""


async def wait_request(requester: Requester, ref: str, timeout: float = 30.0, *, interval: float = 0.05,
                       max_interval: float = 1.0) -> dict[str, Any]:
    """Poll the ``<request>`` ``ref`` until its ``rs`` is no longer 3 (PENDING)
    and return its ``ors``; :meth:`AEClient.wait_request <ae_sdk.client.AEClient.wait_request>`
    documents it (it calls this with itself as ``requester``)."""
    if not ref:
        raise ValueError("wait_request() needs a <request> reference (the CSE gave none)")
    path = ref if "/" in ref else requester.ri_path(ref)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = interval
    while True:
        req_res = unwrap((await requester.request(Operation.RETRIEVE, path)).pc)
        if req_res.get("rs", REQUEST_PENDING) != REQUEST_PENDING:
            ors = req_res.get("ors")
            return dict(ors) if isinstance(ors, dict) else {}
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"<request> {ref} is still pending after {timeout:g} s")
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, max_interval)


class PendingResult:
    """A request the CSE accepted (1001/1002) and will complete later, e.g. a
    session-based request stored until a store-and-forward window opens.

    ``ref`` is the ``<request>`` reference at the AE's own CSE, ``rsc`` the
    acknowledgement (1001, or 1002 for ``rt`` 2), ``request`` the request as
    sent (``rqi``: its request ID). :meth:`result` waits for the outcome.
    """

    def __init__(self, client: Requester, ref: str, *, rsc: int, request: Request,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        if not ref:
            raise ValueError(f"the CSE answered {rsc} without a <request> reference")
        self.client = client
        self.ref = ref
        self.rsc = rsc
        self.request = request
        self._transform = transform
        self._ors: dict[str, Any] | None = None

    def __repr__(self) -> str:
        state = f"done rsc={self._ors.get('rsc')}" if self._ors is not None else "pending"
        return f"<PendingResult {self.request.op.name} {self.request.to} ref={self.ref} {state}>"

    @property
    def rqi(self) -> str:
        """The request ID of the accepted request."""
        return self.request.rqi

    @property
    def done(self) -> bool:
        """Whether :meth:`result` already returned the outcome."""
        return self._ors is not None

    async def result(self, timeout: float = 30.0, *, check: bool = False, interval: float = 0.05,
                     max_interval: float = 1.0) -> dict[str, Any]:
        """The operation result (``ors``: ``rsc``, ``rqi``, ``pc``, ...) once the
        ``<request>`` is no longer pending, polled with
        :func:`wait_request`; TimeoutError after ``timeout`` seconds.
        A failed operation is returned too (``ors["rsc"]``), or with ``check``
        raised as :class:`~ae_sdk.errors.M2MResponseError`. For a session-based
        RETRIEVE, encrypted values in ``ors["pc"]`` are already decrypted."""
        if self._ors is None:
            ors = await wait_request(self.client, self.ref, timeout, interval=interval, max_interval=max_interval)
            self._ors = self._transform(ors) if self._transform is not None else ors
        ors = self._ors
        rsc = ors.get("rsc")
        if check and (not isinstance(rsc, int) or rsc >= 3000):
            resp = Response(rsc=rsc if isinstance(rsc, int) else 5000, rqi=self.rqi, pc=ors.get("pc"))
            raise M2MResponseError(resp, self.request)
        return ors
