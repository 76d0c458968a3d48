"""The HTTP(S) server: cheroot serving :func:`server.app.create_app`.

:func:`build_server` binds (port 0 picks a free port, as tests do) and
configures TLS, threads, timeouts and header limits from ``[server]``;
:func:`serve` runs it in the foreground until SIGINT or SIGTERM, then stops
accepting, lets running requests finish, and closes the instance.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any, TextIO
from urllib.parse import unquote_to_bytes

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from server import __version__
from server.app import create_app
from server.config import Settings, is_loopback
from server.instance import Instance
from server.jobs import WorkerPool
from server.jobs.commands import instance_handlers

__all__ = ["build_server", "insecure_settings", "mount_help", "serve", "start_workers"]

logger = logging.getLogger(__name__)


def build_server(instance: Instance, *, host: str, port: int) -> wsgi.Server:
    """A bound (prepared) cheroot server for the instance; call ``serve()`` on it."""
    settings = instance.settings.server
    server = wsgi.Server(
        (host, port),
        _OptionsPath(create_app(instance)),
        numthreads=settings.threads,
        server_name="MedDAV",
        timeout=settings.timeout_seconds,
        request_queue_size=64,
    )
    server.max_request_header_size = settings.max_header_bytes
    server.ConnectionClass = _Connection
    server.software = "MedDAV"
    if settings.tls_cert is not None and settings.tls_key is not None:
        server.ssl_adapter = BuiltinSSLAdapter(str(settings.tls_cert), str(settings.tls_key))
    server.prepare()
    return server


class _Request(cheroot_server.HTTPRequest):
    """cheroot's request, refusing a head with both Content-Length and Transfer-Encoding, or chunked twice.

    cheroot follows Transfer-Encoding and reads what lies past the chunked body as the next request on
    the connection, where a proxy in front that follows Content-Length would have forwarded it as part
    of the body: request smuggling.  RFC 9112, section 6.3 allows refusing such a request (no client
    sends one), and the connection is closed, so nothing after the head is ever read.
    """

    def read_request_headers(self) -> bool:
        # cheroot answers 501 to a transfer coding other than chunked.
        if not super().read_request_headers():  # type: ignore[no-untyped-call]
            return False
        coding = self.inheaders.get(b"Transfer-Encoding")
        if coding is None:
            return True
        if b"Content-Length" in self.inheaders:
            self.simple_response("400 Bad Request", "Content-Length and Transfer-Encoding together")
        elif [part.strip().lower() for part in coding.split(b",") if part.strip()] != [b"chunked"]:
            self.simple_response("400 Bad Request", "chunked more than once")  # RFC 9112, section 6.1
        else:
            return True
        self.close_connection = True
        return False


class _Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _Request


_QUOTED_SLASH = re.compile(b"(?i)%2F")


class _OptionsPath:
    """Decode the path of an OPTIONS request as cheroot decodes every other method's.

    cheroot leaves an OPTIONS request's path percent-encoded (it keeps it as sent,
    for ``OPTIONS *``), so ``OPTIONS /dav/a%20b/c/`` looked for a folder named
    ``a%20b``.  As for the other methods, an encoded slash stays encoded."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "OPTIONS" and "%" in path:
            raw = path.encode("latin-1")  # WSGI strings carry bytes as latin-1
            atoms = [unquote_to_bytes(atom) for atom in _QUOTED_SLASH.split(raw)]
            environ["PATH_INFO"] = b"%2F".join(atoms).decode("latin-1")
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


def bound_port(server: wsgi.Server) -> int:
    port: int = server.bind_addr[1]
    return port


def start_workers(instance: Instance) -> WorkerPool | None:
    """Background job workers inside the server (``[jobs] workers``; 0: run ``meddav worker`` apart)."""
    if not instance.settings.jobs.workers:
        return None
    instance.schedule_jobs()
    yield_seconds = instance.settings.jobs.yield_ms / 1000
    pool = WorkerPool(
        instance.jobs, instance_handlers(instance), yield_to=instance.foreground.busy, yield_seconds=yield_seconds
    )
    pool.start()
    return pool


def insecure_settings(settings: Settings, host: str) -> list[str]:
    """Warnings logged at every start for settings that are allowed but risky."""
    warnings = []
    if not is_loopback(host) and settings.server.tls_cert is None:
        warnings.append(
            f"serving plain HTTP on a non-loopback address ({host}), allowed by [server] allow_plain_http: "
            "safe only behind a TLS-terminating proxy"
        )
    if settings.auth.argon2_memory_kib < 19456 or settings.auth.argon2_time_cost < 2:
        warnings.append(
            "[auth] Argon2 parameters are below the OWASP minimum (19 MiB, 2 passes): "
            "fine for tests, weak for production"
        )
    return warnings


def mount_help(dav_url: str) -> str:
    """How to connect the common clients to ``dav_url`` (printed at start)."""
    unc = dav_url.replace("https://", "").replace("http://", "").rstrip("/")
    host, _, path = unc.partition("/")
    ssl = "@SSL" if dav_url.startswith("https") else ""
    host_unc = host.replace(":", f"{ssl}@") if ":" in host else host + ssl
    return f"""\
Connect a client to {dav_url}
  rclone   rclone config create meddav webdav url={dav_url} vendor=other user=NAME pass=$(rclone obscure PASSWORD)
           rclone copy ./folder meddav:folder
  davfs2   sudo mount -t davfs {dav_url} /mnt/meddav
  Windows  Explorer > This PC > Map network drive > Folder: \\\\{host_unc}\\{path.replace("/", chr(92))}
  macOS    Finder > Go > Connect to Server (Cmd-K) > {dav_url}"""


def serve(
    instance: Instance,
    *,
    host: str | None = None,
    port: int | None = None,
    out: TextIO | None = None,
    banner_extra: str = "",
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM."""
    out = out or sys.stdout
    settings = instance.settings.server
    host = host or settings.host
    port = settings.port if port is None else port
    for warning in insecure_settings(instance.settings, host):
        logger.warning(warning)
    serve_lock = instance.hold_serve_lock()
    server = build_server(instance, host=host, port=port)
    instance.start_plugins()
    workers = start_workers(instance)
    actual = bound_port(server)
    dav_url = instance.settings.public_base_url(host=host, port=actual) + "/dav/"
    logger.info(
        "serving",
        extra={"fields": {"version": __version__, "host": host, "port": actual, "tls": bool(settings.tls_cert)}},
    )
    # SIGINT (Ctrl-C) and SIGTERM stop the server from a helper thread: raising
    # KeyboardInterrupt in the main thread could land inside library code that
    # swallows it, and leave the server running.
    stopper = threading.Thread(target=server.stop, name="meddav-stop")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            print("\nStopping…", file=out, flush=True)
            stopper.start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"MedDAV {__version__} serving WebDAV at {dav_url}", file=out)
    if banner_extra:
        print(banner_extra, file=out)
    print(mount_help(dav_url), file=out)
    print("Press Ctrl-C to stop.", file=out, flush=True)

    try:
        server.serve()
    finally:
        if stopping.is_set():
            stopper.join()
        else:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if workers is not None:
            workers.stop(timeout=10)  # an unfinished job is leased: it is claimed again later
        instance.plugins.call_each("meddav_shutdown")
        instance.close()
        serve_lock.close()
        logger.info("stopped")
