"""The poll loop's decisions, with the HTTP layer faked by `responses`."""

from __future__ import annotations

import logging
import threading

import pytest
import responses

from exporter import logfmt
from exporter.config import parse_config
from exporter.poller import AccountPoller, next_delay
from exporter.snapshot.state import AccountState
from exporter.whatsgate.client import WhatsGateClient

URL = "http://whatsgate.test/api/v1"
KEY = "SECRET-key-0123456789abcdef"
CHAT = {
    "id": "1@c.us",
    "name": "A",
    "isGroup": False,
    "isReadOnly": False,
    "unreadCount": 4,
    "timestamp": 1_700_000_000,
    "pinned": False,
    "isMuted": False,
    "muteExpiration": 0,
}


@pytest.fixture
def poller() -> tuple[AccountPoller, list[AccountState]]:
    config = parse_config(
        {
            "whatsgate": {"url": URL, "api_key": KEY},
            "accounts": [{"whatsapp_id": "W1", "name": "support"}],
            "poll_interval": "1m",
        }
    )
    published: list[AccountState] = []
    client = WhatsGateClient(URL, KEY, timeout=1)
    return AccountPoller(config.accounts[0], client, config, published.append, clock=lambda: 1e9), published


@responses.activate
def test_success_then_failure_keeps_data_and_counts(poller, caplog):
    p, published = poller
    responses.post(f"{URL}/get-chats", json={"result": "OK", "data": [CHAT]})
    responses.post(
        f"{URL}/get-chats",
        status=500,
        json={"name": "Unauthorized", "message": f"invalid credentials {KEY}", "code": 0},
    )
    first = p.poll_once()
    assert first.up and first.data is not None and first.data.chats[0].unread == 4
    logfmt.redact(KEY)
    with caplog.at_level(logging.WARNING):
        second = p.poll_once()
    assert published == [first, second]
    assert not second.up
    assert second.errors["unauthorized"] == 1 and second.consecutive_failures == 1
    assert second.data is first.data  # last good data is kept until stale
    assert second.last_success == first.last_success
    lines = [logfmt.Formatter().format(r) for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "reason=unauthorized" in lines[0] and "account=support" in lines[0]
    assert KEY not in lines[0]


@responses.activate
def test_recovery_resets_failures(poller):
    p, _ = poller
    responses.post(f"{URL}/get-chats", body="slow down", status=429)
    responses.post(f"{URL}/get-chats", json={"result": "OK", "data": []})
    assert p.poll_once().errors["http_status"] == 1
    state = p.poll_once()
    assert state.up and state.consecutive_failures == 0 and state.errors["http_status"] == 1


@responses.activate
def test_gateway_errors_are_retried_within_the_poll(poller):
    p, _ = poller
    responses.post(f"{URL}/get-chats", body="<html>bad gateway</html>", status=502)
    responses.post(f"{URL}/get-chats", json={"result": "OK", "data": [CHAT]})
    state = p.poll_once()
    assert state.up and state.errors["http_status"] == 0
    assert len(responses.calls) == 2


@responses.activate
def test_rate_limit_is_not_retried_within_the_poll(poller):
    p, _ = poller
    responses.post(f"{URL}/get-chats", body="slow down", status=429)
    assert not p.poll_once().up
    assert len(responses.calls) == 1


def test_backoff_doubles_and_is_capped():
    assert [next_delay(60, n) for n in range(6)] == [60, 60, 120, 240, 240, 240]


def test_a_crashing_poll_does_not_kill_the_worker(poller):
    p, published = poller
    calls = []

    def flaky(_whatsapp_id: str):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        p.stop()
        return []

    p.client.get_chats = flaky  # type: ignore[method-assign]
    p.config = p.config.__class__(**{**p.config.__dict__, "poll_interval": 0.01})
    worker = threading.Thread(target=p.run)
    worker.start()
    worker.join(5)
    assert not worker.is_alive()
    assert len(calls) == 2 and published[-1].up
