"""Rules for the names of files and folders, the same on every surface."""

from __future__ import annotations

import re

from server.errors import BadRequest

__all__ = ["MAX_NAME_BYTES", "validate_name"]

MAX_NAME_BYTES = 255
# C0 and C1 control characters, DEL, and the path separators of every client OS.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


def validate_name(name: str) -> str:
    """Return ``name`` if it may name a file or folder, else raise BadRequest.

    Refused: empty names, ``.`` and ``..``, control characters, ``/`` and
    ``\\``, and names longer than 255 bytes in UTF-8 (the limit of every common
    client file system).  Names are otherwise kept exactly as given.
    """
    if not name or name in (".", ".."):
        raise BadRequest("invalid name: empty, '.' or '..'")
    if _FORBIDDEN.search(name):
        raise BadRequest("invalid name: control character or path separator")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("invalid name: not valid Unicode") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise BadRequest(f"invalid name: longer than {MAX_NAME_BYTES} bytes")
    return name
