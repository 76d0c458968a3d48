"""``/ui/shares`` ("Partages"): every share I made, what became of it, and what colleagues shared with me.

For each share I made: the item, the kind and recipient, the mode, the last day,
when it was made and last used, its downloads and uploads, its state; I change
its mode, last day and note, end it, or send a link again (a new link and a new
password: the old ones stop working, since MedDAV keeps neither in clear).  A
link's page lists each access of its recipient (time, action, file id), from the
audit log.  Everything goes through :class:`server.sharing.Shares`, which asks
the policy: another user's share id answers 404.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.errors import BadRequest, NotFound, PolicyDenied
from server.policy import SHARE_MODES
from server.sharing import KIND_LINK, ShareInfo
from webui import i18n, sessions
from webui.context import address, instance
from webui.sessions import login_required
from webui.views.files import denied, missing

__all__ = ["blueprint"]

blueprint = Blueprint("shares", __name__, url_prefix="/ui/shares")


blueprint.register_error_handler(PolicyDenied, denied)
blueprint.register_error_handler(NotFound, missing)


def _user() -> Any:
    session = sessions.current()
    assert session is not None
    return session.user


def _item_names(shares: Iterable[ShareInfo]) -> dict[int, str]:
    """The names of the shares' items by node id, read in one query; an item deleted meanwhile has none."""
    return {
        node_id: entry.name or "—" for node_id, entry in instance().tree.get_many(s.node_id for s in shares).items()
    }


def _recipient(share: ShareInfo) -> str:
    if share.recipient_email:
        return share.recipient_email
    if share.recipient_user_id is not None:
        try:
            return str(instance().accounts.get_by_id(share.recipient_user_id).username)
        except NotFound:
            return "—"
    return "—"


def _row(share: ShareInfo, now: float, names: dict[int, str]) -> dict[str, Any]:
    return {
        "share": share,
        "item": names.get(share.node_id, "—"),
        "recipient": _recipient(share),
        "state": share.state(now),
    }


@blueprint.get("")
@login_required()
def overview() -> str:
    user = _user()
    shares = instance().shares
    now = shares.clock()
    made, given = shares.by_owner(user.id), shares.for_recipient(user.id)
    names = _item_names([*made, *given])
    mine = [_row(s, now, names) for s in reversed(made)]
    received = []
    for share in given:
        owner = instance().accounts.get_by_id(share.owner_id)
        received.append({"share": share, "item": names.get(share.node_id, "—"), "owner": owner.username,
                         "note": shares.note(share) or ""})  # fmt: skip
    notices = {
        "revoked": _("The share is ended."),
        "changed": _("The share is changed."),
        "resent": _("The link was sent again."),
    }
    return render_template("shares/overview.html", mine=mine, received=received,
                           notice=notices.get(request.args.get("done", "")))  # fmt: skip


def _mine(share_id: int) -> ShareInfo:
    return instance().shares.administered(_user().principal(), share_id)


@blueprint.get("/<int:share_id>")
@login_required()
def detail(share_id: int) -> str:
    return _detail(share_id)


def _detail(share_id: int, *, error: str | None = None, resent: dict[str, str] | None = None) -> str:
    share = _mine(share_id)
    shares = instance().shares
    now = shares.clock()
    zone = shares.zone(share.org_id)
    last_day = None
    if share.expires_at is not None:
        last_day = (dt.datetime.fromtimestamp(share.expires_at, zone) - dt.timedelta(seconds=1)).date().isoformat()
    return render_template(
        "shares/detail.html",
        row=_row(share, now, _item_names([share])),
        note=shares.note(share) or "",
        last_day=last_day,
        accesses=shares.accesses(share),
        modes=SHARE_MODES,
        channels=shares.second_channels(),
        error=error,
        resent=resent,
        is_link=share.kind == KIND_LINK,
    )


@blueprint.post("/<int:share_id>/revoke")
@login_required()
def revoke(share_id: int) -> BaseResponse:
    instance().shares.revoke(_user().principal(), share_id, surface="web", address=address())
    return redirect(url_for("shares.overview", done="revoked"), 303)


@blueprint.post("/<int:share_id>/edit")
@login_required()
def edit(share_id: int) -> str | BaseResponse:
    _mine(share_id)
    form = request.form
    try:
        day = dt.date.fromisoformat(form["expires"]) if form.get("expires") else None
        instance().shares.update(_user().principal(), share_id, mode=form.get("mode") or None, expires_on=day,
                                 note=form.get("note", ""), surface="web", address=address())  # fmt: skip
    except (BadRequest, ValueError) as refused:
        return _detail(share_id, error=str(refused) if isinstance(refused, BadRequest) else _("Check the day."))
    return redirect(url_for("shares.overview", done="changed"), 303)


@blueprint.post("/<int:share_id>/resend")
@login_required()
def resend(share_id: int) -> str | BaseResponse:
    _mine(share_id)
    try:
        made = instance().shares.resend(
            _user().principal(),
            share_id,
            second_channel=request.form.get("password_by", "email"),
            phone=request.form.get("phone") or None,
            locale=request.form.get("lang") or i18n.current(),
            surface="web",
            address=address(),
        )
    except BadRequest as refused:
        return _detail(share_id, error=str(refused))
    if made.password is None:
        return redirect(url_for("shares.overview", done="resent"), 303)
    response = Response(_detail(share_id, resent={"password": made.password}))
    response.headers["Cache-Control"] = "no-store"
    return response
