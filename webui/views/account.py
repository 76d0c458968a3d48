"""``/ui``: the home page of a signed-in user (who they are, their organisation, where to go)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.errors import NotFound
from server.policy import ROLE_INSTANCE_ADMIN, ROLE_MEMBER, ROLE_ORG_ADMIN
from webui import sessions
from webui.context import dav_url, instance
from webui.sessions import login_required

__all__ = ["blueprint", "role_name"]

blueprint = Blueprint("account", __name__, url_prefix="/ui")


def role_name(role: str) -> str:
    names: dict[str, str] = {
        ROLE_MEMBER: _("Member"),
        ROLE_ORG_ADMIN: _("Organisation administrator"),
        ROLE_INSTANCE_ADMIN: _("Instance administrator"),
    }
    return names.get(role, role)


@blueprint.get("")
@login_required()
def home() -> str | BaseResponse:
    session = sessions.current()
    assert session is not None
    inst = instance()
    try:
        organisation: str | None = inst.accounts.organisation(session.user.org_id).name
    except NotFound:
        organisation = None
    return render_template(
        "home.html",
        user=session.user,
        role=role_name(session.user.role),
        organisation=organisation,
        has_totp=session.has_totp,
        app_passwords=len(inst.credentials.app_passwords(session.user.id)),
        dav_url=dav_url(),
    )
