"""HTTP itself used against the server: smuggling, short bodies, oversize heads, slow clients, ranges.

- Content-Length and Transfer-Encoding together: refused, and nothing sent after the head is taken
  for a second request;
- a body shorter than its Content-Length: the upload is not committed, on every surface that takes files;
- a head over ``[server] max_header_bytes``, in one header or in thousands: refused before any handler;
- slow clients: a connection silent for ``[server] timeout_seconds`` is closed, and the server goes on
  serving the others meanwhile;
- hundreds of ranges get one bounded answer; unsatisfiable ranges get 416.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from server.testing import LiveServer, TestInstance
from tests.helpers import basic, raw_request, status_of
from tests.security.conftest import LINK_PASSWORD, PASSWORD, Clinic
from tests.web.conftest import Web


def head_of(clinic: Clinic, method: str, target: str, *extra: str) -> str:
    return "\r\n".join(
        [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: {basic('alice', PASSWORD)}", *extra]
    )


def test_content_length_with_transfer_encoding_is_refused_and_smuggles_nothing(clinic: Clinic, unchanged: None) -> None:
    smuggled = f"DELETE /dav/ordonnance.pdf HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {basic('alice', PASSWORD)}"
    for order in (
        ("Content-Length: 5", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 5"),
    ):
        body = b"0\r\n\r\n" + smuggled.encode() + b"\r\n\r\n"
        answer = raw_request(clinic.url, head_of(clinic, "PUT", "/dav/smuggle.txt", *order), body, close_after=True)
        assert status_of(answer) == 400, answer[:300]
        assert answer.count(b"HTTP/1.1 ") == 1, answer  # one answer: the DELETE was never read as a request
    for coding in ("gzip, chunked", "chunked, identity", "xchunked", "chunked\r\nTransfer-Encoding: chunked"):
        answer = raw_request(
            clinic.url, head_of(clinic, "PUT", "/dav/smuggle.txt", f"Transfer-Encoding: {coding}"), b"0\r\n\r\n"
        )
        # RFC 9112, section 6.1: a transfer coding the server does not know is a 501, its one deliberate 5xx.
        assert status_of(answer) in (400, 501), (coding, answer[:200])
    assert clinic["alice"].get("ordonnance.pdf").status_code == 200


def test_a_body_shorter_than_announced_is_never_committed(clinic: Clinic, unchanged: None) -> None:
    """Over WebDAV (a user and a link) and the pages (the owner's and the recipient's): the client stops
    half-way and closes; no file appears, no old version is replaced."""
    alice = basic("alice", PASSWORD)
    link = basic("anyone", LINK_PASSWORD)
    for authorization, target in (
        (alice, "/dav/ordonnance.pdf"),
        (alice, "/dav/new.pdf"),
        (link, f"/public/{clinic.links['write']}/commun.txt"),
        (link, f"/public/{clinic.links['dropbox']}/new.pdf"),
    ):
        head = f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\nContent-Length: 100000"
        raw_request(clinic.url, head, b"x" * 40_000, timeout=5, close_after=True)
    with Web(base_url=clinic.url, timeout=30) as web, Web(base_url=clinic.url, timeout=30) as guest:
        web.login("alice", PASSWORD)
        token = clinic.links["write"]
        assert guest.form(f"/s/{token}", data={"password": LINK_PASSWORD}).status_code == 303
        for browser, page in ((web, "/ui/files/"), (guest, f"/s/{token}")):
            target, headers = browser.upload_form(page)
            cookies = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
            head = "\r\n".join(
                [f"PUT {target}?name=half.pdf HTTP/1.1", "Host: 127.0.0.1", f"Cookie: {cookies}"]
                + [f"{name}: {value}" for name, value in headers.items()]
                + ["Content-Length: 100000"]
            )
            raw_request(clinic.url, head, b"x" * 40_000, timeout=5, close_after=True)
    time.sleep(0.5)  # the server notices the closed connections


@pytest.mark.parametrize(
    "headers",
    [
        ["X-Big: " + "a" * 70_000],
        [f"X-Many-{i}: {'b' * 20}" for i in range(5_000)],
        ["Cookie: " + "; ".join(f"c{i}=v" for i in range(15_000))],
    ],
    ids=["one-huge-header", "thousands-of-headers", "huge-cookie"],
)
def test_oversize_heads_are_refused_before_any_handler(clinic: Clinic, unchanged: None, headers: list[str]) -> None:
    for method, target in (("PUT", "/dav/ordonnance.pdf"), ("GET", "/ui/files/"), ("GET", "/dav/ordonnance.pdf")):
        extra = [*headers, "Content-Length: 3"] if method == "PUT" else headers
        answer = raw_request(clinic.url, head_of(clinic, method, target, *extra), b"new" if method == "PUT" else b"")
        assert status_of(answer) in (400, 413, 414, 431), answer[:200]
    assert clinic["alice"].get("ordonnance.pdf").content == b"%PDF-ordonnance"


# -- slow clients ------------------------------------------------------------------------------------------------

TIMEOUT = 5


@pytest.fixture
def impatient(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> tuple[LiveServer, TestInstance]:
    """A server with 4 threads that closes connections silent for 5 seconds."""
    inst = make_test_instance({"server": {"timeout_seconds": TIMEOUT, "threads": 4}})
    return start_server(inst), inst


def _stalled(url: str, first_bytes: bytes) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT * 4)  # type: ignore[arg-type]
    sock.sendall(first_bytes)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes (or answers and closes) the connection within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_slow_clients_are_cut_off_and_the_others_still_served(impatient: tuple[LiveServer, TestInstance]) -> None:
    server, inst = impatient
    auth = basic(inst.user, inst.password)
    stalled = [
        _stalled(server.url, b"GET /dav/ HTTP/1.1\r\nHost: x\r\n"),  # a head never finished
        _stalled(server.url, b"G"),  # a request line never finished
        _stalled(  # a body never sent
            server.url,
            f"PUT /dav/slow.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 1000\r\n\r\n"
            "abc".encode(),
        ),
    ]
    try:
        started = time.monotonic()
        with httpx.Client(base_url=server.dav_url, auth=(inst.user, inst.password)) as client:
            for _ in range(5):
                assert client.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 207
        assert time.monotonic() - started < TIMEOUT, "the server waited for the stalled clients"
        for sock in stalled:
            assert _closed_within(sock, TIMEOUT + 5), "a silent connection was kept open"
        with httpx.Client(base_url=server.dav_url, auth=(inst.user, inst.password)) as client:
            assert client.get("slow.txt").status_code == 404  # the stalled upload left nothing
    finally:
        for sock in stalled:
            sock.close()


# -- ranges ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranged(clinic: Clinic) -> Iterator[bytes]:
    data = bytes(range(256)) * 400  # 102,400 bytes
    assert clinic["alice"].put("ranged.bin", content=data).status_code == 201
    yield data
    clinic["alice"].delete("ranged.bin")


def test_hundreds_of_ranges_get_one_bounded_answer(clinic: Clinic, ranged: bytes) -> None:
    alice = clinic["alice"]
    for spec in (
        ",".join(f"{i}-{i}" for i in range(0, 1000, 2)),  # 500 one-byte ranges
        ",".join("0-" for _ in range(1000)),  # the whole file a thousand times
        ",".join(f"-{i}" for i in range(1, 800)),  # 800 overlapping suffixes
        ",".join(f"{i * 100}-{i * 100 + 150}" for i in range(900)),  # 900 overlapping ranges
    ):
        response = alice.get("ranged.bin", headers={"Range": f"bytes={spec}"})
        assert response.status_code in (200, 206)
        assert len(response.content) <= len(ranged) + 64 * 1024, len(response.content)  # bounded by the file
        if response.status_code == 200:
            assert response.content == ranged


@pytest.mark.parametrize("spec", ["bytes=102400-", "bytes=200000-300000", "bytes=-0", "bytes=102400-102400"])
def test_unsatisfiable_ranges_get_416(clinic: Clinic, ranged: bytes, spec: str) -> None:
    response = clinic["alice"].get("ranged.bin", headers={"Range": spec})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(ranged)}"


@pytest.mark.parametrize("spec", ["bytes=5-2", "bytes=abc", "bits=0-10", "bytes=--5", "bytes=1-2-3", "bytes="])
def test_malformed_ranges_are_ignored_as_rfc_9110_says(clinic: Clinic, ranged: bytes, spec: str) -> None:
    """A Range header that does not parse is ignored (RFC 9110, section 14.2): the whole file, once."""
    response = clinic["alice"].get("ranged.bin", headers={"Range": spec})
    assert response.status_code == 200 and response.content == ranged
