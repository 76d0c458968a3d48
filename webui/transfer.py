"""Files between a browser and MedDAV: sent as the raw body of a request (a ``PUT`` from
``static/share.js``), and fetched as attachments.

The body goes block by block into a tree :class:`~server.tree.Upload`, which
encrypts as it writes: never a multipart form, which a parser spools to a
plaintext temporary file.  Whatever stops the body half-way (the client gone,
a stalled client past the server's time-out, a quota) discards what was
written: nothing half-stored remains.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import jsonify, request
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server.errors import MedDAVError, NotFound
from server.tree import Entry, Upload, validate_name

__all__ = ["BLOCK", "announced", "attachment_headers", "path_names", "receive", "refused"]

#: Bytes read from a request body per step.
BLOCK = 256 * 1024


def receive(upload: Upload, length: int) -> Entry | None:
    """Write ``length`` bytes of the request's body into ``upload`` and store it; None (and nothing
    stored) when the body ended early or the connection failed.  MedDAV's errors (quota, more data than
    announced) propagate, the upload discarded."""
    stream, left = request.environ["wsgi.input"], length
    try:
        while left > 0:
            block = stream.read(min(BLOCK, left))
            if not block:
                upload.abort()
                return None
            upload.write(block)
            left -= len(block)
    except OSError:  # the client went away, or stalled past the server's time-out
        upload.abort()
        return None
    except BaseException:
        upload.abort()
        raise
    return upload.finish()


def refused(status: int, message: str) -> BaseResponse:
    """The JSON answer the upload script shows beside the file: ``{"error": {"status", "message"}}``."""
    response = jsonify(error={"status": status, "message": message})
    response.status_code = status
    return response


def announced() -> tuple[int, str] | BaseResponse:
    """The size (Content-Length, required: no chunked body) and the name (``?name=``) of the file this
    request sends, or the answer that refuses it."""
    length = request.headers.get("Content-Length", "")
    if not length.isdigit():
        return refused(411, _("The size of the file is missing."))
    name = request.args.get("name", "")
    try:
        validate_name(name)
    except MedDAVError:
        return refused(400, _("This file name cannot be used."))
    return int(length), name


def attachment_headers(name: str, size: int | None = None) -> dict[str, str]:
    """The headers of a file sent to be saved, never shown in the site's origin (an HTML or SVG file a
    guest put in a share runs no script there): attachment, a sandbox CSP, no sniffing."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_").replace("\\", "_")
    headers = {
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "X-Content-Type-Options": "nosniff",
    }
    if size is not None:
        headers["Content-Length"] = str(size)
    return headers


def path_names(path: str) -> list[str]:
    """The names of a path in a page's URL; NotFound (the 404 page) when one could name no item."""
    names = [name for name in path.split("/") if name]
    for name in names:
        try:
            validate_name(name)
        except MedDAVError:
            raise NotFound("no such item") from None
    return names
