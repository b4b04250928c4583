"""Log lines in logfmt (or JSON), the way Prometheus and its exporters write them.

One event is one line: values with spaces, quotes or newlines are quoted and
escaped, so a chat name or an API error message cannot split a line. Every
line passes :func:`exporter.config.redaction.scrub`, so no registered secret
reaches the log.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import time
from typing import Any

from ..config.redaction import scrub

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


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
        # Values are scrubbed before they are quoted (a value may hold an escaped form
        # that quoting would escape once more), and the whole line once again after.
        fields = {k: scrub(v) if isinstance(v, str) else v for k, v in fields.items()}
        if self.fmt == "json":
            line = json.dumps(fields, ensure_ascii=False, default=lambda v: scrub(str(v)))
        else:
            line = " ".join(f"{k}={_quote(scrub(str(v)))}" for k, v in fields.items())
        # A lone surrogate (from a server's "\\ud800") cannot be written as UTF-8: spell it out.
        return scrub(line).encode("utf-8", "backslashreplace").decode("utf-8")


def silence(stream: Any) -> None:
    """Send whatever is still written to ``stream`` to /dev/null, its reader being gone.

    Pointing the file descriptor itself at /dev/null (as Python's documentation on
    SIGPIPE advises) also quiets the interpreter's flush at exit, which would
    otherwise report the broken pipe once more and exit with 120.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # no descriptor of its own (a test's capture): nothing to flush at exit either
    finally:
        os.close(devnull)


def _broken_pipe(exc: BaseException | None) -> bool:
    return isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE)


class Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines to stderr; once nobody reads stderr any more, drops them, quietly.

    The exporter's job is /metrics, not its log: a closed pipe (``2>&1 | head -1``,
    a log shipper that died) must not stop it or fill what is left of stderr with
    logging's "--- Logging error ---" tracebacks.
    """

    def handleError(self, record: logging.LogRecord) -> None:
        if _broken_pipe(sys.exc_info()[1]):
            silence(self.stream)
            return
        super().handleError(record)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    # stderr is None when the process was started with it closed (2>&-): log into nothing then.
    handler = Handler(sys.stderr if sys.stderr is not None else open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # urllib3 logs every retry at WARNING with the full URL; the poller's one line says it better.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
