"""``/ui/invite/<token>``: accepting an invitation, i.e. choosing the first password.

An admin's invitation (``/ui/admin/<org>``, or ``meddav user invite``) creates
the account with a password nobody knows and mails a single-use link, valid
``[web] invitation_days``.  The page shows the organisation and the user
name, asks for a password (``[passwords]``, with the user's name and e-mail
address as words it must not be built from; the reasons in the page's
language), then uses the link up, sets the password and signs the browser
in with a new session (whose next step may be setting up a second factor,
when the account must have one).  A used, expired or unknown link, or a
disabled account, gets the same page: "no longer valid".

Like the reset link, the form is protected from CSRF by the pre-session
cookie (:mod:`webui.csrf`).
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.errors import NotFound
from webui import i18n, sessions
from webui.context import instance, record
from webui.views.auth import chosen_password

__all__ = ["blueprint"]

blueprint = Blueprint("invite", __name__, url_prefix="/ui")

ResponseValue = str | tuple[str, int] | BaseResponse


def _invalid_link() -> tuple[str, int]:
    message = _(
        "This invitation is no longer valid: it has been used already, or it has expired. "
        "Ask the administrator who invited you for a new one."
    )
    return render_template("message.html", title=_("Invitation no longer valid"), message=message), 404


@blueprint.route("/invite/<token>", methods=["GET", "POST"])
def accept(token: str) -> ResponseValue:
    inst = instance()
    user_id = inst.credentials.token_user(token, "invite")
    user = sessions.user_by_id(user_id) if user_id is not None else None
    if user is None or user.disabled:
        return _invalid_link()
    try:
        organisation = inst.accounts.organisation(user.org_id).name
    except NotFound:
        return _invalid_link()
    context = {"token": token, "username": user.username, "organisation": organisation}
    if request.method == "GET":
        return render_template("invite.html", **context)
    new, error = chosen_password(user)
    if error is not None:
        return render_template("invite.html", error=error, **context), 400
    if inst.credentials.redeem_token(token, "invite") != user.id:
        return _invalid_link()
    inst.accounts.set_password(user.username, new)
    inst.credentials.revoke_sessions(user.id)
    if user.locale is None:
        inst.accounts.set_contact(user.username, locale=i18n.current())
    sessions.open_session(user.id, second_factor=False)
    record("account.invite_accept", "ok", principal=user.username, user_id=user.id, org_id=user.org_id, status=303)
    return redirect(url_for("account.home"), 303)
