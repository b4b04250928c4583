"""The web config parser (every key, its one-line error), basic auth and its cache, the header allow-list."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import bcrypt
import pytest
import trustme

from exporter.config.schema import ConfigError
from exporter.config.webconfig import load_web_config, parse_web_config
from exporter.web import auth
from exporter.web.auth import BasicAuth

# A fixed cost-4 hash of "pw": test ids must be the same in every run (pytest-xdist compares them).
HASH = "$2b$04$GFeGcfn5/SphA4KwvU/VLu9y/yal0TUinwciveooDC1fLIQUPnvTG"


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    trustme.CA().issue_cert("other").private_key_pem.write_to_path(str(tmp_path / "other.key"))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    return tmp_path


def error(text: str, base: Path = Path(".")) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_web_config(text, base)
    message = str(exc.value)
    assert "\n" not in message
    return message


TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"


def test_empty_file_is_plain_http_without_auth():
    config = parse_web_config("", Path("."))
    assert config.context is None and not config.users and config.headers == ()


def test_tls_config_builds_a_server_context(tls_dir: Path):
    text = TLS + (
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        "  min_version: TLS13\n"
        "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n"
        "  prefer_server_cipher_suites: false\n"
    )
    config = parse_web_config(text, tls_dir)
    assert config.context is not None
    assert config.context.verify_mode == ssl.CERT_REQUIRED
    assert config.context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert not config.context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    tls12 = {c["name"] for c in config.context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-RSA-AES128-GCM-SHA256"}
    assert set(config.files) == {tls_dir / "server.crt", tls_dir / "server.key", tls_dir / "ca.crt"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nope: 1\n", "nope: unknown key"),
        ("- a\n", "expected a mapping, got a list"),
        ("basic_auth_users: 5\n", "basic_auth_users: expected a mapping, got int"),  # was a TypeError
        ("http_server_config:\n  headers: []\n", "http_server_config.headers: expected a mapping of header"),
        ("a: [\n", "invalid YAML"),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
            "tls_server_config.cert_file: cannot read {d}/missing.crt: No such file or directory",
        ),
        ("tls_server_config:\n  cert_file: server.crt\n", "tls_server_config.key_file: missing"),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
            "tls_server_config.key_file: {d}/other.key does not match the certificate {d}/server.crt",
        ),
        (
            "tls_server_config:\n  cert_file: junk.pem\n  key_file: server.key\n",
            "tls_server_config.cert_file: {d}/junk.pem is not a PEM certificate",
        ),
        (TLS + "  client_auth_type: Sometimes\n", "tls_server_config.client_auth_type: unknown value"),
        (TLS + "  client_auth_type: RequireAnyClientCert\n", "RequireAnyClientCert is not supported"),
        (
            TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert",
        ),
        (TLS + "  client_ca_file: junk.pem\n", "tls_server_config.client_ca_file: {d}/junk.pem holds no PEM"),
        (TLS + "  min_version: TLS14\n", "tls_server_config.min_version: unknown TLS version 'TLS14'"),
        (TLS + "  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version: is above"),
        (
            TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
            "tls_server_config.cipher_suites: TLS_RSA_WITH_RC4_128_SHA is not supported",
        ),
        (
            TLS + "  prefer_server_cipher_suites: maybe\n",
            "prefer_server_cipher_suites: expected true or false",
        ),
        (TLS + "  curve_preferences: [X25519]\n", "tls_server_config.curve_preferences: not supported"),
        (TLS + "  cert: '-----BEGIN'\n", "tls_server_config.cert: inline certificates are not supported"),
        (TLS + "  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans: not supported"),
        (TLS + "  bogus: 1\n", "tls_server_config.bogus: unknown key"),
        ("rate_limit:\n  burst: 1\n", "rate_limit.interval: expected a duration"),
        (
            'http_server_config:\n  headers:\n    Strict-Transport-Security: "max-age=1\\0"\n',
            "http_server_config.headers.Strict-Transport-Security: a header value must be printable ASCII",
        ),
        ("rate_limit:\n  interval: 1s\n  burst: 0\n", "rate_limit.burst: expected a whole number"),
        ("rate_limit:\n  interval: 1s\n  burst: 1\n  rate: 2\n", "rate_limit.rate: unknown key"),
        ("basic_auth_users:\n  bob: plain\n", "basic_auth_users.bob: not a bcrypt hash"),
        ("basic_auth_users:\n  bob: 12\n", "basic_auth_users.bob: not a bcrypt hash"),
        (f"basic_auth_users:\n  'a:b': '{HASH}'\n", "basic_auth_users.a:b: a user name must be"),
        (
            "http_server_config:\n  headers:\n    Server: x\n",
            "http_server_config.headers.Server: this header cannot be configured",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "http_server_config.headers.X-Frame-Options: invalid value 'allow'",
        ),
        ("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n", "invalid value 'sniff'"),
        ("http_server_config:\n  http2: 3\n", "http_server_config.http2: expected true or false"),
        ("http_server_config:\n  http3: true\n", "http_server_config.http3: unknown key"),
    ],
)
def test_every_bad_key_is_one_line_naming_it(tls_dir: Path, text: str, expected: str):
    assert expected.format(d=tls_dir) in error(text, tls_dir)


def test_a_plain_password_is_answered_with_the_command_that_hashes_it(tmp_path: Path):
    """htpasswd is seldom installed (which is why hash-password exists): the hint names our own."""
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  bob: plain-password\n")
    with pytest.raises(ConfigError) as raised:
        load_web_config(path)
    assert "whatsgate-exporter hash-password" in str(raised.value)
    assert "plain-password" not in str(raised.value)


def test_allowed_headers_are_sent_and_blank_ones_unset():
    text = (
        "http_server_config:\n  http2: true\n  headers:\n    Strict-Transport-Security: max-age=31536000\n"
        "    X-Frame-Options: SAMEORIGIN\n    X-Content-Type-Options: nosniff\n"
        "    X-XSS-Protection: '1; mode=block'\n    Content-Security-Policy: ''\n"
    )
    assert dict(parse_web_config(text, Path(".")).headers) == {
        "Strict-Transport-Security": "max-age=31536000",
        "X-Frame-Options": "SAMEORIGIN",
        "X-Content-Type-Options": "nosniff",
        "X-XSS-Protection": "1; mode=block",
    }


def test_relative_paths_are_relative_to_the_web_config_file(tls_dir: Path, tmp_path_factory):
    (tls_dir / "web.yml").write_text(TLS)
    assert load_web_config(tls_dir / "web.yml").context is not None
    missing = tmp_path_factory.mktemp("x") / "web.yml"
    with pytest.raises(ConfigError, match=r"cannot read .*web\.yml: No such file"):
        load_web_config(missing)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_accepts_htpasswd_2y_hashes_and_refuses_the_rest():
    two_y = "$2y$" + HASH[4:]
    check = BasicAuth({"alice": two_y.encode()}).check
    assert check(basic("alice", "pw"))
    for header in (
        None,
        "",
        basic("alice", "PW"),
        basic("bob", "pw"),
        "Bearer x",
        "Basic !!!",
        basic("alice", ""),
    ):
        assert not check(header), header
    assert not check("Basic " + base64.b64encode(b"alice").decode())  # no colon
    assert not check(basic("alice", "x" * 100))  # beyond bcrypt's 72 bytes: refused, not an error
    assert BasicAuth({}).check(None)  # no users: no auth


def test_successes_are_cached_and_failures_never(monkeypatch):
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(auth.bcrypt, "checkpw", lambda p, h: calls.append(p) or real(p, h))
    check = BasicAuth({"alice": HASH.encode()}).check
    for _ in range(5):
        assert check(basic("alice", "pw"))
        assert not check(basic("alice", "nope"))
        assert not check(basic("mallory", "pw"))  # an unknown user pays bcrypt too
    assert calls.count(b"pw") == 1 + 5 and calls.count(b"nope") == 5


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(auth, "CACHE_SIZE", 3)
    users = {f"u{i}": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)) for i in range(5)}
    basic_auth = BasicAuth(users)
    for user in users:
        assert basic_auth.check(basic(user, "pw"))
    assert [basic_auth.cached(basic(user, "pw")) for user in users] == [None, None, True, True, True]


def test_the_example_web_config_is_valid(tls_dir: Path):
    example = (Path(__file__).parents[2] / "deploy" / "web-config.example.yml").read_text()
    config = parse_web_config(example, tls_dir)
    assert config.context is not None and len(config.headers) == 5
    assert BasicAuth(dict(config.users)).check(basic("prometheus", "change-me"))


def test_a_successful_check_outlives_a_reload_of_the_same_users() -> None:
    """A reload makes a new BasicAuth: the scraper's cached check must still be there (or it
    queues behind every wrong password waiting for bcrypt), and a changed hash must not match."""
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4))
    header = "Basic " + base64.b64encode(b"alice:pw").decode()
    assert BasicAuth({"alice": hashed}).check(header)
    assert BasicAuth({"alice": hashed}).cached(header) is True
    assert BasicAuth({"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(4))}).cached(header) is None
    assert BasicAuth({"bob": hashed}).cached(header) is None
