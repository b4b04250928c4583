"""Discovery's ``sessions-get``, page by page with checks (``WhatsGateClient.sessions``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..model import INVALID_RESPONSE, Session
from .errors import PollError
from .parse import parse_sessions

# sessions-get paging: 100 pages of 100 is 10,000 sessions; past that, say so instead of
# dropping the rest silently.
PAGE_SIZE = 100
MAX_PAGES = 100


def paginate(
    call: Callable[..., Any], page_size: int = PAGE_SIZE, max_pages: int = MAX_PAGES
) -> list[Session]:
    """Follow ``sessions-get`` pages; ``call`` is :meth:`WhatsGateClient.call`.

    A discovery must neither drop nor invent sessions on a bad answer: a page
    count that changes while paging, the same session listed again with other
    data, and more pages than the cap are errors (``invalid_response``), never
    silently accepted; a server that ignores ``page`` repeats sessions unchanged,
    which is harmless, so sessions are de-duplicated by id.
    """
    found: dict[str, Session] = {}
    page, pages, first_pages = 1, 1, None
    while page <= pages:
        if page > max_pages:
            raise PollError(
                INVALID_RESPONSE, f"sessions-get: more than {max_pages} pages of {page_size} sessions"
            )
        sessions, pages = call("sessions-get", {"page": page, "page_cnt": page_size}, parse_sessions)
        if first_pages is None:
            first_pages = pages
        elif pages != first_pages:
            raise PollError(
                INVALID_RESPONSE,
                f"sessions-get: page count changed from {first_pages} to {pages} while paging",
            )
        for session in sessions:
            known = found.get(session.whatsapp_id)
            if known is not None and known != session:
                raise PollError(
                    INVALID_RESPONSE, f"sessions-get: page {page} lists a session again with different data"
                )
            found[session.whatsapp_id] = session
        if not sessions:
            break
        page += 1
    return list(found.values())
