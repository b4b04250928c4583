"""Unit tests for exporter.config.http: the http_config keys of alertmanager and whatsgate.

Every error names its key path and never the secret; secrets stay out of reprs.
Certificates are made in memory by trustme and written to tmp_path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from exporter.config import redaction
from exporter.config.http import HttpClientConfig, TlsConfig
from exporter.config.schema import ConfigError
from exporter.config.session import describe_error, new_session
from exporter.config.settings import load_config, parse_config

PASSWORD = "SECRET-pass-7d1e"
TOKEN = "SECRET-token-5b2c"


def base(**alertmanager: Any) -> dict[str, Any]:
    return {
        "whatsgate": {"api_key": "k"},
        "accounts": [{"whatsapp_id": "a"}],
        "alertmanager": {"url": "https://am.example:9093", **alertmanager},
    }


def error(raw: dict[str, Any], base_dir: Path = Path(".")) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base_dir)
    for secret in (PASSWORD, TOKEN):
        assert secret not in str(info.value)
    return info.value


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    server = ca.issue_cert("am.internal")
    client = ca.issue_cert("client@example")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "client.pem",
        "key": tmp_path / "client.key",
        "other_key": tmp_path / "other.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    server.private_key_pem.write_to_path(str(files["other_key"]))
    return files


# --- parsing ------------------------------------------------------------------------------------


def test_no_http_keys_give_the_defaults() -> None:
    am = parse_config(base()).alertmanager
    assert am is not None and am.http == HttpClientConfig()
    assert parse_config(base()).whatsgate.http == HttpClientConfig()


def test_basic_auth_inline_and_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AM_PASSWORD", PASSWORD)
    am = parse_config(base(basic_auth={"username": "ops", "password": "${AM_PASSWORD}"})).alertmanager
    assert am is not None and am.http.basic_auth is not None
    assert (am.http.basic_auth.username, am.http.basic_auth.password) == ("ops", PASSWORD)


def test_secret_files_are_relative_to_the_config_file_and_trimmed(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text(f"{PASSWORD}\n", encoding="utf-8")
    (tmp_path / "secrets" / "token").write_text(f"  {TOKEN}\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "whatsgate: {api_key: k}\naccounts: [{whatsapp_id: a}]\n"
        "alertmanager:\n  url: https://am:9093\n  basic_auth: {username: ops, password_file: secrets/pw}\n",
        encoding="utf-8",
    )
    am = load_config(config).alertmanager
    assert am is not None and am.http.basic_auth is not None and am.http.basic_auth.password == PASSWORD
    raw = base(authorization={"credentials_file": "secrets/token"})
    am = parse_config(raw, tmp_path).alertmanager
    assert am is not None and am.http.authorization is not None
    assert am.http.authorization.header == f"Bearer {TOKEN}"


def test_authorization_type() -> None:
    am = parse_config(base(authorization={"type": "Token", "credentials": TOKEN})).alertmanager
    assert am is not None and am.http.authorization is not None
    assert am.http.authorization.header == f"Token {TOKEN}"


def test_tls_config_paths_resolved_and_files_checked(tmp_path: Path, certs: dict[str, Path]) -> None:
    raw = base(
        tls_config={
            "ca_file": "ca.pem",
            "cert_file": "client.pem",
            "key_file": str(certs["key"]),
            "server_name": "am.internal",
        }
    )
    am = parse_config(raw, tmp_path).alertmanager
    assert am is not None
    assert am.http.tls == TlsConfig(
        ca_file=str(certs["ca"]),
        cert_file=str(certs["cert"]),
        key_file=str(certs["key"]),
        server_name="am.internal",
    )


def test_whatsgate_takes_tls_config_and_proxy_url(tmp_path: Path, certs: dict[str, Path]) -> None:
    raw = base()
    raw["whatsgate"] = {
        "api_key": "k",
        "tls_config": {"ca_file": "ca.pem", "insecure_skip_verify": True},
        "proxy_url": f"http://u:{PASSWORD}@proxy:3128",
    }
    wg = parse_config(raw, tmp_path).whatsgate
    assert wg.http.tls.ca_file == str(certs["ca"]) and wg.http.tls.insecure_skip_verify
    assert wg.http.proxy_url == f"http://u:{PASSWORD}@proxy:3128"
    assert PASSWORD not in repr(wg) and PASSWORD not in str(wg)
    raw["whatsgate"]["basic_auth"] = {"username": "x", "password": "y"}
    assert error(raw).path == "whatsgate.basic_auth"  # WhatsGate authenticates with its API key


def test_whatsgate_http_keys_not_read_when_not_polling() -> None:
    raw = base()
    raw["whatsgate"] = {"tls_config": {"ca_file": "/nonexistent/ca.pem"}}
    assert parse_config(raw, polling=False).whatsgate.http == HttpClientConfig()


# --- errors name their key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alertmanager", "path", "message"),
    [
        ({"basic_auth": {"username": "u"}}, "alertmanager.basic_auth.password", "required: set"),
        (
            {"basic_auth": {"username": "u", "password": PASSWORD, "password_file": "f"}},
            "alertmanager.basic_auth.password",
            "either password or password_file",
        ),
        ({"basic_auth": {"password": PASSWORD}}, "alertmanager.basic_auth.username", "required key"),
        (
            {"basic_auth": {"username": "a:b", "password": PASSWORD}},
            "alertmanager.basic_auth.username",
            "':'",
        ),
        ({"basic_auth": {"username": "u", "password": ""}}, "alertmanager.basic_auth.password", "empty"),
        (
            {"basic_auth": {"username": "u", "password": PASSWORD, "extra": 1}},
            "alertmanager.basic_auth.extra",
            "unknown key",
        ),
        ({"basic_auth": {}}, "alertmanager.basic_auth", "is empty"),
        ({"basic_auth": "ops"}, "alertmanager.basic_auth", "expected a mapping"),
        (
            {"basic_auth": {"username": "u", "password": PASSWORD}, "authorization": {"credentials": TOKEN}},
            "alertmanager.authorization",
            "either basic_auth or authorization",
        ),
        ({"authorization": {"type": "Bearer"}}, "alertmanager.authorization.credentials", "required"),
        (
            {"authorization": {"type": "Basic", "credentials": TOKEN}},
            "alertmanager.authorization.type",
            "use basic_auth",
        ),
        (
            {"authorization": {"type": "Bear er", "credentials": TOKEN}},
            "alertmanager.authorization.type",
            "expected a scheme",
        ),
        (
            {"authorization": {"credentials": f"{TOKEN} x"}},
            "alertmanager.authorization.credentials",
            "printable ASCII",
        ),
        (
            {"authorization": {"credentials": TOKEN, "credentials_file": "f"}},
            "alertmanager.authorization.credentials",
            "not both",
        ),
        ({"tls_config": {"cafile": "x"}}, "alertmanager.tls_config.cafile", "unknown key"),
        (
            {"tls_config": {"insecure_skip_verify": "yes"}},
            "alertmanager.tls_config.insecure_skip_verify",
            "true or false",
        ),
        ({"tls_config": {"server_name": "a b"}}, "alertmanager.tls_config.server_name", "host name"),
        ({"proxy_url": f"socks5://u:{PASSWORD}@p:1080"}, "alertmanager.proxy_url", "value not shown"),
        ({"proxy_url": "http://"}, "alertmanager.proxy_url", "http:// or https://"),
    ],
)
def test_errors_name_the_key(alertmanager: dict[str, Any], path: str, message: str) -> None:
    exc = error(base(**alertmanager))
    assert exc.path == path
    assert str(exc).startswith(f"{path}: ") and message in str(exc), str(exc)


def test_missing_secret_file_names_the_key(tmp_path: Path) -> None:
    exc = error(base(basic_auth={"username": "u", "password_file": "nope"}), tmp_path)
    assert str(exc) == (
        f"alertmanager.basic_auth.password_file: cannot read {tmp_path / 'nope'}: No such file or directory"
    )
    (tmp_path / "empty").write_text("\n")
    exc = error(base(authorization={"credentials_file": "empty"}), tmp_path)
    assert str(exc) == f"alertmanager.authorization.credentials_file: {tmp_path / 'empty'} is empty"


def test_multiline_password_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(f"{PASSWORD}\n{PASSWORD}\n")
    exc = error(base(basic_auth={"username": "u", "password_file": "pw"}), tmp_path)
    assert exc.path == "alertmanager.basic_auth.password_file" and "one line" in str(exc)


def test_unset_env_variable_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_AM_TOKEN", raising=False)
    exc = error(base(authorization={"credentials": "${NO_SUCH_AM_TOKEN}"}))
    assert (
        str(exc) == "alertmanager.authorization.credentials: environment variable NO_SUCH_AM_TOKEN is not set"
    )


def test_tls_file_errors_name_the_key(tmp_path: Path, certs: dict[str, Path]) -> None:
    exc = error(base(tls_config={"ca_file": "missing.pem"}), tmp_path)
    missing = tmp_path / "missing.pem"
    assert str(exc) == f"alertmanager.tls_config.ca_file: cannot read {missing}: No such file or directory"
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    exc = error(base(tls_config={"ca_file": "junk.pem"}), tmp_path)
    assert exc.path == "alertmanager.tls_config.ca_file" and "no usable PEM certificate" in str(exc)
    exc = error(base(tls_config={"cert_file": "client.pem"}), tmp_path)
    assert exc.path == "alertmanager.tls_config.key_file" and "set both or neither" in str(exc)
    exc = error(base(tls_config={"key_file": "client.key"}), tmp_path)
    assert exc.path == "alertmanager.tls_config.cert_file"
    exc = error(base(tls_config={"cert_file": "client.pem", "key_file": "other.key"}), tmp_path)
    assert exc.path == "alertmanager.tls_config.key_file" and "cannot use" in str(exc), str(exc)


# --- credentials in the URL ---------------------------------------------------------------------


def test_url_credentials_move_into_basic_auth() -> None:
    am = parse_config(base(url=f"https://ops:{PASSWORD.replace('-', '%2D')}@am.example:9093/")).alertmanager
    assert am is not None and am.url == "https://am.example:9093"
    assert am.http.basic_auth is not None and am.http.basic_auth.password == PASSWORD
    assert PASSWORD not in repr(am)


def test_url_credentials_and_basic_auth_conflict() -> None:
    raw = base(url=f"https://ops:{PASSWORD}@am:9093", authorization={"credentials": TOKEN})
    exc = error(raw)
    assert exc.path == "alertmanager.url" and "both set" in str(exc)


# --- secrets stay secret ------------------------------------------------------------------------


def test_secrets_not_in_repr() -> None:
    config = parse_config(
        base(basic_auth={"username": "ops", "password": PASSWORD}, proxy_url=f"http://u:{TOKEN}@p:3128")
    )
    for text in (repr(config), str(config), repr(config.alertmanager)):
        assert PASSWORD not in text and TOKEN not in text
    assert "ops" in repr(config.alertmanager)  # the user name is not a secret
    am = parse_config(base(authorization={"credentials": TOKEN})).alertmanager
    assert TOKEN not in repr(am)


def test_new_session_registers_secrets_for_redaction(caplog: pytest.LogCaptureFixture) -> None:
    am = parse_config(
        base(basic_auth={"username": "ops", "password": PASSWORD}, proxy_url=f"http://u:{TOKEN}@p:3128")
    ).alertmanager
    assert am is not None
    session = new_session(am.http, "alertmanager")
    try:
        assert redaction.excerpt(f"echo {PASSWORD} and {TOKEN}") == "echo <secret> and <secret>"
    finally:
        session.close()


def test_insecure_skip_verify_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    am = parse_config(base(tls_config={"insecure_skip_verify": True})).alertmanager
    assert am is not None
    with caplog.at_level(logging.WARNING):
        new_session(am.http, "alertmanager").close()
        new_session(HttpClientConfig(), "whatsgate").close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "TLS certificate verification is off (tls_config.insecure_skip_verify)"
    ]
    assert warnings[0].fields == {"client": "alertmanager"}  # type: ignore[attr-defined]


def test_describe_error_has_no_url() -> None:
    exc = requests.ConnectionError(
        f"HTTPSConnectionPool(host='am', port=9093): Max retries exceeded with url: /x?t={TOKEN} "
        "(Caused by NewConnectionError('Failed to establish a new connection:"
        " [Errno 111] Connection refused'))"
    )
    assert describe_error(exc) == "connection refused"
    ssl_exc = requests.exceptions.SSLError(
        "Max retries exceeded (Caused by SSLError(SSLCertVerificationError(1,"
        " '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed:"
        " unable to get local issuer certificate (_ssl.c:1000)')))"
    )
    assert describe_error(ssl_exc) == "TLS: unable to get local issuer certificate"
    assert describe_error(requests.RequestException(f"/x?t={TOKEN}")) == "RequestException"
