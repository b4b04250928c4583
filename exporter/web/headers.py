"""A request's header block, read as ``http.client.parse_headers`` reads it, at half the cost.

``http.server`` hands the header block to the email package's feed parser, a
general MIME parser: 0.21 ms for Prometheus's five headers on a cold core, as a
scrape seconds after the last one finds it, against 0.10 ms here. That was the
largest part of the request handling a scrape pays for beyond the body.

What this parses itself is only the plain case: every line ``Name: value`` with a
name of the characters the email parser takes for one, and a value of printable
characters (no tab, no line break but the line's own end, no continuation line).
For those lines the feed parser's result is known (the name as sent; the value
after the colon without leading blanks) and is stored as it would store it. Any
other block, as sent by a hostile or unusual client, goes whole to the email
parser, which gives ``http.server``'s answer exactly. tests/unit/test_headers.py
holds both ways equal on generated blocks of arbitrary bytes.

The limits are ``http.client``'s (65,536 bytes a line, 100 lines), with its
exceptions, so ``http.server``'s 431 answers stay as they are.
"""

from __future__ import annotations

import email.parser
import http.client
import re
from email.message import Message
from typing import Protocol

# http.client's own limits (its _MAXLINE and _MAXHEADERS, private there).
MAX_LINE = 65536
MAX_HEADERS = 100

# A field name and its colon, as the email parser's header pattern takes them (its
# headerRE without the "From " envelope and the continuation, which go the slow way).
_NAMED = re.compile(r"[\x21-\x39\x3b-\x7e]+:")
_ENDS = (b"\r\n", b"\n", b"")


class Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def read_lines(fp: Readable) -> list[bytes]:
    """The block's lines up to and including the empty one that ends it (or the end of the
    stream), as http.client reads them, with its limits and exceptions."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in _ENDS:
            return lines


def parse(lines: list[bytes], message_class: type[Message] = http.client.HTTPMessage) -> Message:
    """The message http.client.parse_headers makes of these lines (from :func:`read_lines`)."""
    message = message_class()
    for line in lines[:-1]:
        text = line.decode("iso-8859-1")  # what http.client decodes the block with
        if not text.endswith("\n"):  # the last line before the end of the stream
            return _slowly(lines, message_class)
        body = text[:-2] if text.endswith("\r\n") else text[:-1]
        named = _NAMED.match(body)
        if named is None or not body.isprintable():
            return _slowly(lines, message_class)
        # As the email parser's compat32 policy stores a single-line field: the value after
        # the colon, leading spaces and tabs stripped (trailing ones kept).
        message.set_raw(body[: named.end() - 1], body[named.end() :].lstrip(" \t"))
    return message


def _slowly(lines: list[bytes], message_class: type[Message]) -> Message:
    """http.client.parse_headers's own parse of the block."""
    text = b"".join(lines).decode("iso-8859-1")
    return email.parser.Parser(_class=message_class).parsestr(text)


def parse_headers(fp: Readable, message_class: type[Message] = http.client.HTTPMessage) -> Message:
    """``http.client.parse_headers(fp, _class=message_class)``, the plain case parsed here (see
    the module docstring)."""
    return parse(read_lines(fp), message_class)
