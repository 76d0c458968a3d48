"""User accounts and organisations.

An organisation owns a key (generated here, wrapped by the master key) and its
members' data.  Creating a user creates their private root folder.  Each user
belongs to one organisation with a role (:data:`server.policy.ROLES`: member,
org_admin, instance_admin); what a role allows is decided by
:mod:`server.policy` only.  Changing a password, a role or disabling a user
bumps ``auth_epoch``, which ends every cached verification of the old
credentials (see :mod:`server.auth`).

Passwords chosen by people are checked by the configured policy
(:class:`server.auth.PasswordPolicy`, ``[passwords]``), with the user's name
and e-mail address as words a password must not be built from.
"""

from __future__ import annotations

import secrets
import time
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth import PasswordHasher, PasswordPolicy, normalize_username
from server.crypto import KeyRing
from server.db import Database, Tx
from server.db.models import KIND_DIR, Node, Organisation, OrgKeyRecord, User
from server.errors import AlreadyExists, BadRequest, NotFound
from server.events import AccountCreated, Event
from server.policy import ROLE_MEMBER, ROLES, Principal

__all__ = ["LOCALES", "Accounts", "OrganisationInfo", "UserInfo", "check_email"]

#: Languages of the user interface and of e-mails.
LOCALES = ("fr", "en")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}: use one of {', '.join(ROLES)}")


def check_email(email: str | None) -> str | None:
    """``email`` without surrounding spaces, or BadRequest when it cannot be an address."""
    if email is None:
        return None
    email = email.strip()
    if len(email) > 254 or email.count("@") != 1 or any(c.isspace() or c in '<>,;"' for c in email):
        raise BadRequest("not an e-mail address: use the form name@example.org")
    local, _, domain = email.partition("@")
    if not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        raise BadRequest("not an e-mail address: use the form name@example.org")
    return email


def _check_locale(locale: str | None) -> str | None:
    if locale is not None and locale not in LOCALES:
        raise BadRequest(f"unknown language {locale!r}: use one of {', '.join(LOCALES)}")
    return locale


@dataclass(frozen=True, slots=True)
class OrganisationInfo:
    id: int
    name: str
    require_second_factor: bool
    created_at: float
    #: Where its days end (share expiries); None: ``[sharing] time_zone``.
    time_zone: str | None = None


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    username: str
    org_id: int
    role: str
    email: str | None
    locale: str | None
    disabled: bool
    quota_bytes: int | None
    used_bytes: int
    root_id: int
    created_at: float

    def principal(self) -> Principal:
        """The policy's view of this user, acting."""
        return Principal(
            user_id=self.id,
            username=self.username,
            org_id=self.org_id,
            root_id=self.root_id,
            disabled=self.disabled,
            role=self.role,
        )


def _info(user: User) -> UserInfo:
    assert user.root_id is not None
    return UserInfo(
        id=user.id,
        username=user.username,
        org_id=user.org_id,
        role=user.role,
        email=user.email,
        locale=user.locale,
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
        policy: PasswordPolicy,
        on_credentials_changed: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._keys = keys
        self._hasher = hasher
        self.policy = policy
        self._credentials_changed = on_credentials_changed or (lambda user_id: None)
        #: Called inside the transaction that creates an account, with its event (the job outbox); None: nobody listens.
        self.outbox: Callable[[Tx, Event], None] | None = None

    def create_organisation(self, name: str) -> int:
        """A new organisation with a fresh key; returns its id."""
        name = name.strip()
        if not name or len(name) > 200:
            raise BadRequest("an organisation name has 1 to 200 characters")
        with self._db.session() as s:
            if s.scalar(select(Organisation.id).where(Organisation.name == name)) is not None:
                raise AlreadyExists(f"an organisation named {name!r} exists")
        now = time.time()
        _, wrapped = self._keys.master.new_org_key()
        with self._db.session() as s:
            org = Organisation(name=name, created_at=now)
            s.add(org)
            s.flush()
            s.add(OrgKeyRecord(org_id=org.id, key_id=wrapped.key_id, sealed=wrapped.sealed, created_at=now))
            return org.id

    def organisations(self) -> list[OrganisationInfo]:
        with self._db.read_session() as s:
            return [
                OrganisationInfo(o.id, o.name, o.require_second_factor, o.created_at, o.time_zone)
                for o in s.scalars(select(Organisation).order_by(Organisation.id))
            ]

    def organisation(self, ref: str | int) -> OrganisationInfo:
        """An organisation by id or by exact name."""
        with self._db.read_session() as s:
            if isinstance(ref, int) or str(ref).isdigit():
                org = s.get(Organisation, int(ref))
            else:
                org = s.scalars(select(Organisation).where(Organisation.name == str(ref).strip())).first()
            if org is None:
                raise NotFound(f"no organisation {ref!r}")
            return OrganisationInfo(org.id, org.name, org.require_second_factor, org.created_at, org.time_zone)

    def set_time_zone(self, org_id: int, zone: str | None) -> None:
        """The organisation's own time zone (IANA name), where its share expiries end; None: the instance's."""
        if zone is not None:
            try:
                zoneinfo.ZoneInfo(zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise BadRequest(f"unknown time zone {zone!r}: use an IANA name such as Europe/Paris") from None
        with self._db.session() as s:
            org = s.get(Organisation, org_id)
            if org is None:
                raise NotFound(f"no organisation {org_id}")
            org.time_zone = zone

    def set_second_factor_required(self, org_id: int, *, required: bool) -> None:
        """Require (or not) a second factor of every member; drives then need app passwords.

        Members' cached logins end at once, so a password-only drive is refused
        from the next request.
        """
        with self._db.session() as s:
            org = s.get(Organisation, org_id)
            if org is None:
                raise NotFound(f"no organisation {org_id}")
            org.require_second_factor = required
            members = list(s.scalars(select(User).where(User.org_id == org_id)))
            for user in members:
                user.auth_epoch += 1
            ids = [u.id for u in members]
        for user_id in ids:
            self._credentials_changed(user_id)

    def default_organisation(self) -> int:
        with self._db.session() as s:
            org_id: int | None = s.scalar(select(func.min(Organisation.id)))
        if org_id is None:
            raise NotFound("no organisation exists yet")
        return org_id

    def create_user(
        self,
        username: str,
        password: str | None,
        *,
        org_id: int | None = None,
        quota_bytes: int | None = None,
        role: str = ROLE_MEMBER,
        email: str | None = None,
        locale: str | None = None,
    ) -> UserInfo:
        name = normalize_username(username)
        _check_role(role)
        email = check_email(email)
        if password is None:
            # Invited: a password nobody knows until the invitation link sets one.
            if email is None:
                raise BadRequest("an invited user needs an e-mail address to receive the invitation")
            password = secrets.token_urlsafe(32)
        else:
            self.policy.check(password, user_inputs=[name, email or ""])
        locale = _check_locale(locale)
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
                role=role,
                email=email,
                locale=locale,
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
            if self.outbox is not None:
                self.outbox(self._db.tx_of(s), AccountCreated(org_id=org, created_user_id=user.id, role=role))
            return _info(user)

    def _user(self, s: Session, username: str) -> User:
        user = s.scalars(select(User).where(User.username == normalize_username(username))).first()
        if user is None:
            raise NotFound("no such user")
        return user

    def get_by_id(self, user_id: int) -> UserInfo:
        with self._db.read_session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFound("no such user")
            return _info(user)

    def get(self, username: str) -> UserInfo:
        with self._db.read_session() as s:
            return _info(self._user(s, username))

    def list(self, org_id: int | None = None) -> list[UserInfo]:
        with self._db.read_session() as s:
            query = select(User).order_by(User.username)
            if org_id is not None:
                query = query.where(User.org_id == org_id)
            return [_info(u) for u in s.scalars(query)]

    def set_role(self, username: str, role: str) -> None:
        """Change a user's role; their cached logins end, so the new role applies at once."""
        _check_role(role)
        with self._db.session() as s:
            user = self._user(s, username)
            user.role = role
            user.auth_epoch += 1
            user_id = user.id
        self._credentials_changed(user_id)

    def set_contact(self, username: str, *, email: str | None = None, locale: str | None = None) -> None:
        """Set a user's e-mail address and preferred language ("fr" or "en")."""
        email, locale = check_email(email), _check_locale(locale)
        with self._db.session() as s:
            user = self._user(s, username)
            if email is not None:
                user.email = email
            if locale is not None:
                user.locale = locale

    def set_password(self, username: str, password: str) -> None:
        with self._db.session() as s:
            user = self._user(s, username)
            self.policy.check(password, user_inputs=[user.username, user.email or ""])
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
