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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from msgspec import UNSET, Meta

from .files import readable
from .schema import ConfigError, Schema, parse_duration, read

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
# Keys of tls_server_config.
NOT_SUPPORTED = {
    "cert": "inline certificates are not supported: use cert_file",
    "key": "inline keys are not supported: use key_file",
    "client_ca": "inline CA certificates are not supported: use client_ca_file",
    "client_allowed_sans": "not supported by this exporter",
    "curve_preferences": "not supported: Python's ssl module cannot set a curve preference"
    " list (OpenSSL's defaults apply when the key is left out)",
}


@dataclass(frozen=True)
class RateLimit:
    """``rate_limit``: a bucket of ``burst`` requests, one more every ``interval`` seconds."""

    interval: float
    burst: int


@dataclass(frozen=True)
class WebConfig:
    """A validated web config, with its SSL context built (None: plain HTTP). It describes the
    users and the rate limit; web/ checks passwords and counts requests by them."""

    context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash
    headers: tuple[tuple[str, str], ...] = ()
    files: tuple[Path, ...] = ()  # the certificate files to watch for changes
    rate_limit: RateLimit | None = None


class _Tls(Schema):
    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: str | None = None
    client_ca_file: str | None = None
    min_version: str | None = None
    max_version: str | None = None
    cipher_suites: Annotated[tuple[str, ...], Meta(description="a list of cipher suite names")] | None = None
    prefer_server_cipher_suites: bool = True


class _Http(Schema):
    headers: Annotated[dict[Any, Any], Meta(description="a mapping of header names to values")] | None = None
    http2: bool = True  # accepted and ignored: this server speaks HTTP/1.1 only


class _RateLimit(Schema):
    interval: Any = UNSET
    burst: Any = UNSET


class _Web(Schema):
    tls_server_config: _Tls | None = None
    http_server_config: _Http | None = None
    basic_auth_users: dict[Any, Any] | None = None
    rate_limit: _RateLimit | None = None


def _file(name: str | None, key: str, base: Path) -> Path | None:
    return readable(base / name, key) if name else None


def _tls(raw: _Tls, base: Path) -> tuple[ssl.SSLContext, tuple[Path, ...]]:
    k = "tls_server_config"
    cert = _file(raw.cert_file, f"{k}.cert_file", base)
    key = _file(raw.key_file, f"{k}.key_file", base)
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

    auth_type = raw.client_auth_type or "NoClientCert"
    if auth_type == "RequireAnyClientCert":
        raise ConfigError(
            f"{k}.client_auth_type",
            "RequireAnyClientCert is not supported (Python's ssl verifies every client certificate):"
            " use RequireAndVerifyClientCert with client_ca_file",
        )
    if auth_type not in CLIENT_AUTH:
        raise ConfigError(f"{k}.client_auth_type", f"unknown value {auth_type!r}")
    context.verify_mode = CLIENT_AUTH[auth_type]
    ca = _file(raw.client_ca_file, f"{k}.client_ca_file", base)
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
        name = getattr(raw, bound) or default
        if name not in VERSIONS:
            raise ConfigError(f"{k}.{bound}", f"unknown TLS version {name!r} (known: {', '.join(VERSIONS)})")
        try:
            setattr(context, attr, VERSIONS[name])
        except (ValueError, ssl.SSLError) as exc:
            raise ConfigError(f"{k}.{bound}", f"{name} not available here: {exc}") from None
    if context.minimum_version > context.maximum_version:
        raise ConfigError(f"{k}.min_version", "is above max_version")

    openssl = []
    for suite in raw.cipher_suites or ():
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
    if raw.prefer_server_cipher_suites:
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
        text = read(value, key, str | None) or ""
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


def _users(users: dict[Any, Any]) -> dict[str, bytes]:
    out = {}
    for user, hashed in users.items():
        key = f"basic_auth_users.{user}"
        if not isinstance(user, str) or not user or ":" in user:
            raise ConfigError(key, "a user name must be a non-empty string without ':'")
        if not isinstance(hashed, str) or not BCRYPT.match(hashed):
            raise ConfigError(key, "not a bcrypt hash (make one with: whatsgate-exporter hash-password)")
        out[user] = hashed.encode()
    return out


def _rate_limit(limit: _RateLimit | None) -> RateLimit | None:
    if limit is None or limit == _RateLimit():
        return None
    if isinstance(limit.burst, bool) or not isinstance(limit.burst, int) or limit.burst < 1:
        raise ConfigError("rate_limit.burst", "expected a whole number of requests, at least 1")
    return RateLimit(parse_duration(limit.interval, "rate_limit.interval"), limit.burst)


def parse_web_config(text: str, base: Path) -> WebConfig:
    """Validate a web config (YAML ``text``; relative paths are relative to ``base``)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"invalid YAML: {' '.join(str(exc).split())}") from None
    tls_keys = raw.get("tls_server_config") if isinstance(raw, dict) else None
    for name in tls_keys if isinstance(tls_keys, dict) else ():
        if name in NOT_SUPPORTED:
            raise ConfigError(f"tls_server_config.{name}", NOT_SUPPORTED[name])
    web = read(raw, "", _Web)
    tls, http = web.tls_server_config or _Tls(), web.http_server_config or _Http()
    context: ssl.SSLContext | None = None
    files: tuple[Path, ...] = ()
    headers = _headers(http.headers or {})
    # As in the toolkit: without cert_file and key_file, the server speaks plain HTTP.
    if tls.cert_file or tls.key_file:
        context, files = _tls(tls, base)
    limit = _rate_limit(web.rate_limit)
    return WebConfig(context, _users(web.basic_auth_users or {}), headers, files, limit)


def load_web_config(path: str | Path) -> WebConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError("", f"cannot read {path}: {detail}") from None
    return parse_web_config(text, path.parent)
