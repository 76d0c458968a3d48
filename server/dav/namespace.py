"""MKCOL, DELETE and MOVE in a tree without locks, answered without RequestServer.

Creating, renaming and removing folders and files is what a mounted drive
does most after reading; wsgidav builds a RequestServer per request, checks
locks through several layers and renders an HTML page for every 201, which
cost more than the database work itself (benchmark, MKCOL+MOVE+DELETE).
``NamespaceOps`` answers the plain cases itself, through the same provider
resources (so through the same policy and tree operations) and with the
statuses wsgidav gives:

- MKCOL: 405 when the name exists, 409 when the parent is not a folder, 201.
- DELETE: 404 when missing, 204.
- MOVE: 409 when the destination folder is missing, 403 onto or below itself,
  412 when the destination exists and ``Overwrite: F``, 201 when new, 204
  when replacing.

Everything else goes on to wsgidav unchanged: a tree that holds a lock (lock
semantics stay wsgidav's), conditional requests (``If``, ``If-Match``,
``If-None-Match``, ``If-(Un)Modified-Since``), a request body, an unusual
``Depth`` or ``Overwrite``, a destination on another host, scheme or mount.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlparse

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_METHOD_NOT_ALLOWED,
    HTTP_NOT_FOUND,
    HTTP_PRECONDITION_FAILED,
    DAVError,
)
from wsgidav.mw.base_mw import BaseMiddleware

from server.dav.provider import FolderResource, MedDAVProvider
from server.dav.responses import send_status

__all__ = ["CONDITIONAL", "NamespaceOps"]

#: Headers that make a request conditional: such requests go to wsgidav, the reference.
CONDITIONAL = frozenset(
    ("HTTP_IF", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE")
)

#: A method's answer, or None to leave the request to wsgidav.
Handler = Callable[[MedDAVProvider, dict[str, Any], Any], Iterable[bytes] | None]


class NamespaceOps(BaseMiddleware):
    """Answer plain MKCOL, DELETE and MOVE; pass everything else on to wsgidav."""

    def __init__(self, wsgidav_app: Any, next_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        self.mount_path: str = config["mount_path"]
        self.handlers: dict[str, Handler] = {
            "MKCOL": self._mkcol,
            "DELETE": self._delete,
            "MOVE": self._move,
        }

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        handler = self.handlers.get(environ["REQUEST_METHOD"])
        if handler is not None and util.get_content_length(environ) == 0 and CONDITIONAL.isdisjoint(environ):
            provider: MedDAVProvider = environ["wsgidav.provider"]
            if not provider.holds_locks(environ):
                answer = handler(provider, environ, start_response)
                if answer is not None:
                    return answer
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result

    # -- the methods: each returns None to leave the request to wsgidav ---------------------

    @staticmethod
    def _mkcol(provider: MedDAVProvider, environ: dict[str, Any], start_response: Any) -> Iterable[bytes] | None:
        if environ.get("HTTP_DEPTH", "0") != "0":
            return None
        path = environ["PATH_INFO"]
        if provider.get_resource_inst(path, environ) is not None:
            raise DAVError(HTTP_METHOD_NOT_ALLOWED, "MKCOL can only be executed on an unmapped URL")
        parent_path = util.get_uri_parent(path)
        parent = provider.get_resource_inst(parent_path, environ) if parent_path else None
        if not isinstance(parent, FolderResource):
            raise DAVError(HTTP_CONFLICT, "parent must be an existing collection")
        parent.create_collection(util.get_uri_name(path))
        return send_status(start_response, "201 Created")

    @staticmethod
    def _delete(provider: MedDAVProvider, environ: dict[str, Any], start_response: Any) -> Iterable[bytes] | None:
        path = environ["PATH_INFO"]
        resource = provider.get_resource_inst(path, environ)
        if resource is None:
            raise DAVError(HTTP_NOT_FOUND)
        depth = environ.get("HTTP_DEPTH", "infinity").lower()
        if depth != "infinity" and (resource.is_collection or depth != "0"):
            return None  # wsgidav answers 400
        resource.handle_delete()
        return send_status(start_response, "204 No Content")

    def _move(self, provider: MedDAVProvider, environ: dict[str, Any], start_response: Any) -> Iterable[bytes] | None:
        path = environ["PATH_INFO"]
        overwrite = environ.get("HTTP_OVERWRITE", "T").upper()
        depth = environ.get("HTTP_DEPTH", "infinity").lower()
        if overwrite not in ("T", "F") or depth not in ("0", "infinity"):
            return None  # wsgidav answers 400
        source = provider.get_resource_inst(path, environ)
        if source is None:
            raise DAVError(HTTP_NOT_FOUND)
        if source.is_collection and depth != "infinity":
            return None  # wsgidav answers 400
        dest_path = self._destination(environ)
        if dest_path is None:
            return None
        if source.is_collection:
            dest_path = dest_path.rstrip("/") + "/"
        dest_parent_path = util.get_uri_parent(dest_path)
        dest_parent = provider.get_resource_inst(dest_parent_path, environ) if dest_parent_path else None
        if not isinstance(dest_parent, FolderResource):
            raise DAVError(HTTP_CONFLICT, "destination parent must be a collection")
        if path == dest_path:
            raise DAVError(HTTP_FORBIDDEN, "cannot move a resource onto itself")
        if util.is_equal_or_child_uri(path, dest_path):
            raise DAVError(HTTP_FORBIDDEN, "cannot move a resource below itself")
        if overwrite == "F" and provider.get_resource_inst(dest_path, environ) is not None:
            raise DAVError(HTTP_PRECONDITION_FAILED, "destination exists and Overwrite is F")
        source.handle_move(dest_path)
        created = environ.get("meddav.created")
        return send_status(start_response, "201 Created" if created else "204 No Content")

    def _destination(self, environ: dict[str, Any]) -> str | None:
        """The Destination as a path below the mount, or None when it is not a plain
        same-server destination (wsgidav then answers 400 or 502)."""
        header = environ.get("HTTP_DESTINATION")
        if not header:
            return None
        scheme, netloc, dest_path, *_ = urlparse(unquote(header), allow_fragments=False)
        if scheme and scheme.lower() != environ["wsgi.url_scheme"].lower():
            return None
        if netloc and netloc.lower() != environ.get("HTTP_HOST", "").lower():
            return None
        try:
            normalized: str = util.normalize_path(dest_path)
        except DAVError:
            return None
        if not normalized.startswith(self.mount_path + "/"):
            return None
        return normalized[len(self.mount_path) :]
