"""``/ui/security``: change the password, set up the second factor, renew the recovery codes.

**The pending TOTP secret.**  Setting up a second factor takes two requests:
the page showing the QR code, then the first code.  Between them the new
secret travels in the form, signed (HMAC keyed with this session's cookie,
purpose ``totp-pending``, at most :data:`ENROL_SECONDS` old; see
:mod:`webui.signing`).  So nothing is stored until the code proves the phone
has the secret, no server-side state is needed (any node may take the second
request), and the secret cannot be swapped or replayed into another session.
It is not encrypted: the same page shows it as text for manual entry.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.auth import PasswordRejected, Throttled
from server.errors import AuthenticationFailed, BadRequest
from webui import i18n, sessions, signing
from webui.context import address, instance, record
from webui.sessions import State, WebSession, login_required

__all__ = ["ENROL_SECONDS", "blueprint"]

blueprint = Blueprint("security", __name__, url_prefix="/ui/security")

#: How long the QR code page stays valid before a first code must be typed.
ENROL_SECONDS = 15 * 60
_PENDING = "totp-pending"

ResponseValue = str | tuple[str, int] | tuple[str, int, dict[str, str]] | BaseResponse

_NOTICES = {
    "password_changed": lambda: _("Your password has been changed. Your other sessions have been ended."),
    "recovery_used": lambda: _(
        "You signed in with a recovery code, which cannot be used again. "
        "If you have lost your phone, renew your recovery codes and ask your administrator to reset your second factor."
    ),
}


def _session() -> WebSession:
    session = sessions.current()
    assert session is not None
    return session


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    session = _session()
    notice_key = request.args.get("notice", "")
    context.setdefault("notice", _NOTICES[notice_key]() if notice_key in _NOTICES else None)
    return (
        render_template(
            "security.html",
            has_totp=session.has_totp,
            must_enrol=session.state is State.ENROL,
            codes_left=instance().credentials.recovery_codes_left(session.user.id) if session.has_totp else 0,
            **context,
        ),
        status,
    )


@blueprint.get("")
@login_required(State.ENROL, State.FULL)
def page() -> ResponseValue:
    return _page()


def _check_password(session: WebSession, password: str) -> tuple[str, int] | None:
    """None when ``password`` is the account password; else the error and its status."""
    try:
        instance().authenticator.authenticate(session.user.username, password, address=address(), web=True)
    except Throttled as exc:
        return _(
            "Too many failed attempts. Please wait %(seconds)s seconds before trying again.", seconds=exc.retry_after
        ), 429
    except AuthenticationFailed:
        return _("The current password is wrong."), 400
    return None


@blueprint.post("/password")
@login_required()
def password() -> ResponseValue:
    session = _session()
    user = session.user
    failure = _check_password(session, request.form.get("current_password", ""))
    if failure is not None:
        record("account.password", "failed", principal=user.username, user_id=user.id, status=failure[1])
        return _page(failure[1], password_error=failure[0])
    new, confirm = request.form.get("new_password", ""), request.form.get("confirm_password", "")
    if new != confirm:
        return _page(400, password_error=_("The two new passwords differ."))
    try:
        instance().accounts.set_password(user.username, new)
    except PasswordRejected as exc:
        return _page(400, password_error=exc.message(i18n.current()))
    instance().credentials.revoke_sessions(user.id, keep=session.info.id)
    record("account.password", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, status=303)
    return redirect(url_for("security.page", notice="password_changed"), 303)


def _enrol_page(
    secret: str, *, status: int = 200, qr_svg: str | None = None, error: str | None = None
) -> tuple[str, int]:
    pending = signing.signed_value(_session().cookie, _PENDING, secret)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return (
        render_template("totp_enrol.html", qr_svg=qr_svg, secret=grouped, pending=pending, error=error),
        status,
    )


@blueprint.post("/totp/start")
@login_required(State.ENROL, State.FULL)
def totp_start() -> ResponseValue:
    session = _session()
    if session.has_totp:
        return redirect(url_for("security.page"), 303)
    enrolment = instance().credentials.start_totp(session.user.username)
    return _enrol_page(enrolment.secret, qr_svg=enrolment.qr_svg)


@blueprint.post("/totp/confirm")
@login_required(State.ENROL, State.FULL)
def totp_confirm() -> ResponseValue:
    session = _session()
    user = session.user
    if session.has_totp:
        return redirect(url_for("security.page"), 303)
    secret = signing.unsign_value(session.cookie, _PENDING, request.form.get("pending", ""), max_age=ENROL_SECONDS)
    if secret is None:
        return _page(400, totp_error=_("This set-up page has expired. Please start again."))
    try:
        codes = instance().credentials.confirm_totp(user.id, secret, request.form.get("code", ""))
    except BadRequest:
        record("totp.enable", "failed", principal=user.username, user_id=user.id, status=400)
        error = _("This code is not the one expected. Check that your phone is on time and type the code it shows now.")
        return _enrol_page(secret, status=400, error=error)
    instance().credentials.mark_second_factor(session.info.id)
    record("totp.enable", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, status=200)
    return render_template("recovery_codes.html", codes=codes, first=True)


@blueprint.post("/recovery-codes")
@login_required()
def recovery_codes() -> ResponseValue:
    session = _session()
    user = session.user
    if not session.has_totp:
        return redirect(url_for("security.page"), 303)
    failure = _check_password(session, request.form.get("current_password", ""))
    if failure is not None:
        record("totp.recovery_codes", "failed", principal=user.username, user_id=user.id, status=failure[1])
        return _page(failure[1], codes_error=failure[0])
    codes = instance().credentials.renew_recovery_codes(user.id)
    record("totp.recovery_codes", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, status=200)
    return render_template("recovery_codes.html", codes=codes, first=False)
