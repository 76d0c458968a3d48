"""Shares: a file or folder given to a colleague, or by a link to someone without an account.

A share is on one node, made by someone the policy allows to share it (its
owner; an organisation admin in a group folder), with its own rules; a node may
have several.  Two kinds:

- **colleague**: to a member of the same organisation, who finds the item at
  the root of their drive; read-only or read-write; optional expiry.
- **link**: to an e-mail address.  The link carries a random token (160 bits
  behind a 40-bit lookup, stored as a keyed digest like app passwords); the
  recipient proves it with a password (an Argon2 hash here; generated and
  shown once when the owner gives none) or with codes e-mailed at each access.
  Read-only by default, read-write, or an upload-only drop box (folders).
  Links always expire: ``[sharing] default_expiry_days`` after creation unless
  the owner chooses a day, at the end of that day in the organisation's time
  zone, at most ``max_expiry_days`` ahead.

What a recipient may do is decided by :mod:`server.policy` from the
:class:`~server.policy.ShareGrant` this module builds (:meth:`ShareInfo.grant`)
and the time of the request, so a revocation or an expiry applies to the very
next request.  A share ends when revoked, when it expires (the periodic job
``shares.sweep`` marks expired shares ended, :meth:`Shares.sweep`), or when its
node is deleted (the row goes with the node).  Every change is audited here,
with the surface and address the caller gives; the note, which may hold health
data, is sealed and never logged nor audited.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import re
import secrets
import time
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update

from server import policy
from server.accounts import LOCALES, Accounts, check_email
from server.audit import AuditEvent, AuditLog
from server.auth import PasswordHasher
from server.config import SharingSettings
from server.credentials import SecretDigester
from server.credentials._secrets import Secret, new_secret, normalise
from server.crypto import ShareNoteSealer
from server.db import Database, Tx, prepared
from server.db.models import audit_t, organisations_t, shares_t, users_t
from server.errors import BadRequest, NotFound, PolicyDenied
from server.jobs import JobQueue
from server.mail import MAIL_JOB
from server.plugins import NOTIFY_JOB
from server.policy import SHARE_MODES, Action, Operator, Principal, ShareGrant
from server.tree import Entry, Tree

__all__ = [
    "DIGEST_JOB",
    "KIND_COLLEAGUE",
    "KIND_LINK",
    "NOTE_MAX",
    "SECOND_CHANNELS",
    "Access",
    "NewShare",
    "ShareInfo",
    "Shares",
]

KIND_COLLEAGUE = "colleague"
KIND_LINK = "link"
NOTE_MAX = 2000
NETWORKS_MAX = 20
#: A link's last access is recorded at most this often (seconds), not at every request.
SEEN_EVERY = 60.0
#: The mails of a link share (the keys of their jobs: ``share:<id>:<part>``).
MAIL_PARTS = ("link", "password")
#: Characters of a presented token that are looked at (a token with its dashes has about 50).
TOKEN_TYPED_MAX = 128
#: The purpose of a link token's keyed digest (an app password's digest does not match a link's).
LINK_PURPOSE = "share-link"
#: The second channel that takes a link's password to its recipient: an e-mail of its own, the owner
#: (by telephone...), or a text message through the notification channel "sms" a plugin provides.
SECOND_CHANNELS = ("email", "owner", "sms")
SMS_CHANNEL = "sms"
#: A telephone number for a text message: international form, "+" and 8 to 15 digits.
_PHONE = re.compile(r"\+[1-9][0-9]{7,14}")
#: The periodic job that e-mails owners what was put in their drop boxes (:meth:`Shares.digest`).
DIGEST_JOB = "shares.digest"
#: A link's visits shown to its owner (the most recent).
ACCESSES_SHOWN = 200

_COLUMNS = (
    shares_t.c.id,
    shares_t.c.node_id,
    shares_t.c.owner_id,
    shares_t.c.org_id,
    shares_t.c.kind,
    shares_t.c.mode,
    shares_t.c.recipient_user_id,
    shares_t.c.recipient_email,
    shares_t.c.code_by_email,
    shares_t.c.password_hash,
    shares_t.c.max_downloads,
    shares_t.c.downloads,
    shares_t.c.uploads,
    shares_t.c.networks,
    shares_t.c.expires_at,
    shares_t.c.created_at,
    shares_t.c.revoked_at,
    shares_t.c.last_access_at,
    shares_t.c.notify_uploads,
    shares_t.c.uploads_notified,
)
# Every share with its maker's state: a disabled account's shares stop working with it.
_SELECT = select(*_COLUMNS, users_t.c.disabled.label("owner_disabled")).select_from(
    shares_t.join(users_t, users_t.c.id == shares_t.c.owner_id)
)
_BY_ID = prepared(_SELECT.where(shares_t.c.id == bindparam("id")))
_BY_LOOKUP = prepared(
    _SELECT.add_columns(shares_t.c.token_digest).where(shares_t.c.token_lookup == bindparam("lookup"))
)
_BY_OWNER = prepared(_SELECT.where(shares_t.c.owner_id == bindparam("owner")).order_by(shares_t.c.id))
_FOR_RECIPIENT = prepared(_SELECT.where(shares_t.c.recipient_user_id == bindparam("user")).order_by(shares_t.c.id))
_ALL = prepared(_SELECT.order_by(shares_t.c.id))
_NOTE = prepared(select(shares_t.c.note).where(shares_t.c.id == bindparam("id")))
_SET_NOTE = prepared(update(shares_t).where(shares_t.c.id == bindparam("id")).values(note=bindparam("note")))
_REVOKE = prepared(
    update(shares_t)
    .where(shares_t.c.id == bindparam("id"), shares_t.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("at"))
)
_EXPIRED = prepared(
    select(shares_t.c.id, shares_t.c.org_id, shares_t.c.node_id, shares_t.c.expires_at).where(
        shares_t.c.revoked_at.is_(None), shares_t.c.expires_at <= bindparam("now")
    )
)
# A download is taken only while some are left: the condition and the count in one statement.
_TAKE_DOWNLOAD = prepared(
    update(shares_t)
    .where(
        shares_t.c.id == bindparam("id"),
        or_(shares_t.c.max_downloads.is_(None), shares_t.c.downloads < shares_t.c.max_downloads),
    )
    .values(downloads=shares_t.c.downloads + 1, last_access_at=bindparam("now"))
)
_GIVE_BACK_DOWNLOAD = prepared(
    update(shares_t)
    .where(shares_t.c.id == bindparam("id"), shares_t.c.downloads > 0)
    .values(downloads=shares_t.c.downloads - 1)
)
_SEEN = prepared(update(shares_t).where(shares_t.c.id == bindparam("id")).values(last_access_at=bindparam("now")))
_UPLOADED = prepared(
    update(shares_t)
    .where(shares_t.c.id == bindparam("id"))
    .values(uploads=shares_t.c.uploads + 1, last_access_at=bindparam("now"))
)
_END_EXPIRED = prepared(
    update(shares_t)
    .where(shares_t.c.id == bindparam("id"), shares_t.c.revoked_at.is_(None))
    .values(revoked_at=shares_t.c.expires_at)
)
_ORG_ZONE = prepared(select(organisations_t.c.time_zone).where(organisations_t.c.id == bindparam("org")))


@dataclass(frozen=True, slots=True)
class ShareInfo:
    """A share as its owner and the surfaces see it: never its token, password hash or note."""

    id: int
    node_id: int
    owner_id: int
    org_id: int
    kind: str
    mode: str
    recipient_user_id: int | None
    recipient_email: str | None
    code_by_email: bool
    has_password: bool
    max_downloads: int | None
    downloads: int
    uploads: int
    networks: tuple[str, ...]
    expires_at: float | None
    created_at: float
    revoked_at: float | None
    last_access_at: float | None
    owner_disabled: bool = False  # its maker's account is disabled: the share is suspended
    notify_uploads: bool = False  # its maker is e-mailed a digest of uploads
    uploads_notified: int = 0  # uploads already told in a digest

    def live(self, at: float) -> bool:
        return self.grant().live(at)

    def admits(self, address: str) -> bool:
        """Whether a client at ``address`` may use the share: any, unless it is limited to networks."""
        if not self.networks:
            return True
        try:
            client = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(client in ipaddress.ip_network(network) for network in self.networks)

    def state(self, at: float) -> str:
        """One of "active", "suspended" (its maker's account is disabled), "used up" (every download
        taken), "expired", "revoked"."""
        if self.revoked_at is not None:
            return "expired" if self.expires_at is not None and self.revoked_at >= self.expires_at else "revoked"
        if self.expires_at is not None and at >= self.expires_at:
            return "expired"
        if self.max_downloads is not None and self.downloads >= self.max_downloads:
            return "used up"
        return "suspended" if self.owner_disabled else "active"

    def grant(self) -> ShareGrant:
        """The share as :mod:`server.policy` judges it."""
        return ShareGrant(
            share_id=self.id,
            root_id=self.node_id,
            owner_id=self.owner_id,
            org_id=self.org_id,
            mode=self.mode,
            recipient_user_id=self.recipient_user_id,
            expires_at=self.expires_at,
            revoked=self.revoked_at is not None,
            owner_disabled=self.owner_disabled,
            used_up=self.max_downloads is not None and self.downloads >= self.max_downloads,
        )


def _info(row: Any) -> ShareInfo:
    return ShareInfo(
        id=int(row.id),
        node_id=int(row.node_id),
        owner_id=int(row.owner_id),
        org_id=int(row.org_id),
        kind=str(row.kind),
        mode=str(row.mode),
        recipient_user_id=None if row.recipient_user_id is None else int(row.recipient_user_id),
        recipient_email=row.recipient_email,
        code_by_email=bool(row.code_by_email),
        has_password=row.password_hash is not None,
        max_downloads=row.max_downloads,
        downloads=int(row.downloads),
        uploads=int(row.uploads),
        networks=tuple(row.networks.split(",")) if row.networks else (),
        expires_at=row.expires_at,
        created_at=float(row.created_at),
        revoked_at=row.revoked_at,
        last_access_at=row.last_access_at,
        owner_disabled=bool(row.owner_disabled),
        notify_uploads=bool(row.notify_uploads),
        uploads_notified=int(row.uploads_notified),
    )


def _day(zone: zoneinfo.ZoneInfo, at: float) -> dt.date:
    return dt.datetime.fromtimestamp(at, zone).date()


def _not_past(zone: zoneinfo.ZoneInfo, day: dt.date, now: float) -> dt.date:
    if day < _day(zone, now):
        raise BadRequest(f"the expiry {day.isoformat()} is in the past: choose today or a later day")
    return day


def _end_of_day(zone: zoneinfo.ZoneInfo, day: dt.date) -> float:
    """The last instant of ``day`` in ``zone`` (midnight after it)."""
    try:
        midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    except OverflowError:
        raise BadRequest(f"the expiry {day.isoformat()} is too far away: choose a day before 9999") from None
    return midnight.timestamp()


class _Overlapped(Exception):
    """Another digest run told these counts already (the transaction is rolled back)."""


@dataclass(frozen=True, slots=True)
class Access:
    """One visit of a link's recipient, as the audit log has it: when, what, which file, how it went."""

    at: float
    action: str
    node_id: int | None
    outcome: str


@dataclass(frozen=True, slots=True)
class NewShare:
    """A share just made, with what is shown once and never stored in clear: the link's token (for
    the URL ``/s/<token>``) and the password MedDAV generated when the owner gave none."""

    info: ShareInfo
    token: str | None = None
    password: str | None = None


def generated_password() -> str:
    """A password for a link, to read over the phone: 16 letters and digits (80 bits) in groups of four."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _networks(values: Iterable[str]) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        try:
            found.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise BadRequest(f"not a network: {value!r}; write an address or a CIDR range, e.g. 192.0.2.0/24") from None
    if len(found) > NETWORKS_MAX:
        raise BadRequest(f"at most {NETWORKS_MAX} networks per share")
    return tuple(found)


class Shares:
    """Create, list, revoke and check shares."""

    def __init__(
        self,
        db: Database,
        tree: Tree,
        accounts: Accounts,
        hasher: PasswordHasher,
        digester: SecretDigester,
        notes: ShareNoteSealer,
        audit: AuditLog,
        jobs: JobQueue,
        settings: SharingSettings,
        *,
        base_url: str,
        clock: Callable[[], float] = time.time,
        channels: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.db = db
        self.channels = channels  # the notification channels plugins provide (e.g. "sms")
        self.base_url = base_url
        self._jobs = jobs
        self.tree = tree
        self.accounts = accounts
        self.settings = settings
        self.clock = clock
        self._hasher = hasher
        self._digester = digester
        self._notes = notes
        self._audit = audit
        # A digest computed for a link that does not exist, so that an unknown link costs what a known one does.
        self._decoy = digester.digest(LINK_PURPOSE, new_secret().value)

    # -- making and ending shares -------------------------------------------------------------

    def create(
        self,
        actor: Principal,
        node: Entry,
        *,
        mode: str = "read",
        colleague: int | None = None,
        email: str | None = None,
        password: str | None = None,
        code_by_email: bool = False,
        expires_on: dt.date | None = None,
        note: str | None = None,
        max_downloads: int | None = None,
        networks: Sequence[str] = (),
        second_channel: str = "email",
        locale: str = "fr",
        notify_uploads: bool = False,
        phone: str | None = None,
        surface: str = "cli",
        address: str = "local",
        recorded_as: str | None = None,
    ) -> NewShare:
        """Share ``node``: with the user id ``colleague``, or by a link to ``email``.

        A link's recipient is e-mailed the link (in ``locale``), and the password in a second mail
        when ``second_channel`` is "email" (the default); with "sms", in a text message to ``phone``
        through the channel "sms" a plugin provides; with "owner", the owner gives it another way
        (a generated one is returned, to be shown once).  The mails are jobs of the share's own
        transaction: retried until the mail server takes them, never sent for a share that failed.

        With ``notify_uploads``, the owner of a drop box is e-mailed, in periodic digests, how many files
        were put in it (:meth:`digest`).  A password the owner chooses meets ``[passwords]``, as account
        passwords do.  ``recorded_as``
        names who acted in the audit log when it is not ``actor`` (the operator at the command line,
        acting for the owner).

        Raises ``PolicyDenied`` when ``actor`` may not share it, ``BadRequest`` (with what to do) for
        a wrong combination, ``NotFound`` for an unknown colleague."""
        who = recorded_as or actor.username
        try:
            policy.require(actor, node, Action.SHARE)
        except PolicyDenied:
            self._record(actor, "share.create", "denied", surface, address, node=node, who=who)
            raise
        try:
            if locale not in LOCALES:
                raise BadRequest(f"unknown language {locale!r}: use one of {', '.join(LOCALES)}")
            now = self.clock()
            if mode not in SHARE_MODES:
                raise BadRequest(f"unknown mode {mode!r}: use one of {', '.join(SHARE_MODES)}")
            if node.parent_id is None and node.group_id is None:
                raise BadRequest("a drive is not shared whole: share a folder or a file of it")
            if mode == "dropbox" and not node.is_dir:
                raise BadRequest("a drop box is a folder: share a folder, or choose read or write")
            if notify_uploads and mode == "read":
                raise BadRequest("nothing is added through a read-only share: there is nothing to be told of")
            if note is not None and len(note) > NOTE_MAX:
                raise BadRequest(f"the note has more than {NOTE_MAX} characters")
            if max_downloads is not None and max_downloads < 1:
                raise BadRequest("the number of downloads must be at least 1")
            values: dict[str, Any] = {
                "node_id": node.id,
                "owner_id": actor.user_id,
                "org_id": node.org_id,
                "mode": mode,
                "code_by_email": code_by_email,
                "max_downloads": max_downloads,
                "downloads": 0,
                "uploads": 0,
                "networks": ",".join(_networks(networks)) or None,
                "created_at": now,
                "notify_uploads": notify_uploads,
                "uploads_notified": 0,
            }
            generated: str | None = None
            if (colleague is None) == (email is None):
                raise BadRequest("share with a colleague or by a link to an e-mail address (one of the two)")
            if colleague is not None:
                user = self.accounts.get_by_id(colleague)
                if user.org_id != node.org_id or user.disabled:
                    raise NotFound("no such colleague in this organisation")
                if user.id == actor.user_id:
                    raise BadRequest("this is your own account: share with a colleague")
                if mode == "dropbox":
                    raise BadRequest("a drop box is for a link: share with a colleague read-only or read-write")
                if password is not None or code_by_email:
                    raise BadRequest("a colleague signs in with their own account: no password for their share")
                if max_downloads is not None or networks:
                    raise BadRequest("download and network limits are for links: a colleague signs in")
                values |= {"kind": KIND_COLLEAGUE, "recipient_user_id": user.id}
                values["expires_at"] = None if expires_on is None else self.day_expiry(node.org_id, expires_on, now)
            else:
                assert email is not None
                values |= {"kind": KIND_LINK, "recipient_email": check_email(email)}
                if code_by_email and password is not None:
                    raise BadRequest("choose a password or codes by e-mail, not both")
                texted_to = None if code_by_email else self._check_channel(second_channel, phone)
                if not code_by_email:
                    if password is None:
                        password = generated = generated_password()
                    else:  # chosen by the owner: the rules of account passwords (length, not guessable)
                        self.accounts.policy.check(password, user_inputs=[email, actor.username])
                    values["password_hash"] = self._hasher.hash(password)
                values["expires_at"] = self.link_expiry(node.org_id, expires_on, now)
            with self.db.write() as tx:
                token = None
                if values["kind"] == KIND_LINK:
                    secret = self._unused_link(tx)
                    token = secret.value
                    values |= {
                        "token_lookup": secret.lookup,
                        "token_digest": self._digester.digest(LINK_PURPOSE, token),
                    }
                share_id = tx.insert(insert(shares_t).values(**values).returning(shares_t.c.id))
                if note:
                    tx.run(_SET_NOTE, id=share_id, note=self._notes.seal(share_id, note))
                info = _info(tx.one(_BY_ID, id=share_id))
                if token is not None:
                    mail_password = password if not code_by_email and second_channel == "email" else None
                    self._enqueue_mails(tx, actor, info, token, mail_password, locale, sms=texted_to is not None)
                    if texted_to is not None and password is not None:
                        self._text_password(tx, actor, info, texted_to, password, locale)
        except (BadRequest, NotFound) as refused:  # nothing stored; the refusal is audited, by kind only
            self._record(actor, "share.create", "failed", surface, address, node=node, who=who, why=refused)
            raise
        self._record(actor, "share.create", "ok", surface, address, node=node, share=info, who=who)
        return NewShare(info, token=token, password=generated if second_channel == "owner" else None)

    def second_channels(self) -> tuple[str, ...]:
        """The ways a link's password may take here: "sms" only when a plugin provides that channel."""
        available = set(self.channels())
        return tuple(c for c in SECOND_CHANNELS if c != SMS_CHANNEL or SMS_CHANNEL in available)

    def _check_channel(self, second_channel: str, phone: str | None) -> str | None:
        """The telephone number to text the password to (None: not by text), checked."""
        if second_channel not in SECOND_CHANNELS:
            raise BadRequest(f"unknown second channel {second_channel!r}: use {', '.join(SECOND_CHANNELS)}")
        if second_channel != SMS_CHANNEL:
            return None
        if SMS_CHANNEL not in set(self.channels()):
            raise BadRequest("no text message channel here: enable a plugin that provides the channel sms")
        number = "".join(ch for ch in (phone or "") if ch not in " .-()")
        if not _PHONE.fullmatch(number):
            raise BadRequest("a text message needs a telephone number in international form, e.g. +33612345678")
        return number

    def _text_password(
        self, tx: Tx, actor: Principal, share: ShareInfo, phone: str, password: str, locale: str, round_: str = ""
    ) -> None:
        """The link's password by text message: a notification job of the channel "sms" a plugin provides
        (the number and the password sealed in the job, never stored with the share)."""
        payload = {
            "plugin": "core",
            "channel": SMS_CHANNEL,
            "to": phone,
            "template": "share_password",
            "locale": locale,
            "context": {"owner_name": actor.username, "password": password, "locale": locale},
        }
        self._jobs.enqueue(tx, NOTIFY_JOB, f"share:{share.id}:password-sms{round_}", payload)

    def _enqueue_mails(
        self,
        tx: Tx,
        actor: Principal,
        share: ShareInfo,
        token: str,
        password: str | None,
        locale: str,
        round_: str = "",
        *,
        sms: bool = False,
    ) -> None:
        """The link's mail, and the password's when it goes by e-mail: no item name, no note."""
        assert share.recipient_email is not None and share.expires_at is not None
        proof = "code" if share.code_by_email else "password-mail" if password is not None else "password-owner"
        if proof == "password-owner" and sms:
            proof = "password-sms"
        link = {
            "link_url": f"{self.base_url}/s/{token}",
            # The last minute of the last day: "until Thursday 3 December at 23:59", not "Friday at 00:00".
            "expires_at": share.expires_at - 60,
            "access": share.mode,
            "proof": proof,
        }
        mails: list[tuple[str, str, dict[str, Any]]] = [(MAIL_PARTS[0], "share_link", link)]
        if password is not None:
            mails.append((MAIL_PARTS[1], "share_password", {"password": password}))
        zone = self.zone(share.org_id).key  # dates in the organisation's time zone
        for part, template, context in mails:
            payload = {
                "template": template,
                "to": share.recipient_email,
                "locale": locale,
                "time_zone": zone,
                "context": {"owner_name": actor.username, **context},
            }
            self._jobs.enqueue(tx, MAIL_JOB, f"share:{share.id}:{part}{round_}", payload)

    @staticmethod
    def _unused_link(tx: Tx) -> Secret:
        for _ in range(5):
            secret = new_secret(20)
            if tx.scalar(select(shares_t.c.id).where(shares_t.c.token_lookup == secret.lookup)) is None:
                return secret
        raise RuntimeError("could not draw an unused link lookup")  # 2^-200: a broken RNG

    def revoke(
        self, actor: Principal | Operator, share_id: int, *, surface: str = "cli", address: str = "local"
    ) -> ShareInfo:
        """End a share now (its maker, or whoever may share its node).  Revoking an ended share changes
        nothing and is not an error."""
        share = self._managed(actor, share_id, "share.revoke", surface, address, ending=True)
        with self.db.write() as tx:
            tx.run(_REVOKE, id=share_id, at=self.clock())
            # A mail not sent yet would give a dead link, its password or a code: every mail and text of the share.
            for kind in (MAIL_JOB, NOTIFY_JOB):
                self._jobs.cancel_prefixed(tx, kind, f"share:{share_id}:")
        self._record(actor, "share.revoke", "ok", surface, address, share=share)
        return self.get(share_id)

    def resend(
        self,
        actor: Principal,
        share_id: int,
        *,
        second_channel: str = "email",
        locale: str = "fr",
        phone: str | None = None,
        surface: str = "cli",
        address: str = "local",
    ) -> NewShare:
        """Send a link again, by its maker: a new token and, unless it is opened by codes, a new generated
        password (MedDAV keeps neither in clear, so the old ones cannot be sent); the old ones stop
        working now, and the mails of the old ones not sent yet are withdrawn.  The password goes by
        ``second_channel``; with "owner" it is returned, to be shown once."""
        share = self._managed(actor, share_id, "share.resend", surface, address, ending=False)
        try:  # a maker who may no longer share the item (a demoted admin...) may only end it
            policy.require(actor, self.tree.get(share.node_id), Action.SHARE)
        except PolicyDenied:
            self._record(actor, "share.resend", "denied", surface, address, share=share)
            raise
        try:
            if share.kind != KIND_LINK:
                raise BadRequest("a colleague finds the item in their drive: there is no link to send")
            if not share.live(self.clock()):
                raise BadRequest("this share has ended: make a new one")
            texted_to = None if share.code_by_email else self._check_channel(second_channel, phone)
            if locale not in LOCALES:
                raise BadRequest(f"unknown language {locale!r}: use one of {', '.join(LOCALES)}")
        except BadRequest as refused:
            self._record(actor, "share.resend", "failed", surface, address, share=share, why=refused)
            raise
        password = None if share.code_by_email else generated_password()
        with self.db.write() as tx:
            for kind in (MAIL_JOB, NOTIFY_JOB):
                self._jobs.cancel_prefixed(tx, kind, f"share:{share_id}:")
            secret = self._unused_link(tx)
            values: dict[str, Any] = {
                "token_lookup": secret.lookup,
                "token_digest": self._digester.digest(LINK_PURPOSE, secret.value),
            }
            if password is not None:
                values["password_hash"] = self._hasher.hash(password)
            tx.run(update(shares_t).where(shares_t.c.id == share_id).values(**values))
            info = _info(tx.one(_BY_ID, id=share_id))
            mail_password = password if second_channel == "email" else None
            round_ = f":{secrets.token_hex(4)}"
            self._enqueue_mails(tx, actor, info, secret.value, mail_password, locale, round_, sms=texted_to is not None)
            if texted_to is not None and password is not None:
                self._text_password(tx, actor, info, texted_to, password, locale, round_)
        self._record(actor, "share.resend", "ok", surface, address, share=info)
        return NewShare(info, token=secret.value, password=password if second_channel == "owner" else None)

    def accesses(self, share: ShareInfo, limit: int = ACCESSES_SHOWN) -> list[Access]:
        """The latest visits of a link's recipient (what the audit log recorded as ``share:<id>``), newest
        first: for the owner's overview."""
        query = (
            select(audit_t.c.at, audit_t.c.action, audit_t.c.node_id, audit_t.c.outcome)
            .where(audit_t.c.principal == f"share:{share.id}", audit_t.c.org_id == share.org_id)
            .order_by(audit_t.c.id.desc())
            .limit(limit)
        )
        with self.db.read() as tx:
            return [Access(float(r.at), str(r.action), r.node_id, str(r.outcome)) for r in tx.all(query)]

    def digest(self) -> int:
        """E-mail each owner who asked for it how many files were put in their drop boxes since the last
        digest (the periodic job ``shares.digest``): one mail per owner and run, never a file's name (a
        name may be health data), never one mail per file.  Returns how many mails were queued."""
        with self.db.read() as tx:
            rows = tx.all(
                select(*_COLUMNS, users_t.c.disabled.label("owner_disabled"), users_t.c.email, users_t.c.locale)
                .select_from(shares_t.join(users_t, users_t.c.id == shares_t.c.owner_id))
                .where(shares_t.c.notify_uploads.is_(True), shares_t.c.uploads > shares_t.c.uploads_notified)
                .order_by(shares_t.c.owner_id, shares_t.c.id)
            )
        by_owner: dict[int, list[Any]] = {}
        for row in rows:
            if row.email and not row.owner_disabled:
                by_owner.setdefault(int(row.owner_id), []).append(row)
        queued = 0
        for owner_id, owned in by_owner.items():
            first = owned[0]
            payload = {
                "template": "dropbox_digest",
                "to": first.email,
                "locale": first.locale if first.locale in LOCALES else LOCALES[0],
                "time_zone": self.zone(int(first.org_id)).key,
                "context": {
                    "arrivals": sum(int(r.uploads) - int(r.uploads_notified) for r in owned),
                    "boxes": len(owned),
                    "overview_url": f"{self.base_url}/ui/shares",
                },
            }
            try:
                with self.db.write() as tx:
                    # The counts as mailed, each moved from the value this run read: a run that overlaps
                    # another finds one moved and mails nothing (an upload meanwhile: the next run tells it).
                    for row in owned:
                        moved = tx.run(
                            update(shares_t)
                            .where(shares_t.c.id == row.id, shares_t.c.uploads_notified == row.uploads_notified)
                            .values(uploads_notified=row.uploads)
                        )
                        if not moved:
                            raise _Overlapped
                    counts = ",".join(f"{r.id}.{r.uploads}" for r in owned)  # one digest per state of the counts
                    key = f"digest:{owner_id}:{hashlib.sha256(counts.encode()).hexdigest()[:24]}"
                    self._jobs.enqueue(tx, MAIL_JOB, key, payload)
            except _Overlapped:
                continue
            queued += 1
        return queued

    def update(
        self,
        actor: Principal,
        share_id: int,
        *,
        mode: str | None = None,
        expires_on: dt.date | None = None,
        note: str | None = None,
        surface: str = "cli",
        address: str = "local",
    ) -> ShareInfo:
        """Change a live share's mode, last day or note (its maker only; ``note=""`` removes the note).
        The same rules as at creation apply; an ended share is not brought back (make a new one)."""
        share = self._managed(actor, share_id, "share.update", surface, address, ending=False)
        node = self.tree.get(share.node_id)
        if not policy.allows(actor, node, Action.SHARE):  # no longer theirs to share
            self._record(actor, "share.update", "denied", surface, address, share=share)
            raise PolicyDenied("share denied: you may end this share, not change it")
        now = self.clock()
        if not share.live(now):
            raise BadRequest("this share has ended: make a new one")
        values: dict[str, Any] = {}
        if mode is not None:
            if mode not in SHARE_MODES:
                raise BadRequest(f"unknown mode {mode!r}: use one of {', '.join(SHARE_MODES)}")
            if mode == "dropbox" and (share.kind == KIND_COLLEAGUE or not node.is_dir):
                raise BadRequest("a drop box is a folder shared by a link")
            values["mode"] = mode
        if expires_on is not None:
            if share.kind == KIND_LINK:
                values["expires_at"] = self.link_expiry(share.org_id, expires_on, share.created_at, now=now)
            else:
                values["expires_at"] = self.day_expiry(share.org_id, expires_on, now)
        if note is not None and len(note) > NOTE_MAX:
            raise BadRequest(f"the note has more than {NOTE_MAX} characters")
        with self.db.write() as tx:
            if values:
                tx.run(update(shares_t).where(shares_t.c.id == share_id).values(**values))
            if note is not None:
                tx.run(_SET_NOTE, id=share_id, note=self._notes.seal(share_id, note) if note else None)
        changed = ",".join([*values, *(["note"] if note is not None else [])]) or "nothing"
        self._record(actor, "share.update", "ok", surface, address, share=share, changed=changed)
        return self.get(share_id)

    def _managed(
        self, actor: Principal | Operator, share_id: int, action: str, surface: str, address: str, *, ending: bool
    ) -> ShareInfo:
        """The share, when ``actor`` may manage it (the policy: its maker; to end it, also whoever may share
        its node); NotFound otherwise, audited, so that a share id says nothing to others."""
        share = self.get(share_id)
        allowed = policy.allows(actor, share.grant(), Action.ADMINISTER)
        if not allowed and ending and isinstance(actor, Principal):
            try:
                allowed = policy.allows(actor, self.tree.get(share.node_id), Action.SHARE)
            except NotFound:
                allowed = False
        if not allowed:
            self._record(actor, action, "denied", surface, address, share=share)
            raise NotFound("no such share")
        return share

    def sweep(self) -> int:
        """Mark the shares that expired as ended (the periodic job ``shares.sweep``); return how many."""
        now = self.clock()
        with self.db.write() as tx:
            ended = [row for row in tx.all(_EXPIRED, now=now) if tx.run(_END_EXPIRED, id=row.id)]
        for row in ended:
            self._audit.record(
                AuditEvent(
                    surface="cli",
                    action="share.expire",
                    outcome="ok",
                    principal="-",
                    address="local",
                    org_id=row.org_id,
                    node_id=row.node_id,
                    target_id=row.id,
                )
            )
        return len(ended)

    # -- reading --------------------------------------------------------------------------------

    def administered(self, actor: Principal, share_id: int) -> ShareInfo:
        """The share, when the policy lets ``actor`` administer it (its maker: to see its details); NotFound
        otherwise, as for a share that does not exist."""
        share = self.get(share_id)
        if not policy.allows(actor, share.grant(), Action.ADMINISTER):
            raise NotFound("no such share")
        return share

    def get(self, share_id: int) -> ShareInfo:
        with self.db.read() as tx:
            row = tx.one(_BY_ID, id=share_id)
        if row is None:
            raise NotFound("no such share")
        return _info(row)

    def by_owner(self, user_id: int) -> list[ShareInfo]:
        """The shares ``user_id`` made, ended ones included (the owner's overview)."""
        with self.db.read() as tx:
            return [_info(row) for row in tx.all(_BY_OWNER, owner=user_id)]

    def for_recipient(self, user_id: int) -> list[ShareInfo]:
        """The live shares made to the colleague ``user_id`` ("shared with me")."""
        now = self.clock()
        with self.db.read() as tx:
            return [info for info in map(_info, tx.all(_FOR_RECIPIENT, user=user_id)) if info.live(now)]

    def all(self) -> list[ShareInfo]:
        with self.db.read() as tx:
            return [_info(row) for row in tx.all(_ALL)]

    def note(self, share: ShareInfo) -> str | None:
        """The share's note, for its owner and, after the password, its recipient."""
        with self.db.read() as tx:
            sealed = tx.scalar(_NOTE, id=share.id)
        return None if sealed is None else self._notes.open(share.id, bytes(sealed))

    def find_link(self, presented: str) -> ShareInfo | None:
        """The live link share of a token, or None: unknown, ended and damaged tokens alike, in the
        same time (one indexed query and one keyed digest whatever the answer)."""
        value = normalise(presented[:TOKEN_TYPED_MAX])  # a digest of any length costs the same as a token's
        lookup = SecretDigester.lookup_of(value) if value.isalnum() else None
        row = None
        if lookup is not None:
            with self.db.read() as tx:
                row = tx.one(_BY_LOOKUP, lookup=lookup)
        stored = self._decoy if row is None else bytes(row.token_digest)
        matches = self._digester.matches(LINK_PURPOSE, value, stored)
        if row is None or not matches:
            return None
        info = _info(row)
        return info if info.live(self.clock()) else None

    def take_download(self, share: ShareInfo) -> bool:
        """Count one download (a file fetched from its first byte) of a link; False when its
        ``max_downloads`` are used up (the link then works no more)."""
        with self.db.write(durable=False) as tx:  # a counter: a power cut may give back the last second's
            return bool(tx.run(_TAKE_DOWNLOAD, id=share.id, now=self.clock()))

    def give_back_download(self, share: ShareInfo) -> None:
        """Undo :meth:`take_download` when nothing was sent after all (not a file, an error)."""
        with self.db.write(durable=False) as tx:
            tx.run(_GIVE_BACK_DOWNLOAD, id=share.id)

    def count_upload(self, share: ShareInfo) -> None:
        """Count a file a link's recipient added (the owner's overview shows how many)."""
        with self.db.write(durable=False) as tx:  # a counter, like downloads
            tx.run(_UPLOADED, id=share.id, now=self.clock())

    def send_code(self, share: ShareInfo, code: str, *, locale: str, minutes: int) -> None:
        """E-mail ``code`` (which opens the link for ``minutes``) to the link's recipient: a durable mail job,
        like the link's own mails, naming the owner and nothing of what is shared."""
        if share.recipient_email is None:
            raise BadRequest("only a link share has a recipient to send a code to")
        if locale not in LOCALES:
            locale = LOCALES[0]
        owner = self.accounts.get_by_id(share.owner_id)
        payload = {
            "template": "share_code",
            "to": share.recipient_email,
            "locale": locale,
            "time_zone": self.zone(share.org_id).key,
            "context": {"owner_name": owner.username, "code": code, "minutes": minutes},
        }
        with self.db.write() as tx:
            self._jobs.enqueue(tx, MAIL_JOB, f"share:{share.id}:code:{secrets.token_hex(8)}", payload)

    def seen(self, share: ShareInfo) -> None:
        """Record an access to a link (for its owner's overview), at most once a minute."""
        now = self.clock()
        if share.last_access_at is None or now - share.last_access_at >= SEEN_EVERY:
            with self.db.write(durable=False) as tx:
                tx.run(_SEEN, id=share.id, now=now)

    def check_password(self, share: ShareInfo, password: str) -> bool:
        """Whether ``password`` is the link's password (Argon2; the caller throttles failures)."""
        with self.db.read() as tx:
            stored = tx.scalar(select(shares_t.c.password_hash).where(shares_t.c.id == share.id))
        if stored is None:
            return False
        ok, _ = self._hasher.verify(password, stored)
        return ok

    # -- expiry ---------------------------------------------------------------------------------

    def zone(self, org_id: int) -> zoneinfo.ZoneInfo:
        """The organisation's time zone (its own, else ``[sharing] time_zone``)."""
        with self.db.read() as tx:
            name = tx.scalar(_ORG_ZONE, org=org_id)
        return zoneinfo.ZoneInfo(name or self.settings.time_zone)

    def day_expiry(self, org_id: int, day: dt.date, now: float) -> float:
        """The end of ``day`` (midnight after it) in the organisation's time zone; ``day`` not before today."""
        zone = self.zone(org_id)
        return _end_of_day(zone, _not_past(zone, day, now))

    def link_expiry(self, org_id: int, day: dt.date | None, created: float, *, now: float | None = None) -> float:
        """When a link made at ``created`` expires: at the end of ``day``, by default
        ``default_expiry_days`` from that day in the organisation's time zone; never in the past (at
        ``now``, by default ``created``) nor more than ``max_expiry_days`` after its creation."""
        zone = self.zone(org_id)  # read once: every day below is a day of this zone
        made_on = _day(zone, created)
        if day is None:
            day = made_on + dt.timedelta(days=self.settings.default_expiry_days)
        _not_past(zone, day, created if now is None else now)
        latest = made_on + dt.timedelta(days=self.settings.max_expiry_days)
        if day > latest:
            raise BadRequest(f"a link may last until {latest.isoformat()} at the latest ([sharing] max_expiry_days)")
        return _end_of_day(zone, day)

    # -- audit ----------------------------------------------------------------------------------

    def _record(
        self,
        actor: Principal | Operator,
        action: str,
        outcome: str,
        surface: str,
        address: str,
        *,
        node: Entry | None = None,
        share: ShareInfo | None = None,
        changed: str | None = None,
        who: str | None = None,
        why: Exception | None = None,
    ) -> None:
        detail = None
        if share is not None:
            detail = f"kind={share.kind} mode={share.mode}" + (f" changed={changed}" if changed else "")
        elif why is not None:
            detail = f"refused={type(why).__name__}"  # never the message: it may quote an address or a day
        self._audit.record(
            AuditEvent(
                surface=surface,
                action=action,
                outcome=outcome,
                principal=who or actor.username,
                user_id=actor.user_id if isinstance(actor, Principal) else None,
                address=address,
                org_id=node.org_id if node is not None else share.org_id if share is not None else None,
                node_id=node.id if node is not None else share.node_id if share is not None else None,
                target_id=share.id if share is not None else None,
                detail=detail,
            )
        )
