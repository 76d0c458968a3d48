"""PUT of a file with a Content-Length, in a tree without locks, answered without RequestServer.

The second most frequent request of a drive after GET.  ``FilePut`` streams
the body into the same provider resources wsgidav's ``do_PUT`` uses (so
through the same policy, quota and atomic upload: ``begin_write``,
``writelines``, ``end_write``) and answers as it does: 201 for a new file,
204 for a new version, both with the new ETag; 405 on a folder; 409 when the
folder does not exist.  An incomplete body stores nothing (the upload checks
the bytes received against Content-Length).

Everything else goes on to wsgidav unchanged (and through ``server.dav.handlers``):
a tree that holds a lock, conditional requests, chunked bodies (macOS Finder,
with ``X-Expected-Entity-Length``), ``Content-Encoding`` or ``Content-Range``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from wsgidav import util
from wsgidav.dav_error import HTTP_CONFLICT, HTTP_METHOD_NOT_ALLOWED, DAVError
from wsgidav.mw.base_mw import BaseMiddleware

from server.dav.namespace import CONDITIONAL
from server.dav.provider import FileResource, FolderResource, MedDAVProvider
from server.dav.responses import send_status

__all__ = ["FilePut"]

BLOCK = 256 * 1024
_ELSEWHERE = ("HTTP_CONTENT_ENCODING", "HTTP_CONTENT_RANGE", "HTTP_X_EXPECTED_ENTITY_LENGTH", "HTTP_TRANSFER_ENCODING")


class FilePut(BaseMiddleware):
    """Answer plain PUT requests; pass everything else on to wsgidav."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if (
            environ["REQUEST_METHOD"] == "PUT"
            and environ.get("CONTENT_LENGTH", "").isdigit()
            and CONDITIONAL.isdisjoint(environ)
            and not any(header in environ for header in _ELSEWHERE)
        ):
            provider: MedDAVProvider = environ["wsgidav.provider"]
            if not provider.holds_locks(environ):
                return self._put(provider, environ, start_response)
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result

    @staticmethod
    def _put(provider: MedDAVProvider, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        resource = provider.get_resource_inst(path, environ)
        if resource is not None and not isinstance(resource, FileResource):
            raise DAVError(HTTP_METHOD_NOT_ALLOWED, "cannot PUT to a collection")
        created = resource is None
        if resource is None:  # a new file needs its folder; an existing one may have none to show (a shared file)
            parent_path = util.get_uri_parent(path)
            parent = provider.get_resource_inst(parent_path, environ) if parent_path else None
            if not isinstance(parent, FolderResource):
                raise DAVError(HTTP_CONFLICT, "PUT parent must be a collection")
            new = parent.create_empty_resource(util.get_uri_name(path))
            assert isinstance(new, FileResource)
            resource = new
        resource.begin_write(content_type=environ.get("CONTENT_TYPE"))
        try:
            resource.writelines(_body(environ))
        except BaseException:
            resource.end_write(with_errors=True)
            raise
        resource.end_write(with_errors=False)
        headers = [("ETag", f'"{resource.get_etag()}"')]
        return send_status(start_response, "201 Created" if created else "204 No Content", headers)


def _body(environ: dict[str, Any]) -> Iterator[bytes]:
    """The request body in blocks, until the server's input says it is over."""
    read = environ["wsgi.input"].read
    while chunk := read(BLOCK):
        environ["wsgidav.some_input_read"] = 1
        yield chunk
    environ["wsgidav.all_input_read"] = 1
