"""Values signed with a browser's own secret: CSRF tokens and the pending TOTP secret.

The key of every signature here is a secret the browser already holds in an
HttpOnly cookie: the session cookie once signed in, the pre-session cookie
before (see :mod:`webui.csrf`).  So a signature is bound to that browser and
session, needs no server-side key (every node of a cluster checks it alike,
and a restart invalidates nothing), and dies with the session.  A page that
leaks (a printout, a cache) gives away a signature, never the cookie: HMAC is
one-way.  Each use names its purpose, so a CSRF token is not a valid
signature of a TOTP secret.  Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

__all__ = ["sign", "signed_value", "unsign_value", "verify"]

_VERSION = "v1"


def sign(key: str, purpose: str, payload: str = "") -> str:
    """The URL-safe signature of ``payload`` for ``purpose`` under ``key`` (256 bits, base64url)."""
    mac = hmac.new(key.encode(), f"meddav-web-{_VERSION}\0{purpose}\0{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def verify(key: str, purpose: str, payload: str, signature: str) -> bool:
    return hmac.compare_digest(sign(key, purpose, payload).encode(), signature.encode())


def signed_value(key: str, purpose: str, value: str, *, now: float | None = None) -> str:
    """``value.issued.signature``: carried by a form, checked by :func:`unsign_value`.  ``value`` has no dot."""
    if "." in value:
        raise ValueError("a signed value must not contain a dot")
    issued = str(int(time.time() if now is None else now))
    return f"{value}.{issued}.{sign(key, purpose, value + '.' + issued)}"


def unsign_value(key: str, purpose: str, token: str, *, max_age: float, now: float | None = None) -> str | None:
    """The value of a token :func:`signed_value` made with the same key and purpose, not older than
    ``max_age`` seconds; None otherwise (whatever the reason, so a caller cannot tell them apart)."""
    now = time.time() if now is None else now
    value, _, rest = token.partition(".")
    issued, _, signature = rest.partition(".")
    if not value or not issued.isdigit() or not verify(key, purpose, f"{value}.{issued}", signature):
        return None
    if not 0 <= now - int(issued) <= max_age:
        return None
    return value
