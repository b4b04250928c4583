"""Control methods for messages and events, so tests can script exact scenarios.

A customer writes to chat X at time T (``receive``), we answer at T2 (``reply``), an agent
reads without answering (``read``), the customer reads our answer (``ack``), the session drops
(``disconnect``), or anything at all lands in the event log (``add_event``). Every one goes
through the account's log (log.py), so get-chats, events-get and get-history agree; they take
effect on the next request. Times are Unix seconds (default: the simulator's clock now).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any

from .data import SimAccount, new_chat
from .log import AccountLog, Options


class Scripting:
    """Mixed into ``Simulator``: the message-level control methods and their shared lookups."""

    _lock: threading.Lock
    _accounts: dict[str, SimAccount]
    _logs: dict[str, AccountLog]
    _options: Options
    _cache: dict[str, bytes]
    _clock: Callable[[], float]

    def _account(self, whatsapp_id: str) -> SimAccount:
        raise NotImplementedError

    def receive(
        self,
        whatsapp_id: str,
        chat_id: str,
        at: float | None = None,
        *,
        body: str | None = None,
        author: str | None = None,
        media: bool = False,
        forwarded: bool = False,
        logged_at: float | None = None,
        name: str | None = None,
    ) -> str:
        """A customer's message in ``chat_id`` (created, named ``name``, if new); its message id.

        Unread grows by one and last activity moves to ``at``. ``author``: who wrote in a group
        (default its first member). ``logged_at``: the event's time if WhatsGate logged it later.
        """
        kwargs = {"body": body, "author": author, "media": media, "forwarded": forwarded}
        return self._message(whatsapp_id, chat_id, False, at, name, logged_at=logged_at, **kwargs)

    def reply(
        self,
        whatsapp_id: str,
        chat_id: str,
        at: float | None = None,
        *,
        body: str | None = None,
        media: bool = False,
        logged_at: float | None = None,
    ) -> str:
        """Our message in ``chat_id`` (a ``create`` event); it reads the chat. Its message id."""
        kwargs = {"body": body, "media": media, "logged_at": logged_at}
        return self._message(whatsapp_id, chat_id, True, at, None, **kwargs)

    def read(self, whatsapp_id: str, chat_id: str) -> None:
        """An agent reads ``chat_id`` without answering: unread back to 0, nothing logged."""
        with self._lock:
            self._logs[whatsapp_id].read(self._chat(whatsapp_id, chat_id))
            self._cache.pop(whatsapp_id, None)

    def ack(self, whatsapp_id: str, message_id: str, ack: int = 3, at: float | None = None) -> int:
        """An ``ack`` event for one of the history's messages (3: read); the event's id."""
        with self._lock:
            return self._logs[whatsapp_id].ack(message_id, ack, self._when(at))

    def disconnect(self, whatsapp_id: str, at: float | None = None, reason: str = "NAVIGATION") -> int:
        """A ``disconnect`` event, ``event_data`` ``{"reason": reason}``; the session's status is
        unchanged (``set_status`` changes it). The event's id."""
        return self.add_event(whatsapp_id, "disconnect", {"reason": reason}, at)

    def add_event(self, whatsapp_id: str, action: str, data: Any, at: float | None = None) -> int:
        """Any event, malformed or unknown ones included, with ``data`` as its event_data; its id."""
        with self._lock:
            self._account(whatsapp_id)
            return self._logs[whatsapp_id].event(action, data, self._when(at))

    def events(self, whatsapp_id: str) -> list[dict[str, Any]]:
        """The account's event log as stored, oldest first."""
        with self._lock:
            return self._logs[whatsapp_id].events()

    def history(self, whatsapp_id: str, chat_id: str) -> list[dict[str, Any]]:
        """What get-history would answer for ``chat_id`` now."""
        with self._lock:
            kept = self._logs[whatsapp_id].history(chat_id, self._clock())
            return [json.loads(raw) for raw in kept]

    def set_options(self, **changes: Any) -> None:
        """Changes ``log.Options`` (``newest_first``, ``history_newest_first``, ``time_zone``,
        ``body_marker``, ``max_events``); a new zone rewrites every stored event_date."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(Options) if f.init}
        if unknown:
            raise ValueError(f"unknown option {', '.join(sorted(unknown))}")
        dataclasses.replace(self._options, **changes)  # checks the values before any is applied
        with self._lock:
            for name, value in changes.items():
                setattr(self._options, name, value)
            self._options.check()
            if "time_zone" in changes:
                for log in self._logs.values():
                    log.rerender()

    def _message(
        self, wid: str, chat_id: str, ours: bool, at: float | None, name: str | None, **kwargs: Any
    ) -> str:
        with self._lock:
            t = self._when(at)
            if kwargs.get("logged_at") is not None:
                kwargs["logged_at"] = float(kwargs["logged_at"])
            account = self._account(wid)
            log = self._logs[wid]
            if not any(c.get("id") == chat_id for c in account.chats):
                members = [kwargs.get("author") or "79990000000@c.us", log.number]
                account.chats.append(new_chat(chat_id, name, int(t), members))
            chat = self._chat(wid, chat_id)
            message = log.outgoing(chat, t, **kwargs) if ours else log.incoming(chat, t, **kwargs)
            self._cache.pop(wid, None)
            return str(message["id"])

    def _chat(self, wid: str, chat_id: str) -> dict[str, Any]:
        for chat in self._account(wid).chats:
            if chat.get("id") == chat_id:
                return chat
        raise KeyError(f"no chat {chat_id!r}")

    def _when(self, at: float | None) -> float:
        return self._clock() if at is None else float(at)
