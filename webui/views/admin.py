"""``/ui/admin``: administering an organisation's members (org admins and instance admins).

- ``/ui/admin``: an org admin goes straight to their organisation; an instance
  admin chooses among all of them.
- ``/ui/admin/<org>``: the members (name, e-mail, role, state, second factor,
  used space and quota), the invitation form, and whether the organisation
  requires a second factor.
- ``/ui/admin/<org>/members/<user>``: one member: role, quota, disable or
  enable, reset the second factor.

**Who may.**  Every page and every POST asks :mod:`server.policy` whether
the signed-in user may ``ADMINISTER`` the :class:`~server.policy.Organisation`
of the address (403 otherwise): an org admin only their own organisation, an
instance admin any.  A member id of another organisation gets 404.  Rules the
policy does not hold, because they are about who the *target* is:

- an org admin cannot change an instance admin, nor make anyone one (403);
- nobody changes their own role, disables their own account or resets their
  own second factor here: another admin (or ``meddav`` on the server) must.
  So an admin cannot lock the organisation out of its own administration by
  a wrong click: whoever is acting stays an admin.

Every action is audited (surface ``web``, ``admin.*`` actions, the member's
id as ``target_id``); a refused one is audited as ``denied``.
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server import policy
from server.accounts import LOCALES, OrganisationInfo, UserInfo
from server.errors import AlreadyExists, BadRequest, NotFound
from server.mail import MailError
from server.policy import (
    ROLE_INSTANCE_ADMIN,
    ROLE_MEMBER,
    ROLE_ORG_ADMIN,
    ROLES,
    Account,
    Action,
    Organisation,
    Principal,
)
from webui import i18n, sessions
from webui.context import instance, record, send_mail_later
from webui.sessions import WebSession, login_required
from webui.sizes import parse_size
from webui.views.account import role_name

__all__ = [
    "administered_organisation",
    "audit_admin",
    "blueprint",
    "can_administer",
    "principal_of",
]

logger = logging.getLogger(__name__)

blueprint = Blueprint("admin", __name__, url_prefix="/ui/admin")

ResponseValue = str | tuple[str, int] | BaseResponse

_NOTICES = {
    "invited": lambda: _("The invitation has been sent. The link works once."),
    "role": lambda: _("The role has been changed. It applies from the member's next request."),
    "disabled": lambda: _("The account is disabled: its sessions, drives and app passwords are refused from now on."),
    "enabled": lambda: _("The account is enabled again."),
    "reset_2fa": lambda: _("The second factor has been removed. The member sets up a new one at their next sign-in."),
    "quota": lambda: _("The quota has been changed."),
    "second_factor_on": lambda: _("Every member now needs a second factor; drives must use app passwords from now on."),
    "second_factor_off": lambda: _("A second factor is now optional for the members."),
}


def principal_of(user: UserInfo) -> Principal:
    """The policy's view of a signed-in user."""
    return user.principal()


def _session() -> WebSession:
    session = sessions.current()
    assert session is not None
    return session


def can_administer() -> bool:
    """Whether the signed-in user administers some organisation (their own, at least): the menu's link."""
    session = sessions.current()
    if session is None:
        return False
    return policy.allows(principal_of(session.user), Organisation(session.user.org_id), Action.ADMINISTER)


def administered_organisation(org_id: int) -> OrganisationInfo:
    """The organisation of the address, once the policy lets the signed-in user administer it (else 403/404)."""
    if not policy.allows(principal_of(_session().user), Organisation(org_id), Action.ADMINISTER):
        abort(403)
    try:
        return instance().accounts.organisation(org_id)
    except NotFound:
        abort(404)


def audit_admin(
    action: str,
    org_id: int,
    *,
    outcome: str = "ok",
    status: int = 303,
    target_id: int | None = None,
    detail: str | None = None,
) -> None:
    """An administrative action of the signed-in user, in the audit log."""
    actor = _session().user
    record(
        action,
        outcome,
        principal=actor.username,
        user_id=actor.id,
        org_id=org_id,
        status=status,
        target_id=target_id,
        detail=detail,
    )


def _notice() -> str | None:
    key = request.args.get("notice", "")
    return _NOTICES[key]() if key in _NOTICES else None


def _effective_quota(user: UserInfo) -> int | None:
    """The member's quota in bytes (their own, else the default); None when unlimited."""
    quota = user.quota_bytes if user.quota_bytes is not None else instance().settings.storage.default_quota_bytes
    return quota or None


def _grantable_roles(actor: UserInfo) -> list[tuple[str, str]]:
    """The roles the actor may give, with their names: only an instance admin makes instance admins."""
    roles = ROLES if actor.role == ROLE_INSTANCE_ADMIN else (ROLE_MEMBER, ROLE_ORG_ADMIN)
    return [(role, role_name(role)) for role in roles]


# -- choosing an organisation -------------------------------------------------------------------


@blueprint.get("")
@login_required()
def index() -> ResponseValue:
    user = _session().user
    principal = principal_of(user)
    organisations = [
        org
        for org in instance().accounts.organisations()
        if policy.allows(principal, Organisation(org.id), Action.ADMINISTER)
    ]
    if not organisations:
        abort(403)
    if len(organisations) == 1:
        return redirect(url_for("admin.members", org_id=organisations[0].id))
    counts = {org.id: len(instance().accounts.list(org.id)) for org in organisations}
    return render_template("admin/organisations.html", organisations=organisations, counts=counts)


# -- members ------------------------------------------------------------------------------------


def _members_page(org: OrganisationInfo, status: int = 200, **context: object) -> tuple[str, int]:
    inst = instance()
    actor = _session().user
    members = inst.accounts.list(org.id)
    context.setdefault("notice", _notice())
    context.setdefault("form", {})
    return (
        render_template(
            "admin/members.html",
            org=org,
            members=members,
            roles={role: role_name(role) for role in ROLES},
            totp={m.id: inst.credentials.has_totp(m.id) for m in members},
            quotas={m.id: _effective_quota(m) for m in members},
            grantable=_grantable_roles(actor),
            locales=LOCALES,
            invitation_days=inst.settings.web.invitation_days,
            me=actor.id,
            **context,
        ),
        status,
    )


@blueprint.get("/<int:org_id>")
@login_required()
def members(org_id: int) -> ResponseValue:
    return _members_page(administered_organisation(org_id))


@blueprint.post("/<int:org_id>/invite")
@login_required()
def invite(org_id: int) -> ResponseValue:
    org = administered_organisation(org_id)
    inst = instance()
    actor = _session().user
    form = {key: request.form.get(key, "").strip() for key in ("name", "email", "role", "locale")}
    role = form["role"] or ROLE_MEMBER
    locale = form["locale"] if form["locale"] in LOCALES else i18n.current()
    if role not in dict(_grantable_roles(actor)):
        audit_admin("admin.user.invite", org.id, outcome="denied", status=403, detail=f"role={role[:20]}")
        return _members_page(org, 403, form=form, invite_error=_("You may not give this role."))
    if not form["name"] or not form["email"]:
        return _members_page(
            org, 400, form=form, invite_error=_("Give the new member a user name and an e-mail address.")
        )
    try:
        user = inst.accounts.create_user(
            form["name"], None, org_id=org.id, role=role, email=form["email"], locale=locale
        )
    except AlreadyExists:
        return _members_page(org, 409, form=form, invite_error=_("This user name is already taken: choose another."))
    except BadRequest:
        error = _(
            "Check the user name (letters, digits, dots, dashes; no spaces) and the e-mail address (name@example.org)."
        )
        return _members_page(org, 400, form=form, invite_error=error)
    days = inst.settings.web.invitation_days
    token = inst.credentials.issue_token(user.id, "invite", days * 86400)
    audit_admin("admin.user.invite", org.id, target_id=user.id, detail=f"role={role}")
    try:
        inst.mailer.send(
            "invitation",
            form["email"],
            locale=locale,
            context={
                "inviter_name": actor.username,
                "organisation_name": org.name,
                "set_password_url": f"{inst.mailer.base_url}/ui/invite/{token}",
                "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
                "recipient_name": user.username,
            },
        )
    except MailError:
        logger.exception("invitation of user %s not sent", user.id)
        error = _(
            "The account has been created, but the invitation could not be sent by e-mail. "
            "Check the mail settings, then send it again from the command line (meddav user invite)."
        )
        return _members_page(org, 502, invite_error=error)
    return redirect(url_for("admin.members", org_id=org.id, notice="invited"), 303)


@blueprint.post("/<int:org_id>/second-factor")
@login_required()
def second_factor(org_id: int) -> ResponseValue:
    org = administered_organisation(org_id)
    required = request.form.get("required") == "yes"
    instance().accounts.set_second_factor_required(org.id, required=required)
    audit_admin("admin.org.second_factor", org.id, detail="required" if required else "optional")
    notice = "second_factor_on" if required else "second_factor_off"
    return redirect(url_for("admin.members", org_id=org.id, notice=notice), 303)


# -- one member ---------------------------------------------------------------------------------


def _member(org: OrganisationInfo, user_id: int) -> UserInfo:
    user = sessions.user_by_id(user_id)
    if user is None or user.org_id != org.id:
        abort(404)
    return user


def _member_page(org: OrganisationInfo, user: UserInfo, status: int = 200, **context: object) -> tuple[str, int]:
    inst = instance()
    actor = _session().user
    context.setdefault("notice", _notice())
    return (
        render_template(
            "admin/member.html",
            org=org,
            user=user,
            role=role_name(user.role),
            has_totp=inst.credentials.has_totp(user.id),
            quota=_effective_quota(user),
            default_quota=inst.settings.storage.default_quota_bytes or None,
            grantable=_grantable_roles(actor),
            protected=_refusal(actor, user, "quota") is not None,
            myself=actor.id == user.id,
            **context,
        ),
        status,
    )


def _refusal(actor: UserInfo, target: UserInfo, change: str) -> str | None:
    """Why ``actor`` may not make this ``change`` to ``target`` (None: they may): the policy's answer on the
    account, then the rule that keeps an administrator from locking themselves out."""
    if not policy.allows(actor.principal(), Account(target.id, target.org_id, target.role), Action.ADMINISTER):
        return str(_("Only an instance administrator may change an instance administrator's account."))
    if target.id == actor.id and change in ("role", "disable", "reset_2fa"):
        return str(_("You cannot do this to your own account: ask another administrator."))
    return None


def _act(org_id: int, user_id: int, change: str) -> tuple[OrganisationInfo, UserInfo, tuple[str, int] | None]:
    """The organisation and member of a POST, and the page refusing it when the actor may not."""
    org = administered_organisation(org_id)
    user = _member(org, user_id)
    reason = _refusal(_session().user, user, change)
    if reason is None:
        return org, user, None
    audit_admin(f"admin.user.{change}", org.id, outcome="denied", status=403, target_id=user.id)
    return org, user, _member_page(org, user, 403, error=reason)


@blueprint.get("/<int:org_id>/members/<int:user_id>")
@login_required()
def member(org_id: int, user_id: int) -> ResponseValue:
    org = administered_organisation(org_id)
    return _member_page(org, _member(org, user_id))


@blueprint.post("/<int:org_id>/members/<int:user_id>/role")
@login_required()
def set_role(org_id: int, user_id: int) -> ResponseValue:
    org, user, refused = _act(org_id, user_id, "role")
    if refused is not None:
        return refused
    role = request.form.get("role", "")
    if role not in dict(_grantable_roles(_session().user)):
        audit_admin("admin.user.role", org.id, outcome="denied", status=403, target_id=user.id)
        return _member_page(org, user, 403, error=_("You may not give this role."))
    instance().accounts.set_role(user.username, role)
    audit_admin("admin.user.role", org.id, target_id=user.id, detail=f"role={role}")
    return redirect(url_for("admin.member", org_id=org.id, user_id=user.id, notice="role"), 303)


@blueprint.post("/<int:org_id>/members/<int:user_id>/disable")
@login_required()
def disable(org_id: int, user_id: int) -> ResponseValue:
    org, user, refused = _act(org_id, user_id, "disable")
    if refused is not None:
        return refused
    inst = instance()
    inst.accounts.set_disabled(user.username, disabled=True)
    inst.credentials.revoke_sessions(user.id)
    audit_admin("admin.user.disable", org.id, target_id=user.id)
    return redirect(url_for("admin.member", org_id=org.id, user_id=user.id, notice="disabled"), 303)


@blueprint.post("/<int:org_id>/members/<int:user_id>/enable")
@login_required()
def enable(org_id: int, user_id: int) -> ResponseValue:
    org, user, refused = _act(org_id, user_id, "enable")
    if refused is not None:
        return refused
    instance().accounts.set_disabled(user.username, disabled=False)
    audit_admin("admin.user.enable", org.id, target_id=user.id)
    return redirect(url_for("admin.member", org_id=org.id, user_id=user.id, notice="enabled"), 303)


@blueprint.post("/<int:org_id>/members/<int:user_id>/reset-2fa")
@login_required()
def reset_second_factor(org_id: int, user_id: int) -> ResponseValue:
    org, user, refused = _act(org_id, user_id, "reset_2fa")
    if refused is not None:
        return refused
    inst = instance()
    inst.credentials.reset_second_factor(user.id)
    # Sessions that passed the old second factor end too: the next sign-in sets up the new one.
    inst.credentials.revoke_sessions(user.id)
    audit_admin("admin.user.reset_2fa", org.id, target_id=user.id)
    if user.email:
        send_mail_later(
            "second_factor_reset",
            user.email,
            locale=user.locale or i18n.current(),
            context={
                "admin_name": _session().user.username,
                "reset_at": dt.datetime.now(dt.UTC),
                "recipient_name": user.username,
            },
        )
    return redirect(url_for("admin.member", org_id=org.id, user_id=user.id, notice="reset_2fa"), 303)


@blueprint.post("/<int:org_id>/members/<int:user_id>/quota")
@login_required()
def set_quota(org_id: int, user_id: int) -> ResponseValue:
    org, user, refused = _act(org_id, user_id, "quota")
    if refused is not None:
        return refused
    typed = request.form.get("quota", "").strip()
    try:
        quota = None if not typed else parse_size(typed)
    except ValueError:
        error = _("Type a size such as 500 MB or 2 GB; 0 for unlimited; nothing for the default.")
        return _member_page(org, user, 400, quota_error=error, typed_quota=typed)
    instance().accounts.set_quota(user.username, quota)
    audit_admin("admin.user.quota", org.id, target_id=user.id, detail=f"quota={'default' if quota is None else quota}")
    return redirect(url_for("admin.member", org_id=org.id, user_id=user.id, notice="quota"), 303)
