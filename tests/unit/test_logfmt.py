"""Unit tests for config.redaction and cli.logfmt: redaction in every form, bounded excerpts, one line."""

from __future__ import annotations

import json
import logging
import tracemalloc
import urllib.parse

import pytest

from exporter.cli import logfmt
from exporter.config import redaction

# A key with the two characters JSON escapes, and a "/" that PHP's json_encode escapes too.
ODD_KEY = 'k3y"with\\odd/chars-0123'
KEY = "SECRET-abc123-XYZ"


def line(message: str, fmt: str, **fields: object) -> str:
    record = logging.LogRecord("exporter.test", logging.WARNING, __file__, 1, message, (), None)
    record.fields = fields
    return logfmt.Formatter(fmt).format(record)


def leaks(text: str, secret: str) -> list[str]:
    """Every spelling of ``secret`` still present in ``text``."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(json.dumps(secret)[1:-1])[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret, safe=""),
    }
    return [f for f in forms if f in text]


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
@pytest.mark.parametrize("secret", [KEY, ODD_KEY])
def test_every_form_of_a_key_is_redacted_in_both_formats(fmt: str, secret: str) -> None:
    redaction.redact(secret)
    escaped = json.dumps(secret)[1:-1]
    php = escaped.replace("/", "\\/")
    message = f"plain {secret} json {escaped} php {php} url {urllib.parse.quote(secret)}"
    out = line(message, fmt, detail=f'server said: {{"key": "{escaped}"}}', raw=secret)
    assert leaks(out, secret) == []
    assert out.count("<secret>") == 6
    assert "\n" not in out


def test_scrub_removes_url_encoded_and_html_forms() -> None:
    redaction.redact(ODD_KEY)
    plus, lower = urllib.parse.quote_plus(ODD_KEY, safe=""), urllib.parse.quote(ODD_KEY, safe="").lower()
    html = ODD_KEY.replace('"', "&quot;")
    text = f"?k={plus}&x={lower} <b>{html}</b>"
    assert redaction.scrub(text) == "?k=<secret>&x=<secret> <b><secret></b>"


def test_a_short_key_is_replaced_only_where_it_stands_alone() -> None:
    redaction.redact("demo")
    assert redaction.scrub("demonstration of a demo account") == "demonstration of a <secret> account"
    assert redaction.scrub('X-Api-Key: demo, key="demo"') == 'X-Api-Key: <secret>, key="<secret>"'
    assert redaction.scrub("pseudomorph") == "pseudomorph"
    assert "demonstration" in line("demonstration", "logfmt")


def test_a_long_key_is_replaced_even_inside_a_token() -> None:
    redaction.redact(KEY)
    assert redaction.scrub(f"key:{KEY}trailing") == "key:<secret>trailing"


def test_redact_url_hides_user_info() -> None:
    url = "https://admin:pa55-w0rd-long@gw.example:8443/api/v1?x=1"
    assert redaction.redact_url(url) == "https://<secret>@gw.example:8443/api/v1?x=1"
    assert redaction.redact_url("https://TOKENONLY12345@gw.example/api") == "https://<secret>@gw.example/api"
    assert redaction.redact_url("https://gw.example/api/v1") == "https://gw.example/api/v1"
    assert redaction.url_credentials(url) == ("pa55-w0rd-long",)
    assert redaction.url_credentials("https://p%40ss%2Fword@h/") == ("p@ss/word",)
    assert redaction.url_credentials("https://h/") == ()


def test_excerpt_is_built_from_a_bounded_prefix() -> None:
    """300 MB of HTML used to be split whole (GBs); the excerpt looks at a few KB."""
    body = "<p>word</p>\n" * 2_000_000  # 24 MB
    tracemalloc.start()
    try:
        text = redaction.excerpt(body, KEY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text.startswith("<p>word</p> <p>word</p>") and text.endswith("...")
    assert len(text) <= redaction.MAX_EXCERPT + 3
    assert peak < 1_000_000


@pytest.mark.parametrize("secret", [KEY, ODD_KEY])
@pytest.mark.parametrize("shift", range(-20, 3))
def test_a_key_straddling_the_prefix_cut_leaks_no_part(secret: str, shift: int) -> None:
    # Blanks collapse to one space, so what sits at the cut ends up inside the excerpt.
    text = " " * (redaction.EXCERPT_SOURCE + shift) + secret + " tail"
    out = redaction.excerpt(text, secret)
    assert not any(secret[:n] in out for n in range(4, len(secret) + 1)), out


def test_excerpt_of_unprintable_text_is_printable_utf8() -> None:
    out = redaction.excerpt("bad \ud800 name \x1b[31m red \x00")
    out.encode("utf-8")  # a lone surrogate would raise here
    assert out == "bad \ufffd name \ufffd[31m red \ufffd"


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_a_lone_surrogate_in_a_field_still_gives_a_writable_line(fmt: str) -> None:
    out = line("chat renamed", fmt, name="x\ud800y")
    out.encode("utf-8")
    assert "\\ud800" in out
