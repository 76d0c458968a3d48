"""Node, version and group folder ids never given again (SQLite AUTOINCREMENT), as share ids since 0009.

SQLite gives a new row the highest id plus one, so deleting the newest file and writing another gave
the second the first one's id: audit rows about the first then named the second, and a folder cached by
another process (``server.tree``, for up to a second) could stand for a folder made in its place, whose
files it would then find.  Events and the EHR bridge's jobs name versions by their ids; nodes and events
name group folders by theirs.

The tables are rebuilt (SQLite cannot add AUTOINCREMENT otherwise), with foreign keys off
(``Database.upgrade``): dropping ``nodes`` with them on would delete every share through ON DELETE
CASCADE.  The sequence of ``nodes`` starts above every node id the audit log names, so that a node
deleted before this migration does not give its id to a new one either.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_HIGHEST_NODE_ID = sa.text(
    "SELECT max(coalesce((SELECT max(id) FROM nodes), 0),"
    " coalesce((SELECT max(node_id) FROM audit_log), 0),"
    " coalesce((SELECT max(target_id) FROM audit_log), 0))"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":  # PostgreSQL's sequences never give an id twice
        return
    for table in ("nodes", "versions", "group_folders"):
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
    highest = int(bind.execute(_HIGHEST_NODE_ID).scalar_one())
    sequence = sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'nodes'")
    if bind.execute(sequence).first() is None:
        bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('nodes', :seq)"), {"seq": highest})
    else:
        bind.execute(sa.text("UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = 'nodes'"), {"seq": highest})


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in ("group_folders", "versions", "nodes"):
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
