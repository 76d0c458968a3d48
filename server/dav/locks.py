"""WebDAV locks kept in the database, so they survive a restart.

wsgidav's :class:`~wsgidav.lock_man.lock_manager.LockManager` decides lock
semantics; this is its storage.  wsgidav's own storages keep paths in clear
(in memory, or in a shelve file); here a lock root path is stored as a keyed
hash, to find it, and a sealed copy, to give it back.  One
:class:`~server.db.models.LockScope` row per ancestor of the root lets
"locks below this path" be answered by an index lookup.

Lock URLs are MedDAV reference URLs (``/<root node id>/<path>``), unique per
tree, so two users' ``/report.pdf`` never share locks.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from wsgidav import util
from wsgidav.lock_man.lock_manager import generate_lock_token, normalize_lock_root, validate_lock

from server.crypto import LockSealer
from server.db import Database
from server.db.models import LockRecord, LockScope

__all__ = ["DatabaseLockStorage"]

LockDict = dict[str, Any]


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``/a/b/c``, ``/a/b``, ``/a``, ``/``."""
    out = []
    current = normalize_lock_root(path)
    while current:
        out.append(normalize_lock_root(current))
        if current == "/":
            break
        current = util.get_uri_parent(current)
    return out


class DatabaseLockStorage:
    """The storage interface wsgidav's LockManager expects, over the database."""

    def __init__(self, db: Database, sealer: LockSealer, *, max_timeout: int) -> None:
        self._db = db
        self._sealer = sealer
        self._max_timeout = max_timeout

    def __repr__(self) -> str:
        return "DatabaseLockStorage()"

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> None:
        """Nothing to open: the database is already there."""

    def close(self) -> None:
        """Nothing to close: the database outlives the lock manager."""

    def cleanup(self) -> None:
        """Purge expired locks."""
        with self._db.write() as s:
            tokens = list(s.scalars(select(LockRecord.token).where(LockRecord.expire < time.time())))
            self._delete_tokens(s, tokens)

    def clear(self) -> None:
        with self._db.write() as s:
            s.execute(delete(LockScope))
            s.execute(delete(LockRecord))

    # -- records -----------------------------------------------------------------

    def _to_dict(self, rec: LockRecord) -> LockDict:
        return {
            "root": self._sealer.open(rec.token, "root", rec.root).decode(),
            "type": rec.type,
            "scope": rec.scope,
            "depth": rec.depth,
            "owner": self._sealer.open(rec.token, "owner", rec.owner),
            "timeout": rec.timeout,
            "expire": rec.expire,
            "principal": rec.principal,
            "token": rec.token,
        }

    def _delete_tokens(self, s: Session, tokens: list[str]) -> None:
        if tokens:
            s.execute(delete(LockScope).where(LockScope.token.in_(tokens)))
            s.execute(delete(LockRecord).where(LockRecord.token.in_(tokens)))

    def _live(self, s: Session, records: list[LockRecord]) -> tuple[list[LockRecord], list[str]]:
        now = time.time()
        live = [r for r in records if r.expire < 0 or r.expire >= now]
        expired = [r.token for r in records if not (r.expire < 0 or r.expire >= now)]
        return live, expired

    def _cap(self, timeout: float | None) -> float:
        if timeout is None or timeout < 0 or timeout > self._max_timeout:
            return float(self._max_timeout)
        return float(timeout)

    # -- the storage interface -------------------------------------------------------

    def get(self, token: str) -> LockDict | None:
        """The lock of ``token``, or None when unknown or expired (expired ones are purged)."""
        with self._db.read() as s:
            rec = s.get(LockRecord, token)
            if rec is None:
                return None
            live, _ = self._live(s, [rec])
            if live:
                return self._to_dict(rec)
        self.delete(token)
        return None

    def create(self, path: str, lock: LockDict) -> LockDict:
        """Store a new lock on ``path``; fills in root, timeout, expire and token."""
        assert lock.get("token") is None and lock.get("expire") is None
        root = normalize_lock_root(path)
        lock["root"] = root
        lock["timeout"] = self._cap(lock.get("timeout"))
        lock["expire"] = time.time() + lock["timeout"]
        validate_lock(lock)
        token = generate_lock_token()
        lock["token"] = token
        with self._db.write() as s:
            s.add(
                LockRecord(
                    token=token,
                    root_hash=self._sealer.path_hash(root),
                    root=self._sealer.seal(token, "root", root.encode()),
                    depth=lock["depth"],
                    scope=lock["scope"],
                    type=lock["type"],
                    owner=self._sealer.seal(token, "owner", lock["owner"]),
                    principal=lock["principal"],
                    timeout=lock["timeout"],
                    expire=lock["expire"],
                )
            )
            s.flush()
            for ancestor in _ancestors(root):
                s.add(LockScope(token=token, path_hash=self._sealer.path_hash(ancestor)))
        return lock

    def refresh(self, token: str, *, timeout: float | None) -> LockDict:
        with self._db.write() as s:
            rec = s.get(LockRecord, token)
            if rec is None:
                raise ValueError("no such lock")
            rec.timeout = self._cap(timeout)
            rec.expire = time.time() + rec.timeout
            s.flush()
            return self._to_dict(rec)

    def delete(self, token: str) -> bool:
        with self._db.write() as s:
            found = s.get(LockRecord, token) is not None
            self._delete_tokens(s, [token])
        return found

    def get_lock_list(self, path: str, *, include_root: bool, include_children: bool, token_only: bool) -> list[Any]:
        """Live locks rooted at ``path`` and/or below it."""
        assert include_root or include_children
        path_hash = self._sealer.path_hash(normalize_lock_root(path))
        with self._db.read() as s:
            records: list[LockRecord] = []
            if include_root:
                records.extend(s.scalars(select(LockRecord).where(LockRecord.root_hash == path_hash)))
            if include_children:
                records.extend(
                    s.scalars(
                        select(LockRecord)
                        .join(LockScope, LockScope.token == LockRecord.token)
                        .where(LockScope.path_hash == path_hash, LockRecord.root_hash != path_hash)
                    )
                )
            live, expired = self._live(s, records)
            result = [r.token if token_only else self._to_dict(r) for r in live]
        if expired:
            with self._db.write() as s:
                self._delete_tokens(s, expired)
        return result
