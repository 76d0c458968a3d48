"""WebDAV locks: an in-memory index, written through to the database.

wsgidav's :class:`~wsgidav.lock_man.lock_manager.LockManager` decides lock
semantics; this is its storage.  The lock manager asks about every ancestor
of a path on every write, so lookups are served from memory; every change
is first committed to the database (``locks`` table), which is reloaded at
start, so locks survive a restart.  wsgidav's own persistent storage writes
paths in clear to a shelve file; here the root path and the owner element
are sealed under a subkey of the master key.

Lock URLs are MedDAV reference URLs (``/<root node id>/<path>`` in a private
tree, ``/g<org id>.<group root id>/<path>`` in a group folder), unique per
space, so two users' ``/report.pdf`` never share locks while two members
locking a document of their group folder do.

One serving process owns the index (``meddav serve`` holds the data
directory); several nodes behind a load balancer will need a shared lock
cache (DESIGN.md, scale-out).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, update
from wsgidav import util
from wsgidav.lock_man.lock_manager import generate_lock_token, normalize_lock_root, validate_lock

from server.crypto import LockSealer
from server.db import Database
from server.db.models import locks_t

__all__ = ["DatabaseLockStorage"]

LockDict = dict[str, Any]


class DatabaseLockStorage:
    """The storage interface wsgidav's LockManager expects."""

    def __init__(
        self, db: Database, sealer: LockSealer, *, max_timeout: int, exists: Callable[[str], bool] | None = None
    ) -> None:
        self._db = db
        #: Whether a lock's root still names an item: a lock that outlived its item is dropped at start.
        self._exists = exists
        self._sealer = sealer
        self._max_timeout = max_timeout
        self._locks: dict[str, LockDict] = {}  # token -> lock
        self._by_root: dict[str, set[str]] = {}  # root path -> tokens
        self._per_tree: dict[str, int] = {}  # tree root id (first path segment) -> lock count
        self._mutex = threading.RLock()

    def __repr__(self) -> str:
        return "DatabaseLockStorage()"

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> None:
        """Load the stored locks; drop the ones that expired while we were away, and the ones whose item is
        gone: a DELETE or MOVE commits the tree's change, then drops the item's locks, and a crash between
        the two would leave a lock on nothing, refusing a new file of that name until it expired."""
        now = time.time()
        expired: list[str] = []
        with self._db.read() as c:
            rows = c.all(select(locks_t))
        with self._mutex:
            self._locks.clear()
            self._by_root.clear()
            self._per_tree.clear()
            for row in rows:
                root = self._sealer.open(row.token, "root", row.root).decode()
                if row.expire < now or (self._exists is not None and not self._exists(root)):
                    expired.append(row.token)
                    continue
                self._index(
                    {
                        "root": root,
                        "type": row.type,
                        "scope": row.scope,
                        "depth": row.depth,
                        "owner": self._sealer.open(row.token, "owner", row.owner),
                        "timeout": row.timeout,
                        "expire": row.expire,
                        "principal": row.principal,
                        "token": row.token,
                    }
                )
        self._forget_stored(expired)

    def close(self) -> None:
        """Nothing to close: the database outlives the lock manager."""

    def cleanup(self) -> None:
        """Purge expired locks."""
        now = time.time()
        with self._mutex:
            expired = [t for t, lock in self._locks.items() if lock["expire"] < now]
            for token in expired:
                self._unindex(token)
        self._forget_stored(expired)

    def clear(self) -> None:
        with self._mutex:
            self._locks.clear()
            self._by_root.clear()
            self._per_tree.clear()
        with self._db.write() as c:
            c.run(delete(locks_t))

    # -- internals -----------------------------------------------------------------

    @staticmethod
    def _tree_of(root: str) -> str:
        return root.split("/", 2)[1]

    def _index(self, lock: LockDict) -> None:
        self._locks[lock["token"]] = lock
        self._by_root.setdefault(lock["root"], set()).add(lock["token"])
        tree = self._tree_of(lock["root"])
        self._per_tree[tree] = self._per_tree.get(tree, 0) + 1

    def _unindex(self, token: str) -> LockDict | None:
        lock = self._locks.pop(token, None)
        if lock is not None:
            tokens = self._by_root.get(lock["root"])
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del self._by_root[lock["root"]]
            tree = self._tree_of(lock["root"])
            self._per_tree[tree] -= 1
            if not self._per_tree[tree]:
                del self._per_tree[tree]
        return lock

    def _forget_stored(self, tokens: list[str]) -> None:
        if tokens:
            with self._db.write() as c:
                c.run(delete(locks_t).where(locks_t.c.token.in_(tokens)))

    def _cap(self, timeout: float | None) -> float:
        if timeout is None or timeout < 0 or timeout > self._max_timeout:
            return float(self._max_timeout)
        return float(timeout)

    def _live(self, token: str, now: float) -> LockDict | None:
        """The lock if it has not expired (caller holds the mutex)."""
        lock = self._locks.get(token)
        if lock is None or lock["expire"] < now:
            return None
        return lock

    def is_empty(self) -> bool:
        """True when no lock is held at all (expired ones may still count)."""
        with self._mutex:
            return not self._locks

    def holds_locks_in(self, space: str) -> bool:
        """True when some lock (perhaps expired) lies in ``space``: the first segment of
        lock URLs, a private tree's root id, or a group folder's ``g<org>.<root>``;
        ``g<org>.`` stands for every group folder of the organisation.

        Requests in spaces without locks skip every lock check, which is what most are.
        """
        with self._mutex:
            if space.endswith("."):
                return any(key.startswith(space) for key in self._per_tree)
            return space in self._per_tree

    # -- the storage interface -------------------------------------------------------

    def get(self, token: str) -> LockDict | None:
        """The lock of ``token``, or None when unknown or expired (expired ones are purged)."""
        with self._mutex:
            lock = self._live(token, time.time())
            if lock is not None:
                return copy.copy(lock)
            expired = token in self._locks
        if expired:
            self.delete(token)
        return None

    def create(self, path: str, lock: LockDict) -> LockDict:
        """Store a new lock on ``path``; fills in root, timeout, expire and token."""
        assert lock.get("token") is None and lock.get("expire") is None
        lock["root"] = normalize_lock_root(path)
        lock["timeout"] = self._cap(lock.get("timeout"))
        lock["expire"] = time.time() + lock["timeout"]
        validate_lock(lock)
        token = generate_lock_token()
        lock["token"] = token
        with self._db.write() as c:
            c.run(
                insert(locks_t).values(
                    token=token,
                    root=self._sealer.seal(token, "root", lock["root"].encode()),
                    depth=lock["depth"],
                    scope=lock["scope"],
                    type=lock["type"],
                    owner=self._sealer.seal(token, "owner", lock["owner"]),
                    principal=lock["principal"],
                    timeout=lock["timeout"],
                    expire=lock["expire"],
                )
            )
        with self._mutex:
            self._index(copy.copy(lock))
        return lock

    def refresh(self, token: str, *, timeout: float | None) -> LockDict:
        timeout = self._cap(timeout)
        expire = time.time() + timeout
        with self._db.write() as c:
            found = c.run(update(locks_t).where(locks_t.c.token == token).values(timeout=timeout, expire=expire))
        with self._mutex:
            lock = self._locks.get(token)
            if not found or lock is None:
                raise ValueError("no such lock")
            lock["timeout"], lock["expire"] = timeout, expire
            return copy.copy(lock)

    def delete(self, token: str) -> bool:
        with self._mutex:
            found = self._unindex(token) is not None
        self._forget_stored([token])
        return found

    def get_lock_list(self, path: str, *, include_root: bool, include_children: bool, token_only: bool) -> list[Any]:
        """Live locks rooted at ``path`` and/or below it."""
        assert include_root or include_children
        path = normalize_lock_root(path)
        now = time.time()
        result: list[Any] = []
        expired: list[str] = []
        with self._mutex:
            tokens: list[str] = []
            if include_root:
                tokens.extend(self._by_root.get(path, ()))
            if include_children:
                for root, root_tokens in self._by_root.items():
                    if root != path and util.is_child_uri(path, root):
                        tokens.extend(root_tokens)
            for token in tokens:
                lock = self._live(token, now)
                if lock is None:
                    expired.append(token)
                else:
                    result.append(token if token_only else copy.copy(lock))
            for token in expired:
                self._unindex(token)
        self._forget_stored(expired)
        return result
