"""App passwords, TOTP, recovery codes, one-time tokens and web sessions, on a real database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from server.config import load_settings
from server.credentials import RECOVERY_CODES, Credentials
from server.db.models import app_passwords_t, one_time_tokens_t, recovery_codes_t, users_t, web_sessions_t
from server.errors import BadRequest, NotFound
from server.instance import Instance, open_instance
from server.testing import TestInstance


@pytest.fixture
def instance(make_test_instance: Callable[..., TestInstance]) -> Iterator[Instance]:
    made = make_test_instance()
    opened = open_instance(load_settings(made.config_path))
    yield opened
    opened.close()


@pytest.fixture
def creds(instance: Instance) -> Credentials:
    return instance.credentials


def user_id(instance: Instance) -> int:
    return instance.accounts.get("admin").id


def test_app_password_shown_once_stored_as_a_keyed_digest(instance: Instance, creds: Credentials) -> None:
    uid = user_id(instance)
    info, password = creds.create_app_password(uid, "  Windows   laptop ")
    assert info.name == "Windows laptop"
    assert len(password.replace("-", "")) == 8 + 32  # lookup + 160 bits
    with instance.db.read() as c:
        row = c.one(select(app_passwords_t).where(app_passwords_t.c.id == info.id))
    assert password.replace("-", "") not in repr(tuple(row))
    assert len(row.digest) == 32
    # Typed back with spaces, capitals, without dashes: accepted.
    typed = password.upper().replace("-", " ")
    assert creds.check_app_password(uid, typed, address="192.0.2.7")
    assert creds.app_passwords(uid)[0].last_used_address == "192.0.2.7"
    # One changed character, another user, garbage: refused.
    wrong = password[:-1] + ("a" if password[-1] != "a" else "b")
    assert not creds.check_app_password(uid, wrong, address="x")
    assert not creds.check_app_password(uid + 1, password, address="x")
    assert not creds.check_app_password(uid, "short", address="x")


def test_app_password_names_and_revocation(instance: Instance, creds: Credentials) -> None:
    uid = user_id(instance)
    with pytest.raises(BadRequest):
        creds.create_app_password(uid, "   ")
    with pytest.raises(BadRequest):
        creds.create_app_password(uid, "x" * 101)
    info, password = creds.create_app_password(uid, "iPhone")
    changed: list[int] = []
    creds.on_change = changed.append
    creds.revoke_app_password(uid, info.id)
    assert changed == [uid]
    assert not creds.check_app_password(uid, password, address="x")
    assert creds.app_passwords(uid) == []
    with pytest.raises(NotFound):
        creds.revoke_app_password(uid, info.id)  # already revoked
    other, _ = creds.create_app_password(uid, "Mac")
    with pytest.raises(NotFound):
        creds.revoke_app_password(uid + 1, other.id)  # not theirs


def test_totp_enrolment_replay_and_skew(instance: Instance, creds: Credentials) -> None:
    uid = user_id(instance)
    enrolment = creds.start_totp("admin")
    assert enrolment.uri.startswith("otpauth://totp/MedDAV:admin?secret=")
    assert enrolment.qr_svg.startswith("<svg")
    totp = pyotp.TOTP(enrolment.secret)
    now = time.time()
    with pytest.raises(BadRequest):
        creds.confirm_totp(uid, enrolment.secret, "000000" if totp.at(now) != "000000" else "111111", now=now)
    codes = creds.confirm_totp(uid, enrolment.secret, totp.at(now), now=now)
    assert len(codes) == RECOVERY_CODES == len(set(codes))
    assert creds.has_totp(uid)
    with instance.db.read() as c:
        stored = c.scalar(select(users_t.c.totp_secret).where(users_t.c.id == uid))
    assert enrolment.secret.encode() not in stored  # sealed, not in clear
    # The code used to confirm cannot be used again, nor an older one; the next step's code can, once.
    assert not creds.check_totp(uid, totp.at(now), now=now)
    assert not creds.check_totp(uid, totp.at(now - 30), now=now)
    later = now + 30
    assert creds.check_totp(uid, totp.at(later), now=later)
    assert not creds.check_totp(uid, totp.at(later), now=later + 1)  # replay inside its window
    # One step of skew either way, not two.
    assert creds.check_totp(uid, totp.at(later + 120 - 30), now=later + 120)
    assert creds.check_totp(uid, totp.at(later + 240 + 30), now=later + 240)
    assert not creds.check_totp(uid, totp.at(later + 600 + 60), now=later + 600)
    assert not creds.check_totp(uid, "12 34", now=later + 600)


def test_recovery_codes_work_once(instance: Instance, creds: Credentials) -> None:
    uid = user_id(instance)
    enrolment = creds.start_totp("admin")
    codes = creds.confirm_totp(uid, enrolment.secret, pyotp.TOTP(enrolment.secret).now())
    assert creds.recovery_codes_left(uid) == 10
    assert creds.use_recovery_code(uid, codes[3].upper())
    assert not creds.use_recovery_code(uid, codes[3])
    assert creds.recovery_codes_left(uid) == 9
    assert not creds.use_recovery_code(uid + 1, codes[4])
    renewed = creds.renew_recovery_codes(uid)
    assert not creds.use_recovery_code(uid, codes[4])  # the old set is gone
    assert creds.use_recovery_code(uid, renewed[0])
    with instance.db.read() as c:
        digests = c.all(select(recovery_codes_t.c.digest, recovery_codes_t.c.lookup))
    assert all(code.replace("-", "")[8:] not in repr(digests) for code in renewed)


def test_reset_second_factor(instance: Instance, creds: Credentials) -> None:
    uid = user_id(instance)
    enrolment = creds.start_totp("admin")
    codes = creds.confirm_totp(uid, enrolment.secret, pyotp.TOTP(enrolment.secret).now())
    creds.reset_second_factor(uid)
    assert not creds.has_totp(uid)
    assert not creds.use_recovery_code(uid, codes[0])
    assert not creds.check_totp(uid, pyotp.TOTP(enrolment.secret).now())


def test_one_time_tokens(instance: Instance, creds: Credentials) -> None:
    uid = user_id(instance)
    token = creds.issue_token(uid, "reset", 60)
    assert creds.token_user(token, "reset") == uid  # looking does not use it
    assert creds.redeem_token(token, "invite") is None  # another purpose
    assert creds.redeem_token(token, "reset") == uid
    assert creds.redeem_token(token, "reset") is None  # single use
    expired = creds.issue_token(uid, "reset", 60)
    assert creds.redeem_token(expired, "reset", now=time.time() + 61) is None
    first = creds.issue_token(uid, "invite", 600)
    second = creds.issue_token(uid, "invite", 600)
    assert creds.redeem_token(first, "invite") is None  # replaced by the newer link
    assert creds.redeem_token(second, "invite") == uid
    with instance.db.read() as c:
        stored = repr(c.all(select(one_time_tokens_t)))
    assert second[8:] not in stored


def test_web_sessions(instance: Instance, creds: Credentials) -> None:
    uid = user_id(instance)
    now = time.time()
    info, cookie = creds.open_session(uid, address="192.0.2.1", user_agent="Firefox", lifetime_seconds=3600, now=now)
    assert info.second_factor_at is None
    assert creds.session(cookie, idle_seconds=900, now=now + 5) == info
    tampered = cookie[:-1] + ("x" if cookie[-1] != "x" else "y")  # a cookie may end with "x" (1 in 32)
    assert creds.session(tampered, idle_seconds=900, now=now + 5) is None
    assert creds.session(cookie, idle_seconds=900, now=now + 901) is None  # idle
    assert creds.session(cookie, idle_seconds=900, now=now + 600) is not None  # refreshes last seen
    assert creds.session(cookie, idle_seconds=900, now=now + 1400) is not None
    assert creds.session(cookie, idle_seconds=9999, now=now + 3601) is None  # absolute lifetime
    creds.mark_second_factor(info.id)
    other, other_cookie = creds.open_session(uid, address="a", user_agent="b", lifetime_seconds=3600)
    assert {s.id for s in creds.sessions(uid)} == {info.id, other.id}
    creds.revoke_sessions(uid, keep=other.id)
    assert creds.session(cookie, idle_seconds=900) is None
    assert creds.session(other_cookie, idle_seconds=900) is not None
    creds.revoke_session(uid, other.id)
    assert creds.session(other_cookie, idle_seconds=900) is None
    with instance.db.read() as c:
        assert cookie[8:] not in repr(c.all(select(web_sessions_t)))


def test_no_secret_in_the_database_file(instance: Instance, creds: Credentials, tmp_path: Path) -> None:
    uid = user_id(instance)
    _, password = creds.create_app_password(uid, "Linux")
    _, cookie = creds.open_session(uid, address="a", user_agent="b", lifetime_seconds=60)
    token = creds.issue_token(uid, "reset", 60)
    enrolment = creds.start_totp("admin")
    codes = creds.confirm_totp(uid, enrolment.secret, pyotp.TOTP(enrolment.secret).now())
    instance.db.close()
    data = b"".join(p.read_bytes() for p in instance.settings.storage.data_dir.glob("meddav.sqlite3*"))
    for secret in (password, cookie, token, enrolment.secret, *codes):
        body = secret.replace("-", "")[8:]
        assert body.encode() not in data and body.upper().encode() not in data
