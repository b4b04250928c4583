"""Log lines in logfmt (or JSON), the way Prometheus and its exporters write them.

One event is one line: values with spaces, quotes or newlines are quoted and
escaped, so a chat name or an API error message cannot split a line. Secrets
registered with :func:`redact` are replaced wherever they would appear.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_SECRETS: set[str] = set()


def redact(secret: str) -> None:
    """Never print this string: it is replaced by <secret> in every log line."""
    if secret:
        _SECRETS.add(secret)


def clear_secrets() -> None:
    """Forget every registered secret (for tests, which each start fresh)."""
    _SECRETS.clear()


def _scrub(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "<secret>")
    return text


MAX_EXCERPT = 200


def excerpt(text: str, secret: str = "") -> str:
    """A short, single-line excerpt of server-controlled text, for a log line or an error detail.

    Secrets (``secret`` and every registered one) are removed before cutting, so a
    key echoed back by a hostile or buggy server cannot leak, not even half of it at the cut.
    """
    text = _scrub(text.replace(secret, "<secret>") if secret else text)
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_EXCERPT else flat[:MAX_EXCERPT] + "..."


def _quote(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


class Formatter(logging.Formatter):
    def __init__(self, fmt: str = "logfmt") -> None:
        super().__init__()
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower())
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": level,
            "logger": record.name.removeprefix("exporter."),
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.fmt == "json":
            line = json.dumps(fields, ensure_ascii=False, default=str)
        else:
            line = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        return _scrub(line)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # urllib3 logs every retry at WARNING with the full URL; the poller's one line says it better.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
