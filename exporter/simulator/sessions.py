"""``sessions-get``: filtering, pagination, and the faults of discovery.

The ``sessions_*`` faults reproduce what makes account discovery drop or freeze accounts: an
answer that is empty or short once, a server that ignores ``page``, a ``pages`` count that
grows with every request, and a lone UTF-16 surrogate in a session's fields.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .faults import Fault
from .wire import JSON_TYPE, Reply, error, json_bytes

_FILTERS = (("unique_id", "WhatsappID"), ("name", "name"), ("status", "status"))


def sessions_reply(sessions: list[dict[str, Any]], req: dict[str, Any], fault: Fault | None) -> Reply:
    """One page of ``sessions`` (all sessions, in order) as asked by ``req``, shaped by ``fault``.

    The caller holds the simulator's lock: the fault's ``used`` counter changes here.
    """
    try:
        page_cnt, page = int(req.get("page_cnt", 20)), int(req.get("page", 1))
    except (TypeError, ValueError):
        page_cnt = page = 0
    if page_cnt < 1 or page < 1:
        return error("Bad Request", "page and page_cnt must be positive integers")
    wanted = {key: req[field] for key, field in _FILTERS if req.get(field) not in (None, "")}
    if wanted:
        sessions = [s for s in sessions if all(s[k] == v for k, v in wanted.items())]
    name = fault.name if fault is not None else None
    if fault is not None:
        fault.used += 1
    if name == "sessions_empty":
        sessions = []
    elif name == "sessions_short" and fault is not None:
        drop = fault.params["drop"] or max(1, len(sessions) // 2)
        sessions = sessions[: max(0, len(sessions) - drop)]
    elif name == "sessions_surrogate" and fault is not None:
        sessions = [*sessions, _surrogate_session(len(sessions) + 1, fault.params["fields"])]
    if name == "sessions_ignore_page":
        page = 1
    pages = math.ceil(len(sessions) / page_cnt)
    if name == "sessions_growing_pages" and fault is not None:
        pages += fault.used  # one more page on every request; the pages past the real ones are empty
    first = (page - 1) * page_cnt
    answer = {"result": "OK", "pages": pages, "elements": len(sessions), "page": page}
    answer["data"] = sessions[first : first + page_cnt]
    if name == "sessions_surrogate":  # ensure_ascii writes the surrogate as the escape \ud800
        return 200, json.dumps(answer, separators=(",", ":")).encode(), JSON_TYPE, {}
    return 200, json_bytes(answer), JSON_TYPE, {}


def exhausted(fault: Fault) -> bool:
    """Whether a fault that answers a number of ``times`` has used them all up."""
    return "times" in fault.params and fault.used >= fault.params["times"]


def _surrogate_session(index: int, fields: list[str]) -> dict[str, Any]:
    bad = "\ud800"
    return {
        "id": index,
        "name": f"Broken {bad}" if "name" in fields else "Broken",
        "unique_id": f"broken-{bad}" if "unique_id" in fields else "broken-session",
        "status": f"READY{bad}" if "status" in fields else "READY",
        "status_name": "Ready",
        "callback": "",
        "date_add": "2024-01-01 10:00:00",
        "pushname": "",
        "wid": "",
        "qr_link": "",
    }
