"""The reference definition of the per-chat families, as a prometheus-client collector.

The exporter writes these families with :mod:`exporter.metrics.fastrender`, straight
to text; tests/unit/test_fastrender.py holds that text byte-identical to
``generate_latest`` of this collector. It lives with the tests because nothing
else renders it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.metrics import definitions as d
from exporter.model import GROUP, Account
from exporter.snapshot.state import ChatData


class ChatCollector(Collector):
    """Per-chat and per-group series for the selected chats of one account.

    Sample::

        whatsgate_chat_unread_messages{account="support",chat_id="79991112233@c.us",...} 3.0
        whatsgate_chat_info{account="support",chat_id="79991112233@c.us",name="Vasily",...} 1.0
        whatsgate_group_participants{account="support",chat_id="4239048293082@g.us",...} 2.0
    """

    def __init__(self, account: Account, data: ChatData) -> None:
        self.account = account
        self.data = data

    def collect(self) -> Iterator[Metric]:
        acc = list(self.account.labels)
        chats = self.data.selection.chats
        unread, activity, info = d.CHAT_UNREAD.family(), d.CHAT_LAST_ACTIVITY.family(), d.CHAT_INFO.family()
        for chat in chats:
            labels = [*acc, chat.id, chat.chat_type]
            unread.add_metric(labels, float(chat.unread))
            activity.add_metric(labels, float(chat.last_activity))
            info.add_metric([*labels, chat.name], 1.0)
        yield unread
        yield activity
        yield info

        by_chat = self.data.wait_by_chat
        since, seconds = d.CHAT_WAITING_SINCE.family(), d.CHAT_WAITING_SECONDS.family()
        for chat in chats:
            wait = by_chat.get(chat.id)
            if wait is not None:
                labels = [*acc, chat.id, chat.chat_type]
                since.add_metric(labels, wait.since)
                seconds.add_metric(labels, wait.seconds)
        yield since
        yield seconds

        participants, admins = d.GROUP_PARTICIPANTS.family(), d.GROUP_ADMINS.family()
        created = d.GROUP_CREATED.family()
        for chat in chats:
            group = chat.group
            if chat.chat_type != GROUP or group is None:
                continue
            labels = [*acc, chat.id]
            participants.add_metric(labels, float(group.member_count))
            if group.admins is not None:
                admins.add_metric(labels, float(group.admins))
            if group.created:
                created.add_metric(labels, float(group.created))
        yield participants
        yield admins
        yield created
