"""The Alembic migrations build exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, delete, insert, select

from server.config import settings_from_dict
from server.db import Database
from server.db.models import (
    Base,
    audit_t,
    dead_properties_t,
    group_folders_t,
    nodes_t,
    org_keys_t,
    organisations_t,
    shares_t,
    users_t,
    versions_t,
)


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


def _row_sets(db: Database, tables: list[Table]) -> dict[str, list[tuple[object, ...]]]:
    with db.read() as tx:
        return {t.name: sorted(tuple(row) for row in tx.all(select(t))) for t in tables}


def test_node_version_and_group_ids_are_never_given_again_after_0010(tmp_path: Path) -> None:
    """0010 rebuilds nodes, versions and group folders, which shares, properties and users refer to.
    Every row survives (dropping the old nodes table with foreign keys on would have deleted every share
    through ON DELETE CASCADE); then a deleted row's id, and a node id the audit log names, are not given again."""
    (tmp_path / "data").mkdir()
    db = Database(settings_from_dict({"storage": {"data_dir": "data"}}, base_dir=tmp_path), pool_size=1)
    user = {"org_id": 1, "password_hash": "x", "role": "member", "disabled": False, "auth_epoch": 0, "used_bytes": 0}
    node = {"org_id": 1, "owner_id": 1, "size": 0, "ctime": 0.0, "mtime": 0.0, "etag": "e"}
    version = {"org_key_id": 1, "sealed_key": b"k", "size": 3, "created_at": 0.0}
    group = {"org_id": 1, "root_id": 5, "name": b"g", "member_access": "rw", "used_bytes": 0, "created_at": 0.0}
    share = {"owner_id": 1, "org_id": 1, "kind": "colleague", "mode": "read", "recipient_user_id": 2, "downloads": 0,
             "code_by_email": False, "uploads": 0, "notify_uploads": False, "uploads_notified": 0}  # fmt: skip
    audit = {"at": 0.0, "principal": "alice", "address": "-", "surface": "dav", "action": "file.read", "outcome": "ok",
             "prev_hash": b"0" * 32, "hash": b"1" * 32}  # fmt: skip
    try:
        assert db.upgrade("0009") == (None, "0009")
        with db.write() as tx:
            tx.run(insert(organisations_t).values(id=1, name="Cabinet", require_second_factor=False, created_at=0.0))
            tx.run(insert(org_keys_t).values(id=1, org_id=1, key_id=b"k" * 16, sealed=b"s" * 64, created_at=0.0))
            tx.run(insert(users_t).values(id=1, username="alice", created_at=0.0, **user))
            tx.run(insert(users_t).values(id=2, username="bob", created_at=0.0, **user))
            tx.run(insert(nodes_t).values(id=1, parent_id=None, kind="d", name=b"root", **node))
            tx.run(users_t.update().where(users_t.c.id == 1).values(root_id=1))
            tx.run(insert(versions_t).values(id=7, blob_id="b" * 32, **version))
            tx.run(insert(nodes_t).values(id=2, parent_id=1, kind="d", name=b"dossier", **node))
            tx.run(insert(nodes_t).values(id=3, parent_id=2, kind="f", name=b"irm", version_id=7, **node))
            tx.run(insert(dead_properties_t).values(node_id=3, name="{urn:x}tag", value=b"v"))
            tx.run(insert(shares_t).values(node_id=2, created_at=0.0, **share))
            tx.run(insert(nodes_t).values(id=5, parent_id=None, kind="d", name=b"group", **node))
            tx.run(insert(group_folders_t).values(id=1, **group))
            tx.run(nodes_t.update().where(nodes_t.c.id == 5).values(group_id=1))
            # Node 9, which an audit row names, went before the migration (SQLite would give 6 next).
            tx.run(insert(audit_t).values(node_id=9, **audit))
        tables = [organisations_t, org_keys_t, users_t, nodes_t, versions_t, group_folders_t, dead_properties_t]
        before = _row_sets(db, [*tables, shares_t, audit_t])

        assert db.upgrade() == ("0009", db.head())
        assert _row_sets(db, [*tables, shares_t, audit_t]) == before
        with db.engine.connect() as conn:  # the pool's one connection: the migration's
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on
        with db.write() as tx:
            tx.run(delete(dead_properties_t))
            tx.run(delete(nodes_t).where(nodes_t.c.id == 3))
            tx.run(delete(versions_t).where(versions_t.c.id == 7))
            tx.run(nodes_t.update().where(nodes_t.c.id == 5).values(group_id=None))
            tx.run(delete(group_folders_t))
            new_node = tx.insert(
                insert(nodes_t).values(parent_id=2, kind="f", name=b"x", **node).returning(nodes_t.c.id)
            )
            new_version = tx.insert(insert(versions_t).values(blob_id="c" * 32, **version).returning(versions_t.c.id))
            new_group = tx.insert(insert(group_folders_t).values(**group).returning(group_folders_t.c.id))
        assert (new_node, new_version, new_group) == (10, 8, 2)  # not 6, 7 and 1
    finally:
        db.close()
