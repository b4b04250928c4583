"""Content negotiation for /metrics: does the client take gzip (RFC 9110, section 12.5.3)?

Prometheus sends ``Accept-Encoding: gzip``; curl and browsers send lists with
q-values. ``gzip;q=0`` refuses gzip, ``*`` accepts whatever is not named, and a
malformed q-value counts as a refusal rather than a guess.
"""

from __future__ import annotations


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header value lets us answer with gzip."""
    if not header:
        return False
    named: dict[str, float] = {}
    for item in header.split(","):
        coding, *params = item.split(";")
        coding = coding.strip().lower()
        if coding:
            named[coding] = max(named.get(coding, 0.0), _quality(params))
    coding = next((c for c in ("gzip", "x-gzip") if c in named), "*")  # the first named decides
    return named.get(coding, 0.0) > 0
