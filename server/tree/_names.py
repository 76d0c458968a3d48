"""Rules for the names of files and folders, the same on every surface."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import PurePosixPath

from server.errors import BadRequest

__all__ = ["MAX_NAME_BYTES", "free_name", "validate_name"]

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


#: Numbered names tried before a random one (each try is a lookup, in the transaction that stores).
FREE_NAME_TRIES = 100


def fitted(stem: str, tail: str) -> str:
    """``stem + tail`` within :data:`MAX_NAME_BYTES`: the stem shortened first, then the tail (never empty)."""
    while stem and len((stem + tail).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    while len((stem + tail).encode("utf-8")) > MAX_NAME_BYTES:
        tail = tail[:-1]
    return stem + tail


def free_name(name: str, taken: Callable[[str], bool]) -> str:
    """``name``, or the first of ``name (2).ext``, ``name (3).ext``... that is not ``taken``: how a
    file put where its name is taken is stored without replacing nor revealing anything.  A long name
    is shortened to fit, never refused; after :data:`FREE_NAME_TRIES` numbers, a random tail."""
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    if not stem:  # ".profile": all stem
        stem, suffix = name, ""
    candidate = name
    for number in range(2, FREE_NAME_TRIES + 2):
        if not taken(candidate):
            return candidate
        candidate = fitted(stem, f" ({number}){suffix}")
    while taken(candidate):
        candidate = fitted(stem, f" ({secrets.token_hex(6)}){suffix}")
    return candidate
