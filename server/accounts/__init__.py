"""User accounts and organisations.

An organisation owns a key (generated here, wrapped by the master key) and its
members' data.  Creating a user creates their private root folder.  Changing
a password or disabling a user bumps ``auth_epoch``, which ends every cached
verification of the old credentials (see :mod:`server.auth`).

Password rules, until the accounts issue makes them configurable: 12 to 128
characters, no composition rules (NIST SP 800-63B).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth import PasswordHasher, normalize_username
from server.crypto import KeyRing
from server.db import Database
from server.db.models import KIND_DIR, Node, Organisation, OrgKeyRecord, User
from server.errors import AlreadyExists, BadRequest, NotFound

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "Accounts", "UserInfo", "check_password"]

MIN_PASSWORD = 12
MAX_PASSWORD = 128


def check_password(password: str) -> None:
    """Raise BadRequest, saying what to change, when a password is not acceptable."""
    if len(password) < MIN_PASSWORD:
        raise BadRequest(
            f"password too short: use at least {MIN_PASSWORD} characters (a phrase of several words works well)"
        )
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"password too long: use at most {MAX_PASSWORD} characters")


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    username: str
    org_id: int
    disabled: bool
    quota_bytes: int | None
    used_bytes: int
    root_id: int
    created_at: float


def _info(user: User) -> UserInfo:
    assert user.root_id is not None
    return UserInfo(
        id=user.id,
        username=user.username,
        org_id=user.org_id,
        disabled=user.disabled,
        quota_bytes=user.quota_bytes,
        used_bytes=user.used_bytes,
        root_id=user.root_id,
        created_at=user.created_at,
    )


class Accounts:
    """Create and manage organisations and users."""

    def __init__(
        self,
        db: Database,
        keys: KeyRing,
        hasher: PasswordHasher,
        *,
        on_credentials_changed: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._keys = keys
        self._hasher = hasher
        self._credentials_changed = on_credentials_changed or (lambda user_id: None)

    def create_organisation(self, name: str) -> int:
        """A new organisation with a fresh key; returns its id."""
        now = time.time()
        _, wrapped = self._keys.master.new_org_key()
        with self._db.session() as s:
            org = Organisation(name=name, created_at=now)
            s.add(org)
            s.flush()
            s.add(OrgKeyRecord(org_id=org.id, key_id=wrapped.key_id, sealed=wrapped.sealed, created_at=now))
            return org.id

    def default_organisation(self) -> int:
        with self._db.session() as s:
            org_id: int | None = s.scalar(select(func.min(Organisation.id)))
        if org_id is None:
            raise NotFound("no organisation exists yet")
        return org_id

    def create_user(
        self, username: str, password: str, *, org_id: int | None = None, quota_bytes: int | None = None
    ) -> UserInfo:
        name = normalize_username(username)
        check_password(password)
        if quota_bytes is not None and quota_bytes < 0:
            raise BadRequest("a quota is a number of bytes, 0 for unlimited")
        password_hash = self._hasher.hash(password)
        org = org_id if org_id is not None else self.default_organisation()
        now = time.time()
        with self._db.session() as s:
            if s.scalar(select(User.id).where(User.username == name)) is not None:
                raise AlreadyExists(f"user name {name!r} is taken")
            if s.get(Organisation, org) is None:
                raise NotFound(f"organisation {org} not found")
            user = User(
                org_id=org,
                username=name,
                password_hash=password_hash,
                disabled=False,
                auth_epoch=0,
                quota_bytes=quota_bytes,
                used_bytes=0,
                created_at=now,
            )
            s.add(user)
            s.flush()
            root = Node(
                org_id=org,
                owner_id=user.id,
                parent_id=None,
                kind=KIND_DIR,
                name=b"",
                given_name=None,
                size=0,
                ctime=now,
                mtime=now,
                etag=uuid.uuid4().hex,
            )
            s.add(root)
            s.flush()
            user.root_id = root.id
            s.flush()
            return _info(user)

    def _user(self, s: Session, username: str) -> User:
        user = s.scalars(select(User).where(User.username == normalize_username(username))).first()
        if user is None:
            raise NotFound("no such user")
        return user

    def get(self, username: str) -> UserInfo:
        with self._db.session() as s:
            return _info(self._user(s, username))

    def list(self) -> list[UserInfo]:
        with self._db.session() as s:
            return [_info(u) for u in s.scalars(select(User).order_by(User.username))]

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        password_hash = self._hasher.hash(password)
        with self._db.session() as s:
            user = self._user(s, username)
            user.password_hash = password_hash
            user.auth_epoch += 1
            user_id = user.id
        self._credentials_changed(user_id)

    def set_disabled(self, username: str, *, disabled: bool) -> None:
        with self._db.session() as s:
            user = self._user(s, username)
            user.disabled = disabled
            user.auth_epoch += 1
            user_id = user.id
        self._credentials_changed(user_id)

    def set_quota(self, username: str, quota_bytes: int | None) -> None:
        if quota_bytes is not None and quota_bytes < 0:
            raise BadRequest("a quota is a number of bytes, 0 for unlimited")
        with self._db.session() as s:
            self._user(s, username).quota_bytes = quota_bytes
