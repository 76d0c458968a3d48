"""``/ui/admin/<org>/groups``: an organisation's group folders (org admins and instance admins).

A group folder appears at the root of every member's drive; members read it,
and write in it when its access is "read and write".  The page lists them
with their access, used space and quota; creates one; changes its access or
quota; deletes one after a confirmation page (everything in it goes).

**Names.**  A group folder's name is encrypted with the organisation's key
like any file name.  It is shown to admins *of* the organisation; an
instance admin administering another organisation sees ids only ("#42"),
as the design asks of support admins (names and contents stay theirs).

Every page asks :func:`webui.views.admin.administered_organisation` (the
policy); a group folder of another organisation gets 404.  Actions are
audited as ``admin.group.create``, ``admin.group.set`` and
``admin.group.delete``, with the group folder's root node id as ``target_id``.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.accounts import OrganisationInfo
from server.errors import AlreadyExists, BadRequest, NotFound
from server.policy import ROLE_INSTANCE_ADMIN, ROLE_ORG_ADMIN
from server.tree import GROUP_ACCESS, Entry
from webui import sessions
from webui.context import instance
from webui.sizes import parse_size
from webui.views.admin import administered_organisation, audit_admin

__all__ = ["blueprint"]

blueprint = Blueprint("groups", __name__, url_prefix="/ui/admin")

ResponseValue = str | tuple[str, int] | BaseResponse

_NOTICES = {
    "created": lambda: _("The group folder has been created: it appears at the root of every member's drive."),
    "changed": lambda: _("The group folder has been changed."),
    "deleted": lambda: _("The group folder and everything in it have been deleted."),
}


def _shows_names(org: OrganisationInfo) -> bool:
    session = sessions.current()
    return session is not None and session.user.org_id == org.id


def _label(org: OrganisationInfo, root: Entry) -> str:
    return root.name if _shows_names(org) else f"#{root.id}"


def _access_names() -> dict[str, str]:
    return {"rw": _("read and write"), "ro": _("read only")}


def _page(org: OrganisationInfo, status: int = 200, **context: object) -> tuple[str, int]:
    tree = instance().tree
    roots = tree.group_folders(org.id)
    key = request.args.get("notice", "")
    context.setdefault("notice", _NOTICES[key]() if key in _NOTICES else None)
    context.setdefault("form", {})
    return (
        render_template(
            "admin/groups.html",
            org=org,
            groups=[(root, _label(org, root), *tree.usage(root)) for root in roots],
            access_names=_access_names(),
            **context,
        ),
        status,
    )


def _group(org: OrganisationInfo, root_id: int) -> Entry:
    try:
        root = instance().tree.get(root_id)
    except NotFound:
        abort(404)
    if not root.is_group_root or root.org_id != org.id:
        abort(404)
    return root


def _quota(typed: str) -> int | None:
    """Bytes from the form ("" and "0": unlimited, as 0); None when it is not a size."""
    try:
        return parse_size(typed) if typed else 0
    except ValueError:
        return None


def _quota_error() -> str:
    return str(_("Type a size such as 500 MB or 2 GB; 0 or nothing for unlimited."))


def _creator(org: OrganisationInfo) -> int | None:
    """Who is recorded as a new group folder's creator: the acting admin when a member of the
    organisation, else (an instance admin elsewhere) its first admin, as ``meddav group add`` does."""
    actor = sessions.current()
    assert actor is not None
    if actor.user.org_id == org.id:
        return actor.user.id
    admins = [u for u in instance().accounts.list(org.id) if u.role in (ROLE_ORG_ADMIN, ROLE_INSTANCE_ADMIN)]
    return min(admins, key=lambda u: u.id).id if admins else None


@blueprint.get("/<int:org_id>/groups")
@sessions.login_required()
def page(org_id: int) -> ResponseValue:
    return _page(administered_organisation(org_id))


@blueprint.post("/<int:org_id>/groups")
@sessions.login_required()
def create(org_id: int) -> ResponseValue:
    org = administered_organisation(org_id)
    form = {key: request.form.get(key, "").strip() for key in ("name", "access", "quota")}
    access = form["access"] if form["access"] in GROUP_ACCESS else "rw"
    quota = _quota(form["quota"])
    if quota is None:
        return _page(org, 400, form=form, create_error=_quota_error())
    owner = _creator(org)
    if owner is None:
        error = _("This organisation has no administrator yet: make one of its members an administrator first.")
        return _page(org, 409, form=form, create_error=error)
    try:
        root = instance().tree.create_group_folder(
            org.id, form["name"], owner_id=owner, member_access=access, quota_bytes=quota or None
        )
    except AlreadyExists:
        return _page(org, 409, form=form, create_error=_("A group folder of this name exists already."))
    except BadRequest:
        error = _("Name the folder in 1 to 255 characters, without / or \\.")
        return _page(org, 400, form=form, create_error=error)
    audit_admin("admin.group.create", org.id, target_id=root.id, detail=f"access={access} quota={quota}")
    return redirect(url_for("groups.page", org_id=org.id, notice="created"), 303)


@blueprint.post("/<int:org_id>/groups/<int:root_id>")
@sessions.login_required()
def change(org_id: int, root_id: int) -> ResponseValue:
    org = administered_organisation(org_id)
    root = _group(org, root_id)
    access = request.form.get("access", "")
    quota = _quota(request.form.get("quota", "").strip())
    if access not in GROUP_ACCESS or quota is None:
        return _page(org, 400, error=_quota_error())
    instance().tree.set_group_folder(root, member_access=access, quota_bytes=quota)
    audit_admin("admin.group.set", org.id, target_id=root.id, detail=f"access={access} quota={quota}")
    return redirect(url_for("groups.page", org_id=org.id, notice="changed"), 303)


@blueprint.route("/<int:org_id>/groups/<int:root_id>/delete", methods=["GET", "POST"])
@sessions.login_required()
def delete(org_id: int, root_id: int) -> ResponseValue:
    org = administered_organisation(org_id)
    root = _group(org, root_id)
    used, _quota_bytes = instance().tree.usage(root)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        status = 200 if request.method == "GET" else 400
        error = None if status == 200 else _("Tick the box to confirm.")
        return render_template(
            "admin/group_delete.html", org=org, label=_label(org, root), used=used, error=error
        ), status
    instance().tree.delete_group_folder(root)
    audit_admin("admin.group.delete", org.id, target_id=root.id)
    return redirect(url_for("groups.page", org_id=org.id, notice="deleted"), 303)
