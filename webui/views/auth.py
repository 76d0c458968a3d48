"""Signing in and out: password, second factor, forgotten password.

- ``/ui/login``: user name and password (the account password only, never an
  app password).  A wrong name and a wrong password get the same answer;
  failures are throttled per account and per address (429 with the wait).
- ``/ui/login/code``: a TOTP code or a recovery code, when the account has a
  second factor; a wrong code counts as a failed login for the throttle.
- ``/ui/logout``: ends the session on the server.
- ``/ui/forgot`` and ``/ui/reset/<token>``: a single-use link, valid ``[web]
  reset_link_minutes``, sent to the account's e-mail address.  The answer is
  the same whether the account exists or not, and the mail leaves from a
  thread, so the time taken does not tell either.  One client address may ask
  :data:`FORGOT_LIMIT` times per :data:`FORGOT_WINDOW_SECONDS` (whichever
  accounts it names, existing or not); beyond, 429 with the wait, and no mail
  (:class:`webui.ratelimit.RateLimit`, in memory, per process).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.audit import AuditEvent
from server.auth import PasswordRejected, Throttled
from server.errors import AuthenticationFailed, BadRequest, MedDAVError, NotFound
from webui import i18n, sessions
from webui.context import address, instance, record
from webui.ratelimit import RateLimit
from webui.sessions import State, login_required

if TYPE_CHECKING:
    from server.accounts import UserInfo
    from server.instance import Instance

__all__ = ["FORGOT_LIMIT", "FORGOT_WINDOW_SECONDS", "blueprint"]

logger = logging.getLogger(__name__)

blueprint = Blueprint("auth", __name__, url_prefix="/ui")

ResponseValue = str | tuple[str, int] | tuple[str, int, dict[str, str]] | BaseResponse

#: Reset links one client address may ask for within the window.
FORGOT_LIMIT = 5
FORGOT_WINDOW_SECONDS = 3600

#: Messages shown on the login page after a redirect (``?notice=``): fixed texts, never user input.
_NOTICES = {
    "logged_out": lambda: _("You are signed out."),
    "reset": lambda: _("Your password has been changed. Sign in with the new one."),
    "expired": lambda: _("Your session has ended. Please sign in again."),
}


def _throttled(wait: int, template: str, **context: object) -> tuple[str, int, dict[str, str]]:
    message = _("Too many failed attempts. Please wait %(seconds)s seconds before trying again.", seconds=wait)
    return render_template(template, error=message, **context), 429, {"Retry-After": str(wait)}


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseValue:
    notice_key = request.args.get("notice", "")
    notice = _NOTICES[notice_key]() if notice_key in _NOTICES else None
    if request.method == "GET":
        return render_template("login.html", notice=notice, username="")
    inst = instance()
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    try:
        principal = inst.authenticator.authenticate(username, password, address=address(), web=True)
    except Throttled as exc:
        record("auth.login", "denied", principal=username, status=429, detail="throttled")
        return _throttled(exc.retry_after, "login.html", username=username)
    except AuthenticationFailed:
        record("auth.login", "failed", principal=username, status=401)
        error = _("Wrong user name or password.")
        return render_template("login.html", error=error, username=username), 401
    has_totp = inst.credentials.has_totp(principal.user_id)
    sessions.open_session(principal.user_id, second_factor=False)
    record(
        "auth.login",
        "ok",
        principal=principal.username,
        user_id=principal.user_id,
        org_id=principal.org_id,
        status=303,
        detail="second factor next" if has_totp else None,
    )
    try:
        if inst.accounts.get(principal.username).locale is None:
            # The language they signed in with becomes the language of their mails.
            inst.accounts.set_contact(principal.username, locale=i18n.current())
    except (NotFound, BadRequest):
        pass
    return redirect(url_for("auth.code" if has_totp else "account.home"), 303)


@blueprint.route("/login/code", methods=["GET", "POST"])
@login_required(State.CODE)
def code() -> ResponseValue:
    if request.method == "GET":
        return render_template("login_code.html")
    session = sessions.current()
    assert session is not None
    inst = instance()
    user, client = session.user, address()
    throttle = inst.authenticator.throttle
    wait = throttle.check(user.username, client)
    if wait is not None:
        record("auth.second_factor", "denied", principal=user.username, user_id=user.id, status=429)
        return _throttled(Throttled(wait).retry_after, "login_code.html")
    typed = "".join(request.form.get("code", "").split())
    if typed.isdigit():
        kind, ok = "totp", inst.credentials.check_totp(user.id, typed)
    else:
        kind, ok = "recovery_code", inst.credentials.use_recovery_code(user.id, typed)
    if not ok:
        throttle.failed(user.username, client)
        record("auth.second_factor", "failed", principal=user.username, user_id=user.id, status=401, detail=kind)
        error = _("This code is not valid, or it has already been used. Type the code your app shows now.")
        return render_template("login_code.html", error=error), 401
    throttle.succeeded(user.username, client)
    # A new session for the new privilege: the password-only one ends here.
    sessions.open_session(user.id, second_factor=True)
    record(
        "auth.second_factor",
        "ok",
        principal=user.username,
        user_id=user.id,
        org_id=user.org_id,
        status=303,
        detail=kind,
    )
    if kind == "recovery_code":
        return redirect(url_for("security.page", notice="recovery_used"), 303)
    return redirect(url_for("account.home"), 303)


@blueprint.post("/logout")
@login_required(State.CODE, State.ENROL, State.FULL)
def logout() -> BaseResponse:
    session = sessions.current()
    assert session is not None
    sessions.close()
    record("auth.logout", "ok", principal=session.user.username, user_id=session.user.id, status=303)
    return redirect(url_for("auth.login", notice="logged_out"), 303)


def _accounts_for(inst: Instance, who: str) -> list[UserInfo]:
    """The active accounts a forgotten-password request names (by user name or e-mail address)."""
    if "@" in who:
        wanted = who.strip().lower()
        found = [u for u in inst.accounts.list() if u.email and u.email.lower() == wanted]
    else:
        try:
            found = [inst.accounts.get(who)]
        except (NotFound, BadRequest):
            found = []
    return [u for u in found if not u.disabled and u.email]


def _send_reset_links(inst: Instance, who: str, client: str, page_lang: str) -> None:
    """Issue and mail a reset link to each account ``who`` names (runs in a thread)."""
    try:
        users = _accounts_for(inst, who)
        if not users:
            inst.audit.record(
                AuditEvent(
                    surface="web",
                    action="account.reset_request",
                    outcome="failed",
                    principal="-" if "@" in who else who,
                    address=client,
                    detail="no account with an e-mail address",
                )
            )
        minutes = inst.settings.web.reset_link_minutes
        for user in users:
            token = inst.credentials.issue_token(user.id, "reset", minutes * 60)
            assert user.email is not None
            inst.mailer.send(
                "password_reset",
                user.email,
                locale=user.locale or page_lang,
                context={
                    "reset_url": f"{inst.mailer.base_url}/ui/reset/{token}",
                    "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes),
                    "recipient_name": user.username,
                },
            )
            inst.audit.record(
                AuditEvent(
                    surface="web",
                    action="account.reset_request",
                    outcome="ok",
                    principal=user.username,
                    user_id=user.id,
                    org_id=user.org_id,
                    address=client,
                )
            )
    except (MedDAVError, ValueError):
        logger.exception("password reset link not sent")


def _forgot_limit() -> RateLimit:
    """This application's limit of reset requests per address (one per application: test servers never mix)."""
    limit: RateLimit = current_app.extensions.setdefault(
        "meddav.forgot_limit", RateLimit(FORGOT_LIMIT, FORGOT_WINDOW_SECONDS)
    )
    return limit


@blueprint.route("/forgot", methods=["GET", "POST"])
def forgot() -> ResponseValue:
    if request.method == "GET":
        return render_template("forgot.html")
    who = request.form.get("who", "").strip()[:254]
    if not who:
        return render_template("forgot.html", error=_("Type your user name or your e-mail address.")), 400
    wait = _forgot_limit().hit(address())
    if wait is not None:
        minutes = max(1, round(wait / 60))
        record("account.reset_request", "denied", status=429, detail="rate limited")
        message = _(
            "Too many requests from your connection. Please wait %(minutes)s minutes before asking again.",
            minutes=minutes,
        )
        return render_template("forgot.html", error=message), 429, {"Retry-After": str(max(1, round(wait)))}
    sender = threading.Thread(
        target=_send_reset_links,
        args=(instance(), who, address(), i18n.current()),
        name="meddav-reset-mail",
        daemon=True,
    )
    sender.start()
    return render_template("forgot_sent.html", minutes=instance().settings.web.reset_link_minutes)


def _invalid_link() -> tuple[str, int]:
    message = _("This link is no longer valid: it has been used already, or it has expired. Ask for a new one.")
    return render_template("message.html", title=_("Link no longer valid"), message=message, forgot=True), 404


def chosen_password(user: UserInfo) -> tuple[str, str | None]:
    """The new password of a form (fields new_password, confirm_password) and, when it
    cannot be used, why, in the page's language."""
    new, confirm = request.form.get("new_password", ""), request.form.get("confirm_password", "")
    if new != confirm:
        return new, _("The two new passwords differ.")
    try:
        instance().accounts.policy.check(new, user_inputs=[user.username, user.email or ""])
    except PasswordRejected as exc:
        return new, exc.message(i18n.current())
    return new, None


@blueprint.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> ResponseValue:
    inst = instance()
    user_id = inst.credentials.token_user(token, "reset")
    user = sessions.user_by_id(user_id) if user_id is not None else None
    if user is None or user.disabled:
        return _invalid_link()
    if request.method == "GET":
        return render_template("reset.html", token=token, username=user.username)
    new, error = chosen_password(user)
    if error is not None:
        return render_template("reset.html", token=token, username=user.username, error=error), 400
    if inst.credentials.redeem_token(token, "reset") != user.id:
        return _invalid_link()
    inst.accounts.set_password(user.username, new)
    inst.credentials.revoke_sessions(user.id)
    record("account.reset", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, status=303)
    return redirect(url_for("auth.login", notice="reset"), 303)
