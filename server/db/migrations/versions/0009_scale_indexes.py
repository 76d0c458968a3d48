"""Indexes found missing by the scale benchmark (bench/scale.py): a principal's latest audit rows (a link's
visits on its owner's page walked every audit row of the organisation), and the shares that expire (the
sweep scanned the whole table, holding the write lock).

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
    op.drop_index("ix_audit_log_principal", "audit_log")
    op.create_index("ix_audit_log_principal_org_id", "audit_log", ["principal", "org_id", "id"])
    op.create_index("ix_shares_expires_at", "shares", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_shares_expires_at", "shares")
    op.drop_index("ix_audit_log_principal_org_id", "audit_log")
    op.create_index("ix_audit_log_principal", "audit_log", ["principal"])
