"""Drop-box digests (the owner asks to be told of uploads, batched), and the audit log by principal
(a link's visits, for its owner's overview).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shares") as batch:
        batch.add_column(sa.Column("notify_uploads", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("uploads_notified", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_audit_log_principal", "audit_log", ["principal"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_principal", "audit_log")
    with op.batch_alter_table("shares") as batch:
        batch.drop_column("uploads_notified")
        batch.drop_column("notify_uploads")
