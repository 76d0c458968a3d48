"""Plain MKCOL, DELETE and MOVE answer exactly as wsgidav does.

``server.dav.namespace`` answers them itself; a request carrying an ``If``
header that always holds (``(Not <DAV:no-lock>)``) goes to wsgidav instead.
Each case runs both ways on identical trees, and the statuses and the trees
afterwards must agree.  A tree that holds a lock always goes to wsgidav, so
locks keep protecting what they cover.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import unquote, urlparse

import httpx
import pytest

from server.testing import LiveServer

ALWAYS_TRUE_IF = "(Not <DAV:no-lock>)"
_bases = itertools.count()

#: (method, path below the case's folder, headers; "{dest}" is the case folder's absolute URL)
CASES: dict[str, tuple[str, str, dict[str, str]]] = {
    "mkcol new": ("MKCOL", "new/", {}),
    "mkcol existing folder": ("MKCOL", "sub/", {}),
    "mkcol existing file": ("MKCOL", "a.txt", {}),
    "mkcol missing parent": ("MKCOL", "missing/x/", {}),
    "mkcol below a file": ("MKCOL", "a.txt/x/", {}),
    "mkcol depth 1": ("MKCOL", "d/", {"Depth": "1"}),
    "delete missing": ("DELETE", "nothing", {}),
    "delete file": ("DELETE", "a.txt", {}),
    "delete folder": ("DELETE", "sub/", {}),
    "delete folder depth 0": ("DELETE", "sub/", {"Depth": "0"}),
    "delete file depth 1": ("DELETE", "a.txt", {"Depth": "1"}),
    "move to new name": ("MOVE", "a.txt", {"Destination": "{dest}moved.txt"}),
    "move no overwrite": ("MOVE", "a.txt", {"Destination": "{dest}c.txt", "Overwrite": "F"}),
    "move overwrite": ("MOVE", "a.txt", {"Destination": "{dest}c.txt"}),
    "move overwrite lowercase": ("MOVE", "a.txt", {"Destination": "{dest}c.txt", "Overwrite": "t"}),
    "move bad overwrite": ("MOVE", "a.txt", {"Destination": "{dest}c.txt", "Overwrite": "X"}),
    "move folder into a folder": ("MOVE", "sub/", {"Destination": "{dest}other/sub/"}),
    "move folder without slash": ("MOVE", "sub/", {"Destination": "{dest}renamed"}),
    "move folder onto a file": ("MOVE", "sub/", {"Destination": "{dest}c.txt"}),
    "move folder below itself": ("MOVE", "sub/", {"Destination": "{dest}sub/inner/"}),
    "move onto itself": ("MOVE", "sub/", {"Destination": "{dest}sub/"}),
    "move folder depth 0": ("MOVE", "sub/", {"Destination": "{dest}x/", "Depth": "0"}),
    "move to missing folder": ("MOVE", "a.txt", {"Destination": "{dest}missing/a.txt"}),
    "move missing": ("MOVE", "nothing", {"Destination": "{dest}x"}),
    "move no destination": ("MOVE", "a.txt", {}),
    "move other host": ("MOVE", "a.txt", {"Destination": "http://elsewhere.example/dav/a.txt"}),
    "move outside the mount": ("MOVE", "a.txt", {"Destination": "{root}/elsewhere/a.txt"}),
    "move relative destination": ("MOVE", "a.txt", {"Destination": "{dest_path}rel.txt"}),
    "move with encoded name": ("MOVE", "a.txt", {"Destination": "{dest}%C3%A9t%C3%A9%20b.txt"}),
    "move nfd onto nfc": ("MOVE", "e\u0301te\u0301.txt", {"Destination": "{dest}\u00e9t\u00e9.txt"}),
}


def tree_of(dav: httpx.Client, folder: str) -> dict[str, object]:
    """The names below ``folder``, recursively, with file contents."""
    response = dav.request("PROPFIND", folder, headers={"Depth": "1"})
    assert response.status_code == 207
    out: dict[str, object] = {}
    base = unquote(urlparse(str(response.url)).path)
    for item in ET.fromstring(response.content).findall("{DAV:}response"):
        href = unquote(urlparse(item.findtext("{DAV:}href") or "").path)
        if href.rstrip("/") == base.rstrip("/"):
            continue
        name = href.rstrip("/").rsplit("/", 1)[-1]
        if item.find(".//{DAV:}resourcetype/{DAV:}collection") is not None:
            out[name + "/"] = tree_of(dav, folder + name + "/")
        else:
            out[name] = dav.get(folder + name).content
    return out


@pytest.fixture
def case_folder(dav: httpx.Client) -> Callable[[], str]:
    def make() -> str:
        folder = f"case{next(_bases)}/"
        assert dav.request("MKCOL", folder).status_code == 201
        for sub in ("sub/", "sub/deep/", "other/"):
            assert dav.request("MKCOL", folder + sub).status_code == 201
        for name, content in (
            ("a.txt", b"a"),
            ("c.txt", b"c"),
            ("sub/deep/b.txt", b"b"),
            ("e\u0301te\u0301.txt", b"e"),
        ):
            assert dav.put(folder + name, content=content).status_code == 201
        return folder

    return make


@pytest.mark.parametrize("case", list(CASES))
def test_same_answer_as_wsgidav(
    dav: httpx.Client, live_server: LiveServer, case_folder: Callable[[], str], case: str
) -> None:
    method, path, headers = CASES[case]
    outcomes = []
    for extra in ({}, {"If": ALWAYS_TRUE_IF}):
        folder = case_folder()
        absolute = live_server.dav_url + folder
        values = {"dest": absolute, "dest_path": urlparse(absolute).path, "root": live_server.url}
        sent = {k: v.format(**values).encode() for k, v in headers.items()}  # raw UTF-8 on the wire
        response = dav.request(method, folder + path, headers={**sent, **extra})
        outcomes.append((response.status_code, tree_of(dav, folder), response.content))
    (mine, mine_tree, mine_body), (theirs, theirs_tree, theirs_body) = outcomes
    assert (mine, mine_tree) == (theirs, theirs_tree), case
    if method == "MKCOL" and mine == 201:  # who answered: wsgidav renders a page for 201, MedDAV sends none
        assert mine_body == b"" and theirs_body != b"", case


LOCKINFO = (
    b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"
)


def test_a_lock_anywhere_in_the_tree_is_honoured(dav: httpx.Client, live_server: LiveServer) -> None:
    assert dav.request("MKCOL", "locked/").status_code == 201
    assert dav.put("locked/report.pdf", content=b"%PDF").status_code == 201
    lock = dav.request("LOCK", "locked/", headers={"Depth": "infinity", "Timeout": "Second-600"}, content=LOCKINFO)
    assert lock.status_code == 200
    token = lock.headers["Lock-Token"]
    move = {"Destination": live_server.dav_url + "locked/renamed.pdf"}
    assert dav.request("MKCOL", "locked/new/").status_code == 423
    assert dav.request("DELETE", "locked/report.pdf").status_code == 423
    assert dav.request("MOVE", "locked/report.pdf", headers=move).status_code == 423
    assert dav.request("DELETE", "locked/").status_code == 423
    assert tree_of(dav, "locked/") == {"report.pdf": b"%PDF"}
    # With the token, the same requests pass.
    assert dav.request("MOVE", "locked/report.pdf", headers={**move, "If": f"({token})"}).status_code == 201
    assert dav.request("UNLOCK", "locked/", headers={"Lock-Token": token}).status_code == 204
    # No lock left in the tree: the plain path again, same answers.
    assert dav.request("MKCOL", "locked/new/").status_code == 201
    assert dav.request("DELETE", "locked/").status_code == 204
