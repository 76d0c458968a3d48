"""Sessions of a link's recipient on its web pages, and the codes e-mailed to open them.

A recipient who typed the share's password (or an e-mailed code) gets a session
bound to that share only: the cookie ``meddav_share`` (HttpOnly, SameSite=Lax,
Secure under TLS, ``Path=/s/<token>`` so that it goes to that share's pages
only) carries a random 256-bit secret; the server keeps, under a digest of it,
the share's id, the times, the files this session has taken a download of (a
file fetched again by the same session is not another download) and what it
put in a drop box (the only names a drop box ever shows).  A session ends after
:data:`IDLE_SECONDS` without a request or :data:`LIFETIME_SECONDS` after it
opened, and with the share: every request finds the link again, so a revoked or
expired share closes its sessions on their next click.

Sessions and codes live in this process (bounded, oldest dropped first): a
restart asks recipients for the password again, which is the safe side.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "CODE_ATTEMPTS",
    "CODE_SECONDS",
    "COOKIE",
    "IDLE_SECONDS",
    "LIFETIME_SECONDS",
    "ShareCodes",
    "ShareSession",
    "ShareSessions",
]

COOKIE = "meddav_share"
IDLE_SECONDS = 30 * 60
LIFETIME_SECONDS = 8 * 3600
#: How long an e-mailed code opens the share, and how many wrong codes end it.
CODE_SECONDS = 10 * 60
CODE_ATTEMPTS = 5
CODE_DIGITS = 8
#: Codes sent for one share within a day, at most (a mailbox is not flooded, guessing stays hopeless:
#: at most 50 tries a day against 10^8 codes).
CODES_PER_DAY = 10
#: The least time between two codes sent for one share (a mailbox is not flooded).
CODE_RESEND_SECONDS = 60
_MAX_SESSIONS = 10_000
_MAX_CODES = 10_000
_MAX_SENT = 500  # files one session remembers having put in a drop box


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass
class ShareSession:
    """One recipient's session on one share."""

    share_id: int
    opened_at: float
    seen_at: float
    downloaded: set[int] = field(default_factory=set)  # node ids: one download per file and session
    sent: list[tuple[str, int]] = field(default_factory=list)  # (name as sent, node id) put in a drop box


class ShareSessions:
    """Recipients' sessions, by a digest of their cookie's secret."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._sessions: OrderedDict[bytes, ShareSession] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, share_id: int) -> str:
        """A new session on ``share_id``: the secret for the cookie (never stored)."""
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._sessions[_digest(secret)] = ShareSession(share_id, now, now)
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return secret

    def get(self, secret: str | None, share_id: int) -> ShareSession | None:
        """The live session of this cookie on ``share_id`` (another share's session opens nothing)."""
        if not secret:
            return None
        key, now = _digest(secret), self.clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.seen_at > IDLE_SECONDS or now - session.opened_at > LIFETIME_SECONDS:
                del self._sessions[key]
                return None
            if session.share_id != share_id:
                return None
            session.seen_at = now
            self._sessions.move_to_end(key)
            return session

    def close(self, secret: str | None) -> None:
        if secret:
            with self._lock:
                self._sessions.pop(_digest(secret), None)

    def take_download(self, session: ShareSession, node_id: int) -> bool:
        """True the first time this session fetches this file (that is one download)."""
        with self._lock:
            if node_id in session.downloaded:
                return False
            session.downloaded.add(node_id)
            return True

    def remember_upload(self, session: ShareSession, name: str, node_id: int) -> None:
        with self._lock:
            session.sent.append((name, node_id))
            del session.sent[:-_MAX_SENT]


@dataclass
class _Code:
    digest: bytes
    until: float
    sent_at: float
    attempts: int = 0
    sent_today: list[float] = field(default_factory=list)


class ShareCodes:
    """One-time codes e-mailed to a link's recipient, for shares opened by codes instead of a password.

    Eight digits, valid :data:`CODE_SECONDS`, used once, dropped after :data:`CODE_ATTEMPTS` wrong
    tries (the throttle of the pages also slows guessing); a new code replaces the previous one, at
    most one a minute and :data:`CODES_PER_DAY` a day per share."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._codes: OrderedDict[int, _Code] = OrderedDict()
        self._lock = threading.Lock()

    def _mac(self, share_id: int, code: str) -> bytes:
        return hmac.new(self._key, f"{share_id}:{code}".encode(), hashlib.sha256).digest()

    def issue(self, share_id: int) -> str | None:
        """A new code for ``share_id``, or None when one was sent less than a minute ago, or too many today."""
        now = self.clock()
        with self._lock:
            previous = self._codes.get(share_id)
            sent = [at for at in (previous.sent_today if previous else []) if now - at < 86400]
            if previous is not None and now - previous.sent_at < CODE_RESEND_SECONDS:
                return None
            if len(sent) >= CODES_PER_DAY:
                return None
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            self._codes[share_id] = _Code(self._mac(share_id, code), now + CODE_SECONDS, now, sent_today=[*sent, now])
            self._codes.move_to_end(share_id)
            while len(self._codes) > _MAX_CODES:
                self._codes.popitem(last=False)
            return code

    def redeem(self, share_id: int, presented: str) -> bool:
        """Whether ``presented`` is the live code of ``share_id``; a right code is used up."""
        typed = "".join(ch for ch in presented if ch.isdigit())[:CODE_DIGITS]
        mac = self._mac(share_id, typed)
        with self._lock:
            code = self._codes.get(share_id)
            if code is None or code.digest == b"" or self.clock() > code.until:
                return False
            if hmac.compare_digest(mac, code.digest):
                code.digest = b""  # used: the day's count stays
                return True
            code.attempts += 1
            if code.attempts >= CODE_ATTEMPTS:
                code.digest = b""
            return False
