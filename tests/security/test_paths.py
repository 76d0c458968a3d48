"""Hostile paths on every surface: traversal in all its spellings, bad bytes, long and odd names.

Traversal and bad bytes get a 4xx, never a 5xx nor a hang, reach nothing outside the requester's
tree, change nothing stored, and are audited as the requester's attempt.  Names that are only odd
(Windows device names, trailing dots) are ordinary names: stored encrypted like any other, since no
name ever reaches the file system.  Names that differ only by Unicode normalisation are one name, and
names that differ only by case are two, on every surface: WebDAV, a colleague's share, a link over
WebDAV, the owner's pages, the recipient's pages and the JSON API.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.helpers import basic, names_in, raw_request, status_of
from tests.security.conftest import LINK_PASSWORD, PASSWORD, Clinic
from tests.web.conftest import Web, csrf_of

#: Spellings of "go up and out", each followed by a name of alice's that bob and links may not reach.
TRAVERSALS = [
    "../",
    "%2e%2e/",
    "%2E%2E%2F",
    ".%2e/",
    "%2e./",
    "..%2f",
    "..%5c",
    "..\\",
    "%c0%ae%c0%ae/",  # overlong UTF-8 "."
    "..%c0%af",  # overlong UTF-8 "/"
    "%e0%80%ae%e0%80%ae/",  # three-byte overlong "."
    "%252e%252e/",  # double encoding: a folder literally named "%2e%2e"
    "..;/",
    "%u002e%u002e/",
    "./../",
    "Dupont%20Jeanne/../../",
]
#: Bytes no name may hold.
BAD_BYTES = ["a%00b", "x%00.pdf", "%00", "a%01b", "tab%09", "new%0aline", "cr%0d", "del%7f", "c1%c2%85"]
ALICES_SECRET = b"%PDF-ordonnance"


def request(clinic: Clinic, method: str, target: str, authorization: str, body: bytes = b"") -> bytes:
    """``method target`` sent byte for byte (httpx would tidy the path), with the whole answer read."""
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\nConnection: close"
    if body or method == "PUT":
        head += f"\r\nContent-Length: {len(body)}"
    return raw_request(clinic.url, head, body, timeout=15, close_after=True)


def answered_whole(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return length is None or int(length.group(1)) == len(body)


@pytest.mark.parametrize("up", TRAVERSALS)
def test_traversal_out_of_a_users_tree_or_a_link_reaches_nothing(clinic: Clinic, unchanged: None, up: str) -> None:
    bob = basic("bob", PASSWORD)
    link = basic("anyone", LINK_PASSWORD)
    tokens = clinic.links
    attempts = [
        (bob, f"/dav/{up}ordonnance.pdf"),
        (bob, f"/dav/{up}{up}etc/passwd"),
        (bob, f"/dav/Dupont%20Jeanne/{up}{up}ordonnance.pdf"),
        (link, f"/public/{tokens['read']}/{up}ordonnance.pdf"),
        (link, f"/public/{tokens['read']}/{up}{up}dav/ordonnance.pdf"),
        (link, f"/public/{tokens['dropbox']}/{up}D%C3%A9p%C3%B4t/d%C3%A9j%C3%A0%20l%C3%A0.pdf"),
    ]
    for authorization, target in attempts:
        for method in ("GET", "PROPFIND", "PUT", "DELETE", "MKCOL"):
            answer = request(clinic, method, target, authorization, b"overwritten" if method == "PUT" else b"")
            status = status_of(answer)
            assert 400 <= status < 500, (method, target, answer[:300])
            assert ALICES_SECRET not in answer and b"root:" not in answer, (method, target)
            assert answered_whole(answer), (method, target)


def test_a_traversal_attempt_is_audited_as_the_requesters(clinic: Clinic) -> None:
    mark = clinic.audit_mark()
    answer = request(clinic, "GET", "/dav/%2e%2e/%2e%2e/ordonnance.pdf", basic("bob", PASSWORD))
    assert 400 <= status_of(answer) < 500
    rows = clinic.audited_since(mark)
    assert [(r.principal, r.action, r.outcome) for r in rows][:1] == [("bob", "file.read", "failed")], rows
    mark = clinic.audit_mark()
    token = clinic.links["read"]
    answer = request(clinic, "GET", f"/public/{token}/%2e%2e/%2e%2e/x", basic("anyone", LINK_PASSWORD))
    assert status_of(answer) == 400
    rows = clinic.audited_since(mark)
    assert [(r.principal[:6], r.action, r.outcome) for r in rows][:1] == [("share:", "file.read", "failed")], rows


@pytest.mark.parametrize("name", BAD_BYTES)
def test_bad_bytes_in_a_name_are_refused_on_every_method(clinic: Clinic, unchanged: None, name: str) -> None:
    alice = basic("alice", PASSWORD)
    for method in ("PUT", "MKCOL", "GET", "DELETE", "PROPFIND"):
        answer = request(clinic, method, f"/dav/{name}", alice, b"x" if method == "PUT" else b"")
        assert 400 <= status_of(answer) < 500, (method, name, answer[:200])
    link = basic("anyone", LINK_PASSWORD)
    answer = request(clinic, "PUT", f"/public/{clinic.links['write']}/{name}", link, b"x")
    assert status_of(answer) == 400


def test_invalid_utf8_in_a_path_is_a_400(clinic: Clinic, unchanged: None) -> None:
    alice = basic("alice", PASSWORD)
    for raw in ("%ff%fe", "caf%e9.pdf", "%c3", "%ed%a0%80"):  # not UTF-8, Latin-1, cut sequence, a surrogate
        for method in ("PUT", "GET", "MKCOL"):
            answer = request(clinic, method, f"/dav/{raw}", alice, b"x" if method == "PUT" else b"")
            assert 400 <= status_of(answer) < 500, (method, raw, answer[:200])


def test_names_over_255_bytes_are_refused_on_every_surface(clinic: Clinic, unchanged: None) -> None:
    long_name = "é" * 128 + ".pdf"  # 260 bytes, 132 characters
    assert clinic["alice"].put(quote(long_name), content=b"x").status_code == 400
    assert clinic["alice"].request("MKCOL", quote(long_name) + "/").status_code == 400
    moved = clinic["alice"].request(
        "MOVE", "ordonnance.pdf", headers={"Destination": clinic.dav_url + quote(long_name)}
    )
    assert moved.status_code == 400
    assert clinic["bob"].put(f"Commun/{quote(long_name)}", content=b"x").status_code == 400
    with clinic.link("write") as link:
        assert link.put(quote(long_name), content=b"x").status_code == 400
    with Web(base_url=clinic.url, timeout=30) as web:
        web.login("alice", PASSWORD)
        assert web.put_file("/ui/files/", long_name, b"x").status_code == 400
        made = web.form("/ui/files/", "/ui/files/mkdir", {"path": "", "name": long_name})
        assert "error=name" in made.headers["Location"]


@pytest.mark.parametrize("name", ["CON", "aux.txt", "NUL.pdf", "com1", "LPT9.doc", "prn", "fin.", "espace ", "$MFT"])
def test_windows_device_names_are_ordinary_names(clinic: Clinic, name: str) -> None:
    alice = clinic["alice"]
    assert alice.put(quote(name), content=b"just a file").status_code == 201
    try:
        assert alice.get(quote(name)).content == b"just a file"
        assert name in names_in(alice, "")
        assert name not in names_in(alice, "Dupont Jeanne")
    finally:
        assert alice.delete(quote(name)).status_code == 204


# -- one name under every Unicode spelling, two names under two cases ---------------------------------------

NFC = unicodedata.normalize("NFC", "Échographie fœtale été.pdf")
NFD = unicodedata.normalize("NFD", NFC)
assert NFC != NFD


@pytest.fixture
def cleanup(clinic: Clinic) -> Iterator[list[str]]:
    """Paths of alice's (URL-quoted, under /dav/) removed after the test."""
    made: list[str] = []
    yield made
    for path in made:
        clinic["alice"].delete(path)


def test_normalisation_and_case_over_webdav_a_colleague_share_and_a_link(clinic: Clinic, cleanup: list[str]) -> None:
    surfaces: list[tuple[httpx.Client, str]] = [(clinic["alice"], ""), (clinic["bob"], "Commun/")]
    link = clinic.link("write")
    surfaces.append((link, ""))
    for number, (client, folder) in enumerate(surfaces):
        nfc, nfd = f"{number}-{NFC}", f"{number}-{NFD}"
        cleanup.append(quote(f"Commun/{nfc}") if folder or client is link else quote(nfc))
        cleanup.extend([quote(f"Commun/{number}-case.txt"), quote(f"Commun/{number}-CASE.txt"),
                        quote(f"{number}-case.txt"), quote(f"{number}-CASE.txt")])  # fmt: skip
        assert client.put(folder + quote(nfd), content=b"first").status_code == 201
        assert client.get(folder + quote(nfc)).content == b"first"
        assert client.put(folder + quote(nfc), content=b"second").status_code == 204  # the same file
        listed = [n for n in names_in(client, folder) if unicodedata.normalize("NFC", n) == nfc]
        assert len(listed) == 1, listed
        assert client.put(folder + f"{number}-case.txt", content=b"lower").status_code == 201
        assert client.put(folder + f"{number}-CASE.txt", content=b"upper").status_code == 201  # another file
        assert client.get(folder + f"{number}-case.txt").content == b"lower"
        assert client.get(folder + f"{number}-CASE.txt").content == b"upper"


def test_normalisation_and_case_in_the_owners_and_recipients_pages_and_the_api(
    clinic: Clinic, cleanup: list[str]
) -> None:
    cleanup.extend([quote(NFC), quote(f"Commun/{NFC}"), quote(f"Commun/{unicodedata.normalize('NFC', 'É')}"),
                    quote("Commun/É"), quote("Commun/é"), quote("web-case.txt"), quote("WEB-CASE.txt"),
                    quote(unicodedata.normalize("NFC", "Réunion")), quote("réunion")])  # fmt: skip
    alice = clinic["alice"]
    assert alice.put(quote(NFC), content=b"original").status_code == 201
    with Web(base_url=clinic.url, timeout=30) as web:
        web.login("alice", PASSWORD)
        # The page never replaces a file: the other spelling of a name taken is given a new name...
        sent = web.put_file("/ui/files/", NFD, b"by the page")
        assert sent.status_code == 201 and sent.json()["name"] != NFD
        assert unicodedata.normalize("NFC", sent.json()["name"]).endswith("(2).pdf")
        cleanup.append(quote(sent.json()["name"]))
        # ...and the other case of a name is a name of its own.
        assert web.put_file("/ui/files/", "web-case.txt", b"a").json() == {"name": "web-case.txt"}
        assert web.put_file("/ui/files/", "WEB-CASE.txt", b"b").json() == {"name": "WEB-CASE.txt"}
        # A folder under one spelling is found under the other.
        assert web.form("/ui/files/", "/ui/files/mkdir", {"path": "", "name": "Re\u0301union"}).status_code == 303
        taken = web.form("/ui/files/", "/ui/files/mkdir", {"path": "", "name": "R\u00e9union"})
        assert "error=taken" in taken.headers["Location"]
        assert (
            "error"
            not in web.form("/ui/files/", "/ui/files/mkdir", {"path": "", "name": "réunion"}).headers["Location"]
        )
        assert web.get(f"/ui/files/{quote(NFD)}").content == b"original"
        # The JSON API finds an item by either spelling.
        token = csrf_of(web.get("/ui/files/").text)
        made = web.post(
            "/api/v1/shares",
            json={"path": "/" + NFD, "email": "patient@example.org", "password": LINK_PASSWORD},
            headers={"X-CSRF-Token": token},
        )
        assert made.status_code == 201, made.text
        share_id = made.json()["share"]["id"]
        assert web.delete(f"/api/v1/shares/{share_id}", headers={"X-CSRF-Token": token}).status_code == 200
    # The recipient's pages: into a read-write link, the same way.
    with Web(base_url=clinic.url, timeout=30) as guest:
        token = clinic.links["write"]
        assert guest.form(f"/s/{token}", data={"password": LINK_PASSWORD}).status_code == 303
        first, second, third = (guest.put_file(f"/s/{token}", name, b"1") for name in ("E\u0301", "\u00c9", "é"))
        assert first.status_code == second.status_code == third.status_code == 201
        assert second.json()["name"] == "\u00c9 (2)" and third.json()["name"] == "é"
        cleanup.append(quote("Commun/\u00c9 (2)"))


def test_traversal_and_bad_bytes_in_the_pages_reach_nothing(clinic: Clinic, unchanged: None) -> None:
    token = clinic.links["read"]
    with Web(base_url=clinic.url, timeout=30) as bob, Web(base_url=clinic.url, timeout=30) as guest:
        bob.login("bob", PASSWORD)
        assert guest.form(f"/s/{token}", data={"password": LINK_PASSWORD}).status_code == 303
        page = guest.get(f"/s/{token}").text
        for up in [*TRAVERSALS, *(f"{bad}/" for bad in BAD_BYTES), "%ff%fe/", "%c3/"]:
            for client, target in (
                (bob, f"/ui/files/{up}ordonnance.pdf"),
                (bob, f"/ui/files/Dupont%20Jeanne/{up}{up}ordonnance.pdf"),
                (guest, f"/s/{token}/get/{up}ordonnance.pdf"),
                (guest, f"/s/{token}/f/{up}ordonnance.pdf"),
                (guest, f"/s/{token}/zip/{up}"),
            ):
                answer = request(clinic, "GET", target, "", b"")  # no session: the login page or the 404
                assert 300 <= status_of(answer) < 500, (target, answer[:200])
                got = client.get(target)
                assert 400 <= got.status_code < 500 or (got.status_code == 200 and "ordonnance" not in got.text), (
                    target,
                    got.status_code,
                )
                assert ALICES_SECRET not in got.content
            put = guest.put(
                f"/s/{token}/put/{up}", params={"name": "x.txt"}, content=b"x", headers={"X-CSRF-Token": csrf_of(page)}
            )
            assert 400 <= put.status_code < 500, (up, put.status_code)
