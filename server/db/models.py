"""The database schema (SQLAlchemy 2 ORM).

Nothing here holds a plaintext file name or content: names are AES-SIV
ciphertexts (:mod:`server.crypto.names`), property values and lock paths are
sealed, keys are wrapped.  Times are POSIX seconds (UTC) as floats.

The schema changes only through Alembic migrations
(``server/db/migrations/versions``); a test checks that the migrations build
exactly these tables.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "KIND_DIR",
    "KIND_FILE",
    "AuditAnchor",
    "AuditRecord",
    "Base",
    "DeadProperty",
    "Instance",
    "LockRecord",
    "Node",
    "OrgKeyRecord",
    "Organisation",
    "User",
    "Version",
    "audit_anchor_t",
    "audit_t",
    "dead_properties_t",
    "instance_t",
    "locks_t",
    "nodes_t",
    "org_keys_t",
    "organisations_t",
    "users_t",
    "versions_t",
]

KIND_DIR = "d"
KIND_FILE = "f"


class Base(DeclarativeBase):
    pass


class Instance(Base):
    """One row: the instance's identity and the proof that a key file is its own."""

    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    key_check: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[float] = mapped_column(Float)


class Organisation(Base):
    """A health-care structure; owns a key and its members' data."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)


class OrgKeyRecord(Base):
    """An organisation key, wrapped by the master key."""

    __tablename__ = "org_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    key_id: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[float] = mapped_column(Float)
    retired_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class User(Base):
    """An account.  ``auth_epoch`` changes whenever a credential does, which
    invalidates every cached verification of the old one."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    root_id: Mapped[int | None] = mapped_column(
        ForeignKey("nodes.id", use_alter=True, name="fk_users_root_id"), nullable=True
    )
    created_at: Mapped[float] = mapped_column(Float)


class Node(Base):
    """A file or folder.  ``name`` is the sealed lookup (NFC) name, unique in its
    folder; ``given_name`` the sealed name as the client sent it, when different."""

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("parent_id", "name", name="uq_nodes_parent_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(1))
    name: Mapped[bytes] = mapped_column(LargeBinary)
    given_name: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    ctime: Mapped[float] = mapped_column(Float)
    mtime: Mapped[float] = mapped_column(Float)
    etag: Mapped[str] = mapped_column(String(40))
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("versions.id", use_alter=True, name="fk_nodes_version_id"), nullable=True
    )


class Version(Base):
    """The content of a file: a blob and its data key, wrapped by an organisation key."""

    __tablename__ = "versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_id: Mapped[str] = mapped_column(String(32), unique=True)
    org_key_id: Mapped[int] = mapped_column(ForeignKey("org_keys.id"))
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)


class DeadProperty(Base):
    """A WebDAV dead property; the value is sealed under the organisation key."""

    __tablename__ = "dead_properties"

    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class LockRecord(Base):
    """A WebDAV lock.  Root path and owner element are sealed (see server.dav.locks)."""

    __tablename__ = "locks"

    token: Mapped[str] = mapped_column(String(100), primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    depth: Mapped[str] = mapped_column(String(10))
    scope: Mapped[str] = mapped_column(String(10))
    type: Mapped[str] = mapped_column(String(10))
    owner: Mapped[bytes] = mapped_column(LargeBinary)
    principal: Mapped[str] = mapped_column(String(150))
    timeout: Mapped[float] = mapped_column(Float)
    expire: Mapped[float] = mapped_column(Float, index=True)


class AuditRecord(Base):
    """One audited request or action, chained to the previous row.

    ``hash`` is the SHA-256 of ``prev_hash`` and a canonical encoding of the
    row's other fields (see server.audit); nothing here is health data: ids,
    never names.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    org_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    principal: Mapped[str] = mapped_column(String(160))
    address: Mapped[str] = mapped_column(String(64))
    surface: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    node_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    target_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditAnchor(Base):
    """One row: where the chain starts after pruning (the hash the first kept row must follow)."""

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_id: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    pruned_rows: Mapped[int] = mapped_column(BigInteger)
    pruned_at: Mapped[float] = mapped_column(Float)


# Core handles on the tables, for the request paths (see server.db).
instance_t = cast(Table, Instance.__table__)
organisations_t = cast(Table, Organisation.__table__)
org_keys_t = cast(Table, OrgKeyRecord.__table__)
users_t = cast(Table, User.__table__)
nodes_t = cast(Table, Node.__table__)
versions_t = cast(Table, Version.__table__)
dead_properties_t = cast(Table, DeadProperty.__table__)
locks_t = cast(Table, LockRecord.__table__)
audit_t = cast(Table, AuditRecord.__table__)
audit_anchor_t = cast(Table, AuditAnchor.__table__)
