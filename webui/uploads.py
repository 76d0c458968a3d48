"""A file sent from a browser as the raw body of a request (a ``PUT`` from ``static/share.js``).

The body goes block by block into a tree :class:`~server.tree.Upload`, which
encrypts as it writes: never a multipart form, which a parser spools to a
plaintext temporary file.  Whatever stops the body half-way (the client gone,
a stalled client past the server's time-out, a quota) discards what was
written: nothing half-stored remains.
"""

from __future__ import annotations

from flask import request

from server.tree import Entry, Upload

__all__ = ["BLOCK", "receive"]

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
