"""The database: engine set-up, short transactions, migrations.

Every unit of work is a short transaction taken from :class:`Database`:

- ``db.read()`` for queries;
- ``db.write()`` for changes.  On SQLite it starts with ``BEGIN IMMEDIATE``, so
  the write lock is taken up front and waited for (``busy_timeout``) instead
  of failing with "database is locked" when a read transaction tries to
  upgrade after another writer committed.

SQLite runs in WAL mode (readers never block the writer) with foreign keys
enforced.  No transaction is held while a request body or a file is being
streamed: the tree layer opens one around each database step only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from server.config import Settings
from server.db import models

__all__ = ["Database", "models"]

_MIGRATIONS = Path(__file__).parent / "migrations"


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
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write = sessionmaker(bind=self.engine.execution_options(meddav_write=True), expire_on_commit=False)

    def _setup_sqlite(self, settings: Settings) -> None:
        synchronous = settings.database.sqlite_synchronous.upper()
        busy = settings.database.busy_timeout_ms

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
            # Let SQLAlchemy's "begin" event below emit BEGIN, not the driver.
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

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work.  Objects loaded stay usable (detached) after it."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that commits when the block ends without an exception."""
        with self._write.begin() as session:
            yield session

    # -- migrations ------------------------------------------------------------

    def _alembic(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        return cfg

    def upgrade(self) -> tuple[str | None, str]:
        """Apply pending migrations; return (revision before, revision after)."""
        before = self.revision()
        cfg = self._alembic()
        with self.engine.execution_options(meddav_write=True).begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return before, self.head()

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
        self.engine.dispose()
