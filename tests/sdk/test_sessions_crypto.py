"""ae_sdk.session_crypto against docs/sessions.md "Request MAC" and "End-to-end
encryption", checked with independent computations (hand-rolled
HKDF per RFC 5869, hmac/hashlib, AES-GCM from ``cryptography`` directly).

Why: both endpoints and every CSE on the path must compute the same keys,
canonical string and MAC bit for bit, and a tampered or misdirected
encrypted value must fail loudly, never decrypt to garbage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ae_sdk import SDKError, SessionCryptoError
from ae_sdk.session_crypto import (
    b64u_decode,
    b64u_encode,
    canonical,
    decrypt,
    derive_keys,
    encrypt,
    is_token,
    mac,
    sp_relative_to,
    token_kid,
    verify_mac,
)
from cse.core.messages import Operation

KEY = bytes(range(32))
SID = "sV7q2kY-bq_3dJx9aE1rTg"
KID = "k1Ab-_"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def hkdf_rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, i = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        okm += block
        i += 1
    return okm[:length]


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# -- keys -------------------------------------------------------------------------------

def test_derive_keys_is_hkdf_sha256_with_sid_salt_and_the_two_infos() -> None:
    k_mac, k_enc = derive_keys(KEY, SID)
    assert k_mac == hkdf_rfc5869(KEY, SID.encode(), b"m2m-session-mac")
    assert k_enc == hkdf_rfc5869(KEY, SID.encode(), b"m2m-session-enc")
    assert len(k_mac) == len(k_enc) == 32 and k_mac != k_enc
    assert derive_keys(KEY, SID) == (k_mac, k_enc)  # deterministic: both endpoints agree
    assert derive_keys(KEY, SID + "x") != (k_mac, k_enc)  # salted by the sid
    assert derive_keys(bytes(32), SID) != (k_mac, k_enc)


def test_derive_keys_sid_is_utf8() -> None:
    sid = "sé"
    assert derive_keys(KEY, sid)[0] == hkdf_rfc5869(KEY, sid.encode("utf-8"), b"m2m-session-mac")


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(31), bytes(33), "0" * 32])
def test_derive_keys_refuses_keys_that_are_not_32_bytes(key: object) -> None:
    with pytest.raises(SessionCryptoError, match="session key"):
        derive_keys(key, SID)  # type: ignore[arg-type]


def test_derive_keys_refuses_an_empty_sid() -> None:
    with pytest.raises(SessionCryptoError, match="sid"):
        derive_keys(KEY, "")


# -- canonical string and MAC -------------------------------------------------------------

def test_canonical_is_exactly_the_six_lines_of_sessions_md() -> None:
    body = b'{"m2m:cnt":{"lbl":["a"]}}'
    got = canonical("UPDATE", "/id-cse2/cse2/Cae2/container1", SID, "rq-1", "20250101T000000", body)
    expected = ("UPDATE\n/id-cse2/cse2/Cae2/container1\n" + SID + "\nrq-1\n20250101T000000\n"
                + hashlib.sha256(body).hexdigest()).encode("utf-8")
    assert got == expected
    assert not got.endswith(b"\n") and got.count(b"\n") == 5


def test_canonical_empty_body_is_the_sha256_of_the_empty_string() -> None:
    for body in (b"", ""):
        got = canonical("RETRIEVE", "/id-cse2/cse2/Cae2", SID, "r", "20250101T000000", body)
        assert got.split(b"\n")[-1] == EMPTY_SHA256.encode()


def test_canonical_hash_is_lowercase_hex_and_str_body_is_utf8() -> None:
    text = '{"con":"é"}'
    last = canonical("CREATE", "/id-cse2/x", SID, "r", "t", text).split(b"\n")[-1].decode()
    assert last == hashlib.sha256(text.encode("utf-8")).hexdigest() and last == last.lower()


def test_canonical_ot_and_rqi_are_kept_exactly_as_sent() -> None:
    got = canonical("DELETE", "/id-cse2/x", SID, " rq 1 ", "20250101T000000,123456", b"").split(b"\n")
    assert got[3] == b" rq 1 " and got[4] == b"20250101T000000,123456"


def test_canonical_accepts_operation_enums_and_any_case() -> None:
    a = canonical(Operation.UPDATE, "/id-cse2/x", SID, "r", "t", b"")
    b = canonical("update", "/id-cse2/x", SID, "r", "t", b"")
    assert a == b and a.startswith(b"UPDATE\n")


@pytest.mark.parametrize("op", ["NOTIFY", "PATCH", "", Operation.NOTIFY])
def test_canonical_refuses_other_operations(op: object) -> None:
    with pytest.raises(ValueError, match="operation"):
        canonical(op, "/id-cse2/x", SID, "r", "t", b"")  # type: ignore[arg-type]


@pytest.mark.parametrize("to", ["cse2/Cae2/x", "//sp/id-cse2/x", "/id-cse2/x?rcn=1"])
def test_canonical_needs_the_sp_relative_to_without_query(to: str) -> None:
    with pytest.raises(ValueError):
        canonical("RETRIEVE", to, SID, "r", "t", b"")


@pytest.mark.parametrize("field", ["sid", "rqi", "ot"])
def test_canonical_refuses_empty_or_multiline_fields(field: str) -> None:
    args = {"sid": SID, "rqi": "r", "ot": "t"}
    for bad in ("", "a\nb"):
        with pytest.raises(ValueError, match=field):
            canonical("RETRIEVE", "/id-cse2/x", **{**args, field: bad}, body=b"")  # type: ignore[arg-type]


@pytest.mark.parametrize(("to", "csi", "http_path", "expected"), [
    # docs/sessions.md: HTTP path /~/id-cse2/cse2/Cae2/container1 -> /id-cse2/cse2/Cae2/container1
    ("/~/id-cse2/cse2/Cae2/container1", "/id-cse1", True, "/id-cse2/cse2/Cae2/container1"),
    # docs/sessions.md: CSE-relative cse2/Cae2/x at CSE2 -> /id-cse2/cse2/Cae2/x
    ("/cse2/Cae2/x", "/id-cse2", True, "/id-cse2/cse2/Cae2/x"),
    ("/cse2/Cae2/x?rcn=1&sessionID=abc", "/id-cse2", True, "/id-cse2/cse2/Cae2/x"),
    ("/_/sp.example/id-cse2/cse2/Cae2", "/id-cse1", True, "/id-cse2/cse2/Cae2"),
    ("/~/id-cse2/cse2/Cae%202", "/id-cse1", True, "/id-cse2/cse2/Cae 2"),
    # the To primitive forms
    ("cse2/Cae2/x", "/id-cse2", False, "/id-cse2/cse2/Cae2/x"),
    ("/id-cse2/cse2/Cae2/x?fu=1", "/id-cse1", False, "/id-cse2/cse2/Cae2/x"),
    ("//sp.example/id-cse2/cse2/Cae2/x", "/id-cse1", False, "/id-cse2/cse2/Cae2/x"),
])
def test_sp_relative_to(to: str, csi: str, http_path: bool, expected: str) -> None:
    assert sp_relative_to(to, csi, http_path=http_path) == expected


@pytest.mark.parametrize(("to", "csi", "http_path"), [
    ("cse2/x", "id-cse2", False), ("cse2/x", "/id/cse2", False), ("//sp", "/id-cse1", False),
    ("", "/id-cse2", False), ("cse2/x", "/id-cse2", True),
])
def test_sp_relative_to_refuses_bad_input(to: str, csi: str, http_path: bool) -> None:
    with pytest.raises(ValueError):
        sp_relative_to(to, csi, http_path=http_path)


def test_mac_is_unpadded_base64url_hmac_sha256_with_k_mac() -> None:
    k_mac, _ = derive_keys(KEY, SID)
    text = canonical("UPDATE", "/id-cse2/cse2/Cae2/container1", SID, "rq-1", "20250101T000000", b"{}")
    smac = mac(k_mac, text)
    assert smac == b64u(hmac.new(k_mac, text, hashlib.sha256).digest())
    assert len(smac) == 43 and "=" not in smac and "+" not in smac and "/" not in smac
    assert verify_mac(k_mac, text, smac)
    assert not verify_mac(k_mac, text.replace(b"rq-1", b"rq-2"), smac)
    assert not verify_mac(derive_keys(KEY, SID + "x")[0], text, smac)
    assert not verify_mac(k_mac, text, smac + "=")
    with pytest.raises(SessionCryptoError, match="K_mac"):
        mac(bytes(16), text)


# -- base64url ---------------------------------------------------------------------------

def test_b64u_round_trip_without_padding() -> None:
    for n in range(40):
        data = bytes(range(n))
        text = b64u_encode(data)
        assert "=" not in text and b64u_decode(text) == data


@pytest.mark.parametrize(("text", "match"), [
    ("AAE=", "padded"), ("AA==", "padded"), ("ab+/", "base64url"), ("ab c", "base64url"),
    ("abcde", "length"), ("AB", "canonical"),  # 'AB' has stray bits: 'AA' is the canonical form of b"\x00"
])
def test_b64u_decode_is_strict(text: str, match: str) -> None:
    with pytest.raises(SessionCryptoError, match=match):
        b64u_decode(text)


def test_crypto_error_is_an_sdk_error_and_a_value_error() -> None:
    assert issubclass(SessionCryptoError, SDKError) and issubclass(SessionCryptoError, ValueError)


# -- encryption ------------------------------------------------------------------------------

def k_enc() -> bytes:
    return derive_keys(KEY, SID)[1]


def test_encrypt_format_and_round_trip() -> None:
    token = encrypt(k_enc(), SID, KID, b"21.5")
    prefix, kid, nonce, ct = token.split(".")
    assert (prefix, kid) == ("sess1", KID)
    assert len(b64u_decode(nonce)) == 12 and len(nonce) == 16
    assert len(b64u_decode(ct)) == len(b"21.5") + 16
    assert "=" not in token and is_token(token) and token_kid(token) == KID
    assert decrypt(k_enc(), SID, token) == b"21.5"
    assert decrypt(k_enc(), SID, token, kid=KID) == b"21.5"


def test_encrypt_is_aes256gcm_with_the_sid_as_aad() -> None:
    token = encrypt(k_enc(), SID, KID, "héllo")
    _, _, nonce, ct = token.split(".")
    assert AESGCM(k_enc()).decrypt(b64u_decode(nonce), b64u_decode(ct), SID.encode()) == "héllo".encode()
    # and a value made independently decrypts in the SDK
    n = bytes(12)
    other = f"sess1.{KID}.{b64u(n)}.{b64u(AESGCM(k_enc()).encrypt(n, b'x', SID.encode()))}"
    assert decrypt(k_enc(), SID, other) == b"x"


def test_encrypt_uses_a_fresh_nonce_each_time() -> None:
    tokens = {encrypt(k_enc(), SID, KID, b"same") for _ in range(20)}
    assert len(tokens) == 20
    assert len({t.split(".")[2] for t in tokens}) == 20


@pytest.mark.parametrize("plaintext", [b"", b"\x00" * 1000, "ünïcödé ✓", '{"temp": 21.5}'])
def test_round_trip_various_plaintexts(plaintext: bytes | str) -> None:
    expected = plaintext.encode() if isinstance(plaintext, str) else plaintext
    assert decrypt(k_enc(), SID, encrypt(k_enc(), SID, KID, plaintext)) == expected


def _flip(text: str, index: int) -> str:
    raw = bytearray(b64u_decode(text))
    raw[index] ^= 0x01
    return b64u_encode(bytes(raw))


@pytest.mark.parametrize("index", [0, 3, -1, -16])  # ciphertext bytes and tag bytes
def test_tampered_ciphertext_fails_clearly(index: int) -> None:
    prefix, kid, nonce, ct = encrypt(k_enc(), SID, KID, b"21.5").split(".")
    with pytest.raises(SessionCryptoError, match="tampered"):
        decrypt(k_enc(), SID, ".".join((prefix, kid, nonce, _flip(ct, index))))


def test_tampered_nonce_fails_clearly() -> None:
    prefix, kid, nonce, ct = encrypt(k_enc(), SID, KID, b"21.5").split(".")
    with pytest.raises(SessionCryptoError, match="tampered"):
        decrypt(k_enc(), SID, ".".join((prefix, kid, _flip(nonce, 5), ct)))


def test_wrong_sid_aad_fails() -> None:
    token = encrypt(k_enc(), SID, KID, b"21.5")
    with pytest.raises(SessionCryptoError, match="another session"):
        decrypt(k_enc(), SID + "x", token)


def test_wrong_key_fails() -> None:
    token = encrypt(k_enc(), SID, KID, b"21.5")
    with pytest.raises(SessionCryptoError, match=r"tampered|another"):
        decrypt(derive_keys(bytes(32), SID)[1], SID, token)
    with pytest.raises(SessionCryptoError, match=r"tampered|another"):
        decrypt(derive_keys(KEY, SID)[0], SID, token)  # K_mac is not K_enc


def test_kid_mismatch_is_named() -> None:
    token = encrypt(k_enc(), SID, KID, b"21.5")
    with pytest.raises(SessionCryptoError, match=r"key 'k1Ab-_'.*'other'"):
        decrypt(k_enc(), SID, token, kid="other")


def test_a_changed_kid_part_is_harmless_but_visible() -> None:
    # the kid only names the key (it is not authenticated); the key decides
    _, _, nonce, ct = encrypt(k_enc(), SID, KID, b"v").split(".")
    assert decrypt(k_enc(), SID, f"sess1.zz.{nonce}.{ct}") == b"v"
    with pytest.raises(SessionCryptoError, match="'zz'"):
        decrypt(k_enc(), SID, f"sess1.zz.{nonce}.{ct}", kid=KID)


def test_malformed_tokens_fail_with_clear_messages() -> None:
    good = encrypt(k_enc(), SID, KID, b"21.5")
    prefix, kid, nonce, ct = good.split(".")
    cases = {
        "21.5": "not an encrypted session value",
        f"sess2.{kid}.{nonce}.{ct}": "not an encrypted session value",
        f"{prefix}.{kid}.{nonce}": "not an encrypted session value",
        f"{good}.x": "not an encrypted session value",
        f"{prefix}..{nonce}.{ct}": "key ID",
        f"{prefix}.{kid}.{nonce}=.{ct}": "padded",
        f"{prefix}.{kid}.{nonce}.{ct}==": "padded",
        f"{prefix}.{kid}.{nonce}.{ct[:-1]}+": "base64url",
        f"{prefix}.{kid}.{b64u(bytes(16))}.{ct}": "96 bits",
        f"{prefix}.{kid}.{nonce}.{b64u(bytes(15))}": "truncated",
    }
    for token, match in cases.items():
        with pytest.raises(SessionCryptoError, match=match):
            decrypt(k_enc(), SID, token)
    with pytest.raises(SessionCryptoError, match="string"):
        decrypt(k_enc(), SID, b"sess1.a.b.c")  # type: ignore[arg-type]
    assert not is_token("21.5") and not is_token(None) and not is_token("sess1.a.b")


def test_encrypt_refuses_bad_keys_and_kids() -> None:
    with pytest.raises(SessionCryptoError, match="K_enc"):
        encrypt(bytes(16), SID, KID, b"x")
    for kid in ("", "a.b", "a=", "a/b"):
        with pytest.raises(SessionCryptoError, match="key ID"):
            encrypt(k_enc(), SID, kid, b"x")
    with pytest.raises(SessionCryptoError, match="sid"):
        encrypt(k_enc(), "", KID, b"x")


# -- interoperability with the CSE's implementation (cse.core.session_crypto) -------------------
# The SDK's module is a stricter layer over the CSE's (it signs and encrypts; the
# CSE verifies): both must produce and accept exactly the same bytes.

def test_sdk_and_cse_derive_the_same_keys_and_canonical_strings() -> None:
    from cse.core import session_crypto as cse_crypto

    assert derive_keys(KEY, SID) == cse_crypto.derive_keys(KEY, SID)
    for to, csi in (("cse2/Cae2/x?rcn=1", "/id-cse2"), ("/id-cse2/cse2/Cae2/x", "/id-cse1"),
                    ("//sp.example/id-cse2/cse2/Cae2", "/id-cse1")):
        assert sp_relative_to(to, csi) == cse_crypto.sp_relative_target(to, csi)
    for body in (b"", b'{"m2m:cin":{"con":"x"}}'):
        ours = canonical("UPDATE", "/id-cse2/cse2/Cae2/c", SID, "rq1", "20250101T000000", body)
        assert ours == cse_crypto.canonical("UPDATE", "/id-cse2/cse2/Cae2/c", SID, "rq1", "20250101T000000", body)


def test_an_sdk_mac_verifies_at_the_cse_and_values_cross_both_ways() -> None:
    from cse.core import session_crypto as cse_crypto

    k_mac, k_enc = derive_keys(KEY, SID)
    text = canonical("CREATE", "/id-cse2/cse2/Cae2/c", SID, "rq7", "20250101T000000", b"{}")
    assert cse_crypto.verify(k_mac, text, mac(k_mac, text))
    assert cse_crypto.sign(k_mac, text) == mac(k_mac, text)
    assert cse_crypto.decrypt(k_enc, SID, encrypt(k_enc, SID, KID, "21.5"), kid=KID) == b"21.5"
    assert decrypt(k_enc, SID, cse_crypto.encrypt(k_enc, SID, KID, "21.5"), kid=KID) == b"21.5"
