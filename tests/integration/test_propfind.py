"""MedDAV's own PROPFIND rendering says exactly what wsgidav's would.

wsgidav stays the reference: a request carrying an ``If`` header that always
holds (``(Not <DAV:no-lock>)``) is answered by wsgidav itself, the same
request without it by ``server.dav.propfind``; both answers are compared
property by property.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from server.testing import LiveServer

ALWAYS_TRUE_IF = "(Not <DAV:no-lock>)"
VOLATILE = {"{DAV:}quota-available-bytes"}  # free disk space moves between two requests


def _shape(element: ET.Element) -> Any:
    if len(element) == 0:
        return (element.text or "").strip()
    return tuple(sorted((child.tag, _shape(child)) for child in element))


def normalise(body: bytes) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for response in ET.fromstring(body).findall("{DAV:}response"):
        href = response.findtext("{DAV:}href") or ""
        statuses: dict[str, dict[str, Any]] = {}
        for propstat in response.findall("{DAV:}propstat"):
            status = (propstat.findtext("{DAV:}status") or "").split()[1]
            props = statuses.setdefault(status, {})
            for prop in propstat.find("{DAV:}prop") or []:
                props[prop.tag] = None if prop.tag in VOLATILE else _shape(prop)
        out[href] = statuses
    return out


@pytest.fixture
def populated(dav: httpx.Client) -> httpx.Client:
    dav.request("MKCOL", "folder/")
    dav.request("MKCOL", "folder/sub/")
    dav.put("folder/a.txt", content=b"hello")
    dav.put("folder/é b.pdf", content=b"%PDF")
    patch = (
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:" '
        b'xmlns:W="urn:schemas-microsoft-com:">'
        b"<D:set><D:prop><Z:note>a &amp; b</Z:note><Z:nested><Z:x>1</Z:x></Z:nested>"
        b"<W:Win32FileAttributes>00000020</W:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"
    )
    assert dav.request("PROPPATCH", "folder/a.txt", content=patch).status_code == 207
    lockinfo = (
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
        b"<D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"
    )
    assert dav.request("LOCK", "folder/é b.pdf", headers={"Timeout": "Second-600"}, content=lockinfo).status_code == 200
    return dav


BODIES = {
    "allprop": b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
    "empty": b"",
    "propname": b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
    "named": (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:prop>'
        b"<D:getetag/><D:getcontentlength/><D:resourcetype/><D:displayname/><D:lockdiscovery/>"
        b"<Z:note/><Z:missing/><D:getcontentlanguage/></D:prop></D:propfind>"
    ),
}


@pytest.mark.parametrize("depth", ["0", "1"])
@pytest.mark.parametrize("body", list(BODIES))
def test_same_answer_as_wsgidav(populated: httpx.Client, live_server: LiveServer, body: str, depth: str) -> None:
    for path in ("folder/", "folder/a.txt", "folder/é b.pdf"):
        mine = populated.request("PROPFIND", path, headers={"Depth": depth}, content=BODIES[body])
        theirs = populated.request(
            "PROPFIND", path, headers={"Depth": depth, "If": ALWAYS_TRUE_IF}, content=BODIES[body]
        )
        assert mine.status_code == theirs.status_code == 207
        assert mine.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')  # rendered by MedDAV
        assert theirs.content.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")  # rendered by wsgidav
        assert normalise(mine.content) == normalise(theirs.content), (path, body, depth)
