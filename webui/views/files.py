"""``/ui/files``: a signed-in user's drive in the browser, and the share dialog of every item.

The drive is the one WebDAV shows (:mod:`server.drive`): private items, the
organisation's group folders and, at the root, what colleagues shared.  Navigate,
download (always ``Content-Disposition: attachment`` under a sandbox CSP: a file
a guest put in a drop box is never rendered with the owner's session), upload
(raw request bodies sent by ``static/share.js``, encrypted as they arrive; a
taken name gets ``name (2).ext``, nothing is replaced from the browser), new
folder, rename, delete; every action is the policy's to allow.  The share dialog
makes a colleague or link share (:meth:`server.sharing.Shares.create`) and shows
the link, and a generated password when the owner gives it themselves, once.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.accounts import LOCALES
from server.drive import Drive, Located
from server.errors import (
    AlreadyExists,
    BadRequest,
    Busy,
    Conflict,
    MedDAVError,
    NotFound,
    PolicyDenied,
    QuotaExceeded,
    StorageFull,
)
from server.policy import SHARE_MODES, Action
from server.sharing import KIND_COLLEAGUE
from server.tree import free_name, validate_name
from webui import i18n, sessions
from webui.context import address, instance, record
from webui.sessions import login_required
from webui.transfer import announced, attachment_headers, path_names, receive, refused

__all__ = ["blueprint", "denied", "dialog", "missing"]

blueprint = Blueprint("files", __name__, url_prefix="/ui/files")
#: The share dialog, apart from the drive's paths (a folder may be named "share").
dialog = Blueprint("dialog", __name__, url_prefix="/ui/share")


def _drive() -> Drive:
    session = sessions.current()
    assert session is not None
    inst = instance()
    return Drive(inst.tree, inst.shares, session.user.principal(), inst.shares.clock())


def _join(names: list[str]) -> str:
    return "/".join(names)


def _back(names: list[str], *, done: str | None = None, error: str | None = None) -> BaseResponse:
    return redirect(url_for("files.browse", path=_join(names), done=done, error=error), 303)


def _audit(action: str, outcome: str, status: int, node_id: int | None) -> None:
    """Record what the browser did, as the WebDAV audit names it (ids only, never a name)."""
    session = sessions.current()
    assert session is not None
    user = session.user
    record(action, outcome, principal=user.username, user_id=user.id, org_id=user.org_id, status=status,
           node_id=node_id)  # fmt: skip


@blueprint.errorhandler(NotFound)
@dialog.errorhandler(NotFound)
def missing(error: NotFound) -> tuple[str, int]:
    """The 404 page of the owner's pages (files, the share dialog, shares)."""
    return render_template(
        "message.html", title=_("Page not found"), message=_("There is nothing at this address.")
    ), 404


@blueprint.errorhandler(PolicyDenied)
@dialog.errorhandler(PolicyDenied)
def denied(error: PolicyDenied) -> tuple[str, int]:
    """The 403 page of the owner's pages."""
    return render_template("message.html", title=_("Access denied"), message=_("You may not do this here.")), 403


@blueprint.get("/", defaults={"path": ""})
@blueprint.get("/<path:path>")
@login_required()
def browse(path: str) -> str | BaseResponse:
    names = path_names(path)
    drive = _drive()
    here = drive.resolve(names)
    if not here.entry.is_dir:
        return _download(drive, here, names)
    members = sorted(drive.members(here), key=lambda m: (not m.entry.is_dir, m.name.casefold(), m.name))
    notices = {
        "shared": _("The share is made."),
        "renamed": _("Renamed."),
        "deleted": _("Deleted."),
        "created": _("Folder created."),
    }
    errors = {
        "taken": _("This name is taken here."),
        "name": _("This name cannot be used."),
        "refused": _("You may not do this here."),
    }
    return render_template(
        "files/browse.html",
        names=names,
        here=here,
        members=members,
        path_of=lambda name: _join([*names, name]),
        can_create=drive.allows(here.entry, Action.CREATE, here.via),
        may=lambda member, action: drive.allows(member.entry, Action[action], member.via),
        notice=notices.get(request.args.get("done", "")),
        error=errors.get(request.args.get("error", "")),
    )


def _download(drive: Drive, here: Located, names: list[str]) -> BaseResponse:
    drive.require(here, Action.READ)
    _audit("file.read", "ok", 200, here.entry.id)
    content = instance().tree.blocks(here.entry)
    kind = mimetypes.guess_type(here.entry.name, strict=False)[0] or "application/octet-stream"
    headers = attachment_headers(drive.shown_name(here, names), here.entry.size)
    return Response(content, 200, headers=headers, mimetype=kind, direct_passthrough=True)


@blueprint.post("/mkdir")
@login_required()
def mkdir() -> BaseResponse:
    names = path_names(request.form.get("path", ""))
    drive = _drive()
    here = drive.resolve(names)
    name = request.form.get("name", "").strip()
    try:
        validate_name(name)
        drive.require(here, Action.CREATE)
        if drive.is_root(here.entry) and drive.root_taken(name):
            raise AlreadyExists("taken at the root")
        created = instance().tree.mkdir(here.entry, name)
    except AlreadyExists:
        return _back(names, error="taken")
    except PolicyDenied:
        _audit("folder.create", "denied", 403, here.entry.id)
        return _back(names, error="refused")
    except BadRequest:
        return _back(names, error="name")
    _audit("folder.create", "ok", 201, created.id)
    return _back(names, done="created")


@blueprint.post("/rename")
@login_required()
def rename() -> BaseResponse:
    names = path_names(request.form.get("path", ""))
    if not names:
        raise NotFound("the root has no name")
    drive = _drive()
    item = drive.resolve(names)
    parent = drive.resolve(names[:-1])
    new_name = request.form.get("name", "").strip()
    try:
        validate_name(new_name)
        drive.require(item, Action.DELETE)  # renaming is moving: what may not be removed may not be renamed
        drive.require(parent, Action.CREATE)
        if drive.is_root(parent.entry) and drive.root_taken(new_name, but=item.entry.id):
            raise AlreadyExists("taken at the root")
        instance().tree.move(item.entry, parent.entry, new_name, overwrite=False)
    except (AlreadyExists, Conflict):
        return _back(names[:-1], error="taken")
    except PolicyDenied:
        _audit("node.move", "denied", 403, item.entry.id)
        return _back(names[:-1], error="refused")
    except BadRequest:
        return _back(names[:-1], error="name")
    _audit("node.move", "ok", 201, item.entry.id)
    return _back(names[:-1], done="renamed")


@blueprint.post("/delete")
@login_required()
def delete() -> BaseResponse:
    names = path_names(request.form.get("path", ""))
    if not names:
        raise NotFound("the root is not deleted")
    drive = _drive()
    item = drive.resolve(names)
    try:
        drive.require(item, Action.DELETE)
        instance().tree.delete(item.entry)
    except PolicyDenied:
        _audit("node.delete", "denied", 403, item.entry.id)
        return _back(names[:-1], error="refused")
    _audit("node.delete", "ok", 204, item.entry.id)
    return _back(names[:-1], done="deleted")


@blueprint.put("/put/", defaults={"path": ""})
@blueprint.put("/put/<path:path>")
@login_required()
def upload(path: str) -> BaseResponse:
    """One file as the raw body of the request (``?name=``), into a folder; never replaces a file."""
    request_file = announced()
    if isinstance(request_file, BaseResponse):
        return request_file
    size, name = request_file
    drive = _drive()
    names = path_names(path)
    folder = drive.resolve(names)
    tree = instance().tree
    try:
        drive.require(folder, Action.CREATE)

        # The tree finds a free name among a folder's files as it stores; at the root, group folders and
        # shared items take names too.
        if drive.is_root(folder.entry):
            name = free_name(name, drive.root_taken)
        upload = tree.upload(folder.entry, name, expected_size=size, new_only=True)
        stored = receive(upload, size)
    except PolicyDenied:
        _audit("file.write", "denied", 403, folder.entry.id)
        return refused(403, _("You may not add files here."))
    except (QuotaExceeded, StorageFull):
        _audit("file.write", "failed", 507, folder.entry.id)
        return refused(507, _("There is no room left for this file."))
    except Busy:
        return refused(503, _("The server is busy. Please try again in a few seconds."))
    except MedDAVError:
        return refused(400, _("The file did not arrive whole."))
    if stored is None:
        return refused(400, _("The file did not arrive whole."))
    _audit("file.write", "ok", 201, stored.id)
    response = jsonify(name=stored.name)
    response.status_code = 201
    return response


# -- the share dialog -------------------------------------------------------------------------------------


def _colleagues() -> list[Any]:
    session = sessions.current()
    assert session is not None
    inst = instance()
    return [u for u in inst.accounts.list(session.user.org_id) if u.id != session.user.id and not u.disabled]


@dialog.get("/", defaults={"path": ""})
@dialog.get("/<path:path>")
@login_required()
def share_dialog(path: str) -> str:
    names = path_names(path)
    if not names:
        raise NotFound("the root is not shared")
    drive = _drive()
    item = drive.resolve(names)
    drive.require(item, Action.SHARE)
    return _dialog(names, item, drive, form={})


def _dialog(names: list[str], item: Located, drive: Drive, *, form: dict[str, str], error: str | None = None) -> str:
    inst = instance()
    today = dt.datetime.fromtimestamp(inst.shares.clock(), inst.shares.zone(item.entry.org_id)).date()
    return render_template(
        "files/share.html",
        names=names,
        item=item,
        shown=drive.shown_name(item, names),
        colleagues=_colleagues(),
        modes=SHARE_MODES,
        channels=inst.shares.second_channels(),
        locales=LOCALES,
        default_day=(today + dt.timedelta(days=inst.settings.sharing.default_expiry_days)).isoformat(),
        max_day=(today + dt.timedelta(days=inst.settings.sharing.max_expiry_days)).isoformat(),
        form=form,
        error=error,
    )


@dialog.post("/", defaults={"path": ""})
@dialog.post("/<path:path>")
@login_required()
def share(path: str) -> str | BaseResponse:
    names = path_names(path)
    if not names:
        raise NotFound("the root is not shared")
    session = sessions.current()
    assert session is not None
    drive = _drive()
    item = drive.resolve(names)
    form = {key: request.form.get(key, "") for key in (
        "kind", "colleague", "email", "mode", "expires", "password", "proof", "password_by", "phone", "note",
        "max_downloads", "lang", "notify")}  # fmt: skip
    inst = instance()
    try:
        expires = dt.date.fromisoformat(form["expires"]) if form["expires"] else None
        max_downloads = int(form["max_downloads"]) if form["max_downloads"] else None
        options: dict[str, Any] = {
            "mode": form["mode"] or "read",
            "expires_on": expires,
            "note": form["note"] or None,
            "surface": "web",
            "address": address(),
        }
        if form["kind"] == KIND_COLLEAGUE:
            wanted = form["colleague"].strip()
            colleague = next((u for u in _colleagues() if wanted in (u.username, u.email)), None)
            if colleague is None:
                raise BadRequest("no such colleague")
            made = inst.shares.create(session.user.principal(), item.entry, colleague=colleague.id, **options)
        else:
            made = inst.shares.create(
                session.user.principal(),
                item.entry,
                email=form["email"],
                password=form["password"] or None if form["proof"] != "code" else None,
                code_by_email=form["proof"] == "code",
                second_channel=form["password_by"] or "email",
                phone=form["phone"] or None,
                notify_uploads=form["notify"] == "on",
                max_downloads=max_downloads,
                locale=form["lang"] or i18n.current(),
                **options,
            )
    except (BadRequest, NotFound, ValueError) as refused:
        message = (
            str(refused) if isinstance(refused, BadRequest) else _("Check the recipient, the day and the numbers.")
        )
        return _dialog(names, item, drive, form=form, error=message)
    link = f"{inst.settings.public_base_url()}/s/{made.token}" if made.token is not None else None
    page = render_template("files/shared.html", names=names, shown=drive.shown_name(item, names), share=made.info,
                           link=link, password=made.password)  # fmt: skip
    response = Response(page)
    response.headers["Cache-Control"] = "no-store"  # a link and a password, shown once
    return response
