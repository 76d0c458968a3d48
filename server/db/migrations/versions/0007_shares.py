"""Shares (to a colleague, or by link), and an organisation's own time zone for their expiries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=True))
    op.create_table(
        "shares",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("recipient_user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("recipient_email", sa.String(254), nullable=True),
        sa.Column("token_lookup", sa.String(16), nullable=True, unique=True),
        sa.Column("token_digest", sa.LargeBinary(32), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("code_by_email", sa.Boolean(), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=True),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("uploads", sa.Integer(), nullable=False),
        sa.Column("networks", sa.String(1000), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("last_access_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_shares_node_id", "shares", ["node_id"])
    op.create_index("ix_shares_owner_id", "shares", ["owner_id"])
    op.create_index("ix_shares_recipient_user_id", "shares", ["recipient_user_id"])


def downgrade() -> None:
    op.drop_table("shares")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("time_zone")
