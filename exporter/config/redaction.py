"""Secrets the exporter must never print, and the one function that cuts them out of any text.

Secrets registered with :func:`redact` (the API key, credentials in URLs, the
privacy key) are replaced by ``<secret>`` wherever they would appear, in every
form a server or a formatter may have written them (plain, JSON-escaped,
URL-encoded, HTML-escaped): :func:`scrub` is the one function every output of
server-controlled text goes through (log lines, error details, label values,
alert payloads, pages), and :func:`excerpt` the one way to quote a server's
answer.
"""

from __future__ import annotations

import functools
import html
import json
import re
import urllib.parse
from collections.abc import Iterable

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
    """Whether any registered secret appears in any of ``texts``: one regex pass over them all
    joined, so that checking every chat id and name of each poll stays cheap (bench/RESULTS.md)."""
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
# An excerpt is built from this many characters of the text at most, so that what it
# costs is bounded whatever the size of the page quoted. Whitespace is collapsed afterwards,
# so a prefix mostly made of blanks gives a shorter excerpt; that is the price of the bound.
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
