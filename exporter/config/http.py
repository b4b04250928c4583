"""Prometheus' ``http_config`` essentials for the exporter's outgoing HTTP clients.

Alertmanager (``basic_auth``, ``authorization``, ``tls_config``, ``proxy_url``)
and WhatsGate (``tls_config``, ``proxy_url``) take the same keys with the same
meaning as in a Prometheus scrape or alerting config, so an operator writes
them once and recognises them. Everything is checked at start-up: a missing or
unreadable file, a key that does not match its certificate, or a bad
combination is a :class:`ConfigError` naming the key, never a failed request
an hour later. Secret values are kept in fields with ``repr=False`` and are
never part of a message.

:func:`exporter.config.session.new_session` turns a config into a :class:`requests.Session`.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from msgspec import UNSET, UnsetType

from .files import read_text_secret, readable
from .schema import ConfigError, Schema, Text, read

# The keys this module reads from a client's section (Prometheus spells them the same).
HTTP_KEYS = frozenset({"basic_auth", "authorization", "tls_config", "proxy_url"})

# Header values: printable ASCII without spaces (a newline would split the request).
_TOKEN_RE = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Authorization:
    type: str
    credentials: str = field(repr=False)

    @property
    def header(self) -> str:
        return f"{self.type} {self.credentials}"


@dataclass(frozen=True)
class TlsConfig:
    """Paths are absolute (resolved against the config file's directory) and were readable at start-up."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class HttpClientConfig:
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    tls: TlsConfig = field(default_factory=TlsConfig)
    # repr=False: the proxy URL may carry a user and password.
    proxy_url: str | None = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for :func:`exporter.config.redaction.redact`."""
        found = [
            self.basic_auth.password if self.basic_auth else "",
            self.authorization.credentials if self.authorization else "",
        ]
        if self.proxy_url:
            found.append(unquote(urlsplit(self.proxy_url).password or ""))
        return tuple(s for s in found if s)


# --- parsing ------------------------------------------------------------------------------------


# A secret and its _file: read by _secret, once it is known that only one is set.
class _BasicAuth(Schema):
    username: Text
    password: Any = UNSET
    password_file: Any = UNSET


class _Authorization(Schema):
    type: Text | None = None
    credentials: Any = UNSET
    credentials_file: Any = UNSET


class _Tls(Schema):
    ca_file: Text | UnsetType = UNSET
    cert_file: Text | UnsetType = UNSET
    key_file: Text | UnsetType = UNSET
    server_name: Text | None = None
    insecure_skip_verify: bool = False


def _secret(section: Any, key: str, path: str, base_dir: Path) -> tuple[str, str]:
    """``key`` inline (``${ENV}`` allowed) or ``key_file``: exactly one of them; (the key used, its value)."""
    inline, file = getattr(section, key), getattr(section, f"{key}_file")
    if inline is not UNSET and file is not UNSET:
        raise ConfigError(f"{path}{key}", f"set either {key} or {key}_file, not both")
    if file is not UNSET:
        return f"{key}_file", read_text_secret(
            read(file, f"{path}{key}_file", Text), base_dir, f"{path}{key}_file"
        )
    if inline is UNSET:
        raise ConfigError(f"{path}{key}", f"required: set {path}{key} or {path}{key}_file")
    if not (inline := read(inline, f"{path}{key}", Text)):
        raise ConfigError(f"{path}{key}", "is empty")
    return key, inline


def _section(raw: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in raw:
        return None
    if not read(raw[key], f"{path}{key}", dict[Any, Any] | None):
        raise ConfigError(f"{path}{key}", "is empty: set its keys or leave it out")
    return raw[key]


def _basic_auth(raw: Any, path: str, base_dir: Path) -> BasicAuth:
    section = read(raw, path.rstrip("."), _BasicAuth)
    if not section.username or ":" in section.username:
        raise ConfigError(f"{path}username", "must be non-empty and must not contain ':'")
    key, password = _secret(section, "password", path, base_dir)
    if "\n" in password or "\r" in password:
        raise ConfigError(f"{path}{key}", "the password must be one line (value not shown)")
    return BasicAuth(section.username, password)


def _authorization(raw: Any, path: str, base_dir: Path) -> Authorization:
    section = read(raw, path.rstrip("."), _Authorization)
    kind = "Bearer" if section.type is None else section.type
    if not _TOKEN_RE.fullmatch(kind):
        raise ConfigError(f"{path}type", f"expected a scheme such as Bearer, got {kind!r}")
    if kind.lower() == "basic":
        raise ConfigError(f"{path}type", "cannot be Basic: use basic_auth instead")
    key, credentials = _secret(section, "credentials", path, base_dir)
    if not _TOKEN_RE.fullmatch(credentials):
        raise ConfigError(f"{path}{key}", "must be printable ASCII without spaces (value not shown)")
    return Authorization(kind, credentials)


def _readable(name: str | UnsetType, key: str, path: str, base_dir: Path) -> str | None:
    return None if name is UNSET else str(readable(base_dir / name, f"{path}{key}"))


def parse_tls_config(raw: Any, path: str, base_dir: Path) -> TlsConfig:
    """``tls_config`` of a client; loads the files once, so a bad one stops start-up naming its key."""
    section = read(raw, path.rstrip("."), _Tls)
    ca_file = _readable(section.ca_file, "ca_file", path, base_dir)
    cert_file = _readable(section.cert_file, "cert_file", path, base_dir)
    key_file = _readable(section.key_file, "key_file", path, base_dir)
    if (cert_file is None) != (key_file is None):
        missing = "key_file" if key_file is None else "cert_file"
        raise ConfigError(f"{path}{missing}", "cert_file and key_file go together: set both or neither")
    # A bare client context: only the configured files are loaded, not the system's CA store.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{path}ca_file", f"{ca_file} holds no usable PEM certificate: {exc.reason or exc}"
            ) from None
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{path}key_file", f"cannot use {cert_file} with {key_file}: {exc.reason or exc}"
            ) from None
    server_name = section.server_name or None
    if server_name is not None and not re.fullmatch(r"[A-Za-z0-9.:*_-]+", server_name):
        raise ConfigError(f"{path}server_name", f"expected a host name, got {server_name!r}")
    return TlsConfig(ca_file, cert_file, key_file, server_name, section.insecure_skip_verify)


def parse_proxy_url(raw: Mapping[str, Any], key: str, path: str) -> str | None:
    if key not in raw:
        return None
    url: str = read(raw[key], f"{path}{key}", Text)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself is not repeated: it may hold a password.
        raise ConfigError(f"{path}{key}", "expected an http:// or https:// proxy URL (value not shown)")
    return url


def parse_http_config(
    raw: Mapping[str, Any] | None, path: str, base_dir: Path, keys: frozenset[str] = HTTP_KEYS
) -> HttpClientConfig:
    """Read the ``keys`` of :data:`HTTP_KEYS` from a client's section (``path`` ends with a dot).

    The caller checks the section's other keys; this reads only its own.
    """
    raw = raw or {}
    basic = _section(raw, "basic_auth", path) if "basic_auth" in keys else None
    authz = _section(raw, "authorization", path) if "authorization" in keys else None
    if basic is not None and authz is not None:
        raise ConfigError(f"{path}authorization", "set either basic_auth or authorization, not both")
    tls = _section(raw, "tls_config", path) if "tls_config" in keys else None
    return HttpClientConfig(
        basic_auth=_basic_auth(basic, f"{path}basic_auth.", base_dir) if basic is not None else None,
        authorization=_authorization(authz, f"{path}authorization.", base_dir) if authz is not None else None,
        tls=parse_tls_config(tls, f"{path}tls_config.", base_dir) if tls is not None else TlsConfig(),
        proxy_url=parse_proxy_url(raw, "proxy_url", path) if "proxy_url" in keys else None,
    )


def split_userinfo(url: str, http: HttpClientConfig, path: str) -> tuple[str, HttpClientConfig]:
    """Move ``user:password@`` out of a URL into ``basic_auth``, so that the URL can be logged.

    Requests would send URL credentials as basic auth anyway; taking them out
    here keeps the password out of every log line that names the URL.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, http
    if http.basic_auth is not None or http.authorization is not None:
        raise ConfigError(
            path, "credentials in the URL and basic_auth/authorization both set (value not shown)"
        )
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = parts._replace(netloc=host).geturl()
    if not user or not password:
        raise ConfigError(path, "credentials in the URL need both a user and a password (value not shown)")
    auth = BasicAuth(unquote(user), unquote(password))
    return clean, HttpClientConfig(auth, None, http.tls, http.proxy_url)
