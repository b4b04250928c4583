"""The status page at ``/``: what a team without Grafana needs to see, rendered from one snapshot.

A pure function of its arguments (no clock, no store, no I/O), so tests can give it
hand-built states and compare exact text. The page has no script and fetches nothing:
it refreshes itself with ``<meta http-equiv="refresh">``, works offline and behind any
proxy, and gives a browser no script to fail.

Everything that came from outside (chat and account names, errors, alert texts) goes
through :func:`html.escape` with ``quote=True``: names may hold markup, quotes, newlines,
right-to-left text and emoji (``<bdi>`` keeps RTL names from reordering their cell).

Cost: per account it reads the summary, the ten longest waits (``ChatData.waiting`` is
already sorted, longest first) and the names a snapshot keeps for them (``ChatData.names``:
one pass over the chats while they are kept); nothing else grows with the number of chats.
"""

from __future__ import annotations

import heapq
import html
import itertools
from collections.abc import Sequence
from datetime import datetime, tzinfo

from ..alerting.evaluator import Alert
from ..snapshot.state import NAMED_WAITS, AccountState, DiscoveryState

REFRESH_SECONDS = 15
LONGEST_SHOWN = NAMED_WAITS  # snapshots keep the names of that many waits, no more
UNANSWERED_SHOWN = 20  # across all accounts, longest first
ALERTS_SHOWN = 10  # per account: a per-chat threshold can fire for thousands of chats at once
# Firing alerts first by how bad they are; unknown severities after these.
SEVERITY_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}

STYLE = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.4; }
body { margin: 1rem 2rem; max-width: 72rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; white-space: nowrap; }
th, td { border: 1px solid #8888; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
thead th { background: #8882; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.up, .open { color: #176f2c; font-weight: 600; }
.down, .closed, .critical, .stale { color: #b3261e; font-weight: 600; }
.warning { color: #8a5300; font-weight: 600; }
.muted { color: #666; }
.since { font-size: 0.85em; white-space: nowrap; }
@media (prefers-color-scheme: dark) {
  .up, .open { color: #7ad38f; } .down, .closed, .critical, .stale { color: #ff8a80; }
  .warning { color: #ffc266; }
  .muted { color: #aaa; }
}
nav a { margin-right: 1rem; }
section { border-top: 1px solid #8886; margin-top: 1rem; }
"""


def chat_label(chat_id: str, name: str | None) -> str:
    """How the page names a chat: by its name, never by its id (a phone number).

    The one place this is decided, so a privacy mode (hashing or dropping names and ids)
    can replace it. Without a name, only the id's last four characters before the ``@``
    are shown, enough to tell chats apart, not enough to dial.
    """
    if name and name.strip():
        return name
    local = chat_id.partition("@")[0]
    return f"…{local[-4:]}" if local else "(no name)"


def duration(seconds: float) -> str:
    """A wait for people: its two largest units, e.g. ``45s``, ``5m 12s``, ``1h 5m``, ``2d 3h``."""
    s = max(0, int(seconds))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _moment(t: float, tz: tzinfo | None) -> datetime:
    """``t`` in ``tz``, or in the exporter host's own time zone (``TZ``) when None."""
    return datetime.fromtimestamp(t, tz) if tz is not None else datetime.fromtimestamp(t).astimezone()


def _when(t: float, tz: tzinfo | None) -> str:
    """A wall-clock time as a ``<time>`` element: readable text, machine-readable attribute."""
    moment = _moment(t, tz)
    return f'<time datetime="{moment.isoformat(timespec="seconds")}">{moment:%Y-%m-%d %H:%M}</time>'


def _ago(t: float | None, now: float) -> str:
    return "never" if t is None else f"{duration(now - t)} ago"


def _table(caption: str, headers: Sequence[str], rows: Sequence[str], empty: str) -> str:
    """A table with a caption, column headers (``scope="col"``) and the given ``<tr>`` rows."""
    head = "".join(f'<th scope="col">{h}</th>' for h in headers)
    body = "".join(rows) or f'<tr><td colspan="{len(headers)}">{empty}</td></tr>'
    return f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _firing_by_account(alerts: Sequence[Alert]) -> dict[str, list[Alert]]:
    """The firing alerts by ``whatsapp_id``, in one pass that keeps nothing but the alerts.

    A per-chat threshold can fire once per waiting chat, thousands of alerts: nothing here
    is done per account per alert, and no object per alert is kept alive (thousands of
    retained dicts or tuples would set off the garbage collector over the whole heap).
    """
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        if alert.firing:
            groups.setdefault(_label(alert, "whatsapp_id"), []).append(alert)
    return groups


def _label(alert: Alert, name: str) -> str:
    for key, value in alert.labels:
        if key == name:
            return value
    return ""


def _alert_key(alert: Alert) -> tuple[int, float, tuple[tuple[str, str], ...]]:
    """Most severe first, then the longest wait (the largest value), then by labels."""
    return (SEVERITY_ORDER.get(_label(alert, "severity"), len(SEVERITY_ORDER)), -alert.value, alert.labels)


def _alerts_table(firing: Sequence[Alert], with_account: bool = False) -> str:
    """The most severe firing alerts (at most ALERTS_SHOWN; the caption says how many in all)."""
    shown = heapq.nsmallest(ALERTS_SHOWN, firing, key=_alert_key)
    rows = []
    for alert in shown:
        labels = dict(alert.labels)
        severity = labels.get("severity", "")
        account = f"<td><bdi>{_esc(labels.get('account', ''))}</bdi></td>" if with_account else ""
        summary = dict(alert.annotations).get("summary", "")
        if labels.get("chat_id"):
            # The alert's text names a chat without a name by its id ({chat}): here as in the chat
            # tables, so the page keeps ids off it and one chat reads the same in both tables.
            summary = summary.replace(labels["chat_id"], chat_label(labels["chat_id"], None))
        rows.append(
            f'<tr>{account}<th scope="row">{_esc(labels.get("alertname", ""))}</th>'
            f'<td class="{_esc(severity)}">{_esc(severity)}</td>'
            f"<td><bdi>{_esc(summary)}</bdi></td></tr>"
        )
    if len(firing) > len(shown):
        caption = f"Firing alerts: the {len(shown)} most severe of {len(firing)}"
    else:
        caption = f"Firing alerts: {len(firing)}"
    headers = (
        ("Account", "Alert", "Severity", "Summary") if with_account else ("Alert", "Severity", "Summary")
    )
    return _table(caption, headers, rows, "")


def _unanswered_cell(state: AccountState, now: float, stale_after: float) -> str:
    """How many customers wait for an answer (the event log); stale when its polls have failed
    for longer than stale_after (then the exporter exports none: a reply it cannot see)."""
    replies = state.replies
    if replies is None:
        return "<td>—</td>"
    if replies.is_stale(now, stale_after):
        return '<td class="num"><span class="stale">stale</span></td>'
    # Failing but not stale yet: a count as of the last read, which replies sent since may have lowered.
    failing = '<br><span class="down since">events-get failing</span>' if _log_failing(state) else ""
    return f'<td class="num">{len(replies.unanswered)}{failing}</td>'


def _log_failing(state: AccountState) -> bool:
    """Whether the account's last events poll failed (not merely: none has run yet)."""
    return state.replies is not None and not state.replies.up and state.replies.last_error is not None


def _state_cells(
    state: AccountState, now: float, firing: int, tz: tzinfo | None, stale_after: float = 300.0
) -> str:
    """The overview row of one account after its name: status, last success, unread, unread chats,
    longest unread and its start, waiting for an answer, business hours, alerts firing; counts
    right-aligned. A down account whose data has gone stale says so."""
    status = '<span class="up">up</span>' if state.up else '<span class="down">down</span>'
    if not state.up and state.is_stale(now, stale_after):
        status += ' <span class="stale">stale</span>'
    data = state.data
    if data is None:
        figures = ("<td>—</td>",) * 4
    else:
        unread = sum(s.unread_messages for s in data.summary.values())
        # The longest wait is the oldest: open time since a start only shrinks as the start is later.
        oldest = data.waiting[0] if data.waiting else None
        longest = (
            f'{duration(oldest.seconds)} <br><span class="muted since">since {_when(oldest.since, tz)}</span>'
            if oldest
            else "none"
        )
        if data.business_hours_open is None:
            hours = '<span class="muted">24/7</span>'
        else:
            hours = (
                '<span class="open">open</span>'
                if data.business_hours_open
                else '<span class="closed">closed</span>'
            )
        figures = (
            f'<td class="num">{unread}</td>',
            f'<td class="num">{len(data.waiting)}</td>',
            f'<td class="num">{longest}</td>',
            f"<td>{hours}</td>",
        )
    return "".join(
        (
            f"<td>{status}</td>",
            f"<td>{_ago(state.last_success, now)}</td>",
            *figures[:3],
            _unanswered_cell(state, now, stale_after),
            *figures[3:],
            f'<td class="num">{firing}</td>',
        )
    )


def _account_section(
    index: int, state: AccountState, alerts: Sequence[Alert], now: float, tz: tzinfo | None
) -> str:
    """One account in detail: its status and error, its firing alerts, its longest waits."""
    out = [f'<section id="account-{index}" aria-labelledby="account-{index}-name">']
    out.append(f'<h2 id="account-{index}-name"><bdi>{_esc(state.account.name)}</bdi></h2>')
    if state.up:
        out.append('<p>Status: <span class="up">up</span>.')
    else:
        out.append('<p>Status: <span class="down">down</span>.')
        if state.last_error:
            out.append(f" Last error: <code>{_esc(state.last_error)}</code>.")
    out.append(f" Last successful poll: {_ago(state.last_success, now)}.")
    out.append(f" WhatsApp ID: <code>{_esc(state.account.whatsapp_id)}</code>.</p>")
    if state.replies is not None and _log_failing(state):  # whatsgate_up says nothing of it
        out.append('<p>Event log (events-get): <span class="down">down</span>.')
        out.append(f" Last error: <code>{_esc(state.replies.last_error or '')}</code>.")
        read = state.replies.last_success
        out.append(f" Last successful read: {_ago(read, now)}{'; waits are as of then' if read else ''}.</p>")
    if alerts:
        out.append(_alerts_table(alerts))
    data = state.data
    if data is None:
        out.append("<p>No data yet: no poll of this account has succeeded.</p></section>")
        return "".join(out)
    if not state.up:
        out.append(
            f"<p>The figures below are from the last successful poll, {_ago(data.polled_at, now)}.</p>"
        )
    top = data.waiting[:LONGEST_SHOWN]
    # Once per request: the names of the (at most ten) chats shown.
    names = data.names() if top else {}
    rows = []
    for rank, wait in enumerate(top, 1):
        label = chat_label(wait.chat_id, names.get(wait.chat_id))
        rows.append(
            f'<tr><td class="num">{rank}</td><th scope="row"><bdi>{_esc(label)}</bdi></th>'
            f'<td>{_esc(wait.chat_type)}</td><td class="num">{duration(wait.seconds)}</td>'
            f"<td>{_when(wait.since, tz)}</td></tr>"
        )
    shown = f"{len(top)} of {len(data.waiting)}" if top else "none"
    caption = f"Chats unread longest: {shown}, as of the poll at "
    caption += _when(data.polled_at, tz)
    out.append(_table(caption, ("#", "Chat", "Type", "Unread for", "Since"), rows, "No chat is unread."))
    out.append("</section>")
    return "".join(out)


def _unanswered_section(
    states: Sequence[AccountState], now: float, stale_after: float, tz: tzinfo | None
) -> str:
    """The customers waiting longest for an answer, across every account whose event log is fresh."""
    fresh = [
        (s, s.replies.unanswered)
        for s in states
        if s.replies is not None and not s.replies.is_stale(now, stale_after)
    ]
    if not fresh:
        return ""
    # Each account's spans are already longest first: merge them, never sort them all.
    merged = heapq.merge(
        *[[((-w.seconds, w.since, s.account.name, w.chat_id), s, w) for w in waits] for s, waits in fresh]
    )
    rows = []
    for rank, (_, state, wait) in enumerate(itertools.islice(merged, UNANSWERED_SHOWN), 1):
        names = state.data.names() if state.data is not None else {}
        label = chat_label(wait.chat_id, names.get(wait.chat_id))
        rows.append(
            f'<tr><td class="num">{rank}</td><th scope="row"><bdi>{_esc(label)}</bdi></th>'
            f"<td><bdi>{_esc(state.account.name)}</bdi></td><td>{_esc(wait.chat_type)}</td>"
            f'<td class="num">waiting for an answer for {duration(wait.seconds)}</td>'
            f"<td>{_when(wait.since, tz)}</td></tr>"
        )
    total = sum(len(waits) for _, waits in fresh)
    caption = f"Customers waiting longest for an answer: {len(rows)} of {total}"
    headers = ("#", "Chat", "Account", "Type", "Waiting", "Since")
    return (
        '<section aria-labelledby="unanswered"><h2 id="unanswered">Waiting for an answer</h2>'
        + _table(caption, headers, rows, "Every customer has an answer.")
        + "</section>"
    )


def _discovery_section(discovery: DiscoveryState, now: float) -> str:
    status = '<span class="up">up</span>' if discovery.up else '<span class="down">down</span>'
    rows = [
        f'<tr><th scope="row"><bdi>{_esc(account.name)}</bdi></th><td>{_esc(session.status)}</td></tr>'
        for account, session in sorted(discovery.sessions, key=lambda s: s[0].name)
    ]
    return (
        '<section aria-labelledby="discovery"><h2 id="discovery">Discovery</h2>'
        f"<p>sessions-get: {status}. Last success: {_ago(discovery.last_success, now)}. "
        f"Accounts removed after their session went away: {discovery.removed}.</p>"
        + _table("Sessions", ("Account", "Status"), rows, "No sessions.")
        + "</section>"
    )


def status_page(
    states: Sequence[AccountState],
    alerts: Sequence[Alert],
    now: float,
    telemetry_path: str,
    version: str,
    discovery: DiscoveryState | None = None,
    tz: tzinfo | None = None,
    stale_after: float = 300.0,
) -> str:
    """The whole page.

    ``alerts``: the evaluator's (only firing ones are shown); ``tz``: for the wall-clock times
    shown (None: the exporter host's zone, from ``TZ``).
    """
    ordered = sorted(states, key=lambda s: (s.account.name, s.account.whatsapp_id))
    firing = _firing_by_account(alerts)
    known = {s.account.whatsapp_id for s in ordered}
    overview, sections = [], []
    for i, state in enumerate(ordered):
        own = firing.get(state.account.whatsapp_id, [])
        cells = _state_cells(state, now, len(own), tz, stale_after)
        name = f'<a href="#account-{i}"><bdi>{_esc(state.account.name)}</bdi></a>'
        overview.append(f'<tr><th scope="row">{name}</th>{cells}</tr>')
        sections.append(_account_section(i, state, own, now, tz))
    other = [f for key, group in firing.items() if key not in known for f in group]
    headers = (
        "Account",
        "Status",
        "Last success",
        "Unread messages",
        "Chats unread",
        "Unread longest",
        "Unanswered",
        "Business hours",
        "Alerts firing",
    )
    metrics = _esc(telemetry_path)
    zone = _moment(now, tz).tzname() or ""
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        f"<title>WhatsGate Exporter: status</title><style>{STYLE}</style></head>\n<body>",
        "<header><h1>WhatsGate Exporter</h1>",
        f'<nav aria-label="Endpoints"><a href="{metrics}">Metrics</a><a href="/healthz">Health</a>'
        '<a href="/ready">Readiness</a></nav>',
        f"<p>Version {_esc(version)}. Status as of {_when(now, tz)} ({_esc(zone)});"
        f" this page refreshes every {REFRESH_SECONDS} s. A chat is unread until someone reads it;"
        " a customer waits for an answer until someone answers (from the event log). Both count open"
        " hours where an account has business hours.</p></header>\n<main>",
        _unanswered_section(ordered, now, stale_after, tz),
        _table("Accounts", headers, overview, "No poll has finished yet."),
    ]
    if other:
        parts.append(
            '<section aria-labelledby="other-alerts"><h2 id="other-alerts">Other firing alerts</h2>'
            + _alerts_table(other, with_account=True)
            + "</section>"
        )
    parts.extend(sections)
    if discovery is not None:
        parts.append(_discovery_section(discovery, now))
    parts.append("</main>\n</body></html>\n")
    return "\n".join(parts)
