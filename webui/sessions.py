"""Web sessions: the cookie, who is signed in, and how far (second factor).

Sessions live on the server (:meth:`server.credentials.Credentials.open_session`):
the cookie ``meddav_session`` carries only their secret, so a user sees them
and ends them from any browser, and logout ends one for good.  The cookie is
HttpOnly, SameSite=Lax, Path=/, Secure under TLS, and has no expiry of its
own (it goes with the browser); the server ends a session after
``[web] session_idle_minutes`` without a request and ``[web]
session_lifetime_hours`` after login, whichever comes first.  Every login
opens a new session (no fixation) and ends the one the browser had.

A session is in one of three states (:class:`State`):

- ``CODE``: the password was right and the account has a second factor; only
  the code page and logout are open until a TOTP or recovery code is typed;
- ``ENROL``: the account must have a second factor (an admin, when ``[web]
  admins_need_second_factor``; a member of an organisation that requires it)
  and has none yet; only the second-factor set-up and logout are open;
- ``FULL``: everything the user may do.

Views say which states they accept with :func:`login_required`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from flask import Response, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from server import policy
from server.accounts import UserInfo
from server.credentials import SessionInfo
from server.errors import NotFound
from webui.context import address, instance, user_agent

__all__ = [
    "COOKIE",
    "State",
    "WebSession",
    "after_request",
    "close",
    "current",
    "load",
    "login_required",
    "open_session",
    "second_factor_required",
    "user_by_id",
]

COOKIE = "meddav_session"

P = ParamSpec("P")
R = TypeVar("R")


class State(enum.Enum):
    CODE = "code"
    ENROL = "enrol"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class WebSession:
    """The session of this request and its user, read once per request."""

    info: SessionInfo
    user: UserInfo
    cookie: str
    has_totp: bool
    state: State


def second_factor_required(user: UserInfo) -> bool:
    """Whether this user must have a second factor (the rule is server.policy's)."""
    try:
        organisation_requires = instance().accounts.organisation(user.org_id).require_second_factor
    except NotFound:
        organisation_requires = False
    return policy.second_factor_required(
        user.role,
        organisation_requires=organisation_requires,
        admins_need=instance().settings.web.admins_need_second_factor,
    )


def user_by_id(user_id: int) -> UserInfo | None:
    """The account of a user id (None when it no longer exists)."""
    try:
        return instance().accounts.get_by_id(user_id)
    except NotFound:
        return None


def _state(info: SessionInfo, user: UserInfo, has_totp: bool) -> State:
    if has_totp:
        return State.FULL if info.second_factor_at is not None else State.CODE
    return State.ENROL if second_factor_required(user) else State.FULL


def load() -> None:
    """Find the session of this request's cookie (before every view)."""
    g.web_session = None
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return
    inst = instance()
    info = inst.credentials.session(cookie, idle_seconds=inst.settings.web.session_idle_minutes * 60)
    user = user_by_id(info.user_id) if info is not None else None
    if info is None or user is None or user.disabled:
        g.clear_session_cookie = True
        return
    has_totp = inst.credentials.has_totp(user.id)
    g.web_session = WebSession(info, user, cookie, has_totp, _state(info, user, has_totp))


def current() -> WebSession | None:
    session: WebSession | None = g.get("web_session")
    return session


def open_session(user_id: int, *, second_factor: bool = False) -> None:
    """Sign this browser in as ``user_id``: a new session, the browser's previous one ended."""
    inst = instance()
    previous = current()
    if previous is not None:
        inst.credentials.revoke_session(previous.user.id, previous.info.id)
    _, secret = inst.credentials.open_session(
        user_id,
        address=address(),
        user_agent=user_agent(),
        lifetime_seconds=inst.settings.web.session_lifetime_hours * 3600,
        second_factor=second_factor,
    )
    g.new_session_cookie = secret
    g.web_session = None


def close() -> None:
    """Sign out: the session ends on the server, and the cookie is cleared."""
    session = current()
    if session is not None:
        instance().credentials.revoke_session(session.user.id, session.info.id)
    g.web_session = None
    g.clear_session_cookie = True


def after_request(response: Response) -> Response:
    new: str | None = g.get("new_session_cookie")
    if new is not None:
        secure = instance().settings.server.https
        response.set_cookie(COOKIE, new, httponly=True, samesite="Lax", secure=secure, path="/")
    elif g.get("clear_session_cookie"):
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=instance().settings.server.https)
    if new is not None or current() is not None:
        # Pages of a signed-in user (recovery codes, app passwords) must not stay in a cache.
        response.headers["Cache-Control"] = "no-store"
    return response


def _entry_page(state: State) -> str:
    if state is State.CODE:
        return url_for("auth.code")
    if state is State.ENROL:
        return url_for("security.page")
    return url_for("account.home")


def login_required(*allowed: State) -> Callable[[Callable[P, R]], Callable[P, R | BaseResponse]]:
    """Open the view to sessions in one of the ``allowed`` states (default: FULL only);
    send anyone else to the login page, or to the step they have left to do."""
    states = frozenset(allowed or (State.FULL,))

    def decorate(view: Callable[P, R]) -> Callable[P, R | BaseResponse]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | BaseResponse:
            session = current()
            if session is None:
                return redirect(url_for("auth.login"))
            if session.state not in states:
                return redirect(_entry_page(session.state))
            return view(*args, **kwargs)

        return wrapper

    return decorate
