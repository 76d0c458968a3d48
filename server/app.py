"""The WSGI application: one process serves every surface, dispatched by prefix.

::

    /dav/...      WebDAV (server.dav)
    /...          web pages (webui)

Around both: the request log (method, node id, user id, status, bytes,
duration; never a path, which is a file name) and the security headers every
response carries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.middleware.dispatcher import DispatcherMiddleware

from server.dav import MOUNT_PATH, create_dav_app
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

    def __init__(self, app: Any, *, enabled: bool, hsts: bool) -> None:
        self.app = app
        self.enabled = enabled
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

        result = self.app(environ, start)
        return self._logged(result, environ, state, started)

    def _logged(
        self, result: Iterable[bytes], environ: dict[str, Any], state: dict[str, Any], started: float
    ) -> Iterator[bytes]:
        sent = 0
        try:
            for chunk in result:
                sent += len(chunk)
                yield chunk
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            if self.enabled:
                principal = environ.get("meddav.principal")
                access_log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": environ.get("REQUEST_METHOD"),
                            "surface": "dav" if environ.get("SCRIPT_NAME", "").startswith(MOUNT_PATH) else "web",
                            "node": environ.get("meddav.node_id", "-"),
                            "user": principal.user_id if principal else "-",
                            "status": state["status"],
                            "bytes": sent,
                            "ms": round((time.perf_counter() - started) * 1000, 1),
                        }
                    },
                )


def create_app(instance: Instance) -> Any:
    """The complete WSGI application of an opened instance."""
    dispatcher = DispatcherMiddleware(create_web_app(instance), {MOUNT_PATH: create_dav_app(instance)})
    return RequestLog(dispatcher, enabled=instance.settings.log.request_log, hsts=instance.settings.server.tls)
