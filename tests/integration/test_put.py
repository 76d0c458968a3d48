"""Plain PUT answers exactly as wsgidav does, and stores the same bytes.

``server.dav.put`` answers a PUT with a Content-Length itself; with an ``If``
header that always holds (``(Not <DAV:no-lock>)``) wsgidav answers.  Each
case runs both ways on identical folders; statuses, ETag presence and the
content stored afterwards must agree.
"""

from __future__ import annotations

import itertools

import httpx
import pytest

from server.testing import LiveServer

ALWAYS_TRUE_IF = "(Not <DAV:no-lock>)"
_folders = itertools.count()

CASES = {
    "new file": ("new.txt", b"fresh"),
    "new version": ("a.txt", b"second version"),
    "empty file": ("empty.txt", b""),
    "onto a folder": ("sub/", b"x"),
    "missing folder": ("missing/x.txt", b"x"),
    "below a file": ("a.txt/x.txt", b"x"),
    "nfd name": ("e\u0301te\u0301.txt", b"nfd"),
    "large": ("big.bin", bytes(range(256)) * 4096),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_answer_as_wsgidav(dav: httpx.Client, live_server: LiveServer, case: str) -> None:
    name, body = CASES[case]
    outcomes = []
    bodies = []
    for extra in ({}, {"If": ALWAYS_TRUE_IF}):
        folder = f"put{next(_folders)}/"
        assert dav.request("MKCOL", folder).status_code == 201
        assert dav.request("MKCOL", folder + "sub/").status_code == 201
        assert dav.put(folder + "a.txt", content=b"first").status_code == 201
        response = dav.put(folder + name, content=body, headers=extra)
        bodies.append(response.content)
        stored = dav.get(folder + name)
        outcomes.append(
            (
                response.status_code,
                "etag" in response.headers,
                stored.status_code,
                stored.content if stored.status_code == 200 else None,
            )
        )
        if response.status_code in (201, 204):
            assert response.headers["etag"] == stored.headers["etag"]
    assert outcomes[0] == outcomes[1], case
    if outcomes[0][0] == 201:  # who answered: wsgidav renders a page for 201, MedDAV sends none
        assert bodies[0] == b"" and bodies[1] != b"", case


def test_quota_and_policy_hold_on_the_plain_path(live_server: LiveServer) -> None:
    accounts = live_server.instance.accounts
    accounts.create_user("carol", "carol's long passphrase", quota_bytes=1000)
    with httpx.Client(base_url=live_server.dav_url, auth=("carol", "carol's long passphrase")) as carol:
        assert carol.put("small.bin", content=b"x" * 600).status_code == 201
        assert carol.put("big.bin", content=b"x" * 600).status_code == 507
        assert carol.get("big.bin").status_code == 404
        assert carol.put("small.bin", content=b"y" * 900).status_code == 204  # replacing frees the old bytes
    assert accounts.get("carol").used_bytes == 900
