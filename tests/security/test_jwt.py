"""The compact JWS codec (cse.core.jwt): what must verify and what must not.

Why: the token is the only thing standing between a client and any
X-M2M-Origin it likes; the classic JWT failures (alg none, algorithm
confusion, unchecked expiry or audience, lenient base64) must each be
refused with a message that names the problem.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cse.core import jwt
from cse.security.devcerts import CertAuthority, new_ec_key
from cse.security.keys import load_signing_key, load_verify_key

NOW = 1_800_000_000.0


def _es_key() -> jwt.SigningKey:
    pem = new_ec_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    return jwt.es256_private_key(pem)


ES = _es_key()
HS = jwt.hs256_key(b"k" * 32)


def claims(**kw: object) -> dict[str, object]:
    return {"iss": "/id-in", "aud": "m2m", "sub": "Cae", "iat": NOW, "nbf": NOW, "exp": NOW + 60,
            "orig": ["Cae"], **kw}


def forge(header: dict[str, object], payload: dict[str, object], sig: bytes = b"") -> str:
    return f"{jwt.b64u(json.dumps(header).encode())}.{jwt.b64u(json.dumps(payload).encode())}.{jwt.b64u(sig)}"


def refused(token: str, keys: list[jwt.VerifyKey] | None = None, now_: float = NOW, **kw: object) -> str:
    with pytest.raises(jwt.TokenError) as info:
        jwt.verify(token, keys or [ES.public(), HS.public()], now=now_, **kw)  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize("key", [ES, HS], ids=["ES256", "HS256"])
def test_good_token_round_trips(key: jwt.SigningKey) -> None:
    tok = jwt.encode(claims(), key)
    got = jwt.verify(tok, [key.public()], issuers=["/id-in"], audience="m2m", now=NOW)
    assert got["orig"] == ["Cae"] and got["sub"] == "Cae"
    assert jwt.decode(tok)[0]["alg"] == key.alg


def test_es256_signature_is_raw_r_s_of_64_bytes() -> None:
    assert len(jwt.decode(jwt.encode(claims(), ES))[3]) == 64


def test_expired_token_is_refused_after_the_leeway_only() -> None:
    tok = jwt.encode(claims(exp=NOW - 10), ES)
    assert jwt.verify(tok, [ES.public()], now=NOW, leeway=30)["sub"] == "Cae"  # within the clock skew leeway
    assert "expired 10 s ago" in refused(tok, leeway=5)


def test_not_yet_valid_token_is_refused() -> None:
    assert "not valid yet" in refused(jwt.encode(claims(nbf=NOW + 120), ES))


def test_missing_exp_is_refused() -> None:
    c = claims()
    del c["exp"]
    assert "no expiry" in refused(jwt.encode(c, ES))


def test_wrong_signature_is_refused() -> None:
    tok = jwt.encode(claims(), ES)
    other = _es_key()
    assert "signature is not valid" in refused(tok, [other.public()])
    head, _, sig = tok.split(".")
    altered = jwt.b64u(json.dumps(claims(orig=["CAdmin"])).encode())
    assert "signature is not valid" in refused(f"{head}.{altered}.{sig}")
    hs_other = jwt.encode(claims(), jwt.hs256_key(b"x" * 32))
    assert "signature is not valid" in refused(hs_other)


def test_alg_none_is_refused_even_with_an_empty_signature() -> None:
    for alg in ("none", "None", "NONE"):
        assert "alg none" in refused(forge({"alg": alg, "typ": "JWT"}, claims()))


def test_unknown_or_unconfigured_algorithm_is_refused() -> None:
    assert "RS256 is not accepted" in refused(forge({"alg": "RS256"}, claims(), b"x" * 64))
    # algorithm confusion: an HS256 token must not be checked against an ES256 public key
    assert "no HS256 key configured" in refused(jwt.encode(claims(), HS), [ES.public()])
    assert "no ES256 key configured" in refused(jwt.encode(claims(), ES), [HS.public()])


@pytest.mark.parametrize("token, why", [
    ("abc", "3 dot-separated parts"),
    ("a.b.c.d", "3 dot-separated parts"),
    ("e30.e30.%%%", "not base64url"),
    ("e30=.e30.AAAA", "not base64url"),          # padding is not base64url
    ("eyJhbGciOiJFUzI1NiJ9.e.AAAA", "impossible base64url length"),
    (jwt.b64u(b"[1]") + ".e30.AAAA", "not a JSON object"),
    (jwt.b64u(b"\xff\xfe") + ".e30.AAAA", "not JSON"),
    ("e30.e30.AB", "not canonical base64url"),  # "AB" and "AA" would both decode to one zero byte
    ("x" * 9000, "longer than"),
])
def test_malformed_tokens_name_the_problem(token: str, why: str) -> None:
    assert why in refused(token)


def test_wrong_audience_and_issuer_are_refused_when_configured() -> None:
    tok = jwt.encode(claims(), ES)
    assert "does not include 'other'" in refused(tok, audience="other")
    assert "issuer '/id-in' is not trusted" in refused(tok, issuers=["/id-cse1"])
    assert jwt.verify(jwt.encode(claims(aud=["x", "m2m"]), ES), [ES.public()], audience="m2m", now=NOW)
    no_aud = claims()
    del no_aud["aud"]
    assert "does not include" in refused(jwt.encode(no_aud, ES), audience="m2m")


def test_critical_header_and_bad_time_claims_are_refused() -> None:
    assert "critical" in refused(forge({"alg": "ES256", "crit": ["x"]}, claims(), b"x" * 64))
    assert "must be a number" in refused(jwt.encode(claims(exp="tomorrow"), ES))
    assert "must be a number" in refused(jwt.encode(claims(exp=True), ES))


def test_short_hs256_secret_and_wrong_curve_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        jwt.hs256_key(b"short")
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ValueError, match="P-256"):
        jwt.es256_private_key(p384)


def _public_pem(key: jwt.SigningKey) -> bytes:
    assert key.private is not None
    return key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def test_hs256_tag_made_with_the_es256_public_key_is_refused() -> None:
    # the classic algorithm confusion: the verifier's public key is no secret, so anyone can make this tag
    pem = _public_pem(ES)
    head = jwt.b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = jwt.b64u(json.dumps(claims(orig=["CAdmin"])).encode())
    tag = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{head}.{body}.{jwt.b64u(tag)}"
    assert "no HS256 key configured" in refused(forged, [ES.public()])
    assert "signature is not valid" in refused(forged, [ES.public(), HS.public()])
    with pytest.raises(ValueError, match="must not be a public/private key"):
        jwt.hs256_key(pem)  # and a public key cannot be configured as the HMAC secret either


def test_alg_none_is_refused_with_a_signature_and_a_missing_alg_too() -> None:
    assert "alg none" in refused(forge({"alg": "none"}, claims(), b"x" * 64))
    assert "alg none" in refused(forge({"typ": "JWT"}, claims(), b"x" * 64))
    assert "alg none" in refused(forge({"alg": None}, claims(), b"x" * 64))


def test_es256_signature_in_der_form_or_wrong_alg_header_is_refused() -> None:
    head, body, _ = jwt.encode(claims(), ES).split(".")
    assert ES.private is not None
    der = ES.private.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))  # 70-odd bytes, not 64
    assert "signature is not valid" in refused(f"{head}.{body}.{jwt.b64u(der)}")
    # an ES256 signature relabelled HS256 is checked as an HMAC tag, and fails
    es_sig = jwt.encode(claims(), ES).split(".")[2]
    relabelled = jwt.b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    assert "signature is not valid" in refused(f"{relabelled}.{body}.{es_sig}")


@pytest.mark.parametrize("key", [ES, HS], ids=["ES256", "HS256"])
def test_exp_and_nbf_hold_to_the_passed_time_with_leeway(key: jwt.SigningKey) -> None:
    tok = jwt.encode(claims(nbf=NOW, exp=NOW + 60), key)
    ok = [key.public()]
    assert jwt.verify(tok, ok, now=NOW + 60 + 30, leeway=30)["sub"] == "Cae"  # last second of the leeway
    with pytest.raises(jwt.TokenError, match="expired 31 s ago"):
        jwt.verify(tok, ok, now=NOW + 60 + 31, leeway=30)
    assert jwt.verify(tok, ok, now=NOW - 30, leeway=30)["sub"] == "Cae"  # clock skew the other way
    with pytest.raises(jwt.TokenError, match=r"not valid yet \(nbf is 31 s in the future\)"):
        jwt.verify(tok, ok, now=NOW - 31, leeway=30)
    with pytest.raises(jwt.TokenError, match="expired 1 s ago"):
        jwt.verify(tok, ok, now=NOW + 61, leeway=0)


def test_the_verdict_follows_now_and_never_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_clock() -> float:
        raise AssertionError("cse.core.jwt read the wall clock")

    monkeypatch.setattr(time, "time", no_clock)
    old = jwt.encode(claims(iat=900, nbf=900, exp=1_000), ES)  # expired since 1970 by the wall clock
    assert jwt.verify(old, [ES.public()], now=950, leeway=0)["sub"] == "Cae"
    assert "expired" in refused(jwt.encode(claims(), ES), now_=NOW + 3600)


def test_issuer_and_audience_refusals_name_the_claim() -> None:
    no_iss = claims()
    del no_iss["iss"]
    assert "issuer 'None' is not trusted" in refused(jwt.encode(no_iss, ES), issuers=["/id-in"])
    assert "issuer '/id-in' is not trusted" in refused(jwt.encode(claims(), ES), issuers=[])
    assert "does not include 'm2m'" in refused(jwt.encode(claims(aud=["x", "y"]), HS), audience="m2m")
    assert "does not include 'm2m'" in refused(jwt.encode(claims(aud="m2m.example"), HS), audience="m2m")
    # unconfigured checks accept whatever the token says
    assert jwt.verify(jwt.encode(claims(iss="/id-x", aud="elsewhere"), HS), [HS.public()], now=NOW)["iss"] == "/id-x"


def test_kid_is_carried_and_a_second_key_of_the_same_algorithm_is_tried() -> None:
    other = _es_key()
    tok = jwt.encode(claims(), ES, kid="issuer-1")
    assert jwt.decode(tok)[0] == {"alg": "ES256", "typ": "JWT", "kid": "issuer-1"}
    assert jwt.verify(tok, [other.public(), ES.public()], now=NOW)["sub"] == "Cae"


def test_key_files_are_read_by_cse_security(tmp_path: Path) -> None:
    cert_pem, key = CertAuthority().server("cse1")
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "secret").write_bytes(b"s" * 40 + b"\n")
    es = load_signing_key(pem_file=str(tmp_path / "key.pem"))
    hs = load_signing_key(secret_file=str(tmp_path / "secret"))
    assert hs.secret == b"s" * 40
    for verifier in (load_verify_key(str(tmp_path / "cert.pem")), load_verify_key(str(tmp_path / "key.pem"))):
        assert jwt.verify(jwt.encode(claims(), es), [verifier], now=NOW)["sub"] == "Cae"
    with pytest.raises(ValueError, match="give a PEM key file or a secret file"):
        load_signing_key()


def test_the_codec_reads_no_file_and_no_clock() -> None:
    # cse.core stays free of I/O: keys come in as bytes/objects, time as `now` (cse.security reads files)
    tree = ast.parse(Path(jwt.__file__).read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"time", "datetime", "os", "pathlib", "io"}
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "open" not in calls
