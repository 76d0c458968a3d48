"""Credentials beyond the account password.

- **App passwords**: per-device passwords for WebDAV clients, which cannot type
  a second factor.  Generated (160 bits), shown once, named, revocable; last
  use time and address kept.  Once a user has a second factor, WebDAV accepts
  only these (see ``server.auth``).
- **TOTP** (RFC 6238 through pyotp): enrolment gives a secret, an
  ``otpauth://`` URI and its QR code (SVG, the ``qrcode`` package); it is
  confirmed by a first code.  The secret is stored sealed under a subkey of
  the master key, bound to the user.  A code is accepted once: the last
  accepted time step is stored, and a code of the same or an earlier step is
  refused (replay); one step of clock skew either way is tolerated.
- **Recovery codes**: ten, shown once when the second factor is set up, each
  usable once in place of a TOTP code.
- **One-time tokens**: single-use, short-lived link secrets (password reset,
  invitation).
- **Web sessions**: server-side, so a user sees and revokes them; a cookie
  carries the secret, ended by an idle timeout and an absolute lifetime.

Every random secret is stored as a keyed digest and found by its lookup
prefix (:mod:`server.credentials._secrets`); comparisons are constant-time.
Nothing here logs a secret.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyotp
import qrcode
import qrcode.image.svg
from sqlalchemy import Table, bindparam, delete, func, insert, select, update

from server.credentials._secrets import Secret, SecretDigester, new_secret, normalise
from server.crypto import CredentialSealer
from server.db import Database, Tx, prepared
from server.db.models import (
    app_passwords_t,
    one_time_tokens_t,
    recovery_codes_t,
    users_t,
    web_sessions_t,
)
from server.errors import BadRequest, NotFound

__all__ = [
    "RECOVERY_CODES",
    "AppPasswordInfo",
    "Credentials",
    "Secret",
    "SecretDigester",
    "SessionInfo",
    "TotpEnrolment",
]

RECOVERY_CODES = 10
TOTP_ISSUER = "MedDAV"
#: A last-use time is written at most this often per app password (not at every request).
_LAST_USE_EVERY = 60.0
_APP = "app-password"
_RECOVERY = "recovery-code"
_SESSION = "web-session"
_MAX_NAME = 100

_APP_BY_LOOKUP = prepared(
    select(
        app_passwords_t.c.id,
        app_passwords_t.c.user_id,
        app_passwords_t.c.digest,
        app_passwords_t.c.last_used_at,
        app_passwords_t.c.revoked_at,
    ).where(app_passwords_t.c.lookup == bindparam("lookup"))
)
_SESSION_BY_LOOKUP = prepared(select(web_sessions_t).where(web_sessions_t.c.lookup == bindparam("lookup")))


@dataclass(frozen=True, slots=True)
class AppPasswordInfo:
    id: int
    name: str
    created_at: float
    last_used_at: float | None
    last_used_address: str | None


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """What the enrolment page shows: the secret (for manual entry), the URI and its QR code."""

    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: int
    user_id: int
    created_at: float
    last_seen_at: float
    expires_at: float
    second_factor_at: float | None
    address: str
    user_agent: str


def _session_info(row: Any) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        second_factor_at=row.second_factor_at,
        address=row.address,
        user_agent=row.user_agent,
    )


class Credentials:
    """App passwords, TOTP, recovery codes, one-time tokens and web sessions of every user."""

    def __init__(self, db: Database, digester: SecretDigester, sealer: CredentialSealer) -> None:
        self._db = db
        self._digester = digester
        self._sealer = sealer
        #: Called with a user id when their credentials change (ends cached verifications in this process).
        self.on_change: Callable[[int], None] = lambda user_id: None

    # -- helpers -----------------------------------------------------------------

    def _insert_secret(self, c: Tx, table: Table, purpose: str, values: dict[str, Any], bytes_: int = 20) -> Secret:
        """Insert a row holding a fresh secret (retrying the rare lookup collision)."""
        for _ in range(5):
            secret = new_secret(bytes_)
            if c.scalar(select(table.c.id).where(table.c.lookup == secret.lookup)) is None:
                c.run(
                    insert(table).values(
                        lookup=secret.lookup, digest=self._digester.digest(purpose, secret.value), **values
                    )
                )
                return secret
        raise RuntimeError("could not draw an unused secret lookup")  # 2^-200: a broken RNG

    # -- app passwords --------------------------------------------------------------

    def create_app_password(self, user_id: int, name: str) -> tuple[AppPasswordInfo, str]:
        """A new app password; returns its record and the password, to show once."""
        name = " ".join(name.split())
        if not name or len(name) > _MAX_NAME:
            raise BadRequest(f"name the device in 1 to {_MAX_NAME} characters, e.g. 'Windows laptop'")
        now = time.time()
        with self._db.write() as c:
            secret = self._insert_secret(
                c, app_passwords_t, _APP, {"user_id": user_id, "name": name, "created_at": now}
            )
            app_id = c.scalar(select(app_passwords_t.c.id).where(app_passwords_t.c.lookup == secret.lookup))
        return AppPasswordInfo(app_id, name, now, None, None), secret.display

    def app_passwords(self, user_id: int) -> list[AppPasswordInfo]:
        """The user's app passwords in use (revoked ones are not listed)."""
        with self._db.read() as c:
            rows = c.all(
                select(
                    app_passwords_t.c.id,
                    app_passwords_t.c.name,
                    app_passwords_t.c.created_at,
                    app_passwords_t.c.last_used_at,
                    app_passwords_t.c.last_used_address,
                )
                .where(app_passwords_t.c.user_id == user_id, app_passwords_t.c.revoked_at.is_(None))
                .order_by(app_passwords_t.c.created_at)
            )
        return [AppPasswordInfo(*row) for row in rows]

    def revoke_app_password(self, user_id: int, app_id: int) -> None:
        """Revoke at once: cached verifications end here, and within a second in other processes."""
        with self._db.write() as c:
            done = c.run(
                update(app_passwords_t)
                .where(
                    app_passwords_t.c.id == app_id,
                    app_passwords_t.c.user_id == user_id,
                    app_passwords_t.c.revoked_at.is_(None),
                )
                .values(revoked_at=time.time())
            )
            if done:
                c.run(update(users_t).where(users_t.c.id == user_id).values(auth_epoch=users_t.c.auth_epoch + 1))
        if not done:
            raise NotFound("no such app password")
        self.on_change(user_id)

    def check_app_password(self, user_id: int, presented: str, *, address: str, now: float | None = None) -> bool:
        """True when ``presented`` is one of the user's app passwords in use."""
        now = time.time() if now is None else now
        value = normalise(presented)
        lookup = SecretDigester.lookup_of(value)
        if lookup is None:
            return False
        with self._db.read() as c:
            row = c.one(_APP_BY_LOOKUP, lookup=lookup)
        if row is None or row.revoked_at is not None or row.user_id != user_id:
            self._digester.digest(_APP, value)  # the same work whether or not the lookup exists
            return False
        if not self._digester.matches(_APP, value, row.digest):
            return False
        if row.last_used_at is None or now - row.last_used_at > _LAST_USE_EVERY:
            with self._db.write() as c:
                c.run(
                    update(app_passwords_t)
                    .where(app_passwords_t.c.id == row.id)
                    .values(last_used_at=now, last_used_address=address[:64])
                )
        return True

    def looks_like_app_password(self, presented: str) -> bool:
        return SecretDigester.lookup_of(normalise(presented)) is not None

    # -- TOTP ------------------------------------------------------------------------

    @staticmethod
    def start_totp(username: str) -> TotpEnrolment:
        """A new TOTP secret to enrol (nothing stored until :meth:`confirm_totp`)."""
        secret = pyotp.random_base32(length=32)  # 160 bits
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)
        image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
        buffer = io.BytesIO()
        image.save(buffer)
        svg = buffer.getvalue().decode()
        svg = svg[svg.index("<svg") :]  # without the XML declaration, to embed in a page
        return TotpEnrolment(secret=secret, uri=uri, qr_svg=svg)

    def confirm_totp(self, user_id: int, secret: str, code: str, *, now: float | None = None) -> list[str]:
        """Store the second factor once a first code proves the device has it; return the
        recovery codes, to show once.  Raises BadRequest on a wrong code."""
        now = time.time() if now is None else now
        totp = pyotp.TOTP(secret)
        step = self._matching_step(totp, code, now)
        if step is None:
            raise BadRequest("wrong code: check the time of your phone and type the code it shows now")
        sealed = self._sealer.seal("totp", user_id, secret.encode())
        with self._db.write() as c:
            c.run(
                update(users_t)
                .where(users_t.c.id == user_id)
                .values(
                    totp_secret=sealed, totp_enabled_at=now, totp_last_step=step, auth_epoch=users_t.c.auth_epoch + 1
                )
            )
            codes = self._new_recovery_codes(c, user_id, now)
        self.on_change(user_id)
        return codes

    @staticmethod
    def _matching_step(totp: pyotp.TOTP, code: str, now: float) -> int | None:
        code = "".join(code.split())
        if not code.isdigit() or len(code) != totp.digits:
            return None
        current = totp.timecode(dt.datetime.fromtimestamp(now, tz=dt.UTC))
        for step in (current, current - 1, current + 1):  # one step of skew either way
            if pyotp.utils.strings_equal(totp.generate_otp(step), code):
                return step
        return None

    def has_totp(self, user_id: int) -> bool:
        with self._db.read() as c:
            return c.scalar(select(users_t.c.totp_enabled_at).where(users_t.c.id == user_id)) is not None

    def check_totp(self, user_id: int, code: str, *, now: float | None = None) -> bool:
        """True once per code: the step must be later than the last accepted one."""
        now = time.time() if now is None else now
        with self._db.write() as c:  # the read and the update of the last step in one transaction
            row = c.one(select(users_t.c.totp_secret, users_t.c.totp_last_step).where(users_t.c.id == user_id))
            if row is None or row.totp_secret is None:
                return False
            secret = self._sealer.open("totp", user_id, row.totp_secret).decode()
            step = self._matching_step(pyotp.TOTP(secret), code, now)
            if step is None or (row.totp_last_step is not None and step <= row.totp_last_step):
                return False
            # Conditional, so that of two requests presenting the same code at once (on a
            # database without SQLite's single writer) only one moves the step forward.
            moved = c.run(
                update(users_t)
                .where(
                    users_t.c.id == user_id,
                    (users_t.c.totp_last_step.is_(None)) | (users_t.c.totp_last_step < step),
                )
                .values(totp_last_step=step)
            )
            return moved == 1

    def reset_second_factor(self, user_id: int) -> None:
        """Remove the second factor and the recovery codes (a lost phone; done by an admin)."""
        with self._db.write() as c:
            c.run(
                update(users_t)
                .where(users_t.c.id == user_id)
                .values(
                    totp_secret=None,
                    totp_enabled_at=None,
                    totp_last_step=None,
                    auth_epoch=users_t.c.auth_epoch + 1,
                )
            )
            c.run(delete(recovery_codes_t).where(recovery_codes_t.c.user_id == user_id))
        self.on_change(user_id)

    # -- recovery codes ----------------------------------------------------------------

    def _new_recovery_codes(self, c: Tx, user_id: int, now: float) -> list[str]:
        c.run(delete(recovery_codes_t).where(recovery_codes_t.c.user_id == user_id))
        return [
            self._insert_secret(c, recovery_codes_t, _RECOVERY, {"user_id": user_id, "created_at": now}, 16).display
            for _ in range(RECOVERY_CODES)
        ]

    def renew_recovery_codes(self, user_id: int) -> list[str]:
        with self._db.write() as c:
            return self._new_recovery_codes(c, user_id, time.time())

    def use_recovery_code(self, user_id: int, presented: str) -> bool:
        """True, once, for one of the user's unused recovery codes."""
        value = normalise(presented)
        lookup = SecretDigester.lookup_of(value)
        if lookup is None:
            return False
        with self._db.write() as c:
            row = c.one(
                select(recovery_codes_t.c.id, recovery_codes_t.c.digest).where(
                    recovery_codes_t.c.lookup == lookup,
                    recovery_codes_t.c.user_id == user_id,
                    recovery_codes_t.c.used_at.is_(None),
                )
            )
            if row is None or not self._digester.matches(_RECOVERY, value, row.digest):
                return False
            used = c.run(
                update(recovery_codes_t)
                .where(recovery_codes_t.c.id == row.id, recovery_codes_t.c.used_at.is_(None))
                .values(used_at=time.time())
            )
            return used == 1

    def recovery_codes_left(self, user_id: int) -> int:
        with self._db.read() as c:
            count = c.scalar(
                select(func.count())
                .select_from(recovery_codes_t)
                .where(recovery_codes_t.c.user_id == user_id, recovery_codes_t.c.used_at.is_(None))
            )
        return int(count or 0)

    # -- one-time tokens ------------------------------------------------------------------

    def issue_token(self, user_id: int, purpose: str, ttl_seconds: float) -> str:
        """A single-use link secret for ``purpose`` ("reset", "invite"), valid ``ttl_seconds``."""
        now = time.time()
        with self._db.write() as c:
            # A new link replaces the user's older unused ones of the same purpose.
            c.run(
                delete(one_time_tokens_t).where(
                    one_time_tokens_t.c.user_id == user_id,
                    one_time_tokens_t.c.purpose == purpose,
                    one_time_tokens_t.c.used_at.is_(None),
                )
            )
            secret = self._insert_secret(
                c,
                one_time_tokens_t,
                f"token:{purpose}",
                {"user_id": user_id, "purpose": purpose, "created_at": now, "expires_at": now + ttl_seconds},
            )
        return secret.value

    def _live_token(self, c: Tx, presented: str, purpose: str, now: float) -> Any:
        """The row of a token that matches, is unused and unexpired; None otherwise."""
        value = normalise(presented)
        lookup = SecretDigester.lookup_of(value)
        if lookup is None:
            return None
        row = c.one(
            select(
                one_time_tokens_t.c.id,
                one_time_tokens_t.c.user_id,
                one_time_tokens_t.c.digest,
                one_time_tokens_t.c.expires_at,
                one_time_tokens_t.c.used_at,
            ).where(one_time_tokens_t.c.lookup == lookup, one_time_tokens_t.c.purpose == purpose)
        )
        if row is None or not self._digester.matches(f"token:{purpose}", value, row.digest):
            return None
        if row.used_at is not None or row.expires_at < now:
            return None
        return row

    def redeem_token(self, presented: str, purpose: str, *, now: float | None = None) -> int | None:
        """The user id of a valid token, which is used up; None when wrong, used or expired."""
        now = time.time() if now is None else now
        with self._db.write() as c:
            row = self._live_token(c, presented, purpose, now)
            if row is None:
                return None
            used = c.run(
                update(one_time_tokens_t)
                .where(one_time_tokens_t.c.id == row.id, one_time_tokens_t.c.used_at.is_(None))
                .values(used_at=now)
            )
            return int(row.user_id) if used == 1 else None

    def token_user(self, presented: str, purpose: str, *, now: float | None = None) -> int | None:
        """Like :meth:`redeem_token` without using the token up (to show the form it opens)."""
        now = time.time() if now is None else now
        with self._db.read() as c:
            row = self._live_token(c, presented, purpose, now)
        return None if row is None else int(row.user_id)

    # -- web sessions ---------------------------------------------------------------------

    def open_session(
        self,
        user_id: int,
        *,
        address: str,
        user_agent: str,
        lifetime_seconds: float,
        second_factor: bool = False,
        now: float | None = None,
    ) -> tuple[SessionInfo, str]:
        """A new session; returns it and the cookie value (the secret)."""
        now = time.time() if now is None else now
        values: dict[str, Any] = {
            "user_id": user_id,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + lifetime_seconds,
            "second_factor_at": now if second_factor else None,
            "address": address[:64],
            "user_agent": user_agent[:200],
        }
        with self._db.write() as c:
            secret = self._insert_secret(c, web_sessions_t, _SESSION, values)
            row = c.one(_SESSION_BY_LOOKUP, lookup=secret.lookup)
        return _session_info(row), secret.value

    def session(self, cookie: str, *, idle_seconds: float, now: float | None = None) -> SessionInfo | None:
        """The live session of a cookie (its last-seen time is refreshed), or None."""
        now = time.time() if now is None else now
        value = normalise(cookie)
        lookup = SecretDigester.lookup_of(value)
        if lookup is None:
            return None
        with self._db.read() as c:
            row = c.one(_SESSION_BY_LOOKUP, lookup=lookup)
        if row is None or not self._digester.matches(_SESSION, value, row.digest):
            return None
        if row.revoked_at is not None or row.expires_at < now or now - row.last_seen_at > idle_seconds:
            return None
        if now - row.last_seen_at > 10:  # not a write per page view
            with self._db.write() as c:
                c.run(update(web_sessions_t).where(web_sessions_t.c.id == row.id).values(last_seen_at=now))
        return _session_info(row)

    def mark_second_factor(self, session_id: int) -> None:
        with self._db.write() as c:
            c.run(update(web_sessions_t).where(web_sessions_t.c.id == session_id).values(second_factor_at=time.time()))

    def sessions(self, user_id: int, *, now: float | None = None) -> list[SessionInfo]:
        """The user's sessions not revoked or expired, newest first."""
        now = time.time() if now is None else now
        with self._db.read() as c:
            rows = c.all(
                select(web_sessions_t)
                .where(
                    web_sessions_t.c.user_id == user_id,
                    web_sessions_t.c.revoked_at.is_(None),
                    web_sessions_t.c.expires_at > now,
                )
                .order_by(web_sessions_t.c.created_at.desc())
            )
        return [_session_info(row) for row in rows]

    def revoke_session(self, user_id: int, session_id: int) -> None:
        with self._db.write() as c:
            c.run(
                update(web_sessions_t)
                .where(web_sessions_t.c.id == session_id, web_sessions_t.c.user_id == user_id)
                .values(revoked_at=time.time())
            )

    def revoke_sessions(self, user_id: int, *, keep: int | None = None) -> None:
        """End every session of a user (but ``keep``): after a password change or a reset."""
        with self._db.write() as c:
            query = update(web_sessions_t).where(
                web_sessions_t.c.user_id == user_id, web_sessions_t.c.revoked_at.is_(None)
            )
            if keep is not None:
                query = query.where(web_sessions_t.c.id != keep)
            c.run(query.values(revoked_at=time.time()))
