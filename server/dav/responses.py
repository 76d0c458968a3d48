"""Small answers, cheaply: the ``Date`` header and bodiless statuses.

Formatting an HTTP date with :func:`email.utils.formatdate` costs more than a
database lookup; a network drive sends hundreds of requests a second, all
within the same second, so the text is computed once per second.  wsgidav's
``send_status_response`` also renders an HTML page for every 201; the
answers here carry no body, as RFC 4918 allows (and as Apache and nginx do).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from typing import Any

__all__ = ["http_date", "send_status"]

_cached: tuple[int, str] = (0, "")


def http_date(when: float | None = None) -> str:
    """``when`` (default: now) as an RFC 9110 HTTP date."""
    global _cached
    if when is not None:
        return formatdate(when, usegmt=True)
    second = int(time.time())
    cached_second, text = _cached
    if cached_second != second:
        text = formatdate(second, usegmt=True)
        _cached = (second, text)  # one assignment: threads see the old pair or the new one
    return text


def send_status(start_response: Any, status: str, headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    """Answer ``status`` (e.g. ``"201 Created"``) with no body."""
    start_response(status, [("Content-Length", "0"), ("Date", http_date()), *(headers or [])])
    return [b""]
