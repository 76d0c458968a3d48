"""Where MedDAV answers differently from stock wsgidav 4.4 (see ``docs/webdav.md``).

Called for every request through ``MedDAVProvider.custom_request_handler``,
before wsgidav's own method handler (``default_handler``); GET and HEAD of
files never get here, ``server.dav.get`` answers them:

- LOCK needs the right to write what it locks (wsgidav asks the provider nothing).
- PUT with neither Content-Length nor chunked encoding gets 411 instead of
  storing an empty file; ``X-Expected-Entity-Length`` (macOS Finder) must be a
  number, and the body is checked against it; ``If-Match`` on a missing
  resource gets 412.
- COPY and MOVE to a new destination answer 201, not 204 (wsgidav answers 204
  whenever the provider handles them natively, as MedDAV does).
- PROPFIND with Depth 0 or 1 is rendered by ``server.dav.propfind``; what it
  leaves to wsgidav has RFC 4918's ``<propname/>`` renamed to the ``<name/>``
  wsgidav looks for (it would answer hrefs without any property).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_LENGTH_REQUIRED,
    HTTP_PRECONDITION_FAILED,
    DAVError,
)

if TYPE_CHECKING:
    from server.dav.provider import MedDAVProvider

from server.dav.propfind import answer_propfind
from server.dav.xmlbody import parse_xml
from server.policy import Action

__all__ = ["handle"]


def handle(
    provider: MedDAVProvider, environ: dict[str, Any], start_response: Any, default_handler: Any
) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    if method == "PUT":
        _check_put(provider, environ)
    elif method == "LOCK":
        _check_lock(provider, environ)
    elif method in ("COPY", "MOVE"):
        return _created_when_new(environ, start_response, default_handler)
    elif method == "PROPFIND":
        answer = answer_propfind(provider, environ, start_response)
        if answer is not None:
            return answer
        _propname_as_wsgidav_expects(environ)
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


# -- LOCK -----------------------------------------------------------------------------


def _check_lock(provider: MedDAVProvider, environ: dict[str, Any]) -> None:
    """A lock keeps others from writing: taking one needs the right to write (wsgidav asks nothing).

    Locking an existing resource needs WRITE on it, locking an unmapped URL (which
    creates an empty file) CREATE on its folder; so a read-only member cannot
    lock a document of a read-only group folder, nor anyone the group folder itself.
    """
    resource = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if resource is not None:
        resource.require(Action.WRITE)
        return
    parent_path = util.get_uri_parent(environ["PATH_INFO"])
    parent = provider.get_resource_inst(parent_path, environ) if parent_path else None
    if parent is not None:
        parent.require(Action.CREATE)


# -- PROPFIND ---------------------------------------------------------------------------


def _propname_as_wsgidav_expects(environ: dict[str, Any]) -> None:
    """Rename ``<D:propname/>`` to the ``<D:name/>`` wsgidav understands.

    The body was already bounded (and given a Content-Length) by RequestLimits.
    """
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if not length:
        return
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    if b"propname" not in body:
        return
    root = parse_xml(body)
    if root is None or root.tag != "{DAV:}propfind":
        return  # wsgidav answers
    for child in root:
        if child.tag == "{DAV:}propname":
            child.tag = "{DAV:}name"
    body = etree.tostring(root)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


# -- COPY / MOVE -------------------------------------------------------------------


def _created_when_new(environ: dict[str, Any], start_response: Any, default_handler: Any) -> Iterable[bytes]:
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status.startswith("204") and environ.get("meddav.created"):
            status = "201 Created"
        return start_response(status, headers, exc_info)

    result: Iterable[bytes] = default_handler(environ, start)
    return result
