"""Roles, contact details and group folders.

Users get a role (member, org_admin, instance_admin; the first account
becomes instance_admin), an e-mail address and a preferred language;
organisations may require a second factor; group folders are folders owned
by an organisation, and each node says which group folder holds it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("role", sa.String(20), nullable=False, server_default="member"))
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
        batch.add_column(sa.Column("locale", sa.String(8), nullable=True))
    op.execute("UPDATE users SET role = 'instance_admin' WHERE id = (SELECT MIN(id) FROM users)")
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("require_second_factor", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "group_folders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("root_id", sa.Integer(), sa.ForeignKey("nodes.id"), nullable=False, unique=True),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("given_name", sa.LargeBinary(), nullable=True),
        sa.Column("member_access", sa.String(8), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_group_folders_org_name"),
    )
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_nodes_group_id", "group_folders", ["group_id"], ["id"])
        batch.create_index("ix_nodes_group_id", ["group_id"])


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_index("ix_nodes_group_id")
        batch.drop_constraint("fk_nodes_group_id", type_="foreignkey")
        batch.drop_column("group_id")
    op.drop_table("group_folders")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("require_second_factor")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("locale")
        batch.drop_column("email")
        batch.drop_column("role")
