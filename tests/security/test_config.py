"""[tls], [auth] and [auth_client]: validated at start-up like every other section.

Why: a typo in a security setting must not silently leave a CSE open or
unable to start later; each mistake is a configuration error naming the
key, and the defaults keep the plain-HTTP, no-token quickstart unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cse.config import ConfigError, load_config
from cse.security.binding import build_security
from tests.security.helpers import creds, issuer_toml, member_toml, tls_toml


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text('[cse]\ncse_id = "/id-cse1"\nname = "cse1"\n' + text)
    return load_config(str(path))


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_defaults_are_plain_http_without_authentication() -> None:
    cfg = load_config(None)
    assert not cfg.tls.serving and cfg.tls.ca is None and not cfg.auth.enabled and cfg.auth_client is None
    sec = build_security(cfg)
    assert sec.scheme == "http" and sec.binding is None and sec.tokens is None and sec.client_ssl is None


def test_a_full_secure_configuration_loads(tmp_path: Path) -> None:
    c = creds(tmp_path)
    cfg = load(tmp_path, tls_toml(c, "cse1") + issuer_toml(c))
    assert cfg.tls.serving and cfg.auth.enabled and cfg.auth.audience == "sec-tests"
    assert cfg.auth.clients[0].id == "/id-cse2"
    assert cfg.auth.clients[0].originators == ("/id-cse2", "/id-cse2/*")  # the default
    sec = build_security(cfg)
    assert sec.scheme == "https" and sec.binding is not None and sec.binding.endpoint is not None
    cfg2 = load(tmp_path, member_toml(c, "cse2", "/id-cse2", "https://127.0.0.1:1/oauth2/token"))
    assert cfg2.auth_client is not None and cfg2.auth_client.client_id == "/id-cse2"
    assert cfg2.auth.issuer == "/id-cse2"


@pytest.mark.parametrize("text, message", [
    ('[tls]\ncrt = "x"\n', "unknown key 'tls.crt' (known: ca, cert, key)"),
    ('[auth]\nenable = true\n', "unknown key 'auth.enable'"),
    ('[auth_client]\nurl = "x"\n', "unknown key 'auth_client.url'"),
    ('[auth]\nenabled = "yes"\n', "'auth.enabled' must be bool, got str"),
    ('[auth]\nverify_keys = "k.pem"\n', "'auth.verify_keys' must be list, got str"),
    ('[auth]\nverify_keys = [1]\n', "'auth.verify_keys' must be a list of non-empty strings"),
    ('[tls]\ncert = "c.pem"\n', "'tls.cert' and 'tls.key' go together"),
    ('[tls]\ncert = "nope.pem"\nkey = "nope.pem"\n', "'tls.cert': cannot read 'nope.pem'"),
    ('[tls]\nca = "nope.pem"\n', "'tls.ca': cannot read"),
    ('[auth]\nenabled = true\n', "'auth.enabled' needs a key to verify tokens"),
    ('[auth]\nhs256_secret_file = "nope"\n', "'auth.hs256_secret_file': cannot read"),
    ('[auth]\ntoken_lifetime_s = 0\n', "'auth.token_lifetime_s' must be positive"),
    ('[auth]\nleeway_s = -1\n', "'auth.leeway_s' must be 0..300"),
    ('[auth_client]\ntoken_url = "https://x/t"\n', "'auth_client.client_id' is required"),
    ('[auth]\nclients = [{id = "a"}]\n', "needs exactly one of secret_sha256, secret_sha256_file"),
    ('[auth]\nclients = [{id = "a", secret_sha256 = "abc"}]\n', "must be 64 hex digits"),
    ('[auth]\nclients = [{id = "a", secret = "x"}]\n', "unknown key 'auth.clients[0].secret'"),
    ('[auth]\nclients = [{id = "a:b", secret_sha256 = "' + "0" * 64 + '"}]\n', "may not contain ':'"),
    ('[auth]\nclients = [{id = "a", secret_sha256 = "' + "0" * 64 + '"}]\n', "needs auth.signing_key"),
])
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    assert message in error(tmp_path, text)


def test_files_are_checked_for_what_they_hold(tmp_path: Path) -> None:
    c = creds(tmp_path)
    assert "do not form a usable certificate and key" in error(
        tmp_path, f'[tls]\ncert = "{c["cse1.cert"]}"\nkey = "{c["cse2.key"]}"\n')
    assert "'auth.signing_key'" in error(tmp_path, f'[auth]\nsigning_key = "{c["ca"]}"\n')
    short = tmp_path / "short.secret"
    short.write_text("tooshort")
    assert "at least 32 bytes" in error(tmp_path, f'[auth]\nhs256_secret_file = "{short}"\n')
    assert "not both" in error(tmp_path, f'[auth]\nsigning_key = "{c["issuer.key"]}"\n'
                                         f'hs256_secret_file = "{c["cse1.secret"]}"\n')
    assert "not both" in error(tmp_path, f'[auth_client]\ntoken_file = "{c["cse1.secret"]}"\n'
                                         'token_url = "https://127.0.0.1:1/t"\n')
    assert "'auth.verify_keys[0]'" in error(tmp_path, f'[auth]\nverify_keys = ["{c["cse1.secret"]}"]\n')


def test_the_command_line_reports_the_key_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[auth]\nenabled = true\nsigning_key = "missing.pem"\n')
    run = subprocess.run([sys.executable, "-m", "cse", "--config", str(path)], check=False, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2
    assert "configuration error: 'auth.signing_key': cannot read 'missing.pem'" in run.stderr
