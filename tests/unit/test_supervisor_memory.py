"""What the supervisor keeps for every account it polls, between polls (10,000 accounts at once)."""

from __future__ import annotations

from test_chatids import held

from exporter.config.settings import parse_config
from exporter.model import Account
from exporter.poller.supervisor import Supervisor
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient


def supervising(accounts: int) -> tuple[Supervisor, tuple[Account, ...]]:
    """A supervisor polling ``accounts`` accounts (not started: nothing runs), and the accounts."""
    config = parse_config(
        {
            "whatsgate": {"url": "http://127.0.0.1:9/api/v1", "api_key": "k"},
            "accounts": [{"whatsapp_id": f"W{i}"} for i in range(accounts)],
        }
    )
    supervisor = Supervisor(config, WhatsGateClient(config.whatsgate.url, "k"), Store(300), lambda: 0.0)
    for account in config.accounts:
        supervisor._add(account)
    return supervisor, config.accounts


def test_an_account_costs_its_pollers_jobs_and_entries_under_a_kilobyte() -> None:
    """Its get-chats poller, events poller, first state, lock, the scheduler's two jobs and the
    store's entries (the configured accounts aside). Each poller is its own scheduler job: no
    bound method kept beside it (they cost 128 bytes an account), no set of background keys, and
    one bound method of the supervisor's for every poller's settings."""

    def cost(accounts: int) -> int:
        return held(lambda: supervising(accounts)) - held(lambda: supervising(accounts)[1])

    per_account = (cost(2_000) - cost(1_000)) / 1_000
    assert per_account < 900, per_account


def test_every_poller_reads_the_settings_through_one_callable() -> None:
    """Not a bound method of its own (64 bytes an account between polls)."""
    supervisor, _ = supervising(3)
    assert len({id(poller.settings) for poller in supervisor.pollers.values()}) == 1
