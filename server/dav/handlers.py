"""Where MedDAV answers differently from stock wsgidav 4.4 (see ``docs/webdav.md``).

Called for every request through ``MedDAVProvider.custom_request_handler``,
before wsgidav's own method handler (``default_handler``):

- PUT with neither Content-Length nor chunked encoding gets 411 instead of
  storing an empty file; ``X-Expected-Entity-Length`` (macOS Finder) must be a
  number, and the body is checked against it; ``If-Match`` on a missing
  resource gets 412.
- GET with several ranges gets a real ``multipart/byteranges`` answer instead
  of the last range alone; past ``[dav] max_ranges`` it gets the whole file.
- COPY and MOVE to a new destination answer 201, not 204 (wsgidav answers 204
  whenever the provider handles them natively, as MedDAV does).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_LENGTH_REQUIRED,
    HTTP_PRECONDITION_FAILED,
    DAVError,
)

if TYPE_CHECKING:
    from server.dav.provider import MedDAVProvider

__all__ = ["handle", "parse_ranges"]

_BLOCK = 256 * 1024
_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


def handle(
    provider: MedDAVProvider, environ: dict[str, Any], start_response: Any, default_handler: Any
) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    if method == "PUT":
        _check_put(provider, environ)
    elif method == "GET" and "," in environ.get("HTTP_RANGE", ""):
        answer = _multi_range(provider, environ, start_response, default_handler)
        if answer is not None:
            return answer
    elif method in ("COPY", "MOVE"):
        return _created_when_new(environ, start_response, default_handler)
    result: Iterable[bytes] = default_handler(environ, start_response)
    return result


# -- PUT ------------------------------------------------------------------------


def _check_put(provider: MedDAVProvider, environ: dict[str, Any]) -> None:
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not environ.get("CONTENT_LENGTH") and not chunked:
        raise DAVError(HTTP_LENGTH_REQUIRED, "Content-Length or chunked transfer encoding required")
    expected = environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH")
    if expected is not None and not expected.strip().isdigit():
        raise DAVError(HTTP_BAD_REQUEST, "X-Expected-Entity-Length must be a number")
    if "HTTP_IF_MATCH" in environ and provider.get_resource_inst(environ["PATH_INFO"], environ) is None:
        # RFC 9110 13.1.1: If-Match (even "*") fails when there is no current representation.
        raise DAVError(HTTP_PRECONDITION_FAILED, "If-Match on a resource that does not exist")


# -- COPY / MOVE -------------------------------------------------------------------


def _created_when_new(environ: dict[str, Any], start_response: Any, default_handler: Any) -> Iterable[bytes]:
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status.startswith("204") and environ.get("meddav.created"):
            status = "201 Created"
        return start_response(status, headers, exc_info)

    result: Iterable[bytes] = default_handler(environ, start)
    return result


# -- multi-range GET ------------------------------------------------------------------


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Satisfiable ranges of a ``Range`` header as sorted, merged (first, last) pairs.

    Returns None when the header is not a byte-range set at all (to be
    ignored); an empty list when no range is satisfiable (416).
    """
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs:
        return None
    ranges: list[tuple[int, int]] = []
    for spec in specs.split(","):
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            return None
        first, last = match.groups()
        if first:
            start = int(first)
            end = int(last) if last else size - 1
            if last and end < start:
                return None
            if start >= size:
                continue
            ranges.append((start, min(end, size - 1)))
        elif last:
            length = int(last)
            if length == 0 or size == 0:
                continue
            ranges.append((max(0, size - length), size - 1))
        else:
            return None
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _multi_range(
    provider: MedDAVProvider, environ: dict[str, Any], start_response: Any, default_handler: Any
) -> Iterable[bytes] | None:
    """A multipart/byteranges answer, or None to let wsgidav answer (one range, none, or an error)."""
    from server.dav.provider import FileResource

    resource = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if not isinstance(resource, FileResource):
        return None
    size = resource.get_content_length()
    ranges = parse_ranges(environ["HTTP_RANGE"], size)
    if ranges is None or len(ranges) <= 1:
        return None
    if_range = environ.get("HTTP_IF_RANGE")
    if if_range is not None and if_range.strip().strip('"') != resource.get_etag():
        return None  # the representation changed: wsgidav sends it whole
    server = default_handler.__self__  # wsgidav's RequestServer of this request
    server._evaluate_if_headers(resource, environ)
    if len(ranges) > provider.tree.settings.dav.max_ranges:
        del environ["HTTP_RANGE"]  # bounded answer: the whole file, once
        return None

    content_type = resource.get_content_type()
    boundary = secrets.token_hex(16)
    heads = [
        (f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n").encode()
        for a, b in ranges
    ]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(h) + (b - a + 1) + 2 for h, (a, b) in zip(heads, ranges, strict=True)) + len(tail)
    reader = resource.get_content()
    start_response(
        "206 Partial Content",
        [
            ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
            ("Content-Length", str(length)),
            ("ETag", f'"{resource.get_etag()}"'),
            ("Last-Modified", util.get_rfc1123_time(resource.get_last_modified())),
            ("Accept-Ranges", "bytes"),
            ("Date", util.get_rfc1123_time()),
        ],
    )

    def body() -> Iterator[bytes]:
        try:
            for head, (first, last) in zip(heads, ranges, strict=True):
                yield head
                reader.seek(first)
                remaining = last - first + 1
                while remaining > 0:
                    chunk = reader.read(min(_BLOCK, remaining))
                    if not chunk:
                        raise OSError("content shorter than its recorded size")
                    remaining -= len(chunk)
                    yield chunk
                yield b"\r\n"
            yield tail
        finally:
            reader.close()

    return body()
