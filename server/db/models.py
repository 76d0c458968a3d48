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
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "KIND_DIR",
    "KIND_FILE",
    "AppPassword",
    "AuditAnchor",
    "AuditRecord",
    "Base",
    "DeadProperty",
    "GroupFolder",
    "Instance",
    "Job",
    "LockRecord",
    "Node",
    "OneTimeToken",
    "OrgKeyRecord",
    "Organisation",
    "PeriodicJob",
    "RecoveryCode",
    "User",
    "Version",
    "WebSession",
    "app_passwords_t",
    "audit_anchor_t",
    "audit_t",
    "dead_properties_t",
    "group_folders_t",
    "instance_t",
    "jobs_t",
    "locks_t",
    "nodes_t",
    "one_time_tokens_t",
    "org_keys_t",
    "organisations_t",
    "periodic_jobs_t",
    "plugin_state_t",
    "recovery_codes_t",
    "users_t",
    "versions_t",
    "web_sessions_t",
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
    require_second_factor: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[float] = mapped_column(Float)
    #: Where the organisation's days end (share expiries); None: ``[sharing] time_zone``.
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)


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
    role: Mapped[str] = mapped_column(String(20), default="member", server_default="member")  # see server.policy
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    #: TOTP secret, sealed (server.credentials); the last accepted time step refuses replays.
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_enabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
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
    folder; ``given_name`` the sealed name as the client sent it, when different.
    ``owner_id`` is the private tree's owner, or in a group folder the member
    who created the node (the group folder, not the creator, holds it)."""

    __tablename__ = "nodes"
    #: A node's id is never given again (SQLite would give the highest to the next node once its row went):
    #: audit rows, events, jobs and another process's folder cache name a node by it.
    __table_args__ = (
        UniqueConstraint("parent_id", "name", name="uq_nodes_parent_name"),
        {"sqlite_autoincrement": True},
    )

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
    #: The group folder this node is in (None: the owner's private tree).
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("group_folders.id", use_alter=True, name="fk_nodes_group_id"), nullable=True, index=True
    )


class GroupFolder(Base):
    """A folder owned by an organisation, shown at the root of its members' drives.

    Its name is sealed like the name of a member of a virtual folder whose id
    is minus the organisation id (see server.tree), unique per organisation.
    """

    __tablename__ = "group_folders"
    #: Never given again: nodes, events and quota spaces name a group folder by its id.
    __table_args__ = (
        UniqueConstraint("org_id", "name", name="uq_group_folders_org_name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    root_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), unique=True)
    name: Mapped[bytes] = mapped_column(LargeBinary)
    given_name: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: What members may do: "rw" (read and write) or "ro" (read only); organisation admins may always write.
    member_access: Mapped[str] = mapped_column(String(8))
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[float] = mapped_column(Float)


class Version(Base):
    """The content of a file: a blob and its data key, wrapped by an organisation key."""

    __tablename__ = "versions"
    #: Never given again either: events and the EHR bridge's jobs name a version by its id.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - SQLAlchemy reads it from the class

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
    #: A principal's latest rows (a link's visits), newest first, without walking its organisation's.
    __table_args__ = (Index("ix_audit_log_principal_org_id", "principal", "org_id", "id"),)

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


class AppPassword(Base):
    """A per-device password for WebDAV clients, which cannot type a second factor.

    Random secrets are found by ``lookup`` (a public id prefix of the secret)
    and checked against ``digest``, a keyed HMAC-SHA256: never by trying hashes.
    """

    __tablename__ = "app_passwords"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    lookup: Mapped[str] = mapped_column(String(24), unique=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RecoveryCode(Base):
    """A single-use code that stands in for the second factor."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    lookup: Mapped[str] = mapped_column(String(24), unique=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class WebSession(Base):
    """A web login, held server-side so that it can be listed and revoked."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    lookup: Mapped[str] = mapped_column(String(24), unique=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    #: When the second factor was given (None: password only so far).
    second_factor_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    address: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class OneTimeToken(Base):
    """A single-use, short-lived link secret: password reset or invitation."""

    __tablename__ = "one_time_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    lookup: Mapped[str] = mapped_column(String(24), unique=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Job(Base):
    """A unit of background work (server.jobs): claimed by one worker at a time under a lease.

    ``payload`` is sealed (it may carry names or patient identifiers); ``key``
    makes enqueueing idempotent per ``kind``.  States: pending, running, done, dead.
    """

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_jobs_kind_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(10), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[float] = mapped_column(Float, index=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Share(Base):
    """A file or folder shared by its owner: to a colleague (``recipient_user_id``) or by a link
    (``token_lookup`` + ``token_digest``, an e-mail address, a password or e-mailed codes).

    The link's token is stored as a keyed digest, its password as an Argon2 hash; the note, which may
    carry health data, is sealed (bound to the share's id).  A share ends when revoked or expired:
    ``revoked_at`` is set by a revocation, and by the sweep of expired shares.
    """

    __tablename__ = "shares"
    #: A share's id is never given again (SQLite would reuse the highest after its row went with its node):
    #: the throttle, the verified-password cache, job keys, sessions and the audit name a link by it.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - SQLAlchemy reads it from the class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[str] = mapped_column(String(10))  # "colleague" or "link"
    mode: Mapped[str] = mapped_column(String(10))  # server.policy.SHARE_MODES
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    recipient_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    token_lookup: Mapped[str | None] = mapped_column(String(16), nullable=True, unique=True)
    token_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code_by_email: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    max_downloads: Mapped[int | None] = mapped_column(Integer, nullable=True)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    uploads: Mapped[int] = mapped_column(Integer, default=0)
    networks: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)  # the expiry sweep
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_access_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: The owner is e-mailed a digest of what was put in the drop box (server.sharing.Shares.digest).
    notify_uploads: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    uploads_notified: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PeriodicJob(Base):
    """A job that comes back: every ``interval_seconds``, or daily at ``daily_at`` ("HH:MM", UTC)."""

    __tablename__ = "periodic_jobs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    interval_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    daily_at: Mapped[str | None] = mapped_column(String(5), nullable=True)
    next_run: Mapped[float] = mapped_column(Float)
    last_run: Mapped[float | None] = mapped_column(Float, nullable=True)


class PluginState(Base):
    """A plugin's own small records (``plugin.state`` of its facade): sealed JSON values by key."""

    __tablename__ = "plugin_state"

    plugin: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[float] = mapped_column(Float)


# Core handles on the tables, for the request paths (see server.db).
instance_t = cast(Table, Instance.__table__)
organisations_t = cast(Table, Organisation.__table__)
org_keys_t = cast(Table, OrgKeyRecord.__table__)
users_t = cast(Table, User.__table__)
nodes_t = cast(Table, Node.__table__)
versions_t = cast(Table, Version.__table__)
dead_properties_t = cast(Table, DeadProperty.__table__)
locks_t = cast(Table, LockRecord.__table__)
group_folders_t = cast(Table, GroupFolder.__table__)
app_passwords_t = cast(Table, AppPassword.__table__)
recovery_codes_t = cast(Table, RecoveryCode.__table__)
web_sessions_t = cast(Table, WebSession.__table__)
one_time_tokens_t = cast(Table, OneTimeToken.__table__)
jobs_t = cast(Table, Job.__table__)
shares_t = cast(Table, Share.__table__)
periodic_jobs_t = cast(Table, PeriodicJob.__table__)
plugin_state_t = cast(Table, PluginState.__table__)
audit_t = cast(Table, AuditRecord.__table__)
audit_anchor_t = cast(Table, AuditAnchor.__table__)
