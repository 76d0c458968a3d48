"""The audit event: what one request or action leaves in the log, checked on creation."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from server.errors import Busy, MedDAVError

__all__ = [
    "ACTION_MAX",
    "ADDRESS_MAX",
    "DETAIL_MAX",
    "OUTCOMES",
    "PRINCIPAL_MAX",
    "SURFACES",
    "AuditChainBroken",
    "AuditEvent",
    "AuditOverflow",
]

# Column sizes of ``audit_log`` (server/db/models.py); a test keeps them in step.
PRINCIPAL_MAX = 160
ADDRESS_MAX = 64
SURFACE_MAX = 16
ACTION_MAX = 40
OUTCOME_MAX = 16
DETAIL_MAX = 200

SURFACES = frozenset({"dav", "web", "cli", "share", "plugin"})
OUTCOMES = frozenset({"ok", "denied", "failed", "error"})

_ID_MAX = 2**63 - 1  # the canonical encoding holds ids as signed 64-bit integers
_ACTION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_ELLIPSIS = "\u2026"


class AuditOverflow(Busy):
    """The audit queue stayed full (the database is not keeping up); the action must not be acknowledged."""


class AuditChainBroken(MedDAVError):
    """The audit chain is broken where an operation needs it intact (pruning would destroy the evidence)."""


def _clean(text: str, limit: int) -> str:
    """``text`` made storable: control characters and unpaired surrogates escaped, at most ``limit`` characters.

    Principals and details may come from the client (the user name of a failed
    login): they must neither break the export formats nor be refused.
    """
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    if len(text) > limit:
        text = text[: limit - 1] + _ELLIPSIS
    return text


def _check_id(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _ID_MAX:
        raise ValueError(f"audit event: {name} must be a non-negative integer or None, not {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEvent:
    """One audited request or action: who, from where, did what to which node, with which outcome.

    Nothing here may be health data: ids, never file names; ``detail`` is a
    short technical note ("size=1234", "reason=quota"), never a name, a
    password or a token.  Built by the surfaces (WebDAV, web pages, CLI,
    share links) and given to :meth:`server.audit.AuditLog.record`.

    Fields the client controls are made to fit, never refused (a failed login
    with a 10 kB user name is still recorded): ``principal``, ``address`` and
    ``detail`` are truncated to their column sizes, with control characters
    escaped.  Fields the code chooses (``surface``, ``action``, ``outcome``,
    ``status``, ids) are checked and a wrong one raises ``ValueError``: that
    is a programming error, found by tests.
    """

    at: float = field(default_factory=time.time)
    org_id: int | None = None
    user_id: int | None = None
    #: Who acted: a user name, a share id ("share:42"), or "-" when unknown.
    principal: str = "-"
    #: The client's IP address (or "local" for the CLI).
    address: str = "-"
    surface: str
    #: A short dotted verb: "auth.login", "file.read", "node.move", "share.create", "admin.user.add".
    action: str
    node_id: int | None = None
    #: The other node or object of the action (destination of a move or copy, the share, the user managed).
    target_id: int | None = None
    outcome: str
    #: The HTTP status answered, when there was one.
    status: int | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        at = self.at
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise ValueError(f"audit event: at must be a finite POSIX time, not {at!r}")
        object.__setattr__(self, "at", float(at))
        for name in ("org_id", "user_id", "node_id", "target_id"):
            _check_id(name, getattr(self, name))
        if self.surface not in SURFACES:
            raise ValueError(f"audit event: surface must be one of {sorted(SURFACES)}, not {self.surface!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"audit event: outcome must be one of {sorted(OUTCOMES)}, not {self.outcome!r}")
        action = self.action
        if not (isinstance(action, str) and 0 < len(action) <= ACTION_MAX and set(action) <= _ACTION_CHARS):
            raise ValueError(
                f"audit event: action must be 1 to {ACTION_MAX} characters among a-z 0-9 . _ -, not {action!r}"
            )
        status = self.status
        if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError(f"audit event: status must be an HTTP status or None, not {status!r}")
        if not isinstance(self.principal, str) or not isinstance(self.address, str):
            raise ValueError("audit event: principal and address must be strings")
        object.__setattr__(self, "principal", _clean(self.principal, PRINCIPAL_MAX) or "-")
        object.__setattr__(self, "address", _clean(self.address, ADDRESS_MAX) or "-")
        if self.detail is not None:
            if not isinstance(self.detail, str):
                raise ValueError("audit event: detail must be a string or None")
            object.__setattr__(self, "detail", _clean(self.detail, DETAIL_MAX))
