"""The status page, rendered from hand-built snapshots and the real evaluator's alerts: exact content."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from helpers import chat_obj, chats_of, group_obj, html_tables

from exporter.alerting.evaluator import Evaluator
from exporter.config.settings import Config, parse_config
from exporter.model import Account, Session
from exporter.page import status as pages
from exporter.snapshot.state import AccountState, ChatData, DiscoveryState

MSK = ZoneInfo("Europe/Moscow")
# Wednesday 2026-06-03, 12:00 in Moscow: the office is open.
NOW = datetime(2026, 6, 3, 12, 0, tzinfo=MSK).timestamp()
SCRIPT = "<script>alert(1)</script>"
QUOTES = "He said \"hi\" & 'bye'"
RTL = "שלום 😀\nline two"
CONFIG = {
    "whatsgate": {"api_key": "k"},
    "schedules": {
        "office": {
            "timezone": "Europe/Moscow",
            "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        }
    },
    "accounts": [
        {"whatsapp_id": "W1", "name": "support", "schedule": "office"},
        {"whatsapp_id": "W2", "name": "sales"},
        {"whatsapp_id": "W3", "name": "vip"},
        {"whatsapp_id": "W4", "name": "archive"},
    ],
    "thresholds": [
        {"name": "CustomerWaiting", "metric": "chat_waiting", "above": "2h45m", "severity": "warning"},
        {"name": "AccountDown", "metric": "account_down", "severity": "critical"},
        {"name": "SessionNotReady", "metric": "session_not_ready", "severity": "warning"},
    ],
}


def at(hour: int, minute: int = 0, day: int = 3) -> int:
    return int(datetime(2026, 6, day, hour, minute, tzinfo=MSK).timestamp())


def support_chats() -> list[dict]:
    """Twelve contacts and a group waiting since 09:00 + 10 min steps, one since yesterday 17:30."""
    names = [SCRIPT, QUOTES, RTL, ""] + [f"Customer {i}" for i in range(4, 12)]
    chats = [chat_obj(f"7999000{i:04d}@c.us", 2, ts=at(9) + 600 * i, name=n) for i, n in enumerate(names)]
    chats.append(group_obj("120363000@g.us", 5, name="Team & friends"))
    chats[-1]["timestamp"] = at(17, 30, day=2)  # 30 open minutes yesterday, 3 h today
    chats.append(chat_obj("79990009999@c.us", 0, ts=at(8), name="Read already"))
    chats.append(chat_obj("79990008888@c.us", 7, ts=at(8), name="Muted", muted=True))  # unread, no wait
    return chats


def build(cfg: Config, index: int, chats: list[dict], polled_at: float = NOW) -> ChatData:
    account = cfg.accounts[index]
    parsed = chats_of(chats)
    return ChatData.build(parsed, cfg.chats, polled_at, cfg.waiting, cfg.schedule_for(account))


@pytest.fixture
def cfg() -> Config:
    return parse_config(CONFIG)


@pytest.fixture
def states(cfg: Config) -> list[AccountState]:
    support = AccountState(cfg.accounts[0]).succeeded(build(cfg, 0, support_chats()), 0.1)
    sales = AccountState(cfg.accounts[1]).succeeded(
        build(cfg, 1, [chat_obj("1@c.us", 1, ts=at(11, 30), name="Buyer")]), 0.1
    )
    vip = AccountState(cfg.accounts[2]).failed("connection", "connect to <gateway> refused", 0.1)
    archive = (
        AccountState(cfg.accounts[3])
        .succeeded(build(cfg, 3, [chat_obj("2@c.us", 0)], polled_at=NOW - 600), 0.1)
        .failed("unauthorized", "HTTP 401 from get-chats", 0.1)
    )
    return [vip, support, archive, sales]  # the page sorts them by name


def render(cfg: Config, states: list[AccountState], discovery: DiscoveryState | None = None) -> str:
    evaluator = Evaluator(cfg, clock=lambda: NOW)
    for state in states:
        evaluator.evaluate_account(state)
    if discovery is not None:
        evaluator.evaluate_sessions(discovery)
    return pages.status_page(
        states, evaluator.alerts(), NOW, "/metrics", "1.2.3", discovery=discovery, tz=MSK
    )


def table(page: str, caption_start: str, nth: int = 0) -> list[list[str]]:
    found = [t.rows for t in html_tables(page) if t.caption.startswith(caption_start)]
    return found[nth]


def test_the_overview_has_every_account_in_name_order(cfg, states):
    page = render(cfg, states)
    assert table(page, "Accounts") == [
        [
            *("Account", "Status", "Last success", "Unread messages", "Chats unread", "Unread longest"),
            *("Unanswered", "Business hours", "Alerts firing"),
        ],
        ["archive", "down stale", "10m 0s ago", "0", "0", "none", "—", "24/7", "1"],
        ["sales", "up", "0s ago", "1", "1", "30m 0s since 2026-06-03 11:30", "—", "24/7", "0"],
        # 12 x 2 contact messages + 5 in the group + 7 in the muted chat; the muted chat does not wait.
        ["support", "up", "0s ago", "36", "13", "3h 30m since 2026-06-02 17:30", "—", "open", "3"],
        ["vip", "down stale", "never", "—", "—", "—", "—", "—", "1"],
    ]


def test_the_ten_longest_waits_in_order_by_name_never_by_id(cfg, states):
    page = render(cfg, states)
    caption = [t.caption for t in html_tables(page) if t.caption.startswith("Chats unread longest: 10")]
    assert caption == ["Chats unread longest: 10 of 13, as of the poll at 2026-06-03 12:00"]
    assert table(page, "Chats unread longest: 10") == [
        ["#", "Chat", "Type", "Unread for", "Since"],
        # Yesterday 17:30 → now: 30 open minutes yesterday and 3 h today, not 18 h 30 min.
        ["1", "Team & friends", "group", "3h 30m", "2026-06-02 17:30"],
        ["2", SCRIPT, "contact", "3h 0m", "2026-06-03 09:00"],
        ["3", QUOTES, "contact", "2h 50m", "2026-06-03 09:10"],
        ["4", RTL, "contact", "2h 40m", "2026-06-03 09:20"],
        ["5", "…0003", "contact", "2h 30m", "2026-06-03 09:30"],  # no name: the id's last 4 digits
        ["6", "Customer 4", "contact", "2h 20m", "2026-06-03 09:40"],
        ["7", "Customer 5", "contact", "2h 10m", "2026-06-03 09:50"],
        ["8", "Customer 6", "contact", "2h 0m", "2026-06-03 10:00"],
        ["9", "Customer 7", "contact", "1h 50m", "2026-06-03 10:10"],
        ["10", "Customer 8", "contact", "1h 40m", "2026-06-03 10:20"],
    ]
    assert "79990000003" not in page and "7999000" not in page  # phone numbers stay off the page


def test_names_errors_and_alert_texts_are_escaped(cfg, states):
    page = render(cfg, states)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "He said &quot;hi&quot; &amp; &#x27;bye&#x27;" in page
    assert "connect to &lt;gateway&gt; refused" in page and "<gateway>" not in page
    assert "Team &amp; friends" in page


def test_an_accounts_firing_alerts_are_in_its_section(cfg, states):
    page = render(cfg, states)
    # The page is sorted: archive, sales, support, vip; support's alerts are its chats over 2h 45m,
    # by severity, then name, then labels (the group's id sorts first).
    assert table(page, "Firing alerts", 1) == [
        ["Alert", "Severity", "Summary"],
        [
            "CustomerWaiting",
            "warning",
            'Chat "Team & friends" on support unread for 3h 30m 0s',
        ],
        ["CustomerWaiting", "warning", f'Chat "{SCRIPT}" on support unread for 3h 0m 0s'],
        ["CustomerWaiting", "warning", f'Chat "{QUOTES}" on support unread for 2h 50m 0s'],
    ]
    vip = page[page.index('id="account-3-name"') :]
    assert table(vip, "Firing alerts") == [
        ["Alert", "Severity", "Summary"],
        ["AccountDown", "critical", "WhatsGate polls of vip are failing"],
    ]


def test_an_alert_on_a_chat_without_a_name_names_it_as_the_chat_tables_do(states):
    """Its alert text says the chat's id ({chat}); on the page, as in its chat tables, only the last
    four characters: the page keeps phone numbers off it, whatever the alert texts say elsewhere."""
    raw = {**CONFIG, "thresholds": [{"name": "CustomerWaiting", "metric": "chat_waiting", "above": "2h15m"}]}
    page = render(parse_config(raw), states)
    rows = [row for t in html_tables(page) if t.caption.startswith("Firing alerts") for row in t.rows]
    assert ["CustomerWaiting", "warning", "Chat …0003 on support unread for 2h 30m 0s"] in rows
    assert "7999000" not in page


def test_at_most_ten_alerts_per_account_most_severe_first(states):
    # Every wait breaches this one: 13 warnings on support, shown as the first ten, after a critical.
    raw = {
        **CONFIG,
        "thresholds": [
            {"name": "AnyWait", "metric": "chat_waiting", "above": "1s", "severity": "warning"},
            {
                "name": "Busy",
                "metric": "chats_waiting",
                "longer_than": "1h",
                "above": 5,
                "severity": "critical",
            },
        ],
    }
    page = render(parse_config(raw), states)
    assert table(page, "Accounts")[3][0] == "support" and table(page, "Accounts")[3][-1] == "14"
    support = page[page.index('id="account-2-name"') : page.index('id="account-3-name"')]
    captions = [t.caption for t in html_tables(support) if t.caption.startswith("Firing")]
    assert captions == ["Firing alerts: the 10 most severe of 14"]
    rows = table(support, "Firing alerts")[1:]
    assert [r[:2] for r in rows] == [["Busy", "critical"]] + [["AnyWait", "warning"]] * 9


def test_a_down_account_shows_its_error_and_its_last_data(cfg, states):
    page = render(cfg, states)
    archive = page[page.index('id="account-0-name"') : page.index('id="account-1-name"')]
    assert (
        'Status: <span class="down">down</span>. Last error: <code>HTTP 401 from get-chats</code>.' in archive
    )
    assert "The figures below are from the last successful poll, 10m 0s ago." in archive
    assert table(archive, "Chats unread longest") == [
        ["#", "Chat", "Type", "Unread for", "Since"],
        ["No chat is unread."],
    ]
    captions = [t.caption for t in html_tables(archive) if t.caption.startswith("Chats unread")]
    assert captions == ["Chats unread longest: none, as of the poll at 2026-06-03 11:50"]
    vip = page[page.index('id="account-3-name"') :]
    assert "Last error: <code>connect to &lt;gateway&gt; refused</code>." in vip
    assert "No data yet: no poll of this account has succeeded." in vip


def test_no_account_yet():
    page = pages.status_page([], [], NOW, "/metrics", "1.2.3", tz=MSK)
    assert table(page, "Accounts")[1:] == [["No poll has finished yet."]]
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    for needle in (
        '<meta http-equiv="refresh" content="15">',
        "<title>",
        'href="/metrics"',
        'href="/healthz"',
    ):
        assert needle in page
    assert "<script" not in page and "http://" not in page and "https://" not in page  # nothing fetched


def test_discovery_and_alerts_of_accounts_not_polled(cfg):
    gone = Account("W9", "lost <one>")
    discovery = DiscoveryState(
        up=True, sessions=((gone, Session("W9", "lost", "QR")),), last_success=NOW - 5, removed=2
    )
    page = render(cfg, [], discovery)
    assert table(page, "Firing alerts") == [
        ["Account", "Alert", "Severity", "Summary"],
        ["lost <one>", "SessionNotReady", "warning", "WhatsApp session of lost <one> is QR, not READY"],
    ]
    assert table(page, "Sessions") == [["Account", "Status"], ["lost <one>", "QR"]]
    assert 'sessions-get: <span class="up">up</span>. Last success: 5s ago.' in page
    assert "lost &lt;one&gt;" in page and "lost <one>" not in page


@pytest.mark.parametrize(
    "seconds, text",
    [(-3, "0s"), (0, "0s"), (59.9, "59s"), (60, "1m 0s"), (3900, "1h 5m"), (86400 + 7200, "1d 2h")],
)
def test_durations_for_people(seconds, text):
    assert pages.duration(seconds) == text


def test_chat_label_prefers_the_name_and_never_shows_a_whole_id():
    assert pages.chat_label("79990001122@c.us", "Anna") == "Anna"
    assert pages.chat_label("79990001122@c.us", "  ") == "…1122"
    assert pages.chat_label("79990001122@c.us", None) == "…1122"


def test_a_closed_office_says_closed_and_counts_open_hours_only(cfg):
    evening = at(20)
    data = build(cfg, 0, support_chats(), polled_at=evening)
    support = AccountState(cfg.accounts[0]).succeeded(data, 0.1)
    page = pages.status_page([support], [], evening, "/metrics", "1.2.3", tz=MSK)
    # Yesterday 17:30-18:00 and today 09:00-18:00: 9h 30m of open time, not 26h 30m of wall clock.
    row = ["support", "up", "0s ago", "36", "13", "9h 30m since 2026-06-02 17:30", "—", "closed", "0"]
    assert table(page, "Accounts")[1] == row
    assert '<span class="closed">closed</span>' in page


def with_replies(
    state: AccountState, waits: list[tuple[str, float]], last_success: float = NOW
) -> AccountState:
    """``state`` with an event log whose unanswered chats waited the given seconds (longest first)."""
    import dataclasses

    from exporter.snapshot.replies import ReplyData, Tracker
    from exporter.snapshot.waiting import Wait

    ordered = sorted(waits, key=lambda w: -w[1])
    unanswered = tuple(Wait(cid, "contact", NOW - seconds, seconds) for cid, seconds in ordered)
    replies = ReplyData(Tracker.empty(), up=True, last_success=last_success, unanswered=unanswered)
    return dataclasses.replace(state, replies=replies)


def test_customers_waiting_longest_for_an_answer_across_accounts(cfg, states):
    vip, support, archive, sales = states
    # support: 25 customers, 1..25 minutes; sales: one, 30 min; archive: a stale event log (not shown).
    support = with_replies(support, [(f"7999000{i:04d}@c.us", 60.0 * (i + 1)) for i in range(25)])
    sales = with_replies(sales, [("1@c.us", 1800.0)])
    archive = with_replies(archive, [("2@c.us", 99999.0)], last_success=NOW - 301)
    page = render(cfg, [vip, support, archive, sales])
    rows = table(page, "Customers waiting longest for an answer")
    assert rows[0] == ["#", "Chat", "Account", "Type", "Waiting", "Since"]
    assert len(rows) == 1 + 20
    assert rows[1][1:5] == ["Buyer", "sales", "contact", "waiting for an answer for 30m 0s"]
    assert rows[2][1:5] == ["…0024", "support", "contact", "waiting for an answer for 25m 0s"]
    assert rows[20][4] == "waiting for an answer for 7m 0s"
    seconds = [pages_seconds(r[4]) for r in rows[1:]]
    assert seconds == sorted(seconds, reverse=True)
    assert "Customers waiting longest for an answer: 20 of 26" in page
    overview = {r[0]: r for r in table(page, "Accounts")[1:]}
    assert overview["support"][6] == "25" and overview["sales"][6] == "1"
    assert overview["archive"][6] == "stale" and overview["vip"][6] == "—"


def test_an_event_log_that_fails_is_named_with_its_error_until_its_waits_go_stale(cfg, states):
    """whatsgate_up stays true to get-chats; while events-get failed (and before stale_after), the
    page showed its customers waiting as if the log were read, with no word of the failure."""
    import dataclasses

    _, support, _, sales = states
    support = with_replies(support, [("1@c.us", 600.0)], last_success=NOW - 120)
    assert support.replies is not None
    failing = dataclasses.replace(support.replies, up=False, last_error="events-get: HTTP 502 (text/html)")
    support = dataclasses.replace(support, replies=failing)
    sales = with_replies(sales, [("2@c.us", 60.0)])
    page = render(cfg, [support, sales])
    overview = {r[0]: r for r in table(page, "Accounts")[1:]}
    assert overview["support"][6].startswith("1") and "events-get failing" in overview["support"][6]
    assert overview["sales"][6] == "1"
    assert page.count("Event log (events-get)") == 1
    assert "Last error: <code>events-get: HTTP 502 (text/html)</code>" in page
    assert "Last successful read: 2m 0s ago" in page


def pages_seconds(text: str) -> int:
    minutes, _, rest = text.removeprefix("waiting for an answer for ").partition("m ")
    return int(minutes) * 60 + int(rest.removesuffix("s"))


def test_no_answer_list_without_a_fresh_event_log(cfg, states):
    page = render(cfg, states)
    assert "Customers waiting longest for an answer" not in page


def test_alerts_by_severity_then_longest_wait(cfg):
    from exporter.alerting.evaluator import Alert

    def alert(name: str, severity: str, value: float) -> Alert:
        labels = (("account", "support"), ("alertname", name), ("severity", severity), ("whatsapp_id", "W1"))
        return Alert(labels, (("summary", name),), value, NOW, fired_at=NOW)

    support = AccountState(cfg.accounts[0]).succeeded(build(cfg, 0, support_chats()), 0.1)
    alerts = [
        alert("A", "warning", 60),
        alert("B", "warning", 600),
        alert("C", "critical", 5),
        alert("D", "info", 9e9),
    ]
    page = pages.status_page([support], alerts, NOW, "/metrics", "1.2.3", tz=MSK)
    assert [r[0] for r in table(page, "Firing alerts")[1:]] == ["C", "B", "A", "D"]
