"""The WSGI application: one process serves every surface, dispatched by prefix.

::

    /dav/...      WebDAV (server.dav)
    /public/...   a link share over WebDAV (server.dav.public)
    /...          web pages (webui)

Around both: the request log (method, node id, user id, status, bytes,
duration; never a path, which is a file name), the audit row of each WebDAV
request (``server.dav.auditing``), and the security headers every response
carries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.middleware.dispatcher import DispatcherMiddleware

from server.dav import MOUNT_PATH, PUBLIC_PATH, create_dav_app, create_public_app
from server.dav.auditing import dav_event
from server.jobs import Foreground
from webui import create_app as create_web_app

if TYPE_CHECKING:
    from server.instance import Instance

__all__ = ["SECURITY_HEADERS", "create_app"]

access_log = logging.getLogger("server.access")

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"),
)


class RequestLog:
    """Log one line per request and add the security headers."""

    def __init__(
        self,
        app: Any,
        *,
        enabled: bool,
        hsts: bool,
        audit: Callable[[dict[str, Any], int], None] | None = None,
        foreground: Foreground | None = None,
    ) -> None:
        self.app = app
        self.enabled = enabled
        self.audit = audit
        self.foreground = foreground
        self.headers = list(SECURITY_HEADERS)
        if hsts:
            self.headers.append(("Strict-Transport-Security", "max-age=31536000"))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.perf_counter()
        state: dict[str, Any] = {"status": "000"}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            state["status"] = status.split(" ", 1)[0]
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in self.headers if h[0].lower() not in present)
            return start_response(status, headers, exc_info)

        foreground = self.foreground
        if foreground is not None:
            foreground.begin()
        try:
            body = self.app(environ, start)
        except BaseException:
            if foreground is not None:
                foreground.end()
            raise
        return _LoggedResponse(
            body, environ, state, started, enabled=self.enabled, audit=self.audit, foreground=foreground
        )


class _LoggedResponse:
    """A response body that counts what it yields and logs the request when closed.

    The server calls ``close()`` after the response went out (cheroot sends
    the headers of a bodiless answer only once the body is exhausted), so the
    log line costs the client no latency; a client that hangs up is logged too.
    """

    def __init__(
        self,
        body: Iterable[bytes],
        environ: dict[str, Any],
        state: dict[str, Any],
        started: float,
        *,
        enabled: bool,
        audit: Callable[[dict[str, Any], int], None] | None,
        foreground: Foreground | None = None,
    ) -> None:
        self.body = body
        self.environ = environ
        self.state = state
        self.started = started
        self.enabled = enabled
        self.audit = audit
        self.foreground = foreground
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            try:
                if self.enabled:
                    self._log()
                if self.audit is not None:
                    status = int(self.state["status"])
                    self.audit(self.environ, status if status >= 100 else 500)  # no status: the server answers 500
            finally:
                # The answer went out and its audit event is queued: the job workers may go on, and
                # Instance.flush_audit's wait for requests in flight ends with this one recorded.
                if self.foreground is not None:
                    self.foreground.end()
                    self.foreground = None

    def _log(self) -> None:
        environ = self.environ
        principal = environ.get("meddav.principal")
        access_log.info(
            "request",
            extra={
                "fields": {
                    "method": environ.get("REQUEST_METHOD"),
                    "surface": _surface(environ.get("SCRIPT_NAME", "")),
                    "node": environ.get("meddav.node_id", "-"),
                    # A user's id, or a link's "share:<id>" (never its token: paths are not logged).
                    "user": getattr(principal, "user_id", None) or getattr(principal, "username", "-"),
                    "status": self.state["status"],
                    "bytes": self.sent,
                    "ms": round((time.perf_counter() - self.started) * 1000, 1),
                }
            },
        )


def _surface(script_name: str) -> str:
    if script_name.startswith(MOUNT_PATH):
        return "dav"
    return "share" if script_name.startswith(PUBLIC_PATH) else "web"


def create_app(instance: Instance) -> Any:
    """The complete WSGI application of an opened instance."""
    dispatcher = DispatcherMiddleware(
        create_web_app(instance),
        {MOUNT_PATH: create_dav_app(instance), PUBLIC_PATH: create_public_app(instance)},
    )

    def audit(environ: dict[str, Any], status: int) -> None:
        if environ.get("SCRIPT_NAME", "").startswith((MOUNT_PATH, PUBLIC_PATH)):
            event = dav_event(environ, status)
            if event is not None:
                instance.audit.record(event)

    return RequestLog(
        dispatcher,
        enabled=instance.settings.log.request_log,
        hsts=instance.settings.server.https,
        audit=audit,
        foreground=instance.foreground,
    )
