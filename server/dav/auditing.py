"""The audit row of a WebDAV request: one per request, whatever it touched.

A PROPFIND of a folder of 5,000 files is one row (the folder's node id), a
MOVE one row (the moved node, and the destination folder as target).  What is
recorded: who (user id and name, or the name tried when authentication
failed), from where (the client address, see ``server.auth.client_address``),
the action, the node id, the HTTP status and its outcome.  Never a path: paths
are file names, and file names are health data.

Requests without credentials (every client's first request, answered with
the 401 challenge) and OPTIONS are not recorded: they touch nothing.  A
throttled attempt (429, refused unchecked and costing nothing) is recorded
once a minute per name and address, so that a flood of them cannot flood the
log: the failures that led to it are each recorded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from server.audit import AuditEvent
from server.policy import Principal, SharePrincipal

__all__ = ["dav_event"]

_ACTIONS = {
    "GET": "file.read",
    "HEAD": "file.read",
    "PUT": "file.write",
    "DELETE": "node.delete",
    "MOVE": "node.move",
    "COPY": "node.copy",
    "MKCOL": "folder.create",
    "PROPFIND": "node.list",
    "PROPPATCH": "node.props",
    "LOCK": "node.lock",
    "UNLOCK": "node.unlock",
}
_DENIED = frozenset({401, 403, 423, 429})
_THROTTLED_EVERY = 60.0
_THROTTLED_KEYS = 10_000
_throttled_seen: OrderedDict[tuple[str, str], float] = OrderedDict()
_throttled_lock = threading.Lock()


def _first_throttled_in_a_while(name: str, address: str, now: float) -> bool:
    key = (name.lower(), address)
    with _throttled_lock:
        last = _throttled_seen.get(key)
        if last is not None and now - last < _THROTTLED_EVERY:
            return False
        _throttled_seen[key] = now
        _throttled_seen.move_to_end(key)
        while len(_throttled_seen) > _THROTTLED_KEYS:
            _throttled_seen.popitem(last=False)
        return True


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status in _DENIED:
        return "denied"
    return "error" if status >= 500 else "failed"


def dav_event(environ: dict[str, Any], status: int) -> AuditEvent | None:
    """The audit event of a finished WebDAV request, or None when there is nothing to record."""
    method = environ.get("REQUEST_METHOD", "")
    principal: Principal | SharePrincipal | None = environ.get("meddav.principal")
    address = environ.get("meddav.client_address", "-")
    if principal is None:
        attempted = environ.get("meddav.attempted_user")
        if attempted is None or status not in (401, 429):
            return None
        if status == 429 and not _first_throttled_in_a_while(attempted, address, time.time()):
            return None
        return AuditEvent(
            principal=attempted,
            address=address,
            org_id=environ.get("meddav.attempted_org"),  # a link's organisation: its admins see the guesses
            surface="share" if attempted.startswith("share:") else "dav",
            action="auth.failed" if status == 401 else "auth.throttled",
            outcome="denied",
            status=status,
        )
    action = _ACTIONS.get(method)
    if action is None:
        return None
    shared = isinstance(principal, SharePrincipal)  # a link's recipient, at /public/<token>/
    return AuditEvent(
        org_id=principal.share.org_id if isinstance(principal, SharePrincipal) else principal.org_id,
        user_id=None if isinstance(principal, SharePrincipal) else principal.user_id,
        principal=principal.username,
        address=address,
        surface="share" if shared else "dav",
        action=action,
        node_id=environ.get("meddav.node_id"),
        target_id=environ.get("meddav.target_id"),
        outcome=outcome_of(status),
        status=status,
    )
