"""A small, real FHIR R4 (R4B JSON) HTTP server standing for a clinic's EHR in the tests.

It listens on 127.0.0.1 (a free port chosen at the first start), speaks HTTP/1.1 with keep-alive, and
understands just what the EHR bridge needs:

* ``POST {base}/DocumentReference``: create, validated with the R4B model (400 and an OperationOutcome when
  invalid), with **conditional create** through the ``If-None-Exist`` header (``identifier=SYSTEM|VALUE``): 201 and
  a ``Location`` when new, 200 and the existing resource when one already carries that identifier, 412 when several
  do.
* ``GET {base}/DocumentReference?identifier=...``: a ``searchset`` Bundle (token search, comma = OR).
* ``GET {base}/DocumentReference/{id}`` and ``.../{id}/_history/1``: read and version read.
* ``GET {base}/metadata``: a minimal CapabilityStatement.

Optional bearer token (401 without it), optional TLS with optional required client certificates, and fault modes
settable while it runs (:attr:`FakeFhirServer.mode`, :meth:`FakeFhirServer.fail_next`). Only the standard library
and ``fhir.resources.R4B`` are used. Request bodies are read whole (it is a test server) and never logged.

Typical use::

    with FakeFhirServer(token="secret") as ehr:
        client = httpx.Client(base_url=ehr.url, headers={"Authorization": "Bearer secret"})
        ...
        assert ehr.count_by_identifier()["urn:oid:1.2.3|doc-1"] == 1
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import hmac
import http.server
import json
import re
import socket
import socketserver
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast, get_args
from urllib.parse import parse_qs, urlsplit

from fhir.resources.R4B.documentreference import DocumentReference
from pydantic import ValidationError

__all__ = ["FHIR_JSON", "FakeFhirServer", "Mode"]

#: The fault modes of :attr:`FakeFhirServer.mode`.
Mode = Literal["ok", "down", "error500", "slow", "unauthorized"]

#: The media type of FHIR JSON, as the server answers it.
FHIR_JSON = "application/fhir+json"

_MODES: frozenset[str] = frozenset(get_args(Mode))
_DOCUMENT_STATUSES = frozenset({"current", "superseded", "entered-in-error"})
_BODY_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
_SEARCH_PARAMETERS = frozenset({"identifier"})
#: Search parameters every FHIR server accepts and that change nothing here.
_IGNORED_SEARCH_PARAMETERS = frozenset({"_format", "_pretty", "_count", "_summary"})

Json = dict[str, Any]


class _HttpError(Exception):
    """An answer other than success: a status and an OperationOutcome."""

    def __init__(self, status: int, diagnostics: str, code: str = "processing") -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code


def operation_outcome(diagnostics: str, code: str = "processing", severity: str = "error") -> Json:
    """An R4B OperationOutcome with one issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def _split_unescaped(text: str, separator: str) -> list[str]:
    r"""Split on ``separator`` where it is not escaped with a backslash (FHIR search escaping: ``\,`` ``\|``)."""
    return re.split(r"(?<!\\)" + re.escape(separator), text)


def _unescape(text: str) -> str:
    return text.replace("\\,", ",").replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def _token_matches(token: str, identifiers: Iterable[Json]) -> bool:
    """FHIR token search on Identifier: ``system|value``, ``|value`` (no system), ``value`` (any system),
    ``system|`` (any value of that system)."""
    parts = _split_unescaped(token, "|")
    if len(parts) == 1:
        system: str | None = None
        value: str | None = _unescape(parts[0])
        any_system = True
    else:
        system, value = _unescape(parts[0]), _unescape("|".join(parts[1:]))
        any_system = False
    for identifier in identifiers:
        if not any_system:
            if system == "" and identifier.get("system") is not None:
                continue
            if system and identifier.get("system") != system:
                continue
        if value == "" and not any_system:
            return True
        if identifier.get("value") == value:
            return True
    return False


def _identifier_key(identifier: Json) -> str:
    return f"{identifier.get('system', '')}|{identifier.get('value', '')}"


class _Listener(http.server.ThreadingHTTPServer):
    """The listening socket and its per-connection threads (TLS handshakes happen in those threads, so a client
    that never finishes one cannot block the accept loop)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, fake: FakeFhirServer, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.fake = fake
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which can hang without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        connection = cast(socket.socket, request)
        if self.ssl_context is not None:
            try:
                connection.settimeout(10)
                connection = self.ssl_context.wrap_socket(connection, server_side=True)
            except (ssl.SSLError, OSError):
                cast(socket.socket, request).close()
                return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            _Handler(connection, client_address, self)
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            if connection is not request:
                connection.close()

    def drop_connections(self) -> None:
        """Cut every open connection (keep-alive ones included), as a crashed server would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # The plain socket's shutdown, even under TLS: no close_notify, the peer just sees the cut.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or are cut off break their connection; that is the point of several tests.
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeFhir/1.0"
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms delayed-ACK stalls
    #: Idle keep-alive connections are closed after this many seconds.
    timeout = 30

    @property
    def fake(self) -> FakeFhirServer:
        return cast(_Listener, self.server).fake

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no logging: bodies and identifiers stay out of the test output

    def do_GET(self) -> None:
        self.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.fake._handle(self, "POST")

    def do_PUT(self) -> None:
        self.fake._handle(self, "PUT")

    def do_DELETE(self) -> None:
        self.fake._handle(self, "DELETE")

    def do_PATCH(self) -> None:
        self.fake._handle(self, "PATCH")

    def do_HEAD(self) -> None:
        self.fake._handle(self, "HEAD")


class FakeFhirServer:
    """A FHIR R4 server on 127.0.0.1 for the tests, standing for a clinic's EHR.

    :param token: when set, every request must carry ``Authorization: Bearer <token>`` (else 401).
    :param tls: ``(certfile, keyfile)`` to serve https instead of http.
    :param client_ca: with ``tls``, a CA file; clients must then present a certificate it signed.
    :param base_path: the path of the FHIR base under the host (``/fhir``).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. The port is chosen at the first start and
    kept for the life of the object (mode ``"down"`` and back, or stop and start again, reuse it).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        tls: tuple[str | Path, str | Path] | None = None,
        client_ca: str | Path | None = None,
        base_path: str = "/fhir",
    ) -> None:
        if client_ca is not None and tls is None:
            raise ValueError("client_ca needs tls")
        self.token = token
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        #: How long mode ``"slow"`` waits before answering, in seconds.
        self.slow_seconds: float = 5.0
        self._ssl_context = self._make_ssl_context(tls, client_ca)
        self._scheme = "https" if tls is not None else "http"
        self._port = 0
        self._mode: Mode = "ok"
        self._listener: _Listener | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._control = threading.RLock()  # start, stop and mode changes
        self._lock = threading.Lock()  # the stored data and the counters below
        self._stopping = threading.Event()  # wakes "slow" requests at stop
        self._documents: list[Json] = []
        self._requests: list[tuple[str, str, int]] = []
        self._received_bytes = 0
        self._fail_next = 0
        self._fail_status = 500

    # -- life cycle ---------------------------------------------------------------------------------------------

    @staticmethod
    def _make_ssl_context(
        tls: tuple[str | Path, str | Path] | None, client_ca: str | Path | None
    ) -> ssl.SSLContext | None:
        if tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(client_ca))
        return context

    def start(self) -> FakeFhirServer:
        """Start listening (on a free port the first time, on the same port afterwards); returns ``self``."""
        with self._control:
            if self._started:
                return self
            self._stopping.clear()
            self._started = True
            self._open()
            if self._mode == "down":
                self._close()
            return self

    def stop(self) -> None:
        """Stop listening, cut open connections and wake requests waiting in mode ``"slow"``. Idempotent."""
        with self._control:
            self._started = False
            self._stopping.set()
            self._close()

    def __enter__(self) -> FakeFhirServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _open(self) -> None:
        listener = _Listener(self, self._port, self._ssl_context)
        self._port = listener.server_port
        thread = threading.Thread(
            target=listener.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-fhir-{self._port}", daemon=True
        )
        self._listener, self._thread = listener, thread
        thread.start()

    def _close(self) -> None:
        listener, thread = self._listener, self._thread
        self._listener = self._thread = None
        if listener is None:
            return
        listener.shutdown()  # returns once serve_forever has left its loop
        listener.server_close()  # the listening socket: new connections are now refused
        listener.drop_connections()
        if thread is not None:
            thread.join(timeout=5)

    # -- public state -------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (0 before the first start)."""
        return self._port

    @property
    def url(self) -> str:
        """The FHIR base URL, e.g. ``http://127.0.0.1:PORT/fhir`` (``https`` with ``tls``)."""
        if not self._port:
            raise RuntimeError("the server has not been started")
        return f"{self._scheme}://127.0.0.1:{self._port}{self.base_path}"

    @property
    def mode(self) -> Mode:
        """The fault mode, settable while the server runs (thread-safe):

        * ``"ok"``: normal service.
        * ``"down"``: the listening socket is closed and open connections are cut, so clients get *connection
          refused*; leaving this mode listens again on the same port.
        * ``"error500"``: every request is answered 500 (nothing is stored).
        * ``"unauthorized"``: every request is answered 401 (nothing is stored).
        * ``"slow"``: requests are processed (a create *is* stored) and then the answer waits
          :attr:`slow_seconds`; a client timing out has thus lost the answer of a write that happened.
        """
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(_MODES)}")
        with self._control:
            previous, self._mode = self._mode, mode
            if not self._started or previous == mode:
                return
            if mode == "down":
                self._close()
            elif previous == "down":
                self._open()

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next ``n`` POST requests with ``status`` (and an OperationOutcome) without processing them.

        Counted after authentication: a POST refused for its token does not use one up."""
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("n must be >= 0 and status an HTTP error status")
        with self._lock:
            self._fail_next, self._fail_status = n, status

    @property
    def documents(self) -> list[Json]:
        """The stored DocumentReferences, in creation order (copies, as dicts with ``id`` and ``meta``)."""
        with self._lock:
            return copy.deepcopy(self._documents)

    def count_by_identifier(self) -> Counter[str]:
        """How many stored resources carry each identifier, keyed ``"SYSTEM|VALUE"``."""
        with self._lock:
            return Counter(_identifier_key(i) for doc in self._documents for i in doc.get("identifier", []))

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """``(method, path with query, status)`` of every request answered, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def received_bodies_bytes(self) -> int:
        """The total size of the request bodies received, in bytes (after chunked decoding)."""
        with self._lock:
            return self._received_bytes

    def attachment_bytes(self, identifier: str) -> bytes:
        """The decoded ``content[0].attachment.data`` of the first stored resource matching ``identifier``
        (``"SYSTEM|VALUE"``, FHIR token syntax); :class:`LookupError` when none matches or it has no data."""
        with self._lock:
            for doc in self._documents:
                if _token_matches(identifier, doc.get("identifier", [])):
                    try:
                        data = doc["content"][0]["attachment"]["data"]
                    except (KeyError, IndexError) as error:
                        raise LookupError(f"the resource with {identifier} has no attachment data") from error
                    return base64.b64decode(data, validate=True)
        raise LookupError(f"no stored resource has identifier {identifier}")

    def reset(self) -> None:
        """Forget the stored resources, the request log and pending failures (the mode is kept)."""
        with self._lock:
            self._documents.clear()
            self._requests.clear()
            self._received_bytes = 0
            self._fail_next = 0

    # -- request handling ---------------------------------------------------------------------------------------

    def _handle(self, handler: _Handler, method: str) -> None:
        if self._mode == "down":  # a request that raced the cut: no answer
            handler.close_connection = True
            return
        target = handler.path
        try:
            body = self._read_body(handler) if method != "HEAD" else b""
        except _HttpError as error:
            handler.close_connection = True
            self._send(handler, method, target, error.status, operation_outcome(error.diagnostics, error.code))
            return
        except (OSError, ValueError):
            handler.close_connection = True
            return
        headers: dict[str, str] = {}
        try:
            status, resource, headers = self._dispatch(handler, method, target, body)
        except _HttpError as error:
            status, resource = error.status, operation_outcome(error.diagnostics, error.code)
            if status == 401:
                headers = {"WWW-Authenticate": 'Bearer realm="fhir"'}
        except Exception as error:  # a bug here must show in the test, not as a dropped connection
            status, resource = 500, operation_outcome(f"fake FHIR server bug: {error!r}", "exception")
        if self._mode == "slow" and self._stopping.wait(self.slow_seconds):
            handler.close_connection = True
            return
        self._send(handler, method, target, status, resource, headers)

    def _read_body(self, handler: _Handler) -> bytes:
        encoding = handler.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in encoding:
            chunks = []
            while True:
                size_line = handler.rfile.readline(1024)
                if not size_line:
                    raise ValueError("connection closed in a chunked body")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while handler.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self._read_exactly(handler, size))
                handler.rfile.readline(1024)  # the CRLF after the chunk
            body = b"".join(chunks)
        elif handler.headers.get("Content-Length") is not None:
            try:
                length = int(handler.headers["Content-Length"])
            except ValueError as error:
                raise _HttpError(400, "invalid Content-Length", "invalid") from error
            if length < 0:
                raise _HttpError(400, "invalid Content-Length", "invalid")
            body = self._read_exactly(handler, length)
        else:
            body = b""
        with self._lock:
            self._received_bytes += len(body)
        return body

    @staticmethod
    def _read_exactly(handler: _Handler, size: int) -> bytes:
        data = handler.rfile.read(size)
        if len(data) != size:
            raise ValueError("connection closed in the body")
        return data

    def _dispatch(self, handler: _Handler, method: str, target: str, body: bytes) -> tuple[int, Json, dict[str, str]]:
        if self._mode == "error500":
            raise _HttpError(500, "internal server error (fault mode error500)", "exception")
        if self._mode == "unauthorized":
            raise _HttpError(401, "unauthorized (fault mode unauthorized)", "login")
        if self.token is not None:
            scheme, _, credentials = handler.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), self.token.encode()):
                raise _HttpError(401, "a valid bearer token is required", "login")
        if method == "POST":
            with self._lock:
                if self._fail_next > 0:
                    self._fail_next -= 1
                    raise _HttpError(self._fail_status, "injected failure (fail_next)", "transient")

        parts = urlsplit(target)
        path = parts.path
        if self.base_path:
            if path != self.base_path and not path.startswith(self.base_path + "/"):
                raise _HttpError(404, f"no FHIR endpoint at {path}", "not-found")
            path = path[len(self.base_path) :]
        segments = [s for s in path.split("/") if s]

        if segments == ["metadata"]:
            self._allow(method, "GET", "HEAD")
            return 200, self._capability_statement(), {}
        if not segments or segments[0] != "DocumentReference":
            raise _HttpError(404, f"resource type not supported here: {path}", "not-supported")
        if len(segments) == 1:
            self._allow(method, "GET", "HEAD", "POST")
            if method == "POST":
                return self._create(handler, body)
            return 200, self._search(parts.query), {}
        if len(segments) == 2 or (len(segments) == 4 and segments[2] == "_history"):
            self._allow(method, "GET", "HEAD")
            with self._lock:
                found = next((d for d in self._documents if d["id"] == segments[1]), None)
                found = copy.deepcopy(found)
            if found is None or (len(segments) == 4 and segments[3] != found["meta"]["versionId"]):
                raise _HttpError(404, f"DocumentReference/{'/'.join(segments[1:])} is not known", "not-found")
            return 200, found, {"ETag": f'W/"{found["meta"]["versionId"]}"'}
        raise _HttpError(404, f"no FHIR endpoint at {path}", "not-found")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise _HttpError(405, f"{method} is not supported here", "not-supported")

    def _create(self, handler: _Handler, body: bytes) -> tuple[int, Json, dict[str, str]]:
        media_type = handler.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media_type not in _BODY_TYPES:
            raise _HttpError(415, f"expected {FHIR_JSON}, got {media_type or 'no Content-Type'}", "not-supported")
        try:
            DocumentReference.model_validate_json(body)
        except ValidationError as error:
            raise _HttpError(400, f"invalid DocumentReference: {error}", "invalid") from error
        resource: Json = json.loads(body)
        if resource.get("status") not in _DOCUMENT_STATUSES:
            raise _HttpError(
                400, f"DocumentReference.status must be one of {sorted(_DOCUMENT_STATUSES)}", "code-invalid"
            )
        condition = handler.headers.get("If-None-Exist")
        minimal = "return=minimal" in handler.headers.get("Prefer", "").replace(" ", "")
        with self._lock:  # the search and the insertion are one step: conditional create is atomic
            if condition is not None:
                matches = self._matching(self._conditions(condition))
                if len(matches) > 1:
                    raise _HttpError(412, f"If-None-Exist matches {len(matches)} resources", "duplicate")
                if matches:
                    existing = copy.deepcopy(matches[0])
                    return 200, {} if minimal else existing, self._location_headers(existing)
            resource["id"] = str(uuid.uuid4())
            now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            resource["meta"] = {**resource.get("meta", {}), "versionId": "1", "lastUpdated": now}
            self._documents.append(resource)
            stored = copy.deepcopy(resource)
        return 201, {} if minimal else stored, self._location_headers(stored)

    def _location_headers(self, resource: Json) -> dict[str, str]:
        version = resource["meta"]["versionId"]
        return {
            "Location": f"{self.url}/DocumentReference/{resource['id']}/_history/{version}",
            "ETag": f'W/"{version}"',
            "Last-Modified": resource["meta"]["lastUpdated"],
        }

    @staticmethod
    def _conditions(query: str) -> list[list[str]]:
        """The identifier conditions of a search query: a list (AND) of lists (OR) of tokens."""
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError as error:
            raise _HttpError(400, f"malformed search: {error}", "invalid") from error
        unknown = set(params) - _SEARCH_PARAMETERS - _IGNORED_SEARCH_PARAMETERS
        if unknown:
            raise _HttpError(400, f"unsupported search parameters: {sorted(unknown)}", "not-supported")
        return [_split_unescaped(value, ",") for value in params.get("identifier", [])]

    def _matching(self, conditions: list[list[str]]) -> list[Json]:
        """The stored resources meeting every condition (call with the lock held)."""
        return [
            doc
            for doc in self._documents
            if all(any(_token_matches(t, doc.get("identifier", [])) for t in tokens) for tokens in conditions)
        ]

    def _search(self, query: str) -> Json:
        conditions = self._conditions(query)
        with self._lock:
            found = copy.deepcopy(self._matching(conditions))
        return {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "searchset",
            "total": len(found),
            "link": [{"relation": "self", "url": f"{self.url}/DocumentReference" + (f"?{query}" if query else "")}],
            "entry": [
                {"fullUrl": f"{self.url}/DocumentReference/{d['id']}", "resource": d, "search": {"mode": "match"}}
                for d in found
            ],
        }

    @staticmethod
    def _capability_statement() -> Json:
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2024-01-01",
            "kind": "instance",
            "software": {"name": "FakeFhirServer (MedDAV tests)"},
            "implementation": {"description": "test stand-in for a clinic's EHR"},
            "fhirVersion": "4.3.0",
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": "DocumentReference",
                            "interaction": [
                                {"code": "create"},
                                {"code": "read"},
                                {"code": "vread"},
                                {"code": "search-type"},
                            ],
                            "conditionalCreate": True,
                            "searchParam": [{"name": "identifier", "type": "token"}],
                        }
                    ],
                }
            ],
        }

    def _send(
        self,
        handler: _Handler,
        method: str,
        target: str,
        status: int,
        resource: Json,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(resource).encode() if resource else b""
        with self._lock:
            self._requests.append((method, target, status))
        try:
            handler.send_response(status)
            if payload:
                handler.send_header("Content-Type", f"{FHIR_JSON}; charset=utf-8")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            if method != "HEAD":
                handler.wfile.write(payload)
        except OSError:
            handler.close_connection = True


def main() -> None:
    """``python -m tests.fhir_server [--token T]``: serve until SIGTERM, in a process of its own (the benchmark
    runs the EHR apart from the client and from MedDAV, as a real one would be on another machine)."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--token", help="the bearer token every request must carry")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeFhirServer(token=args.token) as server:
        print(f"URL={server.url}", flush=True)
        stop.wait()
        print(f"documents={len(server.documents)}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
