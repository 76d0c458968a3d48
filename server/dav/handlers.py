"""Where MedDAV answers differently from stock wsgidav 4.4 (see ``docs/webdav.md``).

Called for every request through ``MedDAVProvider.custom_request_handler``,
before wsgidav's own method handler (``default_handler``); GET and HEAD of
files never get here, ``server.dav.get`` answers them:

- LOCK needs the right to write what it locks (wsgidav asks the provider nothing);
  the empty file a LOCK of an unmapped URL makes appears once the lock is taken.
- PUT with neither Content-Length nor chunked encoding gets 411 instead of
  storing an empty file; ``X-Expected-Entity-Length`` (macOS Finder) must be a
  number, and the body is checked against it; ``If-Match`` on a missing
  resource gets 412.
- COPY and MOVE to a new destination answer 201, not 204 (wsgidav answers 204
  whenever the provider handles them natively, as MedDAV does).
- PROPPATCH stores its changes in one transaction once wsgidav has checked and
  gone through them all (wsgidav sets them one by one): all or none, RFC 4918 9.2.
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
from server.dav.provider import LOCK_NULL, PROPPATCH_PENDING, PropertyChange
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
        return _lock_then_create(provider, environ, start_response, default_handler)
    elif method in ("COPY", "MOVE"):
        return _created_when_new(environ, start_response, default_handler)
    elif method == "PROPPATCH":
        return _proppatch_at_once(environ, start_response, default_handler)
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


# -- LOCK, PROPPATCH: the answer held until what it reports is stored ----------------


def _held(default_handler: Any, environ: dict[str, Any]) -> tuple[list[bytes], list[Any]]:
    """wsgidav's answer to the request, its body and its ``start_response`` arguments, not sent yet: for what
    must be done before the client hears of it (wsgidav returns its bodies whole, it never writes)."""
    answer: list[Any] = []

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer[:] = [status, headers, exc_info]
        return lambda data: None

    return list(default_handler(environ, start)), answer


def _lock_then_create(
    provider: MedDAVProvider, environ: dict[str, Any], start_response: Any, default_handler: Any
) -> Iterable[bytes]:
    """wsgidav's LOCK; for an unmapped URL, the empty file made once the lock is taken (wsgidav would make it
    first, and leave it behind when the lock is refused).  Should making it fail, the lock goes too."""
    try:
        body, answer = _held(default_handler, environ)
        created = environ.pop(LOCK_NULL, None)
        if created is not None and answer[0].startswith("201"):
            try:
                created.create_empty()
            except BaseException:
                if provider.lock_manager is not None:
                    provider.lock_manager.remove_all_locks_from_url(created.get_ref_url(), recursive=False)
                raise
    finally:
        environ.pop(LOCK_NULL, None)
    start_response(*answer)
    return body


def _proppatch_at_once(environ: dict[str, Any], start_response: Any, default_handler: Any) -> Iterable[bytes]:
    """wsgidav's PROPPATCH (checks, then each property set), its changes stored in one transaction before
    its 207 goes out: all or none of them, even through a crash or a database that fails half-way."""
    pending: list[tuple[Any, PropertyChange]] = []
    environ[PROPPATCH_PENDING] = pending
    try:
        body, answer = _held(default_handler, environ)
    finally:
        del environ[PROPPATCH_PENDING]
    if pending:
        resource = pending[0][0]
        resource.store_properties([change for _, change in pending])  # a DAVError here: nothing was stored
    start_response(*answer)
    return body


# -- COPY / MOVE -------------------------------------------------------------------


def _created_when_new(environ: dict[str, Any], start_response: Any, default_handler: Any) -> Iterable[bytes]:
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status.startswith("204") and environ.get("meddav.created"):
            status = "201 Created"
        return start_response(status, headers, exc_info)

    result: Iterable[bytes] = default_handler(environ, start)
    return result
