"""WSGI middlewares of the WebDAV stack, in the order they run.

``ErrorShield``  logs unexpected exceptions with their traceback (for the
                 operator) and answers a bare 500 (wsgidav would show the
                 exception's text to the client).
``BasicAuth``    who is asking (HTTP Basic against MedDAV accounts).  Replaces
                 wsgidav's HTTPAuthenticator, which answers 500 to a malformed
                 Authorization header and knows nothing of throttling.  Sets
                 ``environ["meddav.client_address"]`` (X-Forwarded-For only
                 from ``[server] trusted_proxies``); too many failed logins get
                 429 with Retry-After, before any password is verified.
``RequestLimits`` bounds what a request may make the server parse: bodies of
                 methods other than PUT (XML) at ``[dav] max_xml_body_bytes``,
                 read in full even when sent chunked (wsgidav would read a
                 chunked XML body as empty), XML bodies well-formed and without
                 a document type (``server.dav.xmlbody``), PROPFIND ``Depth:
                 infinity`` refused unless ``[dav] allow_infinite_depth``; a
                 path the path guard marked, a Destination that is not UTF-8 or
                 an Overwrite other than T or F get a 400 there, once the
                 requester is known and audited.

Both sit inside wsgidav's middleware stack, so they see normalised paths and
their errors are rendered by wsgidav's ErrorPrinter.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_INTERNAL_ERROR,
    HTTP_REQUEST_ENTITY_TOO_LARGE,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.mw.base_mw import BaseMiddleware

from server.auth import Throttled, client_address
from server.dav.errors import to_dav_error
from server.dav.xmlbody import PARSED_KEY, XML_METHODS, parse_xml
from server.errors import AuthenticationFailed, Busy, DecryptionFailed

if TYPE_CHECKING:
    from server.instance import Instance

__all__ = ["BAD_PATH_KEY", "INSTANCE_KEY", "BasicAuth", "ErrorShield", "RequestLimits"]

logger = logging.getLogger(__name__)

INSTANCE_KEY = "meddav_instance"
#: Set by the path guard of server.dav on a request whose path is refused once its requester is known.
BAD_PATH_KEY = "meddav.bad_path"


def _visible_hrefs(environ: dict[str, Any], refs: list[str]) -> list[str]:
    """The hrefs of an error's condition (the locks in the way of a 423) as the client sees them.

    wsgidav names locks by their lock URLs (``/<space>/<path>``), which are no client's paths, and for an
    item a colleague shared, name the owner's folders: each becomes the href of the resource it is in the
    requester's drive, or, when nothing of it shows there, the requested resource itself."""
    provider = environ.get("wsgidav.provider")
    hrefs: list[str] = []
    for ref in refs:
        resource = None
        if provider is not None and "meddav.principal" in environ:
            try:
                resource = provider.get_resource_inst(provider.ref_url_to_path(ref), environ)
            except Exception:  # an error page must not fail: the ref is then left out
                resource = None
        href = resource.get_href() if resource is not None else None
        if href is not None and href not in hrefs:
            hrefs.append(href)
    if not hrefs:
        hrefs.append(quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")))
    return hrefs


class ErrorShield(BaseMiddleware):
    """Turn unexpected exceptions into a bare 500, logged once with a traceback.

    A blob that fails authentication is logged as such, with its node id: it
    means damage on disk (or a wrong key), never a reason to send bytes.
    """

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        started = False
        try:
            for chunk in self.next_app(environ, start_response):
                started = True
                yield chunk
        except DAVError as exc:
            if exc.err_condition is not None and exc.err_condition.hrefs:
                exc.err_condition.hrefs = _visible_hrefs(environ, exc.err_condition.hrefs)
            if exc.value != HTTP_INTERNAL_ERROR:
                raise
            if isinstance(exc.src_exception, Busy) and not started:
                raise to_dav_error(exc.src_exception) from None
            self._log(environ, exc.src_exception, started=started)
            if started:
                raise
            raise DAVError(HTTP_INTERNAL_ERROR) from None
        except Busy as exc:  # the database stayed locked (another process): come back, nothing was done
            if started:
                raise
            raise to_dav_error(exc) from None
        except Exception as exc:
            self._log(environ, exc, started=started)
            if started:
                raise  # too late for a status: the connection is dropped
            raise DAVError(HTTP_INTERNAL_ERROR) from None

    @staticmethod
    def _log(environ: dict[str, Any], exc: BaseException | None, *, started: bool) -> None:
        method, node = environ.get("REQUEST_METHOD"), environ.get("meddav.node_id", "-")
        when = " after the response started (connection dropped)" if started else ""
        if isinstance(exc, DecryptionFailed):
            logger.error(
                "content of node %s failed authentication%s: its blob is damaged or its key is wrong; "
                "restore the blob from backup",
                node,
                when,
            )
        elif exc is not None:
            logger.error("internal error in %s on node %s%s", method, node, when, exc_info=exc)
        else:
            logger.error("internal error in %s on node %s%s", method, node, when)


def challenge(realm: str, start_response: Any) -> list[bytes]:
    body = b"Authentication required / Authentification requise\n"
    start_response(
        "401 Unauthorized",
        [
            ("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"'),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def too_many(retry_after: int, start_response: Any) -> list[bytes]:
    body = (
        f"Too many failed logins, retry in {retry_after} s / "
        f"Trop d'échecs de connexion, réessayez dans {retry_after} s\n"
    ).encode()
    start_response(
        "429 Too Many Requests",
        [
            ("Retry-After", str(retry_after)),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def unavailable(start_response: Any) -> list[bytes]:
    body = b"Server busy, retry shortly / Serveur occupe, reessayez dans un instant\n"
    start_response(
        "503 Service Unavailable",
        [("Retry-After", "2"), ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def parse_basic(header: str) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header, or None if malformed."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


class BasicAuth(BaseMiddleware):
    """Authenticate every request; there is no anonymous access."""

    def __init__(self, wsgidav_app: Any, next_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        self.instance: Instance = config[INSTANCE_KEY]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        settings = self.instance.settings
        realm = settings.auth.realm
        address = client_address(environ, settings.server.trusted_proxies)
        environ["meddav.client_address"] = address
        credentials = parse_basic(environ.get("HTTP_AUTHORIZATION", ""))
        if credentials is None:
            return challenge(realm, start_response)
        user, password = credentials
        environ["meddav.attempted_user"] = user  # for the audit of a failed attempt
        try:
            principal = self.instance.authenticator.authenticate(user, password, address=address)
        except Throttled as exc:
            logger.debug("login refused for %s s (too many failures), client %s", exc.retry_after, address)
            return too_many(exc.retry_after, start_response)
        except AuthenticationFailed:
            return challenge(realm, start_response)
        except Busy:
            return unavailable(start_response)
        if self.instance.audit.saturated:
            # The audit log cannot keep up (its database is stuck): act on nothing that could go unrecorded.
            logger.error("audit log queue nearly full: refusing WebDAV requests until it drains")
            return unavailable(start_response)
        environ["meddav.principal"] = principal
        environ["wsgidav.auth.user_name"] = principal.username
        environ["wsgidav.auth.realm"] = realm
        environ["wsgidav.auth.roles"] = []
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result


def _check_copy_headers(environ: dict[str, Any]) -> None:
    """A Destination that is UTF-8 once percent-decoded (as a request's path must be), and an Overwrite
    of T or F.  A Destination sent as raw UTF-8 bytes (unquoted, as some clients do) is read as such: the
    server gets header values as Latin-1 text, the way PATH_INFO comes."""
    header = environ.get("HTTP_DESTINATION")
    if header is not None:
        try:
            header = header.encode("latin-1").decode("utf-8")
            unquote(header, errors="strict")
        except UnicodeError:
            raise DAVError(HTTP_BAD_REQUEST, "the Destination header is not valid UTF-8") from None
        environ["HTTP_DESTINATION"] = header
    overwrite = environ.get("HTTP_OVERWRITE")
    if overwrite is not None:
        if overwrite.strip() not in ("T", "F"):
            raise DAVError(HTTP_BAD_REQUEST, "the Overwrite header is T or F")
        environ["HTTP_OVERWRITE"] = overwrite.strip()


class RequestLimits(BaseMiddleware):
    """Refuse what no handler should see: a path the guard marked, a COPY or MOVE header that is not
    well-formed; bound request bodies other than PUT; refuse infinite-depth PROPFIND."""

    def __init__(self, wsgidav_app: Any, next_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        instance: Instance = config[INSTANCE_KEY]
        self.max_body = instance.settings.dav.max_xml_body_bytes
        self.allow_infinite = instance.settings.dav.allow_infinite_depth

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get(BAD_PATH_KEY):
            raise DAVError(HTTP_BAD_REQUEST, "the path is not valid UTF-8 or leaves the drive")
        method = environ["REQUEST_METHOD"]
        if method in ("COPY", "MOVE"):
            _check_copy_headers(environ)
        if method != "PUT":
            self._bound_body(environ, xml=method in XML_METHODS)
        infinite = environ.get("HTTP_DEPTH", "infinity").strip().lower() == "infinity"
        if method == "PROPFIND" and infinite and not self.allow_infinite:
            raise DAVError(
                HTTP_FORBIDDEN,
                "PROPFIND with Depth: infinity is disabled; use Depth: 1",
                err_condition=PRECONDITION_CODE_PropfindFiniteDepth,
            )
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result

    def _bound_body(self, environ: dict[str, Any], *, xml: bool) -> None:
        """Refuse a body over the bound.  Read it whole when chunked (wsgidav wants a length) or XML:
        checked here (:mod:`server.dav.xmlbody`) before any parser of wsgidav's sees it, which would log
        a malformed body, property values and all."""
        length = environ.get("CONTENT_LENGTH", "").strip()
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length and not chunked:
            if not length.isdigit():
                raise DAVError(HTTP_BAD_REQUEST, "invalid Content-Length")
            if int(length) > self.max_body:
                raise DAVError(HTTP_REQUEST_ENTITY_TOO_LARGE, f"request body over {self.max_body} bytes")
            if not xml or int(length) == 0:
                return
            body = environ["wsgi.input"].read(int(length))
            if len(body) < int(length):
                raise DAVError(HTTP_BAD_REQUEST, "the body is shorter than its Content-Length")
        elif chunked:
            buffer = bytearray()
            while chunk := environ["wsgi.input"].read(min(65536, self.max_body + 1 - len(buffer))):
                buffer += chunk
                if len(buffer) > self.max_body:
                    raise DAVError(HTTP_REQUEST_ENTITY_TOO_LARGE, f"request body over {self.max_body} bytes")
            body = bytes(buffer)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        else:
            return
        environ["wsgi.input"] = io.BytesIO(body)
        if xml and body.strip():
            environ[PARSED_KEY] = parse_xml(body)
            if environ[PARSED_KEY] is None:
                raise DAVError(HTTP_BAD_REQUEST, "the body is not well-formed XML, or declares a document type")
