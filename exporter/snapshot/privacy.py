"""Privacy mode: what the exporter writes in place of a chat's id (a phone number) and its name.

The policy is applied once, where a poll's chats enter the snapshot
(:meth:`exporter.snapshot.state.ChatData.build`): everything downstream (metrics,
the status page, alert labels and annotations, log lines, the state file) only
ever sees the transformed chats, so no output has to remember to hide anything.
Filters (``chats.include/exclude``, ``waiting.include/exclude``) are decided on
the real values before the transform.

* ``plain``: the value as WhatsGate sent it (the default, and the behaviour before
  privacy mode existed).
* ``hash``: HMAC-SHA256 of the value under a secret key, as 16 hex characters
  (64 bits). Stable across restarts with the same key, so a chat keeps its series
  and its wait; without the key, nobody can enumerate phone numbers to find out
  whose it is (a plain hash of a 12-digit number is reversed by brute force in
  minutes).
* ``drop``: for ids, no per-chat series at all (the snapshot still keys waits by
  an HMAC internally); for names, an empty name (Prometheus treats a label whose
  value is empty as absent, so ``whatsgate_chat_info`` carries no ``name``).

This module depends on nothing but the standard library and :mod:`exporter.model`.
"""

from __future__ import annotations

import ast
import hmac
import re
import secrets
from dataclasses import dataclass, field

from ..model import Chat

PLAIN = "plain"
HASH = "hash"
DROP = "drop"
MODES = (PLAIN, HASH, DROP)
HIDDEN = "<hidden>"
DIGEST_HEX = 16

# Used for the internal wait keys under chat_ids: drop when no key_file is given. Made once per
# process (not per config load), so a reload keeps the waits; a restart does not (documented).
_PROCESS_KEY = secrets.token_bytes(32)

# Where the parser and the client put a chat's id or name into an error detail:
# "data[3][id='79991112233@c.us'].unreadCount: ...", "data: chat id '7999@c.us' appears twice".
# A Python repr, possibly cut short (an excerpt ends at 200 characters).
_QUOTED = r"""'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?"""
_ID_IN_DETAIL = re.compile(rf"(\[id=|chat id )({_QUOTED})")
# Anything else shaped like a WhatsApp id (in an excerpt of a broken body, an API error message).
_WA_ID = re.compile(r"[\w.+-]+@(?:c\.us|g\.us|s\.whatsapp\.net|lid|broadcast|newsletter)\b")
# Five digits or more, as phone numbers are written (79991112233, +7 (999) 111-22-33): an excerpt
# cut inside a number, or before its "@c.us", still holds it. The exporter's own numbers in a
# detail are shorter, but for byte counts and big indices, which privacy mode hides with them.
_DIGITS = re.compile(r"\+?(?<!\d)\d(?:[\s().-]{0,2}\d){4,}")
# A chat's name as JSON in an excerpt of a body that did not parse.
_NAME_IN_JSON = re.compile(r'("name"\s*:\s*)"(?:[^"\\]|\\.)*"?')
# Where an API's error text names a person: in parentheses or quotes ("(Ivan Ivanov) is blocked",
# 'chat "Вася" not found'); hidden when the span holds a capitalised word or a letter outside ASCII,
# as names are written, while the exporter's own asides ("(text/html)", "(not followed)") stay.
_SPAN = re.compile(r"""\([^()]*\)?|"[^"]*"?|'[^']*'?|«[^»]*»?|“[^”]*”?""")
_NAME_LIKE = re.compile(r"\b[A-Z][a-z]+\b|[^\W\d_a-zA-Z]")


@dataclass(frozen=True)
class Privacy:
    """The ``privacy:`` section as a policy: ``chat_id(real)`` and ``name(real)`` give what is shown."""

    chat_ids: str = PLAIN
    names: str = PLAIN
    # The HMAC key (the key file's bytes, stripped). repr=False: never in a log line or traceback.
    key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        for what, mode in (("chat_ids", self.chat_ids), ("names", self.names)):
            if mode not in MODES:
                raise ValueError(f"privacy.{what}: expected one of {', '.join(MODES)}, got {mode!r}")
            if mode == HASH and not self.key:
                raise ValueError(f"privacy.{what}: hash needs a key")

    @property
    def plain(self) -> bool:
        return self.chat_ids == PLAIN and self.names == PLAIN

    @property
    def per_chat(self) -> bool:
        """Whether any chat gets per-chat series (``chat_ids: drop`` means aggregates only)."""
        return self.chat_ids != DROP

    def _digest(self, value: str, key: bytes) -> str:
        # hmac.digest: one call for key, value and digest.
        return hmac.digest(key, value.encode("utf-8", "surrogatepass"), "sha256").hex()[:DIGEST_HEX]

    def chat_id(self, real: str) -> str:
        """What stands for the chat's id everywhere; under drop, a stable key for the waits only."""
        if self.chat_ids == PLAIN:
            return real
        return self._digest(real, self.key or _PROCESS_KEY)

    def name(self, real: str) -> str:
        """What stands for the chat's name; an empty name stays empty (there is nothing to hide)."""
        if self.names == PLAIN or not real:
            return real
        return self._digest(real, self.key) if self.names == HASH else ""

    def chat(self, real: Chat) -> Chat:
        """The chat as the snapshot keeps it. Group participants are never kept, in any mode."""
        return real.shown_as(self.chat_id(real.id), self.name(real.name))

    def scrub(self, detail: str) -> str:
        """An error detail (log line, ``/``, last error) without real chat ids, numbers or names.

        The parser names the chat that broke an answer by its id: that id is replaced by
        the one the metrics show (hash) or by ``<hidden>`` (drop), so an operator can still
        find the chat under hash. The rest of the detail may quote the API (an excerpt of a
        broken body, an error message), whose text nothing here can vouch for: under
        ``chat_ids: hash|drop`` anything shaped like a WhatsApp id and every run of five
        digits or more is hidden, under ``names: hash|drop`` JSON names and the names of
        people the API's text puts in parentheses or quotes. Real names are not kept to look
        for: the snapshot holds only their transformed values.
        """
        if self.plain:
            return detail
        out, end = [], 0
        for match in _ID_IN_DETAIL.finditer(detail):
            out += [self._hide(detail[end : match.start()]), self._chat_id_in(match)]
            end = match.end()
        out.append(self._hide(detail[end:]))
        return "".join(out)

    def _chat_id_in(self, match: re.Match[str]) -> str:
        if self.chat_ids == PLAIN:
            return match.group(0)
        try:
            real = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):  # cut short by the excerpt: nothing to show
            real = None
        if self.chat_ids == HASH and isinstance(real, str):
            return f"{match.group(1)}{self.chat_id(real)!r}"
        return f"{match.group(1)}{HIDDEN}"

    def _hide(self, text: str) -> str:
        if self.chat_ids != PLAIN:
            text = _DIGITS.sub(HIDDEN, _WA_ID.sub(HIDDEN, text))
        if self.names != PLAIN:
            text = _SPAN.sub(_hide_name, _NAME_IN_JSON.sub(rf'\1"{HIDDEN}"', text))
        return text


def _hide_name(match: re.Match[str]) -> str:
    span = match.group(0)
    if not _NAME_LIKE.search(span):
        return span
    closed = len(span) > 1 and span[-1] in ")\"'»”"
    return f"{span[0]}{HIDDEN}{span[-1] if closed else ''}"


PLAIN_POLICY = Privacy()
