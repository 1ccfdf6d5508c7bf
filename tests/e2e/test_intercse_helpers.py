"""Shared helpers for the inter-CSE end-to-end tests (no tests here).

Starting a pair or chain of real CSE processes, waiting for the
(asynchronous) registration by polling with a deadline, registering AEs and
granting access through an ACP. Named ``test_intercse_*`` only because the
test files of this area must be; it holds no test functions.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN, CSEProcess, Http, HttpReply
from tests.waiting import until as _until

POLL = 0.05
REG_TIMEOUT = 15.0


def registrar_toml(csi: str, name: str, url: str, *, check_interval_s: float | None = 0.5,
                   deregister_on_shutdown: bool | None = None, timeout_s: float | None = None) -> str:
    text = f'\n[registrar]\ncse_id = "{csi}"\nname = "{name}"\npoa = "{url}"\n'
    if check_interval_s is not None:
        text += f"check_interval_s = {check_interval_s}\n"
    if deregister_on_shutdown is not None:
        text += f"deregister_on_shutdown = {'true' if deregister_on_shutdown else 'false'}\n"
    if timeout_s is not None:
        text += f"timeout_s = {timeout_s}\n"
    return text


def free_port() -> int:
    """A loopback port nobody listens on (bound with port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(check: Callable[[], Any], what: str, timeout: float = REG_TIMEOUT) -> Any:
    """Poll ``check`` until truthy (see tests/waiting.py)."""
    return await _until(check, what, timeout)


async def wait_registered(http: Http, registree: CSEProcess, registrar_csi: str, registrar_name: str,
                          timeout: float = REG_TIMEOUT) -> HttpReply:
    """Wait until ``registree`` reaches its registrar's CSEBase (2000)."""
    url = f"{registree.url}/~{registrar_csi}/{registrar_name}"

    async def check() -> HttpReply | None:
        r = await http.send("GET", url, fr=ADMIN)
        return r if r.rsc == 2000 else None
    return await until(check, f"registration of {registree.url} with {registrar_csi}", timeout)


async def wait_csr(http: Http, cse: CSEProcess, path: str, timeout: float = REG_TIMEOUT) -> dict[str, Any]:
    """Wait until the remoteCSE at ``cse``/``path`` exists; return its m2m:csr."""
    async def check() -> dict[str, Any] | None:
        r = await http.send("GET", f"{cse.url}/{path}", fr=ADMIN)
        return r.body["m2m:csr"] if r.rsc == 2000 else None
    return await until(check, f"remoteCSE {path} at {cse.url}", timeout)


async def start_pair(cse_process: Callable[..., Any], http: Http, *, cse1_extra: str = "",
                     cse2_registrar: dict[str, Any] | None = None) -> tuple[CSEProcess, CSEProcess]:
    """CSE1 (``/id-cse1``, ``cse1``) and CSE2 (``/id-cse2``, ``cse2``) registered with CSE1."""
    cse1 = await cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1", extra=cse1_extra)
    cse2 = await cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2",
                             extra=registrar_toml("/id-cse1", "cse1", cse1.url, **(cse2_registrar or {})))
    await wait_registered(http, cse2, "/id-cse1", "cse1")
    return cse1, cse2


async def register_ae(http: Http, cse: CSEProcess, cb: str, rn: str, **attrs: Any) -> str:
    body = {"rn": rn, "api": f"N{rn}", "rr": True, "srv": ["3"], **attrs}
    r = await http.send("POST", f"{cse.url}/{cb}", fr="C", ty=2, body={"m2m:ae": body})
    assert r.rsc == 2001, r.body
    return str(r.body["m2m:ae"]["aei"])


async def create(http: Http, url: str, fr: str, ty: int, root: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await http.send("POST", url, fr=fr, ty=ty, body={root: body})
    assert r.rsc == 2001, (url, r.rsc, r.body)
    return dict(r.body[root])


async def grant(http: Http, cse: CSEProcess, target: str, owner: str, originators: list[str],
                rn: str = "acp", acop: int = 63) -> str:
    """An ACP under the AE ``owner`` at ``cse`` giving ``originators`` (and
    the owner) ``acop`` on ``target`` (a container path below the AE)."""
    ae_path = "/".join(target.split("/")[:2])
    acp = await create(http, f"{cse.url}/{ae_path}", owner, 1, "m2m:acp", {
        "rn": rn,
        "pv": {"acr": [{"acor": [*originators, owner], "acop": acop}]},
        "pvs": {"acr": [{"acor": [owner], "acop": 63}]}})
    r = await http.send("PUT", f"{cse.url}/{target}", fr=owner, body={"m2m:cnt": {"acpi": [acp["ri"]]}})
    assert r.rsc == 2004, r.body
    return str(acp["ri"])


def dbg(reply: HttpReply) -> str:
    body = reply.body
    return str(body.get("m2m:dbg", "")) if isinstance(body, dict) else ""
