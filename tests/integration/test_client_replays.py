"""Clients that cannot run here, replayed from their known request patterns.

Windows Explorer (Microsoft-WebDAV-MiniRedir), macOS Finder (WebDAVFS),
davfs2 (neon) and mobile apps each have habits a server must survive: OPTIONS
probing, locking a URL before its PUT, PROPPATCH of Win32 properties, chunked
bodies with X-Expected-Entity-Length, AppleDouble ``._`` files, NFD names,
If-Match on PUT, lock refresh, allprop listings.
"""

from __future__ import annotations

import os
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime

import httpx
import pytest

from server.testing import LiveServer, TestInstance
from tests.helpers import listing, names_in

WINDOWS = "Microsoft-WebDAV-MiniRedir/10.0.19045"
FINDER = "WebDAVFS/3.0.0 (03008000) Darwin/22.6.0 (arm64)"
DAVFS = "davfs2/1.6.1 neon/0.32.5"
MOBILE = "Documents/8.4 CFNetwork/1410.0.3 Darwin/22.6.0"


def client(server: LiveServer, inst: TestInstance, agent: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.dav_url, auth=(inst.user, inst.password), headers={"User-Agent": agent}, timeout=60
    )


def lockinfo(owner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        f"</D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>{owner}</D:href></D:owner></D:lockinfo>"
    ).encode()


def test_windows_explorer_copy_of_a_file(live_server: LiveServer, instance_dir: TestInstance) -> None:
    with client(live_server, instance_dir, WINDOWS) as c:
        # Probing: OPTIONS on the root, then PROPFIND Depth 0 with the properties Explorer wants.
        options = c.request("OPTIONS", "")
        assert options.status_code == 200 and "1,2" in options.headers["DAV"]
        assert options.headers.get("MS-Author-Via") == "DAV"
        probe = (
            b'<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop>'
            b"<D:displayname/><D:getcontentlength/><D:getlastmodified/><D:resourcetype/>"
            b"<D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"
        )
        assert c.request("PROPFIND", "", headers={"Depth": "0"}, content=probe).status_code == 207
        assert c.request("PROPFIND", "Ordonnance.pdf", headers={"Depth": "0"}, content=probe).status_code == 404

        # Copy: LOCK the new URL (creates an empty file), PUT with the token, PROPPATCH times, UNLOCK.
        lock = c.request(
            "LOCK",
            "Ordonnance.pdf",
            headers={"Depth": "0", "Timeout": "Second-3600"},
            content=lockinfo("DESKTOP\\docteur"),
        )
        assert lock.status_code == 201
        token = lock.headers["Lock-Token"]
        body = os.urandom(200_000)
        put = c.put("Ordonnance.pdf", content=body, headers={"If": f"({token})"})
        assert put.status_code == 204
        original = formatdate(1_700_000_000, usegmt=True)
        patch = (
            '<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" '
            'xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>'
            f"<Z:Win32CreationTime>{original}</Z:Win32CreationTime>"
            f"<Z:Win32LastAccessTime>{original}</Z:Win32LastAccessTime>"
            f"<Z:Win32LastModifiedTime>{original}</Z:Win32LastModifiedTime>"
            "<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>"
            "</D:prop></D:set></D:propertyupdate>"
        ).encode()
        proppatch = c.request("PROPPATCH", "Ordonnance.pdf", content=patch, headers={"If": f"({token})"})
        assert proppatch.status_code == 207
        statuses = [s.text for s in ET.fromstring(proppatch.content).iter("{DAV:}status")]
        assert statuses and all("200" in (s or "") for s in statuses), proppatch.text
        assert c.request("UNLOCK", "Ordonnance.pdf", headers={"Lock-Token": token}).status_code == 204

        assert c.get("Ordonnance.pdf").content == body
        response = listing(c, "")["/dav/Ordonnance.pdf"]
        modified = response.findtext("{DAV:}propstat/{DAV:}prop/{DAV:}getlastmodified")
        assert modified is not None and parsedate_to_datetime(modified).timestamp() == 1_700_000_000


def _chunked(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 32768):
        yield data[i : i + 32768]


def test_macos_finder_copy_with_appledouble_and_nfd(live_server: LiveServer, instance_dir: TestInstance) -> None:
    name = unicodedata.normalize("NFD", "Résultats biologie.pdf")
    with client(live_server, instance_dir, FINDER) as c:
        assert c.request("PROPFIND", "", headers={"Depth": "1"}).status_code == 207
        # Finder creates the file empty, locks it, then streams the content chunked.
        assert c.put(name, content=b"").status_code == 201
        lock = c.request("LOCK", name, headers={"Depth": "0", "Timeout": "Second-600"}, content=lockinfo("finder"))
        assert lock.status_code == 200
        token = lock.headers["Lock-Token"]
        data = os.urandom(1_000_000)
        put = c.put(
            name,
            content=_chunked(data),
            headers={"X-Expected-Entity-Length": str(len(data)), "If": f"({token})"},
        )
        assert put.status_code == 204
        # The AppleDouble companion with the resource fork and extended attributes.
        assert (
            c.put("._" + name, content=b"\x00\x05\x16\x07" + b"\x00" * 78, headers={"If": f"({token})"}).status_code
            == 201
        )
        assert c.request("UNLOCK", name, headers={"Lock-Token": token}).status_code == 204
        assert c.get(unicodedata.normalize("NFC", name)).content == data
        assert names_in(c, "") == {name, "._" + name}


def test_davfs2_edit_cycle(live_server: LiveServer, instance_dir: TestInstance) -> None:
    with client(live_server, instance_dir, DAVFS) as c:
        assert c.put("notes.txt", content=b"v1").status_code == 201
        lock = c.request("LOCK", "notes.txt", headers={"Timeout": "Second-180"}, content=lockinfo("davfs2"))
        token = lock.headers["Lock-Token"]
        got = c.get("notes.txt")
        etag = got.headers["ETag"]
        # Refresh: LOCK with no body and the token in If.
        refresh = c.request("LOCK", "notes.txt", headers={"If": f"({token})", "Timeout": "Second-180"})
        assert refresh.status_code == 200
        # Upload with If-Match on the ETag it read, and the lock token.
        put = c.put("notes.txt", content=b"v2", headers={"If-Match": etag, "If": f"({token})"})
        assert put.status_code == 204
        stale = c.put("notes.txt", content=b"v3", headers={"If-Match": etag, "If": f"({token})"})
        assert stale.status_code == 412
        assert c.request("UNLOCK", "notes.txt", headers={"Lock-Token": token}).status_code == 204
        assert c.get("notes.txt").content == b"v2"


@pytest.mark.parametrize("body", [None, b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'])
def test_mobile_app_allprop_listing(live_server: LiveServer, instance_dir: TestInstance, body: bytes | None) -> None:
    with client(live_server, instance_dir, MOBILE) as c:
        c.request("MKCOL", "Scans/")
        c.put("Scans/ordonnance.jpg", content=b"\xff\xd8\xff" + b"0" * 100)
        response = c.request("PROPFIND", "Scans/", headers={"Depth": "1"}, content=body or b"")
        assert response.status_code == 207
        entries = {r.findtext("{DAV:}href"): r for r in ET.fromstring(response.content).findall("{DAV:}response")}
        assert set(entries) == {"/dav/Scans/", "/dav/Scans/ordonnance.jpg"}
        props = {p.tag for p in entries["/dav/Scans/ordonnance.jpg"].find("{DAV:}propstat/{DAV:}prop")}
        for expected in (
            "getcontentlength",
            "getlastmodified",
            "getetag",
            "getcontenttype",
            "resourcetype",
            "displayname",
        ):
            assert "{DAV:}" + expected in props
        assert entries["/dav/Scans/ordonnance.jpg"].findtext(".//{DAV:}getcontenttype") == "image/jpeg"
