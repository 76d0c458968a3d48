"""GET and HEAD of files: the most frequent requests of a network drive, served lean.

``FileGet`` sits in the wsgidav middleware stack after authentication and
request limits, and answers GET and HEAD on files itself instead of going
through wsgidav's RequestResolver and RequestServer, whose per-request
machinery cost more than everything else a small GET does (measured with the
benchmark's small-file workload).  What stays wsgidav's: HTTP conditionals
(``util.evaluate_http_conditionals``: If-Match, If-None-Match,
If-Modified-Since, If-Unmodified-Since), errors and their rendering, and every
request this does not claim: folders, requests with a WebDAV ``If`` header,
a body or a Depth header.

Ranges (RFC 9110 §14): one satisfiable range gets 206 with that range;
several get ``multipart/byteranges`` (sorted, overlapping ones merged; wsgidav
4.4 would send the last range alone); more than ``[dav] max_ranges`` get the
whole file once; none satisfiable gets 416 with ``Content-Range: bytes */size``;
a Range header that is not a byte-range set is ignored (200), as RFC 9110
asks.  ``If-Range`` that does not match sends the whole file.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from wsgidav import util
from wsgidav.dav_error import HTTP_RANGE_NOT_SATISFIABLE, DAVError
from wsgidav.mw.base_mw import BaseMiddleware

from server.dav.middleware import INSTANCE_KEY
from server.dav.provider import FileResource
from server.dav.responses import http_date

if TYPE_CHECKING:
    from server.instance import Instance

__all__ = ["FileGet", "parse_ranges"]

BLOCK = 256 * 1024
_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Satisfiable ranges of a ``Range`` header as sorted, merged (first, last) pairs.

    None when the header is not a byte-range set (to be ignored); an empty list
    when no range is satisfiable (416).
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
            if start < size:
                ranges.append((start, min(end, size - 1)))
        elif last:
            length = int(last)
            if length and size:
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


class FileGet(BaseMiddleware):
    """Serve GET and HEAD on files; pass everything else on to wsgidav."""

    def __init__(self, wsgidav_app: Any, next_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        instance: Instance = config[INSTANCE_KEY]
        self.max_ranges = instance.settings.dav.max_ranges

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if (
            method in ("GET", "HEAD")
            and "HTTP_IF" not in environ
            and environ.get("HTTP_DEPTH", "0") == "0"
            and util.get_content_length(environ) == 0
        ):
            resource = environ["wsgidav.provider"].get_resource_inst(environ["PATH_INFO"], environ)
            if isinstance(resource, FileResource):
                return self._serve(resource, environ, start_response, head=method == "HEAD")
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result

    def _serve(
        self, resource: FileResource, environ: dict[str, Any], start_response: Any, *, head: bool
    ) -> Iterable[bytes]:
        size = resource.get_content_length()
        etag = resource.get_etag()
        modified = resource.get_last_modified()
        util.evaluate_http_conditionals(resource, int(modified), etag, environ)
        headers = [
            ("Content-Type", resource.get_content_type()),
            ("Last-Modified", util.get_rfc1123_time(modified)),
            ("ETag", f'"{etag}"'),
            ("Accept-Ranges", "bytes"),
            ("Date", http_date()),
        ]
        ranges = self._ranges(environ, size, etag, modified)
        if ranges is None or len(ranges) > self.max_ranges:
            start_response("200 OK", [("Content-Length", str(size)), *headers])
            return [b""] if head else self._body(resource, [(0, size - 1)], [], b"")
        if not ranges:
            raise DAVError(
                HTTP_RANGE_NOT_SATISFIABLE, "no satisfiable range", add_headers=[("Content-Range", f"bytes */{size}")]
            )
        if len(ranges) == 1:
            first, last = ranges[0]
            start_response(
                "206 Partial Content",
                [
                    ("Content-Length", str(last - first + 1)),
                    ("Content-Range", f"bytes {first}-{last}/{size}"),
                    *headers,
                ],
            )
            return [b""] if head else self._body(resource, ranges, [], b"")
        boundary = secrets.token_hex(16)
        content_type = resource.get_content_type()
        heads = [
            f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n".encode()
            for a, b in ranges
        ]
        tail = f"--{boundary}--\r\n".encode()
        length = sum(len(h) + (b - a + 1) + 2 for h, (a, b) in zip(heads, ranges, strict=True)) + len(tail)
        headers[0] = ("Content-Type", f"multipart/byteranges; boundary={boundary}")
        start_response("206 Partial Content", [("Content-Length", str(length)), *headers])
        return [b""] if head else self._body(resource, ranges, heads, tail)

    @staticmethod
    def _ranges(environ: dict[str, Any], size: int, etag: str, modified: float) -> list[tuple[int, int]] | None:
        """The ranges to send, or None for the whole representation."""
        header = environ.get("HTTP_RANGE")
        if header is None or size == 0:
            return None
        if_range = environ.get("HTTP_IF_RANGE")
        if if_range is not None:
            as_date = util.parse_time_string(if_range)
            current = int(modified) == as_date if as_date else if_range.strip().strip('"') == etag
            if not current:
                return None
        return parse_ranges(header, size)

    @staticmethod
    def _body(
        resource: FileResource, ranges: list[tuple[int, int]], heads: list[bytes], tail: bytes
    ) -> Iterator[bytes]:
        reader = resource.get_content()
        try:
            for index, (first, last) in enumerate(ranges):
                if heads:
                    yield heads[index]
                reader.seek(first)
                remaining = last - first + 1
                while remaining > 0:
                    chunk = reader.read(min(BLOCK, remaining))
                    if not chunk:
                        raise OSError("content shorter than its recorded size")
                    remaining -= len(chunk)
                    yield chunk
                if heads:
                    yield b"\r\n"
            if tail:
                yield tail
        finally:
            reader.close()
