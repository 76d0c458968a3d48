"""The pages of a link's recipient: ``/s/<token>``.

The link opens a password page (or, for a share opened by e-mailed codes, a page
that sends a code); the right password opens a session bound to that share
(:mod:`webui.recipients`).  Then, by the share's mode:

- read: the shared file, or the folder's listing, with a download per file and
  the whole folder (or any sub-folder) as a zip streamed as it is read;
- write: the same, and files added from the browser (several, by drag and drop,
  with a progress bar);
- dropbox: a page that only takes files, and shows only what this session sent.

Every request finds the link again (:meth:`server.sharing.Shares.find_link`):
an unknown, expired, revoked or used-up link gets the one 404 page, and an open
session ends on its next click.  What the recipient reaches is the policy's
answer for the node as reached through the share (:mod:`server.sharing.browse`).
Files come as ``Content-Disposition: attachment`` under a sandbox CSP, so an
HTML or SVG file is never rendered in the site's origin; uploads are raw request
bodies (``PUT``, sent by ``static/share.js``), encrypted as they arrive, never
parsed as multipart forms (which spool to plaintext temporary files).  A file
never replaces another: a taken name gets ``name (2).ext``, and a drop box
answers with the name sent, so it never tells which names are taken.

Wrong passwords and codes go through the throttle of logins, per share and per
address (429).  Audited as ``share:<id>``: opening (ok, failed, throttled),
codes sent, downloads, zips, uploads.  The token is in the URL: every page says
``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import mimetypes
import time
import zipfile
from typing import Any

import zipstream  # type: ignore[import-untyped]
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.auth import Throttled
from server.errors import Busy, MedDAVError, NotFound, PolicyDenied, QuotaExceeded, StorageFull
from server.policy import Action
from server.sharing import ShareInfo
from server.sharing.browse import ShareBrowser
from webui import i18n
from webui.context import address, instance, record
from webui.recipients import CODE_SECONDS, COOKIE, ShareCodes, ShareSession, ShareSessions
from webui.transfer import announced, attachment_headers, path_names, receive, refused

__all__ = ["blueprint", "init_app"]

blueprint = Blueprint("recipient", __name__, url_prefix="/s")

SESSIONS = "meddav.share_sessions"
CODES = "meddav.share_codes"
#: The most files a zip of a shared folder holds (beyond, the recipient downloads sub-folders).
ZIP_MAX_FILES = 10_000


def init_app(app: Flask) -> None:
    """The application's stores of recipients' sessions and codes (one per application: per server)."""
    app.extensions[SESSIONS] = ShareSessions()
    app.extensions[CODES] = ShareCodes()


def _sessions() -> ShareSessions:
    store: ShareSessions = current_app.extensions[SESSIONS]
    return store


def _codes() -> ShareCodes:
    store: ShareCodes = current_app.extensions[CODES]
    return store


def _not_found() -> BaseResponse:
    """The one page of a dead link, and of what a share hides."""
    page = render_template("message.html", title=_("Page not found"), message=_("There is nothing at this address."))
    return Response(page, 404)


class _Dead(Exception):
    """The link is unknown, ended or used up: the one 404."""


def _share(token: str) -> ShareInfo:
    inst = instance()
    share = inst.authenticator.find_link(lambda: inst.shares.find_link(token), address())
    if share is None:
        raise _Dead
    return share


def _actor(share: ShareInfo) -> dict[str, Any]:
    return {"principal": f"share:{share.id}", "org_id": share.org_id, "target_id": share.id}


@blueprint.errorhandler(_Dead)
def _dead(error: _Dead) -> BaseResponse:
    return _not_found()


@blueprint.errorhandler(NotFound)
def _hidden(error: NotFound) -> BaseResponse:
    return _not_found()


@blueprint.errorhandler(Throttled)
def _guessing(error: Throttled) -> BaseResponse:
    """Too many links tried in vain from this address: wait, whatever the link."""
    page = render_template(
        "message.html", title=_("Too many attempts"), message=_("Too many attempts. Try again in a moment.")
    )
    response = Response(page, 429)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    new = g.get("share_cookie")
    if new is not None:
        token, secret = new
        response.set_cookie(COOKIE, secret, httponly=True, samesite="Lax", secure=instance().settings.server.https,
                            path=f"/s/{token}")  # fmt: skip
    elif g.get("share_cookie_clear") is not None:
        response.delete_cookie(COOKIE, path=f"/s/{g.share_cookie_clear}", httponly=True, samesite="Lax",
                               secure=instance().settings.server.https)  # fmt: skip
    return response


def _opened(token: str) -> tuple[ShareInfo, ShareSession | None]:
    """The share of the link and this browser's session on it (None: the password page is due)."""
    share = _share(token)
    if not share.admits(address()):
        raise _Dead  # from elsewhere, a live link looks like a dead one
    return share, _sessions().get(request.cookies.get(COOKIE), share.id)


def _session_required(token: str) -> tuple[ShareInfo, ShareSession]:
    share, session = _opened(token)
    if session is None:
        raise _Dead  # a page of the share without its session: as if there were nothing
    return share, session


def _browser(share: ShareInfo) -> ShareBrowser:
    inst = instance()
    return ShareBrowser(inst.tree, share, inst.shares.clock())


# -- opening ---------------------------------------------------------------------------------------------


def _open_page(token: str, share: ShareInfo, *, error: str | None = None, status: int = 200,
               notice: str | None = None) -> BaseResponse:  # fmt: skip
    page = render_template("share/open.html", token=token, share=share, error=error, notice=notice)
    return Response(page, status)


@blueprint.get("/<token>")
@blueprint.get("/<token>/")
def entry(token: str) -> BaseResponse:
    share, session = _opened(token)
    if session is None:
        return _open_page(token, share)
    if share.mode == "dropbox":
        return _dropbox_page(token, share, session)
    return _item_page(token, share, [])


@blueprint.post("/<token>")
def unlock(token: str) -> BaseResponse:
    share, _session = _opened(token)
    inst = instance()
    throttle, account, where = inst.authenticator.throttle, f"share:{share.id}", address()
    now = time.time()
    wait = throttle.check(account, where, now)
    if wait is not None:
        record("share.open", "denied", status=429, detail="throttled", **_actor(share))
        response = _open_page(token, share, error=_("Too many attempts. Try again in a moment."), status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    if share.code_by_email:
        right = _codes().redeem(share.id, request.form.get("code", ""))
    else:
        right = inst.shares.check_password(share, request.form.get("password", ""))
    if not right:
        throttle.failed(account, where, now)
        record("share.open", "failed", status=401, **_actor(share))
        error = _("This code is wrong or has expired.") if share.code_by_email else _("Wrong password.")
        return _open_page(token, share, error=error, status=401)
    throttle.succeeded(account, where)
    _sessions().close(request.cookies.get(COOKIE))  # never keep a session the browser brought (fixation)
    g.share_cookie = (token, _sessions().open(share.id))
    inst.shares.seen(share)
    record("share.open", "ok", status=303, **_actor(share))
    return redirect(url_for("recipient.entry", token=token), 303)


@blueprint.post("/<token>/code")
def send_code(token: str) -> BaseResponse:
    share, _session = _opened(token)
    if not share.code_by_email:
        raise _Dead
    code = _codes().issue(share.id)
    if code is None:
        return _open_page(token, share, notice=_("A code was sent less than a minute ago: check your mailbox."))
    instance().shares.send_code(share, code, locale=i18n.current(), minutes=CODE_SECONDS // 60)
    record("share.code", "ok", status=200, **_actor(share))
    return _open_page(token, share, notice=_("A code was sent to your e-mail address. It is valid for 10 minutes."))


@blueprint.post("/<token>/leave")
def leave(token: str) -> BaseResponse:
    _sessions().close(request.cookies.get(COOKIE))
    g.share_cookie_clear = token
    return redirect(url_for("recipient.entry", token=token), 303)


# -- reading ---------------------------------------------------------------------------------------------


def _item_page(token: str, share: ShareInfo, names: list[str]) -> BaseResponse:
    browser = _browser(share)
    item = browser.resolve(names)
    inst = instance()
    listing = browser.listing(item) if item.is_dir else []
    page = render_template(
        "share/folder.html",
        token=token,
        share=share,
        item=item,
        names=names,
        listing=listing,
        note=inst.shares.note(share) if not names else None,
        expires_at=share.expires_at,
        can_upload=item.is_dir and browser.allows(item, Action.CREATE),
        path_of=lambda entry: "/".join([*names, entry.name]),
    )
    return Response(page)


def _reading(token: str) -> tuple[ShareInfo, ShareSession]:
    """The share and session of a page that shows or sends what the share holds (never a drop box's)."""
    share, session = _session_required(token)
    if share.mode == "dropbox":
        raise _Dead
    return share, session


@blueprint.get("/<token>/f/<path:path>")
def folder(token: str, path: str) -> BaseResponse:
    share, _session = _reading(token)
    return _item_page(token, share, path_names(path))


def _count_download(share: ShareInfo, session: ShareSession, node_id: int) -> None:
    """One download per file and session, while the link has some left (else the one 404)."""
    if _sessions().take_download(session, node_id) and not instance().shares.take_download(share):
        raise _Dead


@blueprint.get("/<token>/get/", defaults={"path": ""})
@blueprint.get("/<token>/get/<path:path>")
def download(token: str, path: str) -> BaseResponse:
    share, session = _reading(token)
    browser = _browser(share)
    item = browser.resolve(path_names(path))
    if item.is_dir:
        raise _Dead
    content = browser.open(item)
    if request.method != "HEAD":  # a HEAD sends nothing: it is no download
        _count_download(share, session, item.id)
    record("share.download", "ok", status=200, node_id=item.id, **_actor(share))
    kind = mimetypes.guess_type(item.name, strict=False)[0] or "application/octet-stream"
    headers = attachment_headers(item.name, item.size)
    return Response(content, 200, headers=headers, mimetype=kind, direct_passthrough=True)


@blueprint.get("/<token>/zip/", defaults={"path": ""})
@blueprint.get("/<token>/zip/<path:path>")
def download_zip(token: str, path: str) -> BaseResponse:
    """A folder and everything below it the recipient may read, as a zip streamed as it is read."""
    share, session = _reading(token)
    browser = _browser(share)
    names = path_names(path)
    item = browser.resolve(names)
    if not item.is_dir:
        raise _Dead
    # Stored, not compressed: scans and PDFs hardly shrink, and the archive's size is known up front.
    archive = zipstream.ZipStream(compress_type=zipfile.ZIP_STORED, sized=True)
    for count, member in enumerate(browser.walk(item)):
        if count >= ZIP_MAX_FILES:
            message = _("This folder holds too many files for one zip: download its folders one by one.")
            return Response(render_template("message.html", title=_("Too many files"), message=message), 413)
        archive.add(browser.open(member.entry), member.path, size=member.entry.size)
    _count_download(share, session, item.id)
    record("share.zip", "ok", status=200, node_id=item.id, **_actor(share))
    title = names[-1] if names else (item.name or "documents")
    headers = attachment_headers(f"{title}.zip", len(archive))
    return Response(iter(archive), 200, headers=headers, mimetype="application/zip", direct_passthrough=True)


# -- adding ----------------------------------------------------------------------------------------------


def _dropbox_page(token: str, share: ShareInfo, session: ShareSession) -> BaseResponse:
    inst = instance()
    page = render_template(
        "share/dropbox.html",
        token=token,
        share=share,
        sent=[name for name, _node in session.sent],
        note=inst.shares.note(share),
        expires_at=share.expires_at,
    )
    return Response(page)


@blueprint.put("/<token>/put/", defaults={"path": ""})
@blueprint.put("/<token>/put/<path:path>")
def upload(token: str, path: str) -> BaseResponse:
    """One file, as the raw body of the request (``?name=`` gives its name), into a folder of the share."""
    share, session = _session_required(token)
    request_file = announced()
    if isinstance(request_file, BaseResponse):
        return request_file
    size, name = request_file
    browser = _browser(share)
    folder = browser.resolve(path_names(path))
    try:
        stored = receive(browser.upload(folder, name, expected_size=size), size)
    except PolicyDenied:
        record("share.upload", "denied", status=403, node_id=folder.id, **_actor(share))
        return refused(403, _("This share does not take files here."))
    except QuotaExceeded:
        record("share.upload", "failed", status=507, node_id=folder.id, detail="quota", **_actor(share))
        return refused(507, _("There is no room left for this file in the space of the person who shared it."))
    except StorageFull:
        record("share.upload", "failed", status=507, node_id=folder.id, detail="storage full", **_actor(share))
        return refused(507, _("The server has no room left for this file. Please tell the person who shared it."))
    except Busy:
        return refused(503, _("The server is busy. Please try again in a few seconds."))
    except MedDAVError:  # more or less data than announced
        record("share.upload", "failed", status=400, node_id=folder.id, **_actor(share))
        return refused(400, _("The file did not arrive whole."))
    if stored is None:
        record("share.upload", "failed", status=400, node_id=folder.id, **_actor(share))
        return refused(400, _("The file did not arrive whole."))
    instance().shares.count_upload(share)
    _sessions().remember_upload(session, name, stored.id)
    record("share.upload", "ok", status=201, node_id=stored.id, **_actor(share))
    if share.mode == "dropbox":
        return _created({"name": name})  # the name sent: never whether it was taken
    return _created({"name": stored.name})


def _created(body: dict[str, str]) -> BaseResponse:
    response = jsonify(body)
    response.status_code = 201
    return response
