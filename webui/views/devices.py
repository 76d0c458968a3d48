"""``/ui/app-passwords`` and ``/ui/sessions``: what can reach the account, and ending it.

- **App passwords** are for drives (WebDAV clients, rclone), which cannot type a
  second factor.  One per device, named, shown once; the list shows when and
  from where each was last used; revoking one takes effect at the next request.
  Once the account has a second factor, WebDAV refuses the account password
  (401): the pages say so, and point here.
- **Sessions** are the browsers signed in: created, last seen, address, browser;
  one or all the others can be ended.
"""

from __future__ import annotations

import datetime as dt
import time

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.errors import BadRequest, NotFound
from webui import i18n, sessions
from webui.context import address, dav_url, instance, record, send_mail_later
from webui.sessions import WebSession, login_required

__all__ = ["blueprint"]

blueprint = Blueprint("devices", __name__, url_prefix="/ui")

ResponseValue = str | tuple[str, int] | BaseResponse

_NOTICES = {
    "revoked": lambda: _("The app password has been revoked: the device using it can no longer connect."),
    "session_ended": lambda: _("The session has been ended."),
    "others_ended": lambda: _("All your other sessions have been ended."),
}


def _session() -> WebSession:
    session = sessions.current()
    assert session is not None
    return session


def _notice() -> str | None:
    key = request.args.get("notice", "")
    return _NOTICES[key]() if key in _NOTICES else None


def _app_passwords_page(status: int = 200, **context: object) -> tuple[str, int]:
    session = _session()
    context.setdefault("notice", _notice())
    return (
        render_template(
            "app_passwords.html",
            app_passwords=instance().credentials.app_passwords(session.user.id),
            has_totp=session.has_totp,
            username=session.user.username,
            dav_url=dav_url(),
            **context,
        ),
        status,
    )


@blueprint.get("/app-passwords")
@login_required()
def app_passwords() -> ResponseValue:
    return _app_passwords_page()


@blueprint.post("/app-passwords")
@login_required()
def create_app_password() -> ResponseValue:
    user = _session().user
    name = request.form.get("name", "")
    try:
        info, password = instance().credentials.create_app_password(user.id, name)
    except BadRequest:
        return _app_passwords_page(400, error=_("Name the device in 1 to 100 characters, e.g. “Windows laptop”."))
    record("app_password.create", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, target_id=info.id)
    if user.email:
        send_mail_later(
            "new_app_password",
            user.email,
            locale=user.locale or i18n.current(),
            context={
                "created_at": dt.datetime.fromtimestamp(info.created_at, dt.UTC),
                "ip_address": address(),
                "app_password_name": info.name,
                "recipient_name": user.username,
            },
        )
    return _app_passwords_page(created=info, password=password)


@blueprint.post("/app-passwords/<int:app_id>/revoke")
@login_required()
def revoke_app_password(app_id: int) -> ResponseValue:
    user = _session().user
    try:
        instance().credentials.revoke_app_password(user.id, app_id)
    except NotFound:
        return _app_passwords_page(404, error=_("This app password does not exist, or it is already revoked."))
    record("app_password.revoke", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, target_id=app_id)
    return redirect(url_for("devices.app_passwords", notice="revoked"), 303)


@blueprint.get("/sessions")
@login_required()
def sessions_page() -> str:
    session = _session()
    idle = instance().settings.web.session_idle_minutes * 60
    now = time.time()
    alive = [s for s in instance().credentials.sessions(session.user.id, now=now) if now - s.last_seen_at <= idle]
    return render_template("sessions.html", sessions=alive, current_id=session.info.id, notice=_notice())


@blueprint.post("/sessions/<int:session_id>/revoke")
@login_required()
def revoke_session(session_id: int) -> BaseResponse:
    session = _session()
    user = session.user
    if session_id == session.info.id:
        sessions.close()
        record("session.revoke", "ok", principal=user.username, user_id=user.id, target_id=session_id, detail="own")
        return redirect(url_for("auth.login", notice="logged_out"), 303)
    instance().credentials.revoke_session(user.id, session_id)
    record("session.revoke", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, target_id=session_id)
    return redirect(url_for("devices.sessions_page", notice="session_ended"), 303)


@blueprint.post("/sessions/revoke-others")
@login_required()
def revoke_other_sessions() -> BaseResponse:
    session = _session()
    user = session.user
    instance().credentials.revoke_sessions(user.id, keep=session.info.id)
    record("session.revoke", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, detail="others")
    return redirect(url_for("devices.sessions_page", notice="others_ended"), 303)
