"""The FHIR side: a document as an R4B DocumentReference, its body streamed, and the EHR's identifiers.

The resource is built and validated with ``fhir.resources.R4B`` (never the
package's default R5 models, which silently accept R4B JSON).  Its content
travels inline (``content[0].attachment.data``, base64) but is never held in
memory: the resource is validated with a placeholder in ``data``, serialised,
cut at the placeholder, and the body is the JSON before it, the file's base64
in 48 KiB pieces, then the JSON after it.  ``Content-Length`` is known in
advance, so the EHR gets an ordinary request.

Conditional create (``If-None-Exist: identifier=SYSTEM|VALUE``) with the
value ``<node id>.<version id>.<version tag>`` makes a retried send a no-op for the EHR.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO
from urllib.parse import urlencode

from fhir.resources.R4B.documentreference import DocumentReference

__all__ = ["Document", "DocumentBody", "document_identifier", "identifier_query", "sha1_of"]

_PIECE = 48 * 1024  # a multiple of 3: each piece encodes to base64 without padding but the last


def document_identifier(node_id: int, version_id: int, version_tag: str) -> str:
    """The identifier value of one version of one file: stable across retries, restarts and reconciliations,
    and never given to another content (the tag changes where a row id was given again after a delete, as
    SQLite did before migration 0010)."""
    return f"{node_id}.{version_id}.{version_tag}"


def identifier_query(system: str, values: Iterable[str]) -> str:
    """``identifier=SYSTEM|A,SYSTEM|B`` (FHIR token search, comma = OR), URL-encoded.

    Systems are checked at start to hold no ``|``, ``,``, ``$`` or backslash,
    and values are ``node.version``, so nothing needs FHIR escaping."""
    return urlencode({"identifier": ",".join(f"{system}|{value}" for value in values)})


def sha1_of(reader: IO[bytes]) -> tuple[bytes, int]:
    """SHA-1 (what ``Attachment.hash`` holds in R4) and size of a stream, read in pieces."""
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    for piece in iter(lambda: reader.read(_PIECE), b""):
        digest.update(piece)
        size += len(piece)
    return digest.digest(), size


@dataclass(frozen=True)
class Document:
    """What the EHR is told about one version of one file."""

    identifier_system: str
    identifier: str
    patient_system: str
    patient_id: str
    title: str
    modified: float
    size: int
    sha1: bytes

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.title)[0] or "application/octet-stream"

    def resource(self, data: str) -> DocumentReference:
        """The validated R4B resource, with ``data`` as the attachment's base64 content."""
        when = datetime.fromtimestamp(self.modified, UTC).isoformat(timespec="seconds")
        return DocumentReference.model_validate(
            {
                "resourceType": "DocumentReference",
                "status": "current",  # a constant R4B code: fhir.resources checks no code values itself
                "identifier": [{"system": self.identifier_system, "value": self.identifier}],
                "subject": {"identifier": {"system": self.patient_system, "value": self.patient_id}},
                "date": when,
                "description": self.title,
                "content": [
                    {
                        "attachment": {
                            "contentType": self.content_type,
                            "data": data,
                            "size": self.size,
                            "hash": base64.b64encode(self.sha1).decode(),
                            "title": self.title,
                            "creation": when,
                        }
                    }
                ],
            }
        )


class DocumentBody:
    """The request body of one DocumentReference: JSON around the streamed base64 of the file.

    ``reader`` is a seekable reader of the file, owned by the caller; each
    iteration of the body starts again from its first byte.
    """

    def __init__(self, document: Document, reader: IO[bytes]) -> None:
        marker = secrets.token_hex(16).upper()  # valid base64, and no JSON escaping can touch it
        text = document.resource(marker).model_dump_json(exclude_none=True)
        before, found, after = text.partition(f'"{marker}"')
        if not found or marker in after:
            raise ValueError("the placeholder of the attachment's data is not unique in the resource")
        self._before = (before + '"').encode()
        self._after = ('"' + after).encode()
        self._size = document.size
        self._reader = reader

    @property
    def length(self) -> int:
        """The body's exact size in bytes (the Content-Length)."""
        return len(self._before) + 4 * ((self._size + 2) // 3) + len(self._after)

    def __iter__(self) -> Iterator[bytes]:
        yield self._before
        sent = 0
        self._reader.seek(0)
        while piece := _read_exactly(self._reader, _PIECE):
            sent += len(piece)
            yield base64.b64encode(piece)
        if sent != self._size:  # the file changed size under us: never send a body that lies about its length
            raise OSError(f"the file's content was {sent} bytes, {self._size} expected")
        yield self._after


def _read_exactly(reader: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end: every piece but the last is a multiple of 3 bytes."""
    pieces: list[bytes] = []
    wanted = size
    while wanted:
        piece = reader.read(wanted)
        if not piece:
            break
        pieces.append(piece)
        wanted -= len(piece)
    return b"".join(pieces)
