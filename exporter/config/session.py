"""Outgoing HTTP sessions built from a client's ``http_config`` (see :mod:`exporter.config.http`).

One function, :func:`new_session`, so that the Alertmanager sender and the
WhatsGate client authenticate, verify certificates and use proxies the same way.
"""

from __future__ import annotations

import http.client
import logging
import re
from typing import TYPE_CHECKING, Any, cast

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from requests.models import PreparedRequest

from . import redaction
from .http import HttpClientConfig, TlsConfig

if TYPE_CHECKING:  # the stubs' names for what these methods return
    from requests.adapters import _HostParams, _PoolKwargs
    from requests.sessions import _Settings

log = logging.getLogger(__name__)


class ServerNameAdapter(HTTPAdapter):
    """An adapter that verifies (and sends as SNI) ``server_name`` instead of the URL's host.

    Requests has no option for it; urllib3 2 has the ``server_hostname`` and
    ``assert_hostname`` pool keys, and this is the hook requests documents for
    adding pool keys.
    """

    def __init__(self, server_name: str | None = None, **kwargs: Any) -> None:
        self.server_name = server_name
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if self.server_name and host_params["scheme"] == "https":
            extra = cast(dict[str, Any], pool_kwargs)  # keys the stubs do not list, urllib3 2 takes
            extra["server_hostname"] = self.server_name
            if verify is not False:
                extra["assert_hostname"] = self.server_name
        return host_params, pool_kwargs


class _Session(requests.Session):
    """A session whose configured ``verify`` and proxy win over the environment.

    Plain requests lets ``REQUESTS_CA_BUNDLE`` replace a session's CA file, and
    ``HTTPS_PROXY`` replace a session's proxy (psf/requests#3829, #2018). Here
    what the config file says is what happens; what it leaves unset still comes
    from the environment (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, netrc).
    """

    def __init__(self, tls: TlsConfig, proxy_url: str | None) -> None:
        super().__init__()
        self._explicit_verify: bool | str | None = False if tls.insecure_skip_verify else tls.ca_file
        self._proxy_url = proxy_url
        # Also as plain session settings, which is all requests consults when the environment is empty.
        if self._explicit_verify is not None:
            self.verify = self._explicit_verify
        if proxy_url is not None:
            self.proxies = {"http": proxy_url, "https": proxy_url}

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self._explicit_verify is not None:
            settings["verify"] = self._explicit_verify
        if self._proxy_url is not None:
            settings["proxies"] = {"http": self._proxy_url, "https": self._proxy_url}
        return settings


def new_session(
    config: HttpClientConfig,
    client: str,
    adapter_class: type[ServerNameAdapter] = ServerNameAdapter,
    **adapter_kwargs: Any,
) -> requests.Session:
    """A :class:`requests.Session` that authenticates, verifies and proxies as ``config`` says.

    ``client`` names it in the one warning line logged when verification is off;
    ``adapter_kwargs`` (``max_retries``, pool sizes) go to the adapter mounted
    for both schemes (an ``adapter_class`` of one's own must keep ``server_name`` working,
    so it subclasses :class:`ServerNameAdapter`). Secrets are registered with :func:`redaction.redact`, so
    they are scrubbed from any log line that might echo them.
    """
    for secret in config.secrets():
        redaction.redact(secret)
    session = _Session(config.tls, config.proxy_url)
    adapter = adapter_class(config.tls.server_name, **adapter_kwargs)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if config.basic_auth is not None:
        # Bytes: the toolkit and most servers compare UTF-8; requests would encode str as latin-1.
        auth = config.basic_auth
        session.auth = HTTPBasicAuth(auth.username.encode(), auth.password.encode())
    elif config.authorization is not None:
        session.headers["Authorization"] = config.authorization.header
    if config.tls.cert_file and config.tls.key_file:
        session.cert = (config.tls.cert_file, config.tls.key_file)
    if config.tls.insecure_skip_verify:
        # One line at start-up instead of urllib3's warning on every request.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        log.warning(
            "TLS certificate verification is off (tls_config.insecure_skip_verify)",
            extra={"fields": {"client": client}},
        )
    return session


# http.client's limits (private names, stable since Python 3.2).
_MAXLINE: int = getattr(http.client, "_MAXLINE", 65536)
_MAXHEADERS: int = getattr(http.client, "_MAXHEADERS", 100)


def _protocol_error(exc: BaseException) -> str | None:
    """What broke HTTP/1.1, when http.client refused the answer's status line or headers.

    Named by the exception's type and http.client's own wording, never by the server's text
    (the status line it quotes could carry anything)."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, http.client.RemoteDisconnected):
            return None  # the text check below says "closed the connection without answering"
        if isinstance(error, http.client.UnknownProtocol):
            return "not an HTTP/1.x answer (unknown protocol in the status line, e.g. HTTP/2)"
        if isinstance(error, http.client.LineTooLong):
            for line in ("status line", "header line", "chunk size", "trailer line"):
                if line in str(error):
                    return f"{line} longer than {_MAXLINE} bytes"
            return f"a line longer than {_MAXLINE} bytes"
        if isinstance(error, http.client.BadStatusLine):
            return "malformed status line"
        if (
            isinstance(error, http.client.HTTPException)
            and "more than" in str(error)
            and "headers" in str(error)
        ):
            return f"more than {_MAXHEADERS} headers"
        pending.extend(a for a in error.args if isinstance(a, BaseException))
        pending.extend(e for e in (error.__cause__, error.__context__) if e is not None)
    return None


def describe_error(exc: requests.RequestException) -> str:
    """A one-line, secret-free account of a failed request (no URL: it could carry credentials)."""
    protocol = _protocol_error(exc)
    if protocol is not None:
        return protocol
    text = str(exc)
    match = re.search(r"certificate verify failed: ([^(')]+)", text) or re.search(r"\[SSL: ([A-Z_]+)\]", text)
    if match:
        return f"TLS: {match.group(1).strip()}"
    for needle, label in (
        ("Connection refused", "connection refused"),
        ("Unable to connect to proxy", "cannot connect to the proxy"),
        ("Read timed out", "timed out"),
        ("Name or service not known", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("RemoteDisconnected", "server closed the connection without answering"),
        ("Connection reset", "connection reset"),
        ("Max retries exceeded", "connection failed"),
    ):
        if needle in text:
            return label
    return type(exc).__name__
