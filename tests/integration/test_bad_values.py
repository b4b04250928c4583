"""Answers whose values the exposition cannot carry, through the real client, poller, store and renderer.

The API is a real loopback server answering the crafted bytes; the poll must end as a
published ``up 0`` with ``invalid_response`` naming the field, and /metrics must parse.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import metrics_body, rendering, serving
from prometheus_client.parser import text_string_to_metric_families

from exporter.config.settings import parse_config
from exporter.model import INVALID_RESPONSE
from exporter.poller import AccountPoller
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient

BAD = {
    "escaped surrogate": (b'"name": "x\\ud800y"', "data[0][id='1@c.us'].name: not valid Unicode"),
    "raw surrogate bytes": (b'"name": "x\xed\xa0\x80y"', "data[0][id='1@c.us'].name: not valid Unicode"),
    "surrogate id": (b'"name": "n", "id": "\\udfff"', "data[0].id: not valid Unicode"),
    "huge unreadCount": (b'"name": "n", "unreadCount": 1' + b"0" * 400, "unreadCount: out of range"),
    "huge timestamp": (b'"name": "n", "timestamp": 1' + b"0" * 400, "timestamp: out of range"),
    "above 2**53": (b'"name": "n", "timestamp": 9007199254740993', "timestamp: out of range"),
}


def body_with(fragment: bytes, group_fragment: bytes = b"") -> bytes:
    chat = (
        b'{"id": "1@c.us", "isGroup": false, "isReadOnly": false, "unreadCount": 1,'
        b' "timestamp": 1700000000, "pinned": false, "isMuted": false, ' + fragment + b"}"
    )
    return b'{"result": "OK", "data": [' + chat + group_fragment + b"]}"


GROUP_BAD = {
    "huge size": b'"size": 1' + b"0" * 400,
    "huge creation": b'"creation": 1' + b"0" * 400,
}


def group_with(fragment: bytes) -> bytes:
    return (
        b', {"id": "2@g.us", "name": "g", "isGroup": true, "isReadOnly": false, "unreadCount": 0,'
        b' "timestamp": 1, "pinned": false, "isMuted": false, "groupMetadata": {' + fragment + b"}}"
    )


def poll(body: bytes) -> tuple[Any, str]:
    """One poll of an account whose API (a real loopback server) answers ``body``: the published
    state and the rendered /metrics."""
    store = rendering(Store(stale_after=300))
    store.expect("W1")
    with serving(body) as url:
        cfg = parse_config(
            {"whatsgate": {"url": url, "api_key": "k"}, "accounts": [{"whatsapp_id": "W1", "name": "a"}]}
        )
        client = WhatsGateClient(url, "k")
        state = AccountPoller(cfg.accounts[0], client, lambda: cfg, store).poll_once()
        client.close()
    text = metrics_body(store).decode("utf-8")
    list(text_string_to_metric_families(text))  # valid exposition
    return state, text


@pytest.mark.parametrize("case", [*BAD, *GROUP_BAD])
def test_bad_value_is_a_published_invalid_response_naming_the_field(case: str) -> None:
    body = body_with(BAD[case][0]) if case in BAD else body_with(b'"name": "n"', group_with(GROUP_BAD[case]))
    expected = BAD[case][1] if case in BAD else f"groupMetadata.{case.split()[1]}: out of range"
    state, text = poll(body)
    assert not state.up and state.errors[INVALID_RESPONSE] == 1
    assert expected in (state.last_error or "")
    assert 'whatsgate_up{account="a",whatsapp_id="W1"} 0.0' in text
    assert 'whatsgate_poll_errors_total{account="a",reason="invalid_response",whatsapp_id="W1"} 1.0' in text


def test_valid_surrogate_pair_and_2_53_are_kept() -> None:
    body = body_with(b'"name": "\\ud83d\\ude00", "timestamp": 9007199254740992')
    state, text = poll(body)
    assert state.up
    assert 'name="\U0001f600"' in text
    assert "9.007199254740992e+15" in text
