"""Who is asking: password hashing and credential verification.

Passwords are hashed with Argon2id through the passlib API (installed from
``libpass``, the maintained fork).  One verification costs ~0.1 s and
``argon2_memory_kib`` of memory, so:

- at most ``[auth] max_concurrent_hashes`` run at once; a request that cannot
  get a slot within a few seconds gets :class:`~server.errors.Busy` (503);
- a successful verification is remembered for ``[auth] cache_seconds``, keyed
  by an HMAC of (user name, password) under a per-process random key (the
  cache holds no password and dies with the process).  Each cached entry
  remembers the user's ``auth_epoch``; changing a password or disabling the
  user bumps it, which invalidates every cached entry at once.  A cached entry
  is checked against the database at most every :data:`RECHECK_SECONDS`: a
  change made by another process (``meddav user passwd``) takes effect within
  that time, one made through this process (``forget_user``) at once.
- unknown user names cost a verification too, so timing does not tell which
  names exist;
- failed logins are throttled per account and per client address
  (:mod:`server.auth.throttle`): :attr:`Authenticator.throttle` is shared by
  every surface, and an attempt that comes too soon raises
  :class:`~server.auth.throttle.Throttled` before anything is verified, cached
  credentials included.

Submodules: :mod:`~server.auth.passwords` (what a new password must be),
:mod:`~server.auth.throttle`, :mod:`~server.auth.client` (the client address
behind trusted proxies).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from passlib.context import CryptContext
from sqlalchemy import bindparam, select, update

from server.auth.client import client_address
from server.auth.passwords import PasswordPolicy, PasswordRejected, Problem
from server.auth.throttle import MemoryThrottleStore, Throttle, Throttled, ThrottleStore
from server.db import prepared
from server.db.models import organisations_t, users_t
from server.errors import AuthenticationFailed, BadRequest, Busy
from server.policy import Principal

if TYPE_CHECKING:
    from server.config import AuthSettings, Settings, ThrottleSettings
    from server.credentials import Credentials
    from server.db import Database

__all__ = [
    "LINK_MISSES_BEFORE_DELAY",
    "LINK_MISSES_MAX",
    "RECHECK_SECONDS",
    "Authenticator",
    "MemoryThrottleStore",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordRejected",
    "Problem",
    "Throttle",
    "ThrottleStore",
    "Throttled",
    "client_address",
    "link_throttle_settings",
    "normalize_username",
]

logger = logging.getLogger(__name__)


def _app_passwords_only(user: Any) -> bool:
    """Drives must use app passwords: the user has a second factor, or their organisation requires one."""
    return user.totp_enabled_at is not None or bool(user.require_second_factor)


_USER_BY_NAME = prepared(
    select(
        users_t.c.id,
        users_t.c.username,
        users_t.c.org_id,
        users_t.c.root_id,
        users_t.c.role,
        users_t.c.totp_enabled_at,
        organisations_t.c.require_second_factor,
        users_t.c.disabled,
        users_t.c.auth_epoch,
        users_t.c.password_hash,
    )
    .select_from(users_t.join(organisations_t, organisations_t.c.id == users_t.c.org_id))
    .where(users_t.c.username == bindparam("username"))
)
_CACHE_ENTRIES = 10_000
#: How long a cached verification is trusted before the user row is read again.
RECHECK_SECONDS = 1.0
_SLOT_WAIT_SECONDS = 5.0
_MAX_USERNAME = 150
#: Link tokens tried in vain from one address, within ``[throttle] window_seconds``, before each next try
#: waits (1 s, 2 s, 4 s... up to ``max_delay_seconds``), and before every try is refused.
LINK_MISSES_BEFORE_DELAY = 20
LINK_MISSES_MAX = 60

T = TypeVar("T")


def link_throttle_settings(logins: ThrottleSettings) -> ThrottleSettings:
    """The throttle of link tokens: the login throttle's window and longest delay, gentler counts."""
    return replace(logins, delay_after=LINK_MISSES_BEFORE_DELAY, max_failures=LINK_MISSES_MAX)


def normalize_username(name: str) -> str:
    """The canonical form of a user name: NFC, trimmed, lower case.

    Raises BadRequest for names that are empty, too long, or contain spaces or
    control characters.
    """
    canonical = unicodedata.normalize("NFC", name).strip().lower()
    if not canonical or len(canonical) > _MAX_USERNAME:
        raise BadRequest(f"a user name has 1 to {_MAX_USERNAME} characters")
    if any(c.isspace() or not c.isprintable() or c in ':/\\"' for c in canonical):
        raise BadRequest('a user name has no spaces, control characters or : / \\ "')
    return canonical


class PasswordHasher:
    """Argon2id hashing with the configured parameters."""

    def __init__(self, settings: AuthSettings) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__rounds=settings.argon2_time_cost,
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__parallelism=settings.argon2_parallelism,
        )

    def hash(self, password: str) -> str:
        # NFC: a password typed on macOS (NFD) and on Windows (NFC) is the same password.
        result: str = self._context.hash(unicodedata.normalize("NFC", password))
        return result

    def verify(self, password: str, stored: str) -> tuple[bool, str | None]:
        """(matches, new hash when the stored one uses outdated parameters)."""
        ok, new_hash = self._context.verify_and_update(unicodedata.normalize("NFC", password), stored)
        return bool(ok), new_hash


@dataclass(slots=True)
class _Verified:
    """A cached successful verification."""

    principal: Principal
    epoch: int
    expires: float
    checked: float


class Authenticator:
    """Turns (user name, password) into a :class:`~server.policy.Principal`, throttling failures."""

    def __init__(
        self,
        settings: AuthSettings,
        db: Database,
        hasher: PasswordHasher,
        *,
        throttle: Throttle,
        credentials: Credentials | None = None,
        links: Throttle | None = None,
    ) -> None:
        #: The one throttle of this process: every surface that checks a password uses it.
        self.throttle = throttle
        #: Tokens of link shares tried in vain, per client address (:meth:`find_link`).
        self.links = links or Throttle(link_throttle_settings(throttle.settings), MemoryThrottleStore())
        #: App passwords (checked by keyed digest, not Argon2) and whether a user has a second factor.
        self.credentials = credentials
        self._db = db
        self._hasher = hasher
        self._ttl = settings.cache_seconds
        self._slots = threading.BoundedSemaphore(settings.max_concurrent_hashes)
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._decoy = hasher.hash(secrets.token_urlsafe(24))
        self._serial: dict[str, list[Any]] = {}  # account key -> [lock, waiters]
        self._serial_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Database, hasher: PasswordHasher, credentials: Credentials | None = None
    ) -> Authenticator:
        """The authenticator of an instance, its throttle counting in this process's memory."""
        return cls(
            settings.auth,
            db,
            hasher,
            throttle=Throttle(settings.throttle, MemoryThrottleStore()),
            credentials=credentials,
        )

    def find_link(self, find: Callable[[], T | None], address: str) -> T | None:
        """What a link token opens (``find`` looks it up), each miss counted against the client address:
        scanning for tokens is throttled as guessing passwords is.  Raises :class:`Throttled` before
        looking once the address has missed too often.

        Apart from :attr:`throttle`, with its own counts and gentler numbers (:func:`link_throttle_settings`):
        a patient clicking an expired link again and again must not lock out the practice's users who share
        the address, and tokens of 160 random bits need no tight limit, only one that bounds a scan."""
        now = time.time()
        wait = self.links.check(None, address, now)
        if wait is not None:
            raise Throttled(wait)
        found = find()
        if found is None:
            self.links.failed(None, address, now)
        return found

    def _cache_id(self, username: str, password: str) -> bytes:
        return hmac.new(self._cache_key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    def _verify(self, password: str, stored: str) -> tuple[bool, str | None]:
        if not self._slots.acquire(timeout=_SLOT_WAIT_SECONDS):
            logger.warning("password verification refused: %s already running", "all slots")
            raise Busy("too many password verifications at once")
        try:
            return self._hasher.verify(password, stored)
        finally:
            self._slots.release()

    def authenticate(
        self, username: str, password: str, *, address: str, now: float | None = None, web: bool = False
    ) -> Principal:
        """Verify credentials sent from client ``address``; raise Throttled, AuthenticationFailed or Busy.

        For WebDAV (and the API), ``password`` is the account password or one of
        the user's app passwords; once the user has a second factor, only app
        passwords (a drive client cannot type a code).  For the web login
        (``web=True``), only the account password: the second factor is the
        login page's next step.

        Throttled (a subclass of AuthenticationFailed) comes before any work:
        no database read, no hash.  A failure is counted against the name as
        given and the address, whether the user exists or not; a success
        clears the account's count.  Busy counts as neither.

        Attempts on one account name that need a verification run one at a
        time, each counted before the next is checked: a burst of concurrent
        guesses gets no more tries than the same guesses in sequence.  A
        credential verified within the last second is answered at once.
        """
        now = time.time() if now is None else now
        wait = self.throttle.check(username, address, now)
        if wait is not None:
            raise Throttled(wait)
        fresh = self._fresh(username, password, now, web=web)
        if fresh is not None:
            return fresh  # verified less than a second ago: nothing to count or reset
        with self._one_at_a_time(username):
            now = time.time()
            wait = self.throttle.check(username, address, now)  # failures counted while waiting
            if wait is not None:
                raise Throttled(wait)
            return self._attempt(username, password, now, address=address, web=web)

    def _attempt(self, username: str, password: str, now: float, *, address: str, web: bool) -> Principal:
        try:
            principal = self._authenticate(username, password, now, address=address, web=web)
        except AuthenticationFailed:
            self.throttle.failed(username, address, now)
            raise
        self.throttle.succeeded(username, address)
        return principal

    def _fresh(self, username: str, password: str, now: float, *, web: bool) -> Principal | None:
        """The principal of a credential verified less than RECHECK_SECONDS ago, else None."""
        try:
            name = normalize_username(username)
        except BadRequest:
            return None
        with self._cache_lock:
            cached = self._cache.get(self._cache_id(("web:" if web else "") + name, password))
        if cached is not None and cached.expires > now and now - cached.checked < RECHECK_SECONDS:
            return cached.principal
        return None

    @contextlib.contextmanager
    def _one_at_a_time(self, username: str) -> Iterator[None]:
        """Serialise the verifications of one account name (waiting at most like a hashing slot)."""
        key = self.throttle.account_key(username)
        with self._serial_lock:
            entry = self._serial.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        lock: threading.Lock = entry[0]
        try:
            if not lock.acquire(timeout=_SLOT_WAIT_SECONDS):
                raise Busy("too many logins for this account at once")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._serial_lock:
                entry[1] -= 1
                if not entry[1]:
                    del self._serial[key]

    def _authenticate(self, username: str, password: str, now: float, *, address: str, web: bool) -> Principal:
        try:
            name = normalize_username(username)
        except BadRequest:
            raise AuthenticationFailed() from None
        cache_id = self._cache_id(("web:" if web else "") + name, password)
        with self._cache_lock:
            cached = self._cache.get(cache_id)
        if cached is not None and cached.expires > now and now - cached.checked < RECHECK_SECONDS:
            return cached.principal
        with self._db.read() as c:
            user = c.one(_USER_BY_NAME, username=name)
        if user is None or user.disabled or user.root_id is None:
            self._verify(password, self._decoy)  # same cost as a real check
            raise AuthenticationFailed()
        if cached is not None and cached.expires > now and cached.epoch == user.auth_epoch:
            cached.checked = now
            return cached.principal
        if not web and self.credentials is not None and self.credentials.looks_like_app_password(password):
            ok = self.credentials.check_app_password(user.id, password, address=address, now=now)
            if not ok and _app_passwords_only(user):
                self._verify(password, self._decoy)  # same cost as every other refusal
                raise AuthenticationFailed()
        else:
            ok = False
        if not ok:
            if not web and _app_passwords_only(user):
                # The account password is for the web login (with its second factor), not for drives.
                self._verify(password, self._decoy)  # same cost as a real check
                raise AuthenticationFailed()
            ok, new_hash = self._verify(password, user.password_hash)
            if not ok:
                raise AuthenticationFailed()
            if new_hash is not None:
                self._rehash(user.id, user.auth_epoch, new_hash)
        principal = Principal(
            user_id=user.id, username=user.username, org_id=user.org_id, root_id=user.root_id, role=user.role
        )
        if self._ttl:
            with self._cache_lock:
                self._cache[cache_id] = _Verified(principal, user.auth_epoch, now + self._ttl, now)
                self._cache.move_to_end(cache_id)
                while len(self._cache) > _CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return principal

    def _rehash(self, user_id: int, epoch: int, new_hash: str) -> None:
        """Store a hash made with the current parameters (same password, same epoch)."""
        with self._db.write() as c:
            c.run(
                update(users_t)
                .where(users_t.c.id == user_id, users_t.c.auth_epoch == epoch)
                .values(password_hash=new_hash)
            )
        logger.info("password hash of user %s upgraded to current parameters", user_id)

    def forget(self) -> None:
        """Drop every cached verification."""
        with self._cache_lock:
            self._cache.clear()

    def forget_user(self, user_id: int) -> None:
        """Drop the cached verifications of one user (their credentials changed)."""
        with self._cache_lock:
            for cache_id in [k for k, v in self._cache.items() if v.principal.user_id == user_id]:
                del self._cache[cache_id]
