"""COPY and MOVE aimed where they may not go, and the Overwrite header abused.

A Destination on another host or port, outside the mount, in another surface's space (from a link into
/dav, from /dav into a link, from one link into another), into a read-only share or a drop box, over the
shared item itself, or malformed: a 4xx, nothing stored changes, and the refusal is audited as the
requester's.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import basic, raw_request, status_of
from tests.security.conftest import PASSWORD, Clinic


def moved(client: httpx.Client, method: str, source: str, destination: str, **headers: str) -> int:
    return client.request(method, source, headers={"Destination": destination, **headers}).status_code


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
def test_destinations_outside_the_requesters_space(clinic: Clinic, unchanged: None, method: str) -> None:
    alice, url = clinic["alice"], clinic.url
    port = int(url.rsplit(":", 1)[1])
    outside = [
        "http://elsewhere.example/dav/copie.pdf",
        f"http://127.0.0.1:{port + 1}/dav/copie.pdf",
        f"https://127.0.0.1:{port}/dav/copie.pdf",
        f"http://user:pw@127.0.0.1:{port}/dav/copie.pdf",
        f"{url}/copie.pdf",
        f"{url}/ui/files/copie.pdf",
        f"{url}/public/{clinic.links['write']}/copie.pdf",
        f"{url}/dav/../copie.pdf",
        f"{url}/dav/%2e%2e/copie.pdf",
        f"{url}/dav/%2e%2e%2fcopie.pdf",
        "/dav/../../etc/copie.pdf",
        f"{url}/dav/a%00b.pdf",
        f"{url}/dav/%ff.pdf",
        "",
        "::::",
        "ftp://127.0.0.1/dav/copie.pdf",
        f"{url}/dav/" + "x" * 300,
        f"{url}/dav/{'a/' * 2000}copie.pdf",
    ]
    for destination in outside:
        status = moved(alice, method, "ordonnance.pdf", destination)
        assert 400 <= status < 500 or status == 502, (destination, status)


def test_from_a_link_into_the_owners_drive_or_another_link(clinic: Clinic, unchanged: None) -> None:
    url = clinic.url
    with clinic.link("write") as link, clinic.link("read") as reader, clinic.link("dropbox") as box:
        for destination in (
            f"{url}/dav/vol.txt",
            f"{url}/dav/Dupont%20Jeanne/vol.txt",
            f"{url}/public/{clinic.links['dropbox']}/vol.txt",
            f"{url}/public/{clinic.links['read']}/vol.txt",
            f"{url}/public/{clinic.links['write']}/../vol.txt",
        ):
            for method in ("COPY", "MOVE"):
                status = moved(link, method, "commun.txt", destination)
                assert 400 <= status < 500 or status == 502, (method, destination, status)
        # A read-only link copies nothing, even inside its own share; a drop box moves nothing it holds.
        assert moved(reader, "COPY", "irm.pdf", f"{url}/public/{clinic.links['read']}/copie.pdf") == 403
        assert moved(reader, "MOVE", "irm.pdf", f"{url}/public/{clinic.links['read']}/Examens/irm.pdf") == 403
        target = f"{url}/public/{clinic.links['dropbox']}/renamed.pdf"
        for method in ("COPY", "MOVE"):
            assert moved(box, method, "d%C3%A9j%C3%A0%20l%C3%A0.pdf", target) in (403, 404)


def test_into_a_read_only_share_or_over_the_shared_item(clinic: Clinic, unchanged: None) -> None:
    bob, dav = clinic["bob"], clinic.dav_url
    mark = clinic.audit_mark()
    # bob's own file into alice's folder, shared with him read-only.
    for method in ("COPY", "MOVE"):
        assert moved(bob, method, "bob.txt", dav + "Dupont%20Jeanne/bob.txt") == 403
        assert moved(bob, method, "bob.txt", dav + "Dupont%20Jeanne/irm.pdf", Overwrite="T") == 403
        # Out of the read-only share: a copy is a read (allowed), a move is a removal (refused).
    assert moved(bob, "MOVE", "Dupont%20Jeanne/irm.pdf", dav + "irm.pdf") == 403
    # The shared items themselves are neither replaced, renamed nor moved by the colleague.
    assert moved(bob, "MOVE", "Commun/commun.txt", dav + "Commun", Overwrite="T") in (403, 409)
    assert moved(bob, "COPY", "bob.txt", dav + "Commun", Overwrite="T") in (403, 409)
    assert moved(bob, "MOVE", "Commun", dav + "Commun%20renamed") == 403
    assert moved(bob, "MOVE", "Commun", dav + "Dupont%20Jeanne/Commun") == 403
    assert moved(bob, "COPY", "Commun", dav + "Dupont%20Jeanne", Overwrite="T") == 403
    # Another organisation's user has none of it.
    assert moved(clinic["mallory"], "COPY", "Dupont%20Jeanne/irm.pdf", dav + "irm.pdf") == 404
    rows = clinic.audited_since(mark)  # one row per request above
    assert {(r.principal, r.outcome) for r in rows} >= {("bob", "denied"), ("mallory", "failed")}, rows


def test_overwrite_header_abuse(clinic: Clinic, unchanged: None) -> None:
    alice, dav = clinic["alice"], clinic.dav_url
    for method in ("COPY", "MOVE"):
        # The destination exists: F refuses, anything but T or F is a bad request.
        assert moved(alice, method, "ordonnance.pdf", dav + "Dupont%20Jeanne/irm.pdf", Overwrite="F") == 412
        for value in ("X", "TRUE", "t, f", "", "T F", "TT"):
            status = moved(alice, method, "ordonnance.pdf", dav + "Dupont%20Jeanne/irm.pdf", Overwrite=value)
            assert status == 400, (method, value, status)
        # A folder over its own parent or child, whatever Overwrite says.
        for overwrite in ("T", "F"):
            assert moved(alice, method, "Dupont%20Jeanne", dav + "Dupont%20Jeanne/Examens", Overwrite=overwrite) in (
                403,
                409,
                412,
            )
            assert moved(alice, method, "Dupont%20Jeanne/Examens", dav + "Dupont%20Jeanne", Overwrite=overwrite) in (
                403,
                409,
                412,
            )
        # Onto itself, onto the drive's root, or the root itself anywhere.
        assert moved(alice, method, "ordonnance.pdf", dav + "ordonnance.pdf", Overwrite="T") == 403
        for source in ("ordonnance.pdf", "Dupont%20Jeanne", ""):
            assert moved(alice, method, source, dav, Overwrite="T") == 409
        assert moved(alice, method, "", dav + "racine/", Overwrite="T") == 403


def test_destination_bytes_are_read_as_utf8_or_refused(clinic: Clinic) -> None:
    """Some clients send the Destination unquoted: raw UTF-8 names the file it spells; other bytes are a 400."""
    head = (
        "COPY /dav/ordonnance.pdf HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nConnection: close\r\n"
        "Content-Length: 0\r\nDestination: "
    ).format(basic("alice", PASSWORD))
    for raw in (b"/dav/caf\xe9.pdf", b"/dav/\xff\xfe.pdf", b"/dav/\xc0\xae\xc0\xae/x.pdf"):
        answer = raw_request(clinic.url, (head.encode() + raw).decode("latin-1"), timeout=15, close_after=True)
        assert status_of(answer) == 400, (raw, answer[:200])
    answer = raw_request(clinic.url, (head.encode() + "/dav/copie é.pdf".encode()).decode("latin-1"), close_after=True)
    assert status_of(answer) == 201
    try:
        assert clinic["alice"].get("copie%20%C3%A9.pdf").content == b"%PDF-ordonnance"
    finally:
        clinic["alice"].delete("copie%20%C3%A9.pdf")
