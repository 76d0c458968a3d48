"""The one place where MedDAV's errors become WebDAV statuses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_INTERNAL_ERROR,
    HTTP_NOT_FOUND,
    HTTP_PRECONDITION_FAILED,
    HTTP_SERVICE_UNAVAILABLE,
    DAVError,
)

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

__all__ = ["to_dav_error", "translated"]

P = ParamSpec("P")
R = TypeVar("R")

# Most specific first: AlreadyExists is a Conflict, StorageFull a StorageError.
_STATUS: tuple[tuple[type[MedDAVError], int], ...] = (
    (AlreadyExists, HTTP_PRECONDITION_FAILED),
    (NotFound, HTTP_NOT_FOUND),
    (Conflict, HTTP_CONFLICT),
    (BadRequest, HTTP_BAD_REQUEST),
    (PolicyDenied, HTTP_FORBIDDEN),
    (QuotaExceeded, HTTP_INSUFFICIENT_STORAGE),
    (StorageFull, HTTP_INSUFFICIENT_STORAGE),
    (Busy, HTTP_SERVICE_UNAVAILABLE),
)
#: Seconds a client told to come back (503) waits.
RETRY_AFTER_SECONDS = 5


def to_dav_error(exc: MedDAVError) -> DAVError:
    """The DAVError for one of MedDAV's errors.  The message goes to the client,
    and never holds a file name (see ``server.errors``)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            headers = [("Retry-After", str(RETRY_AFTER_SECONDS))] if status == HTTP_SERVICE_UNAVAILABLE else None
            return DAVError(status, str(exc), add_headers=headers)
    # Anything else is the server's fault; ErrorShield logs it and answers a bare 500.
    return DAVError(HTTP_INTERNAL_ERROR, src_exception=exc)


def translated(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a provider method so MedDAV errors leave it as DAVErrors."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MedDAVError as exc:
            raise to_dav_error(exc) from None

    return wrapper
