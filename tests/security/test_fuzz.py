"""Fuzzing, bounded: generated and mutated XML bodies, and generated paths, on the clinic's real server.

(a) PROPFIND, PROPPATCH and LOCK bodies: valid skeletons mutated byte by byte, random trees in random
namespaces, random bytes, document types and entities (internal, external, parameter, nested), deep
nesting, and the same text in other encodings, declared truly or falsely; sent whole or chunked, with
odd Depth and Timeout headers, by alice on her items, bob through his read-only share, and the links.
Every answer is a 2xx or a 4xx, within the client's timeout; a refused request (a 4xx, or a PROPPATCH
whose every property failed) leaves everything stored as it was (``tests.security.conftest.stored``),
and a PROPFIND never changes anything.

(b) Paths: names of the clinic, traversal in many spellings, percent-encodings of any bytes (overlong
UTF-8 sequences, lone surrogates, Latin-1), backslashes, control characters, any Unicode, very long
segments.  In process, :meth:`server.drive.Drive.resolve` (what the web pages resolve with) raises
nothing but ``NotFound``, and :meth:`server.dav.provider.MedDAVProvider.get_resource_inst` (WebDAV's
resolver) nothing at all; what either finds lies in the user's own tree, or below an item shared with
them.  Through HTTP, sent byte for byte on a socket: no 5xx, no hang; no answer carries a byte or a name
of what the requester may not reach; a file read is one they may read; the read-only link changes
nothing, whatever method and path.

Each test is derandomized with no example database, so CI runs the same examples every time.  For a
long run (``make fuzz``), ``MEDDAV_FUZZ_EXAMPLES`` sets the examples of each test and draws new ones at
each run::

    MEDDAV_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/security/test_fuzz.py -p no:cacheprovider
"""

from __future__ import annotations

import codecs
import logging
import os
import socket
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.dav.provider import MedDAVProvider
from server.drive import Drive
from server.errors import NotFound
from server.policy import Principal
from server.tree import Entry
from tests.helpers import basic, status_of
from tests.security.conftest import LINK_PASSWORD, PASSWORD, Clinic, stored

LONG = "MEDDAV_FUZZ_EXAMPLES" in os.environ
#: Seconds any one request may take before it counts as a hang.
PATIENCE = 10.0


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=int(os.environ.get("MEDDAV_FUZZ_EXAMPLES", examples)),
        deadline=None,
        derandomize=not LONG,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Thousands of requests: their INFO lines would cost more than the requests do."""
    caplog.set_level(logging.WARNING)


# -- (a) XML bodies ---------------------------------------------------------------------------------------

SKELETONS: dict[str, list[bytes]] = {
    "PROPFIND": [
        b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
        b'<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
        b'<propfind xmlns="DAV:"><prop><resourcetype/><getcontentlength/><getetag/><displayname/></prop></propfind>',
        b'<D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-fuzz:"><D:prop><Z:note/><D:lockdiscovery/>'
        b"<D:quota-used-bytes/></D:prop></D:propfind>",
        b'<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:supportedlock/></D:include></D:propfind>',
    ],
    "PROPPATCH": [
        b'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-fuzz:">'
        b"<D:set><D:prop><Z:note>n\xc3\xa9e</Z:note></D:prop></D:set></D:propertyupdate>",
        b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-fuzz:"><D:remove><D:prop><Z:note/></D:prop></D:remove>'
        b"</D:propertyupdate>",
        b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname></D:prop></D:set>'
        b"</D:propertyupdate>",
        b'<D:propertyupdate xmlns:D="DAV:" xmlns:W="urn:schemas-microsoft-com:"><D:set><D:prop>'
        b"<W:Win32LastModifiedTime>Wed, 02 Dec 2026 10:00:00 GMT</W:Win32LastModifiedTime></D:prop></D:set>"
        b"</D:propertyupdate>",
    ],
    "LOCK": [
        b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        b"</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>fuzz</D:owner></D:lockinfo>",
        b'<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><write/></locktype>'
        b"<owner><href>mailto:fuzz@example.org</href></owner></lockinfo>",
    ],
}
#: Declared encodings, true or false, and the codecs that write a body in them.
ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "ascii", "utf-7", "ebcdic"]
ENTITY_BODIES = [
    b'<?xml version="1.0"?><!DOCTYPE D:propfind [<!ENTITY x "DAV:">]><D:propfind xmlns:D="&x;"><D:allprop/>'
    b"</D:propfind>",
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-fuzz:"><D:set><D:prop><Z:note>&e;</Z:note></D:prop>'
    b"</D:set></D:propertyupdate>",
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY % e SYSTEM "http://127.0.0.1:1/x.dtd"> %e;]><p/>',
    b'<?xml version="1.0"?><!DOCTYPE p SYSTEM "file:///etc/passwd"><p/>',
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>'
    b'<D:lockinfo xmlns:D="DAV:"><D:owner>&f;&f;&f;&f;&f;&f;&f;&f;</D:owner></D:lockinfo>',
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY r "&r;">]><p>&r;</p>',
    b'<!DOCTYPE D:propfind [<!ELEMENT D:propfind ANY><!ATTLIST D:propfind xmlns:D CDATA "DAV:">]>'
    b"<D:propfind><D:allprop/></D:propfind>",
]

_tag = st.sampled_from(["propfind", "prop", "allprop", "propname", "include", "propertyupdate", "set", "remove",
                        "lockinfo", "lockscope", "locktype", "exclusive", "shared", "write", "owner", "href",
                        "getetag", "displayname", "resourcetype", "x", "Win32LastModifiedTime"])  # fmt: skip
_namespace = st.sampled_from(["DAV:", "dav:", "DAV", "", "urn:x-fuzz:", "urn:schemas-microsoft-com:", "http://x/"])
_text = st.text(st.characters(codec="utf-8"), max_size=40)


def _element(depth: int) -> st.SearchStrategy[ET.Element]:
    def make(tag: str, namespace: str, text: str, children: list[ET.Element]) -> ET.Element:
        element = ET.Element(f"{{{namespace}}}{tag}" if namespace else tag)
        element.text = text or None
        element.extend(children)
        return element

    children = st.lists(_element(depth - 1), max_size=4) if depth > 0 else st.just([])
    return st.builds(make, _tag, _namespace, _text, children)


def _serialised(element: ET.Element) -> bytes:
    serialised: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=bool(len(element) % 2))
    return serialised


@st.composite
def mutated(draw: st.DrawFn, method: str) -> bytes:
    """A skeleton of the method with a few byte-level mutations."""
    body = bytearray(draw(st.sampled_from(SKELETONS[method])))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "truncate", "namespace", "special"]))
        if kind == "flip" and at < len(body):
            body[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del body[at : at + draw(st.integers(1, 16))]
        elif kind == "repeat":
            end = min(len(body), at + draw(st.integers(1, 40)))
            body[at:at] = body[at:end] * draw(st.integers(1, 50))
        elif kind == "truncate":
            del body[at:]
        elif kind == "namespace":
            body = bytearray(bytes(body).replace(b"DAV:", draw(st.sampled_from([b"", b"dav:", b"DAV", b"urn:x"])), 1))
        else:
            body[at:at] = draw(st.sampled_from([b"\x00", b"\xc0\x80", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xff\xfe",
                                                b"&", b"<", b"]]>", b"<![CDATA[", b"&#0;", b"&#x110000;", b"&amp;",
                                                b"<?pi?>", b"<!--", b"\xef\xbb\xbf"]))  # fmt: skip
    return bytes(body)


@st.composite
def reencoded(draw: st.DrawFn, method: str) -> bytes:
    """A skeleton (or a random tree) written in one encoding and declared in the same one or another."""
    text = draw(st.sampled_from(SKELETONS[method])).decode()
    text = text.split("?>", 1)[1] if text.startswith("<?xml") else text
    declared, written = draw(st.sampled_from(ENCODINGS)), draw(st.sampled_from(ENCODINGS))
    declaration = draw(st.sampled_from([f'<?xml version="1.0" encoding="{declared}"?>', ""]))
    codec = {"ebcdic": "cp500"}.get(written, written)
    body = codecs.encode(declaration + text, codec, errors="replace")
    if draw(st.booleans()):
        body = draw(st.sampled_from([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b""])) + body
    return body


def xml_bodies(method: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(SKELETONS[method]),
        mutated(method),
        mutated(method),
        reencoded(method),
        _element(3).map(_serialised),
        st.sampled_from(ENTITY_BODIES),
        st.integers(1, 20000).map(
            lambda depth: b'<D:propfind xmlns:D="DAV:">' + b"<x>" * depth + b"</x>" * depth + b"</D:propfind>"
        ),
        st.binary(max_size=512),
        st.just(b""),
    )


def _principals(clinic: Clinic) -> list[tuple[str, str, tuple[str, str]]]:
    """(who, URL, credentials): alice on her items, bob through his read-only share, the links."""
    dav, links = clinic.dav_url, clinic.links
    alice, bob, link = ("alice", PASSWORD), ("bob", PASSWORD), ("anyone", LINK_PASSWORD)
    return [
        ("alice", dav + "ordonnance.pdf", alice),
        ("alice", dav + quote("Dupont Jeanne") + "/", alice),
        ("alice", dav + "absent.txt", alice),
        ("bob", dav + quote("Dupont Jeanne") + "/irm.pdf", bob),
        ("bob", dav + "bob.txt", bob),
        ("link:read", f"{clinic.url}/public/{links['read']}/irm.pdf", link),
        ("link:write", f"{clinic.url}/public/{links['write']}/commun.txt", link),
        ("link:dropbox", f"{clinic.url}/public/{links['dropbox']}/", link),
    ]


def changed_something(method: str, status: int, body: bytes) -> bool:
    """Whether the answer says something was changed: a property set (207 with a 200 in it), a lock taken."""
    if method == "PROPPATCH":
        return status == 207 and b"200 OK" in body
    return method == "LOCK" and status in (200, 201)


def undo_lock(client: httpx.Client, url: str, response: httpx.Response) -> None:
    """Release a lock the fuzz took (and remove the empty file it made on an unmapped URL)."""
    token = response.headers.get("Lock-Token")
    if token:
        assert client.request("UNLOCK", url, headers={"Lock-Token": token}).status_code == 204
    if response.status_code == 201:
        assert client.delete(url).status_code == 204


@given(data=st.data())
@fuzz_settings(400)
def test_any_xml_body_gets_a_2xx_or_4xx_in_time_and_a_refusal_changes_nothing(
    clinic: Clinic, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(sorted(SKELETONS)), label="method")
    who, url, auth = data.draw(st.sampled_from(_principals(clinic)), label="target")
    body = data.draw(xml_bodies(method), label="body")
    headers = {
        "Content-Type": data.draw(st.sampled_from(["text/xml", "application/xml; charset=utf-8",
                                                   "text/xml; charset=latin-1", "application/octet-stream"])),
        "Depth": data.draw(st.sampled_from(["0", "1", "infinity", "2", "", "-1", "one", "1, 1"]), label="depth"),
    }  # fmt: skip
    if method == "LOCK":
        headers["Timeout"] = data.draw(
            st.sampled_from(["Second-60", "Infinite", "Second-99999999999999999999", "Second--1", "x", "Second-0"])
        )
    chunked = data.draw(st.booleans(), label="chunked")
    content: Any = iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body
    before = stored(clinic.server)
    with httpx.Client(auth=auth, timeout=PATIENCE) as client:
        started = time.monotonic()
        response = client.request(method, url, headers=headers, content=content)
        elapsed = time.monotonic() - started
        assert elapsed < PATIENCE, f"{method} by {who} took {elapsed:.1f} s"
        assert response.status_code < 500, f"{method} by {who}: {response.status_code}, body {body[:200]!r}"
        assert response.status_code >= 200, f"{method} by {who}: {response.status_code}"
        if method == "PROPFIND" or not changed_something(method, response.status_code, response.content):
            after = stored(clinic.server)
            for key in before:
                assert after[key] == before[key], f"{method} by {who} ({response.status_code}) changed {key}"
        elif method == "LOCK":
            undo_lock(client, url, response)


# -- (b) paths ---------------------------------------------------------------------------------------------

#: Names of the clinic's items (reachable or not, depending on who asks).
NAMES = ["Dupont Jeanne", "irm.pdf", "Examens", "ordonnance.pdf", "Commun", "commun.txt", "Dépôt", "déjà là.pdf",
         "bob.txt", "mallory.txt", "dav", "public", "etc", "passwd"]  # fmt: skip
TRAVERSALS = ["..", ".", "", "...", "..\\..", "\\", "~", "%2e%2e", "..%2f", "%00", "*", "?", "#", ";", "..;"]


def _nfd(name: str) -> str:
    return unicodedata.normalize("NFD", name)


segments = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(NAMES).map(_nfd),
    st.sampled_from(NAMES).map(str.upper),
    st.sampled_from(TRAVERSALS),
    st.text(st.characters(codec=None), max_size=12),  # any code point, lone surrogates included
    st.text(st.characters(min_codepoint=0, max_codepoint=0x9F), max_size=6),  # control characters
    st.integers(200, 5000).map(lambda n: "é" * n),  # very long
)


def reachable(clinic: Clinic, principal: Principal, entry: Entry, via: Any) -> bool:
    """Whether ``entry`` lies in the principal's own tree, or below an item shared with them."""
    tree = clinic.server.instance.tree
    top = tree.ancestry(entry.id)
    if via is None:
        return top[0].id == principal.root_id
    return via.recipient_user_id == principal.user_id and via.root_id in {e.id for e in top}


@given(names=st.lists(segments, max_size=6), who=st.sampled_from(["bob", "mallory", "alice"]))
@fuzz_settings(2000)
def test_the_resolvers_find_only_what_the_user_may_reach(clinic: Clinic, names: list[str], who: str) -> None:
    inst = clinic.server.instance
    principal = clinic.users[who].principal()
    drive = Drive(inst.tree, inst.shares, principal, time.time())
    try:
        located = drive.resolve(names)
    except NotFound:
        pass
    else:
        assert reachable(clinic, principal, located.entry, located.via), (who, names, located.entry.id)
    provider = MedDAVProvider(inst.tree, inst.shares)
    for path in ("/" + "/".join(names), "/" + "/".join(names) + "/", "//" + "\\".join(names)):
        environ = {"meddav.principal": principal, "wsgidav.provider": provider, "PATH_INFO": path,
                   "REQUEST_METHOD": "GET"}  # fmt: skip
        resource = provider.get_resource_inst(path, environ)
        if resource is not None:
            assert reachable(clinic, principal, resource.entry, resource.via), (who, path, resource.entry.id)


def _percent(data: bytes) -> str:
    return "".join(f"%{b:02X}" for b in data)


raw_segments = st.one_of(
    st.sampled_from(NAMES).map(lambda n: quote(n, safe="")),
    st.sampled_from(NAMES).map(lambda n: quote(n.encode("latin-1", "replace"), safe="")),  # Latin-1, not UTF-8
    st.sampled_from(NAMES).map(lambda n: quote(_nfd(n), safe="")),
    st.sampled_from(
        [
            "..",
            ".",
            "",
            "%2e%2e",
            "%2E%2e",
            ".%2e",
            "%252e%252e",
            "..%2f",
            "..%5c",
            "..\\",
            "\\",
            "%c0%ae%c0%ae",
            "%e0%80%ae%e0%80%ae",
            "%c0%af",
            "%f0%80%80%af",
            "%u002e%u002e",
            "..;",
            "%ed%a0%80",
            "%ef%bf%bf",
            "%f4%90%80%80",
            "%ff",
            "%",
            "%zz",
            "%2",
            "~",
            ";",
            "%3b",
        ]
    ),
    st.binary(max_size=8).map(_percent),  # any bytes, overlong and invalid UTF-8 included
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n #?"), max_size=8).map(
        lambda t: t.encode().decode("latin-1")  # raw UTF-8 bytes in the request line
    ),
    st.sampled_from(["%00", "%01", "%09", "%0a", "%0d", "%7f", "%c2%85", "\t", "\x7f"]),
    st.integers(200, 3000).map(lambda n: "%C3%A9" * n),
)

READERS: dict[str, Callable[[Clinic], tuple[str, str]]] = {
    "bob": lambda c: ("/dav/", basic("bob", PASSWORD)),
    "mallory": lambda c: ("/dav/", basic("mallory", PASSWORD)),
    "link:read": lambda c: (f"/public/{c.links['read']}/", basic("anyone", LINK_PASSWORD)),
    "link:dropbox": lambda c: (f"/public/{c.links['dropbox']}/", basic("anyone", LINK_PASSWORD)),
}
#: Contents each reader may never get, anywhere in an answer.
HIDDEN: dict[str, list[bytes]] = {
    "bob": [b"%PDF-ordonnance", b"mallory's own", b"an earlier upload"],
    "mallory": [b"%PDF-", b"bob's own", b"shared notes", b"an earlier upload"],
    "link:read": [b"%PDF-ordonnance", b"bob's own", b"mallory's own", b"shared notes", b"an earlier upload"],
    "link:dropbox": [b"%PDF-", b"bob's own", b"mallory's own", b"shared notes", b"an earlier upload"],
}
#: Names each reader may never be shown, in any spelling, in a listing or a header (an error page may
#: show the path the client sent, which is theirs).
UNSEEN: dict[str, list[bytes]] = {
    "bob": [b"ordonnance", b"mallory", b"d\xc3\xa9j", b"d%C3%A9j", b"D%C3%A9p", b"D\xc3\xa9p"],
    "mallory": [b"Dupont", b"ordonnance", b"bob.txt", b"Commun", b"irm"],
    "link:read": [b"ordonnance", b"Commun", b"bob.txt", b"mallory", b"d\xc3\xa9j", b"d%C3%A9j"],
    "link:dropbox": [b"irm", b"ordonnance", b"d\xc3\xa9j", b"d%C3%A9j", b"Dupont", b"Commun", b"Examens"],
}
READABLE = {
    "bob": {b"bob's own", b"%PDF-irm of Jeanne Dupont", b"shared notes"},
    "mallory": {b"mallory's own"},
    "link:read": {b"%PDF-irm of Jeanne Dupont"},
    "link:dropbox": set(),
}


def send(clinic: Clinic, method: str, target: str, authorization: str, body: bytes = b"") -> bytes:
    """``method target`` sent byte for byte on a socket of its own (httpx would tidy the path); the whole
    answer, read until the server closes (it may close before reading all of a request it refuses)."""
    host, port = urlsplit(clinic.url).hostname, urlsplit(clinic.url).port
    assert host is not None and port is not None
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {authorization}\r\nConnection: close"
    if method == "PROPFIND":
        head += "\r\nDepth: 1"
    if method in ("MOVE", "COPY"):
        head += f"\r\nDestination: {clinic.url}/public/{clinic.links['read']}/moved"
    if body or method == "PUT":
        head += f"\r\nContent-Length: {len(body)}"
    started = time.monotonic()
    chunks = []
    with socket.create_connection((host, port), timeout=PATIENCE) as sock:
        try:
            sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # closed early: its answer is still there to read
            pass
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except ConnectionResetError:
            pass
    answer = b"".join(chunks)
    assert time.monotonic() - started < PATIENCE, f"{method} {target!r}: no answer in time"
    assert answer, f"{method} {target!r}: connection closed without an answer"
    return answer


@given(
    parts=st.lists(raw_segments, min_size=1, max_size=5),
    separator=st.sampled_from(["/", "//", "\\", "/./"]),
    who=st.sampled_from(sorted(READERS)),
    method=st.sampled_from(["GET", "PROPFIND", "HEAD"]),
)
@fuzz_settings(2500)
def test_any_path_over_http_reaches_nothing_outside_what_the_requester_may_read(
    clinic: Clinic, parts: list[str], separator: str, who: str, method: str
) -> None:
    prefix, authorization = READERS[who](clinic)
    target = prefix + separator.join(parts)
    answer = send(clinic, method, target, authorization)
    status = status_of(answer)
    assert 200 <= status < 500, f"{who} {method} {target!r}: {answer[:300]!r}"
    head, _, body = answer.partition(b"\r\n\r\n")
    for secret in HIDDEN[who]:
        assert secret not in answer, f"{who} {method} {target!r} shows {secret!r}: {answer[:500]!r}"
    for name in UNSEEN[who]:
        shown = head if status >= 300 else answer
        assert name.lower() not in shown.lower(), f"{who} {method} {target!r} names {name!r}: {answer[:500]!r}"
    if method == "GET" and status in (200, 206):
        assert body in READABLE[who], f"{who} GET {target!r} read {body[:100]!r}"


@given(
    parts=st.lists(raw_segments, max_size=4),
    separator=st.sampled_from(["/", "\\"]),
    method=st.sampled_from(["PUT", "MKCOL", "DELETE", "MOVE", "COPY", "PROPPATCH", "LOCK"]),
)
@fuzz_settings(800)
def test_the_read_only_link_changes_nothing_whatever_the_path(
    clinic: Clinic, parts: list[str], separator: str, method: str
) -> None:
    target = f"/public/{clinic.links['read']}/" + separator.join(parts)
    body = {"PUT": b"overwritten", "PROPPATCH": SKELETONS["PROPPATCH"][0], "LOCK": SKELETONS["LOCK"][0]}.get(
        method, b""
    )
    before = stored(clinic.server)
    answer = send(clinic, method, target, basic("anyone", LINK_PASSWORD), body)
    status = status_of(answer)
    assert 400 <= status < 500 or (method == "PROPPATCH" and status == 207), f"{method} {target!r}: {answer[:300]!r}"
    after = stored(clinic.server)
    for key in before:
        assert after[key] == before[key], f"{method} {target!r} ({status}) changed {key}"


def test_a_path_that_is_no_unicode_text_is_not_found_through_the_api(clinic: Clinic) -> None:
    """Found by the resolver fuzz: JSON may carry a lone surrogate (``"\\ud800"``), which no name can be;
    resolving it raised UnicodeEncodeError from the name's encryption, and POST /api/v1/shares answered 500."""
    body = b'{"path": "\\ud800", "email": "patient@example.org"}'
    with httpx.Client(base_url=clinic.url, auth=("alice", PASSWORD), timeout=PATIENCE) as alice:
        answer = alice.post("/api/v1/shares", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code in (400, 404), (answer.status_code, answer.text[:200])
