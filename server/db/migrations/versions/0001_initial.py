"""Initial schema: instance, organisations and keys, users, the tree, versions,
dead properties and WebDAV locks.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_id", sa.LargeBinary(16), nullable=False),
        sa.Column("key_check", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "org_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("key_id", sa.LargeBinary(16), nullable=False, unique=True),
        sa.Column("sealed", sa.LargeBinary(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("retired_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_org_keys_org_id", "org_keys", ["org_id"])
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("blob_id", sa.String(32), nullable=False, unique=True),
        sa.Column("org_key_id", sa.Integer(), sa.ForeignKey("org_keys.id"), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("username", sa.String(150), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("auth_epoch", sa.Integer(), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("root_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_users_org_id", "users", ["org_id"])
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("nodes.id"), nullable=True),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("given_name", sa.LargeBinary(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("ctime", sa.Float(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("etag", sa.String(40), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("versions.id", name="fk_nodes_version_id"), nullable=True),
        sa.UniqueConstraint("parent_id", "name", name="uq_nodes_parent_name"),
    )
    op.create_index("ix_nodes_owner_id", "nodes", ["owner_id"])
    with op.batch_alter_table("users") as batch:
        batch.create_foreign_key("fk_users_root_id", "nodes", ["root_id"], ["id"])
    op.create_table(
        "dead_properties",
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("nodes.id"), primary_key=True),
        sa.Column("name", sa.String(500), primary_key=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "locks",
        sa.Column("token", sa.String(100), primary_key=True),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("depth", sa.String(10), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("owner", sa.LargeBinary(), nullable=False),
        sa.Column("principal", sa.String(150), nullable=False),
        sa.Column("timeout", sa.Float(), nullable=False),
        sa.Column("expire", sa.Float(), nullable=False),
    )
    op.create_index("ix_locks_expire", "locks", ["expire"])


def downgrade() -> None:
    for table in ("locks", "dead_properties"):
        op.drop_table(table)
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("fk_users_root_id", type_="foreignkey")
    for table in ("nodes", "users", "versions", "org_keys", "organisations", "instance"):
        op.drop_table(table)
