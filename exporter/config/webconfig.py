"""``--web.config.file``: the exporter-toolkit web config (TLS, basic auth, security headers).

Same keys and meaning as Prometheus' exporter-toolkit, so an operator's existing
file works. Where Python's ``ssl`` cannot do what Go does, the key is refused at
start-up with a clear "not supported" error instead of being silently ignored:

* ``client_auth_type: RequireAnyClientCert`` (require a certificate without
  verifying it): ``ssl`` always verifies a certificate it receives.
* ``RequestClientCert`` (ask, never verify, never require) grants access to
  everyone, exactly as ``NoClientCert`` does, so it maps to not asking.
* ``cipher_suites``: the TLS 1.2 ECDHE suites Go offers map exactly to their
  OpenSSL names; TLS 1.3 names are accepted and, as in Go, change nothing
  (TLS 1.3 suites are not configurable there either); anything else is refused.
* ``curve_preferences`` (``ssl`` sets one curve, not a preference list),
  inline ``cert``/``key``/``client_ca`` and ``client_allowed_sans`` are refused;
  ``http_server_config.http2`` is accepted and ignored (this server speaks
  HTTP/1.1 only).
* ``rate_limit`` (``interval``, ``burst``) limits every request, before
  authentication, as the toolkit does; past it the answer is a 429.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..web.auth import BasicAuth, RateLimit
from .schema import ConfigError, parse_duration

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,  # never verified nor required: same access as NoClientCert
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's names (crypto/tls CipherSuites()) → OpenSSL's, for the suites that are the same cipher exactly.
CIPHERS_TLS12 = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
}
CIPHERS_TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
# The headers the toolkit lets an operator set, with the values it accepts (None: any).
HEADERS: dict[str, set[str] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": {"nosniff"},
    "X-Frame-Options": {"deny", "sameorigin"},
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
NOT_SUPPORTED = {
    "tls_server_config.cert": "inline certificates are not supported: use cert_file",
    "tls_server_config.key": "inline keys are not supported: use key_file",
    "tls_server_config.client_ca": "inline CA certificates are not supported: use client_ca_file",
    "tls_server_config.client_allowed_sans": "not supported by this exporter",
    "tls_server_config.curve_preferences": "not supported: Python's ssl module cannot set a curve preference"
    " list (OpenSSL's defaults apply when the key is left out)",
}


@dataclass(frozen=True)
class WebConfig:
    """A validated web config, with its SSL context built (None: plain HTTP)."""

    context: ssl.SSLContext | None = None
    auth: BasicAuth = field(default_factory=lambda: BasicAuth({}))
    headers: tuple[tuple[str, str], ...] = ()
    files: tuple[Path, ...] = ()  # the certificate files to watch for changes
    rate_limit: RateLimit | None = None


def _mapping(value: Any, key: str, allowed: set[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping, got {type(value).__name__}")
    for name in value:
        full = f"{key}.{name}" if key else str(name)
        if full in NOT_SUPPORTED:
            raise ConfigError(full, NOT_SUPPORTED[full])
        if name not in allowed:
            raise ConfigError(full, f"unknown key (known: {', '.join(sorted(allowed))})")
    return value


def _string(value: Any, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {type(value).__name__}")
    return value


def _file(value: Any, key: str, base: Path) -> Path | None:
    name = _string(value, key)
    if not name:
        return None
    path = base / name
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def _tls(raw: dict[str, Any], base: Path) -> tuple[ssl.SSLContext, tuple[Path, ...]]:
    k = "tls_server_config"
    cert = _file(raw.get("cert_file"), f"{k}.cert_file", base)
    key = _file(raw.get("key_file"), f"{k}.key_file", base)
    if cert is None or key is None:
        raise ConfigError(f"{k}.{'cert_file' if cert is None else 'key_file'}", "missing (both are needed)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"{k}.key_file", f"{key} does not match the certificate {cert}") from None
        try:
            ssl.create_default_context(cafile=str(cert))
        except ssl.SSLError:
            raise ConfigError(f"{k}.cert_file", f"{cert} is not a PEM certificate") from None
        raise ConfigError(f"{k}.key_file", f"{key} is not a PEM private key ({exc.reason})") from None
    files = [cert, key]

    auth_type = _string(raw.get("client_auth_type"), f"{k}.client_auth_type") or "NoClientCert"
    if auth_type == "RequireAnyClientCert":
        raise ConfigError(
            f"{k}.client_auth_type",
            "RequireAnyClientCert is not supported (Python's ssl verifies every client certificate):"
            " use RequireAndVerifyClientCert with client_ca_file",
        )
    if auth_type not in CLIENT_AUTH:
        raise ConfigError(f"{k}.client_auth_type", f"unknown value {auth_type!r}")
    context.verify_mode = CLIENT_AUTH[auth_type]
    ca = _file(raw.get("client_ca_file"), f"{k}.client_ca_file", base)
    if ca is not None:
        try:
            context.load_verify_locations(cafile=str(ca))
        except ssl.SSLError:
            raise ConfigError(f"{k}.client_ca_file", f"{ca} holds no PEM certificate") from None
        files.append(ca)
    elif context.verify_mode != ssl.CERT_NONE:
        raise ConfigError(f"{k}.client_ca_file", f"required with client_auth_type {auth_type}")

    for bound, attr, default in (
        ("min_version", "minimum_version", "TLS12"),
        ("max_version", "maximum_version", "TLS13"),
    ):
        name = _string(raw.get(bound), f"{k}.{bound}") or default
        if name not in VERSIONS:
            raise ConfigError(f"{k}.{bound}", f"unknown TLS version {name!r} (known: {', '.join(VERSIONS)})")
        try:
            setattr(context, attr, VERSIONS[name])
        except (ValueError, ssl.SSLError) as exc:
            raise ConfigError(f"{k}.{bound}", f"{name} not available here: {exc}") from None
    if context.minimum_version > context.maximum_version:
        raise ConfigError(f"{k}.min_version", "is above max_version")

    suites = raw.get("cipher_suites") or []
    if not isinstance(suites, list) or not all(isinstance(s, str) for s in suites):
        raise ConfigError(f"{k}.cipher_suites", "expected a list of cipher suite names")
    openssl = []
    for suite in suites:
        if suite in CIPHERS_TLS12:
            openssl.append(CIPHERS_TLS12[suite])
        elif suite not in CIPHERS_TLS13:
            raise ConfigError(
                f"{k}.cipher_suites", f"{suite} is not supported (supported: {', '.join(CIPHERS_TLS12)})"
            )
    if openssl:
        try:
            context.set_ciphers(":".join(openssl))
        except ssl.SSLError as exc:
            raise ConfigError(f"{k}.cipher_suites", f"rejected by OpenSSL: {exc.reason}") from None
    prefer = raw.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ConfigError(f"{k}.prefer_server_cipher_suites", "expected true or false")
    if prefer:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])  # never offer h2: this server speaks HTTP/1.1 only
    return context, tuple(files)


def _headers(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in raw.items():
        key = f"http_server_config.headers.{name}"
        if name not in HEADERS:
            raise ConfigError(key, f"this header cannot be configured (allowed: {', '.join(HEADERS)})")
        text = _string(value, key)
        allowed = HEADERS[name]
        if allowed is not None and text and text.lower() not in allowed:
            raise ConfigError(key, f"invalid value {text!r} (allowed: {', '.join(sorted(allowed))})")
        if any((ch < " " and ch != "\t") or ch == "\x7f" for ch in text) or not text.isascii():
            # What HTTP allows in a field value (RFC 9110 section 5.5), and what aiohttp sends: a
            # value it refuses would make every answer fail.
            raise ConfigError(
                key, "a header value must be printable ASCII (no line break or control character)"
            )
        if text:  # blank means unset, as in the toolkit
            out.append((name, text))
    return tuple(out)


def _users(raw: Any) -> dict[str, bytes]:
    users = _mapping(raw, "basic_auth_users", set(raw or {}))
    out = {}
    for user, hashed in users.items():
        key = f"basic_auth_users.{user}"
        if not isinstance(user, str) or not user or ":" in user:
            raise ConfigError(key, "a user name must be a non-empty string without ':'")
        if not isinstance(hashed, str) or not BCRYPT.match(hashed):
            raise ConfigError(key, "not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        out[user] = hashed.encode()
    return out


def _rate_limit(raw: Any) -> RateLimit | None:
    limit = _mapping(raw, "rate_limit", {"interval", "burst"})
    if not limit:
        return None
    burst = limit.get("burst")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ConfigError("rate_limit.burst", "expected a whole number of requests, at least 1")
    return RateLimit(parse_duration(limit.get("interval"), "rate_limit.interval"), burst)


def parse_web_config(text: str, base: Path) -> WebConfig:
    """Validate a web config (YAML ``text``; relative paths are relative to ``base``)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"invalid YAML: {' '.join(str(exc).split())}") from None
    top = _mapping(raw, "", {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"})
    tls = _mapping(
        top.get("tls_server_config"),
        "tls_server_config",
        {
            "cert_file",
            "key_file",
            "client_auth_type",
            "client_ca_file",
            "min_version",
            "max_version",
            "cipher_suites",
            "prefer_server_cipher_suites",
        },
    )
    http = _mapping(top.get("http_server_config"), "http_server_config", {"headers", "http2"})
    if not isinstance(http.get("http2", True), bool):
        raise ConfigError("http_server_config.http2", "expected true or false")
    raw_headers = http.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise ConfigError("http_server_config.headers", "expected a mapping of header names to values")
    headers = _headers(raw_headers)
    context: ssl.SSLContext | None = None
    files: tuple[Path, ...] = ()
    # As in the toolkit: without cert_file and key_file, the server speaks plain HTTP.
    if tls.get("cert_file") or tls.get("key_file"):
        context, files = _tls(tls, base)
    limit = _rate_limit(top.get("rate_limit"))
    return WebConfig(context, BasicAuth(_users(top.get("basic_auth_users"))), headers, files, limit)


def load_web_config(path: str | Path) -> WebConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError("", f"cannot read {path}: {detail}") from None
    return parse_web_config(text, path.parent)
