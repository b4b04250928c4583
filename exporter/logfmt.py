"""Log lines in logfmt (or JSON), the way Prometheus and its exporters write them.

One event is one line: values with spaces, quotes or newlines are quoted and
escaped, so a chat name or an API error message cannot split a line. Secrets
registered with :func:`redact` are replaced by ``<secret>`` wherever they would
appear, in every form a server or a formatter may have written them (plain,
JSON-escaped, URL-encoded, HTML-escaped): :func:`scrub` is the one function
every output of server-controlled text goes through.
"""

from __future__ import annotations

import errno
import functools
import html
import json
import logging
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
PLACEHOLDER = "<secret>"
# A secret at least this long is replaced wherever it occurs, even inside a longer
# token: a random key of 8+ characters is never part of an ordinary word, and a key
# glued to other text ("key:abc...xyz,") must not leak. A shorter one (a test or demo
# key such as "demo") is replaced only where it stands alone, bounded by characters
# that are not letters or digits, so that it cannot mangle words ("demonstration").
SUBSTRING_MIN = 8
_SECRETS: set[str] = set()


def redact(secret: str) -> None:
    """Never print this string: it is replaced by <secret> in every log line and by :func:`scrub`."""
    if secret:
        _SECRETS.add(secret)


def clear_secrets() -> None:
    """Forget every registered secret (for tests, which each start fresh)."""
    _SECRETS.clear()


def _forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` that JSON, URL or HTML encoding (ours or a server's) may produce."""
    forms = {secret, html.escape(secret), html.escape(secret, quote=False)}
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}  # PHP's json_encode escapes "/" too
    for safe in ("", "/"):  # "/" is left alone by default in a URL path
        quoted = (urllib.parse.quote(secret, safe=safe), urllib.parse.quote_plus(secret, safe=safe))
        forms |= {*quoted, *(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), q) for q in quoted)}
    return {f for f in forms if f}


@functools.lru_cache(maxsize=16)
def _pattern(secrets: frozenset[str]) -> tuple[re.Pattern[str], int] | None:
    """One regex for all forms of all secrets (longest first), and the longest form's length."""
    alternatives: dict[str, str] = {}
    for secret in secrets:
        for form in _forms(secret):
            if len(secret) >= SUBSTRING_MIN:
                alternatives[form] = re.escape(form)
            else:
                alternatives.setdefault(form, rf"(?<![^\W_]){re.escape(form)}(?![^\W_])")
    if not alternatives:
        return None
    ordered = sorted(alternatives, key=len, reverse=True)
    return re.compile("|".join(alternatives[f] for f in ordered)), len(ordered[0])


def _compiled(extra: Iterable[str] = ()) -> tuple[re.Pattern[str], int] | None:
    return _pattern(frozenset(_SECRETS.union(s for s in extra if s)))


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and those in ``extra``) replaced by ``<secret>``.

    Call it on anything the server controls before it leaves the process (log
    lines, error details, label values, alert payloads, pages).
    """
    compiled = _compiled(extra)
    return compiled[0].sub(PLACEHOLDER, text) if compiled else text


def mentions_secret(texts: Iterable[str]) -> bool:
    """Whether any registered secret appears in any of ``texts``; one regex pass over them all,
    so that checking 10,000 chat names costs about a millisecond when none does."""
    compiled = _compiled()
    return bool(compiled and compiled[0].search("\x00".join(texts)))


def redact_url(url: str) -> str:
    """``url`` safe to print: its user-info (``user:password@``) replaced, and secrets scrubbed."""
    try:
        parts = urllib.parse.urlsplit(url)
        if "@" in parts.netloc:
            host = parts.netloc.rpartition("@")[2]
            url = urllib.parse.urlunsplit(parts._replace(netloc=f"{PLACEHOLDER}@{host}"))
    except ValueError:  # not a URL at all: fall back to hiding everything after the scheme
        url = url.split("://", 1)[0] + "://" + PLACEHOLDER
    return scrub(url)


def url_credentials(url: str) -> tuple[str, ...]:
    """The secret part of ``url``'s user-info (the password, else the user name), to :func:`redact`."""
    try:
        parts = urllib.parse.urlsplit(url)
        password, user = parts.password, parts.username
    except ValueError:
        return ()
    secret = password or user
    return (urllib.parse.unquote(secret),) if secret else ()


MAX_EXCERPT = 200
# An excerpt is built from this many characters of the text at most, so that a
# 300 MB HTML page costs a few KB, not GBs. Whitespace is collapsed afterwards, so
# a prefix mostly made of blanks gives a shorter excerpt; that is the price of the bound.
EXCERPT_SOURCE = 4096


def _redacted_prefix(text: str, limit: int, extra: Iterable[str]) -> tuple[str, bool]:
    """The first ``limit`` characters of ``text`` with secrets removed, and whether text was cut.

    The search runs over ``limit`` plus the longest secret form, and a match that
    starts before the cut is replaced whole: a secret straddling the cut can leak
    no part of itself, neither the half before the cut nor (it is dropped) the rest.
    """
    compiled = _compiled(extra)
    if compiled is None:
        return text[:limit], len(text) > limit
    pattern, longest = compiled
    head = text[: limit + longest]
    out: list[str] = []
    pos = 0
    for match in pattern.finditer(head):
        if match.start() >= limit:
            break
        out += [head[pos : match.start()], PLACEHOLDER]
        pos = match.end()
    if pos < limit:
        out.append(head[pos:limit])
    return "".join(out), len(text) > max(pos, limit)


def excerpt(text: str, secret: str = "") -> str:
    """A short, single-line, printable excerpt of server-controlled text, for a log line or an error.

    Built from a bounded prefix (:data:`EXCERPT_SOURCE`), with secrets (``secret``
    and every registered one) removed before cutting. Characters that cannot be
    printed or encoded (control characters, lone surrogates such as ``\\ud800``)
    become U+FFFD, so the excerpt is safe to write to any UTF-8 stream.
    """
    head, cut = _redacted_prefix(text, EXCERPT_SOURCE, (secret,))
    flat = "".join(c if c.isprintable() else "\ufffd" for c in " ".join(head.split()))
    if len(flat) > MAX_EXCERPT:
        return flat[:MAX_EXCERPT] + "..."
    return flat + ("..." if cut else "")


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
