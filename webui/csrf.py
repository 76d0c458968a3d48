"""Cross-site request forgery: every POST carries a token bound to the browser's secret.

- **Signed in**: the token is an HMAC, keyed with the session cookie, of a fixed
  purpose (:mod:`webui.signing`).  Another site can make the browser send the
  cookie, but cannot read it, so it cannot compute the token; and the token
  changes with each session (a new one at every login).
- **Before signing in** (login, forgotten password, reset link): the same HMAC
  keyed with a *pre-session* cookie, a random value set with the first form
  shown (HttpOnly, SameSite=Lax, and under TLS named ``__Host-meddav_csrf`` so a
  sibling sub-domain cannot plant a value of its own).  This is a signed
  double-submit cookie: it prevents login CSRF (a forged login into the
  attacker's account), which SameSite=Lax alone leaves open to same-site pages.

:func:`protect` runs before every view: a POST without a valid ``csrf_token``
field gets 400 before the view runs, so nothing changes.  The token is put
into forms by the template global ``csrf_token()``.
"""

from __future__ import annotations

import secrets

from flask import Response, abort, g, request

from webui import sessions, signing
from webui.context import instance

__all__ = ["FIELD", "HEADER", "after_request", "check", "check_value", "cookie_name", "protect", "token"]

FIELD = "csrf_token"
_PURPOSE = "csrf"
_PRE_SESSION_BYTES = 32


def cookie_name() -> str:
    return "__Host-meddav_csrf" if instance().settings.server.https else "meddav_csrf"


def _key() -> str | None:
    """The secret the token is bound to: the session cookie, else the pre-session cookie."""
    current = sessions.current()
    if current is not None:
        return current.cookie
    value: str | None = g.get("csrf_new_cookie") or request.cookies.get(cookie_name())
    return value or None


def token() -> str:
    """The token of this browser (setting its pre-session cookie when it has none yet)."""
    key = _key()
    if key is None:
        key = secrets.token_urlsafe(_PRE_SESSION_BYTES)
        g.csrf_new_cookie = key
    return signing.sign(key, _PURPOSE)


def check() -> bool:
    return check_value(request.form.get(FIELD, ""))


def check_value(presented: str) -> bool:
    """Whether ``presented`` is this browser's token (a form field, or the API's ``X-CSRF-Token`` header)."""
    key = _key()
    return key is not None and bool(presented) and signing.verify(key, _PURPOSE, "", presented)


#: The header a script's request carries the token in (a raw upload has no form to put it in).
HEADER = "X-CSRF-Token"


def protect() -> None:
    """Refuse (400) a state-changing request without a valid token, in its form or in its header (read
    first: a request with the header never has its body parsed as a form here)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    header = request.headers.get(HEADER)
    if not (check_value(header) if header is not None else check()):
        abort(400, description="csrf")


def after_request(response: Response) -> Response:
    new: str | None = g.get("csrf_new_cookie")
    if new is not None:
        response.set_cookie(
            cookie_name(),
            new,
            httponly=True,
            samesite="Lax",
            secure=instance().settings.server.https,
            path="/",
        )
    return response
