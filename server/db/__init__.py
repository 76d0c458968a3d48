"""The database: engine set-up, short transactions, migrations.

Every unit of work is a short transaction taken from :class:`Database`:

- ``db.read()`` for queries, ``db.write()`` for changes: both yield a
  :class:`~server.db._tx.Tx`, a transaction on a pooled DBAPI connection that
  runs SQLAlchemy statements compiled for the dialect (``prepared`` ones once
  per process).  This is the request path: ~12 µs per transaction and ~5 µs
  per statement here, against ~54 µs and ~40 µs through a Core
  ``Connection`` and ~220 µs for an ORM query.
- ``db.session()`` gives an ORM session for the rare administrative work where
  clarity matters more than microseconds; ``db.read_session()`` one that only
  reads, and so never waits for the write lock.
- A write transaction on SQLite starts with ``BEGIN IMMEDIATE``, so the write
  lock is taken up front and waited for (``busy_timeout``) instead of failing
  with "database is locked" when a read transaction tries to upgrade after
  another writer committed.  Locked for longer (another process holds it),
  every unit of work raises :class:`~server.errors.Busy`: a 503 with
  Retry-After on every surface, nothing done.

SQLite runs in WAL mode (readers never block the writer) with foreign keys
enforced.  No transaction is held while a request body or a file is being
streamed: the tree layer opens one around each database step only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from server.config import Settings
from server.db import models
from server.db._sync import WalSyncer
from server.db._tx import Prepared, Tx, prepared
from server.errors import Busy

__all__ = ["Database", "Prepared", "Tx", "models", "prepared"]

_MIGRATIONS = Path(__file__).parent / "migrations"


T = TypeVar("T")


class _Work(Generic[T]):
    """One caller's share of a group commit."""

    __slots__ = ("done", "durable", "error", "result", "work")

    def __init__(self, work: Callable[[Tx], T], durable: bool) -> None:
        self.work = work
        self.durable = durable
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


def _as_busy(exc: BaseException) -> Busy | None:
    """:class:`~server.errors.Busy` (a 503 with Retry-After: retry shortly) for a database that stayed locked
    past the busy timeout, another process holding its write lock; None for any other driver error."""
    text = str(exc).lower()
    if "database is locked" in text or "database is busy" in text or getattr(exc, "sqlstate", None) == "55P03":
        return Busy("the database is busy; retry in a few seconds")
    return None


@contextmanager
def _busy_when_locked() -> Iterator[None]:
    """Turn the ORM's error for a database locked past the busy timeout into :class:`~server.errors.Busy`."""
    try:
        yield
    except sqlalchemy_exc.OperationalError as exc:
        busy = _as_busy(exc.orig if exc.orig is not None else exc)
        if busy is not None:
            raise busy from exc
        raise


class Database:
    """Engine and session factories for one configured database."""

    def __init__(self, settings: Settings, *, pool_size: int | None = None) -> None:
        url = settings.database.url
        self.is_sqlite = url.startswith("sqlite")
        size = pool_size or settings.server.threads + 4
        kwargs: dict[str, Any] = {"pool_size": size, "max_overflow": size, "pool_pre_ping": False}
        if self.is_sqlite:
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": settings.database.busy_timeout_ms / 1000,
            }
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._setup_sqlite(settings)
        self._write_engine = self.engine.execution_options(meddav_write=True)
        self._sessions = sessionmaker(bind=self._write_engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        # Each thread keeps one DBAPI connection for its units of work (a
        # cheroot worker lives as long as the server): no pool checkout per
        # transaction, which cost more than the statements of a small GET.
        self._local = threading.local()
        self._owned: list[Any] = []
        self._owned_lock = threading.Lock()
        self._writer_lock = threading.Lock() if self.is_sqlite else None
        self._pending: list[_Work[Any]] = []
        self._pending_lock = threading.Lock()
        self._busy_seconds = settings.database.busy_timeout_ms / 1000
        dbapi = self.engine.dialect.loaded_dbapi
        self._driver_errors: tuple[type[BaseException], ...] = (dbapi.OperationalError, dbapi.InterfaceError)
        # Commits of changes to names only may be acknowledged before their fsync (see grouped()).
        self._syncer: WalSyncer | None = None
        database_file = self.engine.url.database
        full = settings.database.sqlite_synchronous == "full"
        if self.is_sqlite and full and settings.database.namespace_sync_ms and database_file:
            self._syncer = WalSyncer(Path(database_file), settings.database.namespace_sync_ms / 1000)
        self.durable_commits = 0  # counted by write() and grouped(), for tests and metrics
        self.deferred_commits = 0

    def _setup_sqlite(self, settings: Settings) -> None:
        synchronous = settings.database.sqlite_synchronous.upper()
        busy = settings.database.busy_timeout_ms

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
            # Transactions are begun explicitly, never by the driver: by read() and
            # write() below, and for ORM sessions and migrations by the "begin" event.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("meddav_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def _connection(self) -> Any:
        """This thread's DBAPI connection, created on first use."""
        fairy = getattr(self._local, "fairy", None)
        if fairy is None:
            fairy = self.engine.raw_connection()
            fairy.detach()  # ours until close(), not the pool's
            self._local.fairy = fairy
            self._local.depth = 0
            with self._owned_lock:
                self._owned.append(fairy)
            if self._syncer is not None:
                # Commits here leave the WAL fsync to the syncer (see _commit).
                fairy.dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
        return fairy.dbapi_connection

    def _discard(self) -> None:
        """Forget this thread's connection after a driver error (the next unit reconnects)."""
        fairy = getattr(self._local, "fairy", None)
        self._local.fairy = None
        if fairy is not None:
            with self._owned_lock:
                self._owned.remove(fairy)
            with contextlib.suppress(Exception):
                fairy.close()

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only unit of work: one snapshot, rolled back at the end.

        Inside another unit of work of the same thread, it joins that one.
        """
        conn = self._connection()
        if self._local.depth:
            yield Tx(conn, self.engine.dialect)
            return
        self._local.depth = 1
        try:
            if self.is_sqlite:
                conn.execute("BEGIN")
            yield Tx(conn, self.engine.dialect)
        except self._driver_errors as exc:
            self._discard()
            busy = _as_busy(exc)
            if busy is not None:
                raise busy from exc
            raise
        finally:
            self._local.depth = 0
            if getattr(self._local, "fairy", None) is not None:
                conn.rollback()

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Tx]:
        """A unit of work that commits when the block ends without an exception.

        ``durable=False`` is for bookkeeping that a power cut may undo without
        losing anything (a job's claim or completion: the job runs again, as
        at-least-once delivery allows; a lock that expires anyway): the commit
        skips the WAL fsync, done within ``[database] namespace_sync_ms`` like
        a change of names (see :meth:`grouped`).  It survives a crash of the
        process at once.

        On SQLite, writers of this process queue on a Python lock first: SQLite
        allows one writer anyway, and its own busy handler waits by sleeping
        1, 2, 5, 10... ms, which made the slowest of eight concurrent small
        PUTs take half a second.  Other processes (the CLI) still meet the
        busy timeout.
        """
        conn = self._connection()
        if self._local.depth:
            raise RuntimeError("a write transaction cannot start inside another unit of work")
        committed: Tx | None = None
        if self._writer_lock is not None and not self._writer_lock.acquire(timeout=self._busy_seconds):
            raise Busy("the database is busy with other writes; retry shortly")
        self._local.depth = 1
        try:
            if self.is_sqlite:
                # Take the write lock now (waiting up to busy_timeout), not at the first write.
                conn.execute("BEGIN IMMEDIATE")
            tx = Tx(conn, self.engine.dialect)
            yield tx
        except self._driver_errors as exc:
            self._discard()
            busy = _as_busy(exc)
            if busy is not None:
                raise busy from exc
            raise
        except BaseException:
            conn.rollback()
            raise
        else:
            self._commit(conn, durable=durable or tx.durable or self._syncer is None)
            committed = tx
        finally:
            self._local.depth = 0
            if self._writer_lock is not None:
                self._writer_lock.release()
        if committed is not None:
            committed.committed()

    def grouped(self, work: Callable[[Tx], T], *, durable: bool = True) -> T:
        """Run ``work`` in a write transaction shared with other threads' work.

        Concurrent writers of this process commit together: one ``COMMIT``,
        hence one WAL fsync with ``synchronous = full``, for the batch.  Each
        piece of work runs inside its own savepoint, so one that raises is
        rolled back alone and its exception re-raised to its caller; the others
        commit.  Returns what ``work`` returned once it is committed.

        ``durable=False`` is for changes of names only (creating a folder,
        renaming, deleting rows that hold no content): their commit skips the
        fsync, which :class:`~server.db._sync.WalSyncer` does within
        ``[database] namespace_sync_ms``, like a file system's metadata.
        Work that must not be undone by a power cut once acknowledged (it
        stores content, or frees a blob that its caller deletes after the
        commit) calls ``tx.require_durable()``; a batch holding any durable
        work commits durably.
        """
        if self._writer_lock is None:
            with self.write() as tx:
                return work(tx)
        item: _Work[T] = _Work(work, durable or self._syncer is None)
        with self._pending_lock:
            self._pending.append(item)
        with self._writer_lock:
            if not item.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._run_batch(batch)
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _run_batch(self, batch: list[_Work[Any]]) -> None:
        """Run a batch in one transaction (the caller holds the writer lock)."""
        conn = self._connection()
        if self._local.depth:
            raise RuntimeError("a write transaction cannot start inside another unit of work")
        self._local.depth = 1
        after: Tx | None = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = Tx(conn, self.engine.dialect)
            for item in batch:
                conn.execute("SAVEPOINT meddav_work")
                mark = tx.pending_actions()
                try:
                    item.result = item.work(tx)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO meddav_work")
                    tx.forget_actions(mark)  # what this work's rolled-back part waited for never happens
                    item.error = exc
                conn.execute("RELEASE meddav_work")
            durable = tx.durable or any(item.durable for item in batch)
            self._commit(conn, durable=durable)
            after = tx
        except BaseException as exc:
            error: BaseException = exc
            if isinstance(exc, self._driver_errors):
                self._discard()
                error = _as_busy(exc) or exc
            else:
                with contextlib.suppress(Exception):
                    conn.rollback()
            for item in batch:
                if item.error is None:
                    item.error = error
                    item.result = None
            if not isinstance(exc, Exception):
                raise
        finally:
            self._local.depth = 0
            for item in batch:
                item.done = True
        if after is not None:
            after.committed()

    def _commit(self, conn: Any, *, durable: bool) -> None:
        """Commit, durably (fsync before returning) or not (fsync within the window)."""
        conn.commit()
        if durable:
            self.durable_commits += 1
            if self._syncer is not None:
                self._syncer.sync_now()
        else:
            self.deferred_commits += 1
            assert self._syncer is not None
            self._syncer.request()

    def tx_of(self, session: Session) -> Tx:
        """The transaction of an ORM ``session``, for the statements of ``server.db`` (the outbox of
        a change made through the ORM: its jobs commit or roll back with it)."""
        return Tx(session.connection().connection.driver_connection, self.engine.dialect, commits=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM unit of work (write transaction) that commits at the end of the block."""
        with _busy_when_locked(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """An ORM session that only reads (a deferred ``BEGIN``, rolled back): it never waits for the
        write lock, which another process may hold."""
        with _busy_when_locked(), self._read_sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    # -- migrations ------------------------------------------------------------

    def _alembic(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        return cfg

    def upgrade(self, revision: str = "head") -> tuple[str | None, str]:
        """Apply pending migrations up to ``revision``; return (revision before, revision after).

        On SQLite the migrations run with foreign keys off, checked before the commit: SQLite's way to
        rebuild a table that others refer to (https://sqlite.org/lang_altertable.html, section 7), where
        dropping the old table with them on would fire its ON DELETE actions."""
        before = self.revision()
        cfg = self._alembic()
        with self._write_engine.connect() as conn:
            raw: Any = conn.connection.driver_connection
            if self.is_sqlite:  # outside any transaction, where SQLite ignores the pragma
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
                    if self.is_sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise RuntimeError(f"the migration broke {len(broken)} references, e.g. {broken[0]}")
            finally:
                if self.is_sqlite:
                    raw.execute("PRAGMA foreign_keys=ON")
        after = self.revision()
        assert after is not None
        return before, after

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            rev: str | None = MigrationContext.configure(conn).get_current_revision()
            conn.rollback()
            return rev

    def head(self) -> str:
        head = ScriptDirectory.from_config(self._alembic()).get_current_head()
        assert head is not None
        return head

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.close()
        with self._owned_lock:
            owned, self._owned = self._owned, []
        for fairy in owned:
            with contextlib.suppress(Exception):
                fairy.close()
        self.engine.dispose()
