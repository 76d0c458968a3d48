"""A small in-memory rate limit: at most ``limit`` events per key within a sliding window.

Used by ``/ui/forgot`` (per client address: reset mails asked for).  It is not
:class:`server.auth.Throttle`: that one counts *failed* logins, and a reset
request is neither a failure nor a login, so mixing them would let reset
requests lock an address out of signing in (and the reverse).

The counts live in this process, bounded to :data:`MAX_KEYS` keys (the oldest
forgotten first), and are lost at restart; several nodes serving one
instance each count on their own.  That is enough for its purpose: keeping
one client from making MedDAV mail-bomb someone, or spend the mail quota.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

__all__ = ["MAX_KEYS", "RateLimit"]

MAX_KEYS = 10_000


class RateLimit:
    """At most ``limit`` hits per key within ``window_seconds`` (thread-safe)."""

    def __init__(self, limit: int, window_seconds: float, *, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, *, now: float | None = None) -> float | None:
        """Count a hit of ``key``; None when allowed, else the seconds until one is (the hit is not counted)."""
        now = time.time() if now is None else now
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window_seconds:
                hits.popleft()
            wait: float | None = None
            if len(hits) >= self.limit:
                wait = hits[0] + self.window_seconds - now
            else:
                hits.append(now)
            self._hits[key] = hits
            while len(self._hits) > self._max_keys:
                self._hits.popitem(last=False)
            return wait
