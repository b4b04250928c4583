"""The demo's configuration: the simulator's support line, with office hours and waiting alerts.

``whatsgate-exporter --demo`` needs no file: it polls the simulator's three
accounts, counts ``demo-support``'s waits in the simulator's office hours, and
alerts on time unread and on customers waiting for an answer, so that a new
user sees waits, time-to-read histograms and a firing alert within minutes. A
``--config.file`` given with ``--demo`` keeps its own thresholds, waiting rules,
chats rules and Alertmanager; its accounts, whatsgate and discover settings are
replaced by the simulator's.
"""

from __future__ import annotations

import copy
import dataclasses

from ..config.schedules import parse_schedules
from ..config.schema import parse_duration
from ..config.settings import Config, WhatsGateConfig, parse_config
from ..model import Account

POLL_INTERVAL = "5s"

# What a support lead would set: the demo's traffic crosses each of these within minutes.
THRESHOLDS = [
    {"name": "WhatsGateCustomerWaiting", "metric": "chat_waiting", "above": "10m", "severity": "warning"},
    {
        "name": "WhatsGateQueueBuildingUp",
        "metric": "chats_waiting",
        "longer_than": "15m",
        "above": 2,
        "for": "1m",
        "severity": "warning",
    },
    {"name": "WhatsGateOldestWaitTooLong", "metric": "oldest_waiting", "above": "1h", "severity": "critical"},
    {"name": "WhatsGateAccountDown", "metric": "account_down", "for": "1m", "severity": "critical"},
    # Waiting for an answer (the event log): sales and community start with customers read but
    # unanswered for 40m to 2h, so these fire within a minute of the first events poll.
    {"name": "WhatsGateCustomerUnanswered", "metric": "chat_unanswered", "above": "30m"},
    {
        "name": "WhatsGateOldestUnanswered",
        "metric": "oldest_unanswered",
        "above": "1h",
        "severity": "critical",
    },
    {
        "name": "WhatsGateUnansweredPilingUp",
        "metric": "chats_unanswered",
        "longer_than": "30m",
        "above": 1,
        "severity": "warning",
    },
    # A third to nearly half of the demo's answers come 10 to 45 minutes late.
    {
        "name": "WhatsGateResponseSLA",
        "metric": "responses_within",
        "target": "15m",
        "window": "1h",
        "below": 0.9,
        "severity": "warning",
    },
]


def demo_config(url: str, api_key: str, base: Config | None) -> Config:
    """The demo's config: the simulator's accounts, plus whatever else ``base`` sets (e.g. thresholds)."""
    # Here, not at the top: serving imports this module, and without --demo needs no simulator.
    from ..simulator import DEMO_ACCOUNT_SCHEDULES, DEMO_ACCOUNTS, DEMO_SCHEDULES

    if base is None:
        base = parse_config({"thresholds": copy.deepcopy(THRESHOLDS)}, polling=False)
    # Short aliases ("support", "sales", ...) as the account label, as a real config would have.
    accounts = tuple(
        Account(wid, wid.removeprefix("demo-"), DEMO_ACCOUNT_SCHEDULES.get(wid)) for wid, _ in DEMO_ACCOUNTS
    )
    schedules = {**parse_schedules(copy.deepcopy(DEMO_SCHEDULES)), **base.schedules}
    return dataclasses.replace(
        base,
        # A demo moves: never slower than the demo's own interval, whatever the file says.
        poll_interval=min(base.poll_interval, parse_duration(POLL_INTERVAL, "poll_interval")),
        whatsgate=WhatsGateConfig(url=url, api_key=api_key, timeout=5.0),
        accounts=accounts,
        discover=True,
        schedules=schedules,
    )
