"""Indexes found missing by the scale benchmark (bench/scale.py): a principal's latest audit rows (a link's
visits on its owner's page walked every audit row of the organisation), and the shares that expire (the
sweep scanned the whole table, holding the write lock).  And share ids never reused (SQLite
AUTOINCREMENT): a share deleted with its node gave its id to the next share, which then inherited the
first one's verified password, queued mails and audit rows (found by tests/security/test_model.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # PostgreSQL's sequences never give an id twice
        with op.batch_alter_table("shares", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
    op.drop_index("ix_audit_log_principal", "audit_log")
    op.create_index("ix_audit_log_principal_org_id", "audit_log", ["principal", "org_id", "id"])
    op.create_index("ix_shares_expires_at", "shares", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_shares_expires_at", "shares")
    op.drop_index("ix_audit_log_principal_org_id", "audit_log")
    op.create_index("ix_audit_log_principal", "audit_log", ["principal"])
