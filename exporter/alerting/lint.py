"""Thresholds that are valid but can never fire (or always do), found before anyone waits for an alert
that never comes, or is paged by one that says nothing.

A config error stops the exporter; these only earn a warning from
``check-config``, because the config still does what it says (a dormant
threshold may be meant for a later ``discover: true``). Only sure cases are
reported, never guesses about what data will arrive:

- a kind measured on sessions (``session_not_ready``) with ``discover: false``:
  session status comes from ``sessions-get``, which only discovery calls;
- ``below`` zero or less on a count (every count kind is a number of chats,
  messages or participants, never negative), for the threshold or one override;
  and ``above`` less than zero on a count, which fires for every series there is;
- an override for an account the threshold's own ``accounts`` filter leaves out;
- a kind measured on the event log (``chat_unanswered``, ``responses_within``, ...) with
  ``replies.enabled: false``: events-get is then never called.

An ``accounts`` filter naming no configured account with ``discover: false``
is not here: the config loader rejects it as an error.
"""

from __future__ import annotations

from .thresholds import Limit, Threshold


def _pointless(threshold: Threshold, limit: Limit) -> str | None:
    """Why a count's limit decides nothing: it can never fire, or fires always; None if it can."""
    if (
        threshold.spec.value != "count"
        or limit.op == ""
        or (limit.value > 0 if limit.op == "<" else limit.value >= 0)
    ):
        return None
    key, outcome = ("below", "it can never fire") if limit.op == "<" else ("above", "it always fires")
    return f"{key}: {threshold.format_value(limit.value)}: a count is never below 0; {outcome}"


def cannot_fire(thresholds: tuple[Threshold, ...], discover: bool, replies: bool = True) -> list[str]:
    """One line per problem, each naming the threshold's key path and alert name."""
    found = []
    for i, t in enumerate(thresholds):
        where = f"thresholds[{i}] ({t.name})"
        if t.spec.on_sessions and not discover:
            found.append(f"{where}: metric {t.kind} needs discover: true; it can never fire")
        if t.spec.on_replies and not replies:
            found.append(f"{where}: metric {t.kind} needs replies.enabled: true; it can never fire")
        if why := _pointless(t, t.limit):
            found.append(f"{where}: {why}")
        for account, limit in t.overrides:
            if t.accounts and account not in t.accounts:
                found.append(
                    f"{where}: overrides.{account}: {account} is not in the threshold's accounts;"
                    " the override never applies"
                )
            elif (why := _pointless(t, limit)) and why != _pointless(t, t.limit):
                found.append(f"{where}: overrides.{account}: {why} for {account}")
    return found
