"""``python -m ae_sdk``: session and token tools for people using curl (docs/sessions.md "Request MAC",
"End-to-end encryption"; README "Session-based requests with curl").

Subcommands:

* ``sign`` -- the headers of a session-based request: ``X-M2M-SID``,
  ``X-M2M-OT`` (now), ``X-M2M-SMAC`` and ``X-M2M-RI``, one per line as
  ``Header: value`` (the format of ``curl -H @file``), or with ``--curl BASEURL``
  a complete curl command line. The MAC covers the body bytes exactly as
  given (``--body`` text as UTF-8, or the bytes of ``--body-file``): send
  them with ``--data-binary`` (``-d @file`` strips newlines, and the MAC
  would no longer match).
* ``encrypt`` / ``decrypt`` -- an end-to-end encrypted value
  (``sess1.<kid>.<nonce>.<ct>``) from text, and back.
* ``token`` -- a bearer token (JWT) allowing the given originators, signed
  with the CSE's key (``--key`` PEM for ES256, ``--secret-file`` for HS256);
  with ``--header`` the whole ``Authorization: Bearer ...`` line for curl
  (docs/security.md).
* ``listen`` -- a loopback notification receiver for an AE: answers
  verifications with 2000, session establishment questions with 2000 and
  ``{"m2m:sep": {"epa": {...}}}`` (``--accept``) or 4103, and prints everything
  it receives as one JSON line each on stdout (``LISTENING <url>`` goes to
  stderr once it listens).

Examples::

    python -m ae_sdk sign --op UPDATE --to /id-cse2/cse2/AE2/container1 --sid "$SID" --key "$KEY" \\
        --body-file update.json > sig.txt
    curl -X PUT -H @sig.txt -H "X-M2M-Origin: $AE1" -H 'X-M2M-RVI: 3' \\
        -H 'Content-Type: application/json' --data-binary @update.json "$CSE1/~/id-cse2/cse2/AE2/container1"
    python -m ae_sdk encrypt --sid "$SID" --kid "$KID" --key "$KEY" 21.5
    python -m ae_sdk listen --port 9000 --accept > notifications.jsonl
    python -m ae_sdk token --key issuer-key.pem --originator Cmyapp --header > auth.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shlex
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from cse.core.http_wire import METHODS, path_for
from cse.core.messages import Operation
from cse.core.timestamps import format_ts

from .notify_server import Answer, NotificationServer
from .session import session_event
from .session_crypto import (
    OPERATIONS,
    SessionCryptoError,
    b64u_decode,
    canonical,
    decrypt,
    derive_keys,
    encrypt,
    mac,
    sp_relative_to,
)
from .stopping import until_stopped
from .tokens import mint_token

__all__ = ["curl_command", "main", "sign_headers"]


class CLIError(Exception):
    """A usage problem: printed as ``error: ...``, exit code 2."""


def _key(text: str) -> bytes:
    try:
        key = b64u_decode(text, what="--key")
    except SessionCryptoError as exc:
        raise CLIError(f"{exc} (the session key is scr.key: 32 bytes, base64url without padding)") from None
    if len(key) != 32:
        raise CLIError(f"--key is {len(key)} bytes, a session key is 32 (scr.key, base64url without padding)")
    return key


def sign_headers(op: str, to: str, sid: str, key: bytes, *, rqi: str, body: bytes = b"", csi: str | None = None,
                 ot: str | None = None, sid_header: bool = True) -> list[tuple[str, str]]:
    """``[(header, value), ...]`` of a session-based request signed with ``key``.

    ``to`` is the To as sent (SP-relative ``/id-cse2/...``, absolute, or
    CSE-relative with ``csi`` = the CSE-ID of the CSE that receives it);
    ``body`` the exact bytes sent. Without ``sid_header`` the sid goes into
    the query (``?sessionID=``) and ``X-M2M-SID`` is left out.
    """
    operation = op.upper()
    if operation not in OPERATIONS:
        raise CLIError(f"--op must be one of {', '.join(OPERATIONS)}, not '{op}'")
    path = to.partition("?")[0]
    if not path.startswith("/") and csi is None:
        raise CLIError(f"--to '{to}' is CSE-relative: give --csi, the CSE-ID of the CSE that receives it "
                       "(or use the SP-relative form /<cse-id>/...)")
    try:
        target = sp_relative_to(to, csi or "/")
        ot = ot or format_ts(time.time())
        k_mac = derive_keys(key, sid)[0]
        smac = mac(k_mac, canonical(operation, target, sid, rqi, ot, body))
    except ValueError as exc:  # SessionCryptoError included
        raise CLIError(str(exc)) from None
    headers = [("X-M2M-SID", sid)] if sid_header else []
    return [*headers, ("X-M2M-OT", ot), ("X-M2M-SMAC", smac), ("X-M2M-RI", rqi)]


def curl_command(base_url: str, op: str, to: str, headers: Sequence[tuple[str, str]], *,
                 body: bytes | None = None, body_file: str | None = None, origin: str | None = None,
                 ty: int | None = None, sid_in_query: str | None = None) -> str:
    """A complete curl command line sending the request ``headers`` were made for.

    The URL is ``base_url`` + the HTTP path of ``to`` (``/~/id-cse2/...`` for
    an SP-relative To); the body is sent byte for byte with ``--data-binary``
    (``@body_file``, or the ``body`` text).
    """
    operation = Operation[op.upper()]
    if operation == Operation.CREATE and ty is None:
        raise CLIError("a CREATE needs --ty (the resource type, e.g. 4 for a contentInstance)")
    path, _, query = to.partition("?")
    if sid_in_query is not None:
        query = "&".join(filter(None, (query, f"sessionID={sid_in_query}")))
    url = base_url.rstrip("/") + path_for(path) + (f"?{query}" if query else "")
    args = ["curl", "-i", "-X", METHODS[operation]]
    if origin:
        args += ["-H", f"X-M2M-Origin: {origin}"]
    args += ["-H", "X-M2M-RVI: 3"]
    args += [a for name, value in headers for a in ("-H", f"{name}: {value}")]
    if operation == Operation.CREATE:
        args += ["-H", f"Content-Type: application/json;ty={ty}"]
    elif body_file is not None or body:
        args += ["-H", "Content-Type: application/json"]
    if body_file is not None:
        args += ["--data-binary", f"@{body_file}"]
    elif body:
        args += ["--data-binary", body.decode("utf-8")]
    args.append(url)
    return shlex.join(args)


# -- subcommands -------------------------------------------------------------------------

def _sign(args: argparse.Namespace) -> int:
    if args.body is not None:
        body = args.body.encode("utf-8")
    elif args.body_file is not None:
        try:
            with open(args.body_file, "rb") as f:
                body = f.read()
        except OSError as exc:
            raise CLIError(f"cannot read --body-file: {exc.strerror or exc}") from None
    else:
        body = b""
    if body:
        try:
            json.loads(body)
        except ValueError as exc:
            raise CLIError(f"the body is not JSON ({exc}): the CSE would refuse it") from None
    rqi = args.rqi or "sh-" + secrets.token_hex(6)
    headers = sign_headers(args.op, args.to, args.sid, _key(args.key), rqi=rqi, body=body, csi=args.csi,
                           ot=args.ot, sid_header=not args.query_sid)
    if args.curl:
        print(curl_command(args.curl, args.op, args.to, headers, body=body if args.body is not None else None,
                           body_file=args.body_file, origin=args.origin, ty=args.ty,
                           sid_in_query=args.sid if args.query_sid else None))
    else:
        for name, value in headers:
            print(f"{name}: {value}")
    return 0


def _encrypt(args: argparse.Namespace) -> int:
    text = args.text if args.text is not None else sys.stdin.read()
    k_enc = derive_keys(_key(args.key), args.sid)[1]
    print(encrypt(k_enc, args.sid, args.kid, text))
    return 0


def _decrypt(args: argparse.Namespace) -> int:
    token = (args.token if args.token is not None else sys.stdin.read()).strip()
    k_enc = derive_keys(_key(args.key), args.sid)[1]
    plain = decrypt(k_enc, args.sid, token, kid=args.kid)
    try:
        print(plain.decode("utf-8"))
    except UnicodeDecodeError:
        sys.stdout.buffer.write(plain)
    return 0


def _token(args: argparse.Namespace) -> int:
    try:
        token = mint_token(args.originator, key_file=args.key, secret_file=args.secret_file, subject=args.subject,
                           issuer=args.issuer, audience=args.audience, lifetime=args.lifetime)
    except OSError as exc:
        raise CLIError(f"cannot read the key: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"Authorization: Bearer {token}" if args.header else token)
    return 0


def _line(kind: str, content: dict[str, Any]) -> str:
    if kind == "result":
        doc: dict[str, Any] = {"m2m:rsp": content}
    elif kind == "other":
        doc = content
    else:
        doc = {"m2m:sgn": content}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


async def _listen(args: argparse.Namespace) -> int:
    epa = json.loads(args.epa)
    if not isinstance(epa, dict):
        raise CLIError("--epa must be a JSON object")

    def question(sgn: dict[str, Any]) -> Answer | None:
        sevt = session_event(sgn)
        if sevt is None or sevt.get("typ") != 1:
            return None
        if args.accept:
            return Answer(2000, pc={"m2m:sep": {"epa": epa}})
        return Answer(4103, dbg="the listener rejects sessions (start it with --accept)")

    server = NotificationServer(args.host, args.port)
    await server.start()
    server.add_responder(question)
    stopper = asyncio.ensure_future(until_stopped())  # SIGINT or SIGTERM
    loop = asyncio.get_running_loop()
    print(f"LISTENING {server.url}", file=sys.stderr, flush=True)
    deadline = loop.time() + args.timeout if args.timeout else None
    try:
        while not stopper.done():
            waiter = asyncio.ensure_future(server.next(timeout=3600))
            left = None if deadline is None else max(0.0, deadline - loop.time())
            done, _ = await asyncio.wait({waiter, stopper}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if waiter in done and waiter.exception() is None:
                note = waiter.result()
                print(_line(note.kind, note.content), flush=True)
            else:
                waiter.cancel()
            if deadline is not None and loop.time() >= deadline:
                break
    finally:
        stopper.cancel()  # its signal handlers go with it
        for note in server.received_nowait():
            print(_line(note.kind, note.content), flush=True)
        await server.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ae-sdk", description="Session tools for oneM2M AEs and curl users "
                                "(also: python -m ae_sdk).")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sign", help="print the headers (or a curl command) of a signed session-based request")
    s.add_argument("--op", required=True, help="CREATE, RETRIEVE, UPDATE or DELETE")
    s.add_argument("--to", required=True, help="the target: /id-cse2/cse2/AE2/container1 (SP-relative), "
                                               "or CSE-relative with --csi")
    s.add_argument("--sid", required=True, help="the session ID")
    s.add_argument("--key", required=True, help="the session key (scr.key, base64url)")
    s.add_argument("--rqi", help="the request ID (X-M2M-RI; default: a fresh one)")
    body = s.add_mutually_exclusive_group()
    body.add_argument("--body", help="the JSON body, exactly as it will be sent")
    body.add_argument("--body-file", help="a file holding the body bytes (send it with --data-binary @FILE)")
    s.add_argument("--csi", help="CSE-ID of the receiving CSE, for a CSE-relative --to")
    s.add_argument("--ot", help="X-M2M-OT to sign (default: now)")
    s.add_argument("--query-sid", action="store_true",
                   help="the sid goes into the query (?sessionID=): leave out X-M2M-SID")
    s.add_argument("--curl", metavar="BASEURL", help="print a complete curl command for the CSE at BASEURL")
    s.add_argument("--origin", help="X-M2M-Origin for --curl")
    s.add_argument("--ty", type=int, help="resource type of a CREATE, for --curl")
    s.set_defaults(run=_sign)

    for name, helptext in (("encrypt", "encrypt TEXT for the session"), ("decrypt", "decrypt a sess1. value")):
        e = sub.add_parser(name, help=helptext)
        e.add_argument("--sid", required=True, help="the session ID")
        e.add_argument("--key", required=True, help="the session key (scr.key, base64url)")
        e.add_argument("--kid", required=name == "encrypt", help="the key ID (scr.kid)")
        e.add_argument("token" if name == "decrypt" else "text", nargs="?", help="the value (default: stdin)")
        e.set_defaults(run=_encrypt if name == "encrypt" else _decrypt)

    t = sub.add_parser("token", help="mint a bearer token (JWT) for originators, or an Authorization header")
    t.add_argument("--originator", action="append", required=True,
                   help="an X-M2M-Origin the token allows (repeat; '*' is a wildcard, 'C' allows registration)")
    key = t.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", help="the CSE's ES256 signing key (PEM EC P-256 private key)")
    key.add_argument("--secret-file", help="the CSE's HS256 secret file")
    t.add_argument("--subject", help="the 'sub' claim (default: the first originator)")
    t.add_argument("--issuer", help="the 'iss' claim (needed when the CSE sets auth.trusted_issuers)")
    t.add_argument("--audience", action="append",
                   help="an 'aud' value (repeat): the CSE's auth.audience when it sets one, and a CSE-ID "
                        "to make the token good at that CSE only")
    t.add_argument("--lifetime", type=float, default=3600.0, help="seconds until it expires (default 3600)")
    t.add_argument("--header", action="store_true", help="print 'Authorization: Bearer <token>' (curl -H @file)")
    t.set_defaults(run=_token)

    n = sub.add_parser("listen", help="receive notifications on loopback, print them as JSON lines")
    n.add_argument("--host", default="127.0.0.1")
    n.add_argument("--port", type=int, default=0, help="0 picks a free port (see the LISTENING line)")
    n.add_argument("--accept", action="store_true", help="accept session establishments (else: 4103)")
    n.add_argument("--epa", default="{}", help="endpoint attributes answered with an acceptance (JSON)")
    n.add_argument("--timeout", type=float, default=0, help="stop after this many seconds (0: on a signal)")
    n.set_defaults(run=lambda a: asyncio.run(_listen(a)))
    return p


_VALUED = frozenset({"--op", "--to", "--sid", "--key", "--kid", "--rqi", "--body", "--body-file", "--csi", "--ot",
                     "--curl", "--origin", "--ty", "--host", "--port", "--epa", "--timeout", "--originator",
                     "--secret-file", "--subject", "--issuer", "--audience", "--lifetime"})


def _glued(argv: Sequence[str]) -> list[str]:
    """``--sid VALUE`` as ``--sid=VALUE``: session IDs, keys and key IDs are
    base64url and may start with ``-``, which argparse would take for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg in _VALUED and i + 1 < len(argv):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def _version() -> str:
    """The installed distribution's version (the SDK does not import the CSE)."""
    try:
        return metadata.version("onem2m-smg-cse")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def console() -> None:
    """The ``ae-sdk`` command (setup.cfg entry_points)."""
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; exit code 0, 1 (a value failed to decrypt) or 2 (usage)."""
    args = _parser().parse_args(_glued(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.run(args))
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SessionCryptoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
