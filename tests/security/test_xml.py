"""Hostile XML bodies on PROPFIND, PROPPATCH and LOCK.

External entities, entity expansion (exponential and quadratic), 20 MB bodies sent whole and chunked,
deep nesting, wrong namespaces, encodings that lie: each answered with a 4xx in bounded time, reading
no file, storing no property and taking no lock.  Well-formed bodies in another declared encoding
(UTF-16, Latin-1) are XML like any other and work.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

from tests.security.conftest import Clinic

METHODS = ["PROPFIND", "PROPPATCH", "LOCK"]


def _propfind(inner: bytes) -> bytes:
    return b'<D:propfind xmlns:D="DAV:"><D:prop>' + inner + b"</D:prop></D:propfind>"


def _proppatch(inner: bytes) -> bytes:
    return (
        b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:set><D:prop><Z:note>'
        + inner
        + b"</Z:note></D:prop></D:set></D:propertyupdate>"
    )


def _lock(inner: bytes) -> bytes:
    return (
        b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>'
        b"<D:owner>" + inner + b"</D:owner></D:lockinfo>"
    )


WRAP = {"PROPFIND": _propfind, "PROPPATCH": _proppatch, "LOCK": _lock}

LAUGHS = (
    b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        b"<!ENTITY " + bytes([c]) + b' "' + (b"&" + bytes([c - 1]) + b";") * 10 + b'">'
        for c in range(ord("b"), ord("j"))
    )
    + b"]>"
)
QUADRATIC = b'<!DOCTYPE q [<!ENTITY x "' + b"x" * 50_000 + b'">]>'

#: (what, DOCTYPE or prologue, payload inside the element)
HOSTILE = {
    "external file entity": (b'<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>', b"&x;"),
    "external http entity": (b'<!DOCTYPE p [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>', b"&x;"),
    "parameter entity": (b'<!DOCTYPE p [<!ENTITY % x SYSTEM "file:///etc/passwd"> %x;]>', b"y"),
    "external DTD": (b'<!DOCTYPE p SYSTEM "file:///etc/passwd">', b"y"),
    "billion laughs": (LAUGHS, b"&i;"),
    "quadratic blowup": (QUADRATIC, b"&x;" * 5_000),
}


def hostile_body(method: str, prologue: bytes, inner: bytes) -> bytes:
    return b'<?xml version="1.0"?>' + prologue + WRAP[method](inner)


def send(client: httpx.Client, method: str, body: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    headers = {"Depth": "0", "Content-Type": "application/xml", **headers}
    started = time.monotonic()
    response = client.request(method, "ordonnance.pdf", headers=headers, content=body, timeout=30)
    assert time.monotonic() - started < 20, f"{method} took {time.monotonic() - started:.1f} s"
    return response


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_entities_and_inclusions_are_refused(clinic: Clinic, unchanged: None, method: str, case: str) -> None:
    prologue, inner = HOSTILE[case]
    response = send(clinic["alice"], method, hostile_body(method, prologue, inner))
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text[:300])
    assert b"root:" not in response.content and b"aaaaaaaaaaaaaaaaaaaa" not in response.content


def _chunks(body: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("method", METHODS)
def test_twenty_megabyte_bodies_get_413(clinic: Clinic, unchanged: None, method: str) -> None:
    body = b'<?xml version="1.0"?>' + WRAP[method](b"<D:x/>" * (20 * 1024 * 1024 // 6))
    assert len(body) > 20_000_000
    assert send(clinic["alice"], method, body).status_code == 413
    assert send(clinic["alice"], method, _chunks(body)).status_code == 413


@pytest.mark.parametrize("method", METHODS)
def test_deep_nesting_is_refused(clinic: Clinic, unchanged: None, method: str) -> None:
    depth = 100_000
    body = b'<?xml version="1.0"?>' + WRAP[method](b"<a>" * depth + b"</a>" * depth)
    response = send(clinic["alice"], method, body)
    assert 400 <= response.status_code < 500, response.status_code


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><propfind xmlns="urn:not-dav"><prop><getetag/></prop></propfind>',
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="urn:not-dav"><D:set/></D:propertyupdate>',
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV"><D:lockscope><D:exclusive/></D:lockscope></D:lockinfo>',
        b'<?xml version="1.0"?><D:propfind><D:prop/></D:propfind>',  # undeclared prefix: not well-formed
        b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"/>',  # a DAV: element, but not a request
        b"<?xml version='1.0'?><a/><b/>",  # two roots
    ],
    ids=["foreign-propfind", "foreign-propertyupdate", "dav-without-colon", "undeclared", "multistatus", "two-roots"],
)
def test_wrong_namespaces_and_roots_are_refused(clinic: Clinic, unchanged: None, method: str, body: bytes) -> None:
    response = send(clinic["alice"], method, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "body",
    [
        _propfind(b"<D:getetag/>").replace(b"getetag", b"get\xe9tag"),  # Latin-1 byte, no declaration: not UTF-8
        b'<?xml version="1.0" encoding="utf-8"?>' + _proppatch("é".encode("latin-1")),  # declared UTF-8, is Latin-1
        b'<?xml version="1.0" encoding="x-no-such-encoding"?>' + _propfind(b"<D:getetag/>"),
        b'<?xml version="1.0" encoding="utf-16"?>' + _propfind(b"<D:getetag/>"),  # declared UTF-16, is 8-bit
        b"\xff\xfe\x00\x00" + b"<\x00\x00\x00",  # a UTF-32 mark, then garbage
        b"\x00" * 64,
        b"\xef\xbb\xbf\xef\xbb\xbf<a/>",  # two byte-order marks
    ],
    ids=["latin1-undeclared", "latin1-declared-utf8", "unknown-encoding", "utf16-lie", "utf32-garbage", "nul", "bom2"],
)
def test_bodies_not_in_their_encoding_are_refused(clinic: Clinic, unchanged: None, method: str, body: bytes) -> None:
    response = send(clinic["alice"], method, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])


def test_well_formed_bodies_in_another_encoding_are_read(clinic: Clinic) -> None:
    """UTF-16 and a declared Latin-1 are XML (XML 1.0, section 4.3.3): read, not refused."""
    alice = clinic["alice"]
    utf16 = '<?xml version="1.0" encoding="utf-16"?>' + _propfind(b"<D:getetag/>").decode()
    response = send(alice, "PROPFIND", utf16.encode("utf-16"))
    assert response.status_code == 207 and b"getetag" in response.content
    latin1 = b'<?xml version="1.0" encoding="iso-8859-1"?>' + _proppatch("Relu à l'accueil".encode("latin-1"))
    assert send(alice, "PROPPATCH", latin1).status_code == 207
    try:
        got = send(alice, "PROPFIND", _propfind(b'<Z:note xmlns:Z="urn:x-test:"/>'))
        assert ET.fromstring(got.content).findtext(".//{urn:x-test:}note") == "Relu à l'accueil"
    finally:
        remove = (
            b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:remove><D:prop><Z:note/></D:prop>'
            b"</D:remove></D:propertyupdate>"
        )
        assert send(alice, "PROPPATCH", remove).status_code == 207


def test_xinclude_is_data_never_processed(clinic: Clinic) -> None:
    """An XInclude element is a dead property's value like any other: kept as sent, never followed."""
    alice = clinic["alice"]
    include = b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'
    assert send(alice, "PROPPATCH", b'<?xml version="1.0"?>' + _proppatch(include)).status_code == 207
    try:
        got = send(alice, "PROPFIND", _propfind(b'<Z:note xmlns:Z="urn:x-test:"/>'))
        assert b"root:" not in got.content and b"XInclude" in got.content
        locked = send(alice, "LOCK", b'<?xml version="1.0"?>' + _lock(include))
        assert locked.status_code == 200 and b"root:" not in locked.content
        token = locked.headers["Lock-Token"]
        assert alice.request("UNLOCK", "ordonnance.pdf", headers={"Lock-Token": token}).status_code == 204
    finally:
        remove = (
            b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:remove><D:prop><Z:note/></D:prop>'
            b"</D:remove></D:propertyupdate>"
        )
        assert send(alice, "PROPPATCH", remove).status_code == 207
