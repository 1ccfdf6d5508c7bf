"""The compact JWS codec (cse.core.jwt): what must verify and what must not.

Why: the token is the only thing standing between a client and any
X-M2M-Origin it likes; the classic JWT failures (alg none, algorithm
confusion, unchecked expiry or audience, lenient base64) must each be
refused with a message that names the problem.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization

from cse.core import jwt
from cse.security.devcerts import new_ec_key

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


def refused(token: str, keys: list[jwt.VerifyKey] | None = None, **kw: object) -> str:
    with pytest.raises(jwt.TokenError) as info:
        jwt.verify(token, keys or [ES.public(), HS.public()], now=NOW, **kw)  # type: ignore[arg-type]
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
    head, body, sig = tok.split(".")
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
    from cryptography.hazmat.primitives.asymmetric import ec
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ValueError, match="P-256"):
        jwt.es256_private_key(p384)
