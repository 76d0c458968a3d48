"""Locks used against their owners: stolen tokens, absurd timeouts, unmapped URLs, forged refreshes.

A lock token is not a credential: knowing another user's token (every PROPFIND shows it) neither
unlocks nor writes through their lock.  Timeouts are capped whatever is asked; a LOCK of an unmapped
URL is a write, judged by the policy; a refresh needs the lock's own token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.security.conftest import Clinic

LOCKINFO = (
    b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>Dr Martin</D:owner></D:lockinfo>"
)
MAX_TIMEOUT = 604800  # [dav] max_lock_timeout_seconds, by default


def lock(client: httpx.Client, path: str, **headers: str) -> httpx.Response:
    return client.request("LOCK", path, headers={"Timeout": "Second-600", **headers}, content=LOCKINFO)


@pytest.fixture
def alices_lock(clinic: Clinic) -> Iterator[str]:
    """alice locks commun.txt in her folder "Commun", which bob may write (shared read-write) and a link too."""
    answer = lock(clinic["alice"], "Commun/commun.txt")
    assert answer.status_code == 200
    token = answer.headers["Lock-Token"].strip("<>")
    yield token
    assert (
        clinic["alice"].request("UNLOCK", "Commun/commun.txt", headers={"Lock-Token": f"<{token}>"}).status_code == 204
    )


def test_another_users_token_neither_unlocks_nor_writes(clinic: Clinic, alices_lock: str, unchanged: None) -> None:
    token = alices_lock
    bob = clinic["bob"]
    # bob sees the lock (lockdiscovery) and its token, as RFC 4918 has it...
    shown = bob.request("PROPFIND", "Commun/commun.txt", headers={"Depth": "0"})
    assert token.encode() in shown.content
    # ...but may not use it: not to unlock, not to write, not to refresh.
    assert bob.request("UNLOCK", "Commun/commun.txt", headers={"Lock-Token": f"<{token}>"}).status_code == 403
    assert bob.put("Commun/commun.txt", content=b"bob's", headers={"If": f"(<{token}>)"}).status_code in (412, 423)
    assert bob.delete("Commun/commun.txt", headers={"If": f"(<{token}>)"}).status_code in (412, 423)
    assert bob.request(
        "LOCK", "Commun/commun.txt", headers={"If": f"(<{token}>)", "Timeout": "Second-60"}
    ).status_code in (
        403,
        412,
        423,
    )
    # A link's recipient neither.
    with clinic.link("write") as link:
        assert link.request("UNLOCK", "commun.txt", headers={"Lock-Token": f"<{token}>"}).status_code in (403, 409)
        assert link.put("commun.txt", content=b"guest's", headers={"If": f"(<{token}>)"}).status_code in (412, 423)
    # Another organisation's user, on her own file, with alice's token: nothing of alice's is touched.
    mallory = clinic["mallory"]
    assert mallory.request("UNLOCK", "mallory.txt", headers={"Lock-Token": f"<{token}>"}).status_code in (403, 409)
    assert mallory.put("mallory.txt", content=b"mallory's", headers={"If": f"(<{token}>)"}).status_code == 412
    assert clinic["alice"].get("Commun/commun.txt").content == b"shared notes"


@pytest.mark.parametrize(
    "timeout",
    [
        "Second-99999999999999999999999999",
        "Infinite",
        "Infinite, Second-4100000000",
        "Second-4294967296",
        "Second--5",
        "Second-",
        "Second-1e9",
        "garbage",
        "Second-600" + ", Second-1" * 2000,
    ],
)
def test_lock_timeouts_are_capped_or_refused(clinic: Clinic, timeout: str) -> None:
    alice = clinic["alice"]
    answer = lock(alice, "ordonnance.pdf", Timeout=timeout)
    assert answer.status_code in (200, 400), (timeout, answer.status_code)
    if answer.status_code == 200:
        token = answer.headers["Lock-Token"]
        try:
            seconds = int(re.search(rb"Second-(\d+)", answer.content).group(1))  # type: ignore[union-attr]
            assert 0 <= seconds <= MAX_TIMEOUT, (timeout, seconds)  # "Second-1e9" reads as 1 s, now 0 left
        finally:
            assert alice.request("UNLOCK", "ordonnance.pdf", headers={"Lock-Token": token}).status_code in (204, 409)


def test_locking_unmapped_urls_is_a_write_the_policy_judges(clinic: Clinic, unchanged: None) -> None:
    bob = clinic["bob"]
    # Into the folder shared with bob read-only, into alice's nothing-shared space, under a missing folder.
    assert lock(bob, "Dupont%20Jeanne/new.txt").status_code == 403
    assert lock(bob, "Dupont%20Jeanne/Examens/new.txt").status_code == 403
    assert lock(bob, "no-such-folder/new.txt").status_code == 409
    assert lock(clinic["mallory"], "Dupont%20Jeanne/new.txt").status_code == 409  # she has no such folder
    with clinic.link("read") as reader:
        assert lock(reader, "new.txt").status_code == 403
    with clinic.link("dropbox") as box:
        assert lock(box, "d%C3%A9j%C3%A0%20l%C3%A0.pdf").status_code in (403, 404)  # what it holds: hidden


def test_locking_an_unmapped_url_where_allowed_makes_an_empty_file_its_owner_removes(clinic: Clinic) -> None:
    bob = clinic["bob"]
    answer = lock(bob, "Commun/verrou.txt")
    assert answer.status_code == 201
    token = answer.headers["Lock-Token"]
    try:
        assert clinic["alice"].put("Commun/verrou.txt", content=b"alice's").status_code == 423
    finally:
        assert bob.request("UNLOCK", "Commun/verrou.txt", headers={"Lock-Token": token}).status_code == 204
        assert bob.delete("Commun/verrou.txt").status_code == 204


def test_a_refresh_needs_the_locks_own_token(clinic: Clinic, alices_lock: str) -> None:
    alice = clinic["alice"]
    for wrong in ("opaquelocktoken:0x" + "0" * 64, "urn:uuid:00000000-0000-0000-0000-000000000000", "not-a-token"):
        refresh = alice.request("LOCK", "Commun/commun.txt", headers={"If": f"(<{wrong}>)", "Timeout": "Second-60"})
        assert refresh.status_code in (400, 412), (wrong, refresh.status_code)
    for malformed in ("(<", "<>", "(<" + "a" * 10_000 + ">)", "(Not <x>)"):
        refresh = alice.request("LOCK", "Commun/commun.txt", headers={"If": malformed, "Timeout": "Second-60"})
        assert 400 <= refresh.status_code < 500, (malformed, refresh.status_code)
    right = alice.request("LOCK", "Commun/commun.txt", headers={"If": f"(<{alices_lock}>)", "Timeout": "Second-60"})
    assert right.status_code == 200
