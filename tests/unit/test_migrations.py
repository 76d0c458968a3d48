"""The Alembic migrations build exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from server.config import settings_from_dict
from server.db import Database
from server.db.models import Base


def test_migrations_match_the_models(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    db = Database(settings_from_dict({"storage": {"data_dir": "data"}}, base_dir=tmp_path), pool_size=1)
    try:
        db.upgrade()
        assert db.revision() == db.head()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        db.close()


def test_upgrade_twice_is_harmless(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    db = Database(settings_from_dict({"storage": {"data_dir": "data"}}, base_dir=tmp_path), pool_size=1)
    try:
        first = db.upgrade()
        second = db.upgrade()
        assert first == (None, db.head())
        assert second == (db.head(), db.head())
    finally:
        db.close()
