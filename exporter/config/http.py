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

from .schema import ConfigError, check_keys, get_bool, get_mapping, get_str

# The keys this module reads from a client's section (Prometheus spells them the same).
HTTP_KEYS = frozenset({"basic_auth", "authorization", "tls_config", "proxy_url"})
TLS_KEYS = frozenset({"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"})

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


def _resolve(raw: Mapping[str, Any], key: str, path: str, base_dir: Path) -> Path:
    file = Path(get_str(raw, key, path))
    return file if file.is_absolute() else base_dir / file


def _read_secret_file(raw: Mapping[str, Any], key: str, path: str, base_dir: Path) -> str:
    """A secret from a file, trimmed of surrounding whitespace as Prometheus does."""
    file = _resolve(raw, key, path, base_dir)
    try:
        value = file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}{key}", f"cannot read {file}: {reason}") from None
    if not value:
        raise ConfigError(f"{path}{key}", f"{file} is empty")
    return value


def _secret(raw: Mapping[str, Any], key: str, path: str, base_dir: Path) -> str:
    """``key`` inline (``${ENV}`` allowed) or ``key_file``: exactly one of them."""
    inline, file_key = key in raw, f"{key}_file"
    if inline and file_key in raw:
        raise ConfigError(f"{path}{key}", f"set either {key} or {file_key}, not both")
    if file_key in raw:
        return _read_secret_file(raw, file_key, path, base_dir)
    if not inline:
        raise ConfigError(f"{path}{key}", f"required: set {path}{key} or {path}{file_key}")
    value = get_str(raw, key, path)
    if not value:
        raise ConfigError(f"{path}{key}", "is empty")
    return value


def _section(raw: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    if key not in raw:
        return None
    section = get_mapping(raw, key, path)
    if not section:
        raise ConfigError(f"{path}{key}", "is empty: set its keys or leave it out")
    return section


def _basic_auth(raw: Mapping[str, Any], path: str, base_dir: Path) -> BasicAuth:
    check_keys(raw, {"username", "password", "password_file"}, path)
    username = get_str(raw, "username", path)
    if not username or ":" in username:
        raise ConfigError(f"{path}username", "must be non-empty and must not contain ':'")
    password = _secret(raw, "password", path, base_dir)
    if "\n" in password or "\r" in password:
        key = "password_file" if "password_file" in raw else "password"
        raise ConfigError(f"{path}{key}", "the password must be one line (value not shown)")
    return BasicAuth(username, password)


def _authorization(raw: Mapping[str, Any], path: str, base_dir: Path) -> Authorization:
    check_keys(raw, {"type", "credentials", "credentials_file"}, path)
    kind = get_str(raw, "type", path, "Bearer")
    if not _TOKEN_RE.fullmatch(kind):
        raise ConfigError(f"{path}type", f"expected a scheme such as Bearer, got {kind!r}")
    if kind.lower() == "basic":
        raise ConfigError(f"{path}type", "cannot be Basic: use basic_auth instead")
    credentials = _secret(raw, "credentials", path, base_dir)
    if not _TOKEN_RE.fullmatch(credentials):
        key = "credentials_file" if "credentials_file" in raw else "credentials"
        raise ConfigError(f"{path}{key}", "must be printable ASCII without spaces (value not shown)")
    return Authorization(kind, credentials)


def _readable(raw: Mapping[str, Any], key: str, path: str, base_dir: Path) -> str | None:
    if key not in raw:
        return None
    file = _resolve(raw, key, path, base_dir)
    try:
        file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}{key}", f"cannot read {file}: {exc.strerror}") from None
    return str(file)


def parse_tls_config(raw: Mapping[str, Any], path: str, base_dir: Path) -> TlsConfig:
    """``tls_config`` of a client; loads the files once, so a bad one stops start-up naming its key."""
    check_keys(raw, set(TLS_KEYS), path)
    ca_file = _readable(raw, "ca_file", path, base_dir)
    cert_file = _readable(raw, "cert_file", path, base_dir)
    key_file = _readable(raw, "key_file", path, base_dir)
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
    server_name = get_str(raw, "server_name", path, "") or None
    if server_name is not None and not re.fullmatch(r"[A-Za-z0-9.:*_-]+", server_name):
        raise ConfigError(f"{path}server_name", f"expected a host name, got {server_name!r}")
    return TlsConfig(
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        server_name=server_name,
        insecure_skip_verify=get_bool(raw, "insecure_skip_verify", path, False),
    )


def parse_proxy_url(raw: Mapping[str, Any], key: str, path: str) -> str | None:
    if key not in raw:
        return None
    url = get_str(raw, key, path)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself is not repeated: it may hold a password.
        raise ConfigError(f"{path}{key}", "expected an http:// or https:// proxy URL (value not shown)")
    return url


def parse_http_config(
    raw: Mapping[str, Any], path: str, base_dir: Path, keys: frozenset[str] = HTTP_KEYS
) -> HttpClientConfig:
    """Read the ``keys`` of :data:`HTTP_KEYS` from a client's section (``path`` ends with a dot).

    The caller checks the section's other keys; this reads only its own.
    """
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
