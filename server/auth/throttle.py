"""Failed logins, counted per account and per client address, answered by refusing early.

Every surface that checks a password (WebDAV Basic, the web login, later share
passwords) goes through one :class:`Throttle`, held by the
:class:`~server.auth.Authenticator`.  Before a password is verified the
surface asks :meth:`Throttle.check`; an attempt that comes too soon is refused
at once (HTTP 429 with ``Retry-After``) without verifying anything, so it
costs no Argon2 work and no worker thread ever sleeps.

Rules (``[throttle]``), applied to each key separately, the longer wait wins:

- failures older than ``window_seconds`` are forgotten;
- after ``n >= delay_after`` failures, the next attempt must come at least
  ``2 ** (n - delay_after)`` seconds (at most ``max_delay_seconds``) after the
  last failure: 1 s, 2 s, 4 s...;
- from ``max_failures`` failures within the window, every attempt is refused
  until the oldest of them leaves the window.

Keys, and why both:

- the **account** key (the name as given, NFC, trimmed, lower case, as
  :func:`~server.auth.normalize_username`; hashed so the store holds no names)
  limits guessing one account's password from many addresses.  Unknown names
  get a key exactly like known ones, so the throttle's answers say nothing of
  which accounts exist;
- the **address** key (the client address; IPv6 by its /64 prefix, since one
  host or home router usually holds a whole /64 and can pick any address in
  it) limits one client spraying a few passwords over many accounts, which
  the account key alone never sees.

A success resets the account key only.  Resetting the address key too would
let an attacker holding one valid account clear their own counter between
guesses at other accounts.

Trade-offs, accepted on purpose:

- **Lockout.** Anyone who knows a user name can keep that account refused
  (``max_failures`` wrong passwords per window, from anywhere).  The refusal
  is temporary and costs the attacker their own address's budget too; the
  alternative (no per-account limit) leaves distributed guessing unbounded.
- **No bypass for cached credentials.** A credential verified a moment ago is
  refused like any other while its account is throttled.  Letting cache hits
  through would answer 200 to the right password and 429 to wrong ones with no
  limit on the rate: a free oracle during every lockout of an active user.
- **A success resets the account's counter**, so while the real user keeps
  logging in, guessers spread over many addresses get ``delay_after`` fast
  tries per reset; each of their addresses is still bounded by its own key.
- **Shared addresses.** Everyone behind one NAT (a hospital, a practice)
  shares the address key: ``max_failures`` failures there within the window,
  e.g. one client retrying a stale password, refuse that address for a while.
  Keep it in mind when choosing the numbers; behind a reverse proxy set
  ``[server] trusted_proxies`` or every client shares the proxy's address.

The counts live in a :class:`ThrottleStore`; :class:`MemoryThrottleStore`
(one process, bounded memory) is the default, and a shared store (Redis: a
sorted set per key, trimmed by score and by rank, with an expiry) implements
the same three methods when several nodes serve one instance.  Times are
wall-clock seconds (``time.time()``) so that nodes can share them.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import threading
import time
import unicodedata
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from server.auth.client import parse_address
from server.errors import AuthenticationFailed

if TYPE_CHECKING:
    from server.config import ThrottleSettings

__all__ = [
    "DEFAULT_MAX_KEYS",
    "Failures",
    "MemoryThrottleStore",
    "Throttle",
    "ThrottleStore",
    "Throttled",
    "address_key",
]

logger = logging.getLogger(__name__)

#: Keys a :class:`MemoryThrottleStore` holds at most (up to ~450 bytes each: ~45 MB when full).
DEFAULT_MAX_KEYS = 100_000
#: IPv6 clients are grouped by this prefix length.
IPV6_PREFIX = 64
_MAX_EXPONENT = 30  # 2**30 s is far beyond any max_delay_seconds


class Throttled(AuthenticationFailed):
    """Too many failed logins: the attempt was refused without checking the credentials.

    A subclass of :class:`~server.errors.AuthenticationFailed`, so a surface
    that does not know it still refuses; surfaces that do answer 429 with
    ``Retry-After: retry_after``.
    """

    def __init__(self, retry_after: float) -> None:
        #: Whole seconds to wait, rounded up (at least 1).
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed logins; retry in {self.retry_after} s")


@dataclass(frozen=True, slots=True)
class Failures:
    """The failures a key has within the window."""

    count: int
    #: Time of the latest failure (None when count is 0).
    last: float | None = None
    #: Time of the earliest failure still held (None when count is 0).
    oldest: float | None = None


class ThrottleStore(Protocol):
    """Where failure times are kept, per key.  Must be safe to call from many threads.

    A store keeps, for each key, the times of at most ``keep`` latest failures
    younger than ``window_seconds``; a key with none may be forgotten.
    """

    def record_failure(self, key: str, now: float, *, window_seconds: float, keep: int) -> int:
        """Add a failure at ``now``; return how many the key holds within the window."""
        ...

    def failures(self, key: str, now: float, *, window_seconds: float) -> Failures:
        """The key's failures within the window ending at ``now``."""
        ...

    def reset(self, key: str) -> None:
        """Forget every failure of the key."""
        ...


class MemoryThrottleStore:
    """A :class:`ThrottleStore` in this process's memory, bounded.

    Keys are kept in the order of their latest failure: each recording drops
    keys whose latest failure has left the window, then the least recently
    failed keys beyond ``max_keys``.  Under a flood of distinct keys the
    oldest counts are lost first, which favours the attacker only for keys
    they stopped using.
    """

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        self._times: OrderedDict[str, array[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._times)

    def record_failure(self, key: str, now: float, *, window_seconds: float, keep: int) -> int:
        horizon = now - window_seconds
        with self._lock:
            times = self._times.pop(key, None)
            if times is None:
                times = array("d")
            else:
                del times[: bisect.bisect_right(times, horizon)]
            bisect.insort(times, now)  # usually an append; clocks of several nodes may disagree a little
            if len(times) > keep:
                del times[: len(times) - keep]
            self._times[key] = times
            self._expire(horizon)
            return len(times)

    def _expire(self, horizon: float) -> None:
        """Drop keys whose latest failure is out of the window, then the oldest beyond the cap."""
        while self._times:
            key, times = next(iter(self._times.items()))
            if times[-1] > horizon and len(self._times) <= self._max_keys:
                return
            del self._times[key]

    def failures(self, key: str, now: float, *, window_seconds: float) -> Failures:
        with self._lock:
            times = self._times.get(key)
            if times is None:
                return Failures(0)
            first = bisect.bisect_right(times, now - window_seconds)
            if first == len(times):
                return Failures(0)
            return Failures(len(times) - first, last=times[-1], oldest=times[first])

    def reset(self, key: str) -> None:
        with self._lock:
            self._times.pop(key, None)


@functools.lru_cache(maxsize=4096)  # a pure function on the path of every request
def address_key(address: str) -> str:
    """The store key of a client address: IPv4 as is, IPv6 by its /64 network."""
    parsed = parse_address(address)
    if parsed is None:
        # Not an IP address (a Unix socket, a test client): one key per spelling, bounded in size.
        return "addr:?" + hashlib.blake2b(address.encode(errors="replace"), digest_size=16).hexdigest()
    if isinstance(parsed, ipaddress.IPv6Address):
        return f"addr:{ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False)}"
    return f"addr:{parsed}"


def _account_name(account: str) -> str:
    return unicodedata.normalize("NFC", account).strip().lower()


class Throttle:
    """Decides whether a login attempt may be checked now (see the module docstring)."""

    def __init__(self, settings: ThrottleSettings, store: ThrottleStore | None = None) -> None:
        self._settings = settings
        self._store: ThrottleStore = store if store is not None else MemoryThrottleStore()
        # Logs name an account by a hash keyed per process: correlatable within a run, not reversible.
        self._log_key = secrets.token_bytes(16)

    @property
    def store(self) -> ThrottleStore:
        return self._store

    @property
    def settings(self) -> ThrottleSettings:
        return self._settings

    @staticmethod
    @functools.lru_cache(maxsize=4096)  # a pure function on the path of every request
    def account_key(account: str) -> str:
        """The store key of an account name (hashed: the same on every node, bounded, no name stored)."""
        digest = hashlib.blake2b(_account_name(account).encode(errors="replace"), digest_size=16).hexdigest()
        return f"acct:{digest}"

    def _keys(self, account: str | None, address: str) -> list[str]:
        keys = [address_key(address)]
        if account is not None:
            keys.append(self.account_key(account))
        return keys

    def _wait(self, failures: Failures, now: float) -> float:
        s = self._settings
        if failures.count >= s.max_failures and failures.oldest is not None:
            return failures.oldest + s.window_seconds - now
        if failures.count >= s.delay_after and failures.last is not None:
            delay = min(2.0 ** min(failures.count - s.delay_after, _MAX_EXPONENT), float(s.max_delay_seconds))
            return failures.last + delay - now
        return 0.0

    def check(self, account: str | None, address: str, now: float | None = None) -> float | None:
        """Seconds to wait before this attempt may be checked (the Retry-After), or None: go ahead.

        ``account`` is the name as the client gave it (None when it gave
        none); ``address`` the client address (:func:`~server.auth.client.client_address`).
        """
        now = time.time() if now is None else now
        window = self._settings.window_seconds
        wait = max(
            self._wait(self._store.failures(k, now, window_seconds=window), now) for k in self._keys(account, address)
        )
        return wait if wait > 0 else None

    def failed(self, account: str | None, address: str, now: float | None = None) -> None:
        """Count a failed attempt against the account (when given) and the address."""
        now = time.time() if now is None else now
        s = self._settings
        for key in self._keys(account, address):
            count = self._store.record_failure(key, now, window_seconds=s.window_seconds, keep=s.max_failures)
            if count == s.max_failures:
                logger.warning(
                    "%d failed logins within %d s for %s: further attempts refused until the oldest expires",
                    count,
                    s.window_seconds,
                    self._describe(key, account, address),
                )

    def succeeded(self, account: str, address: str) -> None:
        """A login succeeded: forget the account's failures (not the address's)."""
        self._store.reset(self.account_key(account))

    def _describe(self, key: str, account: str | None, address: str) -> str:
        if key.startswith("addr:"):
            return f"address {address}"
        name = _account_name(account or "").encode(errors="replace")
        return f"account #{hmac.new(self._log_key, name, hashlib.sha256).hexdigest()[:12]} (from {address})"
