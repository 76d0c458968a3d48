"""Durable background jobs and periodic jobs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("worker", sa.String(100), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("kind", "key", name="uq_jobs_kind_key"),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_index("ix_jobs_run_after", "jobs", ["run_after"])
    op.create_table(
        "periodic_jobs",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("daily_at", sa.String(5), nullable=True),
        sa.Column("next_run", sa.Float(), nullable=False),
        sa.Column("last_run", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("periodic_jobs")
    op.drop_index("ix_jobs_run_after", "jobs")
    op.drop_index("ix_jobs_state", "jobs")
    op.drop_table("jobs")
