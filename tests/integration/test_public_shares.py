"""A link share over WebDAV at /public/<token>/, on a real server, with httpx and rclone.

Basic with any user name and the share's password; the mode applies (read-only refuses writes, a
drop box takes new files and reveals nothing); unknown, revoked and expired links get one 404;
wrong passwords are throttled; every request is audited as the share's, and the token is never
logged.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from server.db.models import audit_t
from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from server.tree import Entry
from tests.conftest import require_client

PASSWORD = "Tulipe ocre 2026!"
LOCK_BODY = (
    b'<?xml version="1.0"?><lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope>'
    b"<locktype><write/></locktype><owner>patient</owner></lockinfo>"
)
PROPFIND_BODY = b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><displayname/><getcontentlength/></prop></propfind>'


@dataclass
class Shared:
    server: LiveServer
    folder: Entry
    token: str
    share_id: int

    @property
    def url(self) -> str:
        return f"{self.server.url}/public/{self.token}/"

    def client(self, password: str = PASSWORD, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=("anyone", password), timeout=30, **kwargs)


@pytest.fixture
def share(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> Iterator[Callable[..., Shared]]:
    server = start_server(make_test_instance())
    inst = server.instance
    alice = inst.accounts.create_user("alice", TEST_PASSWORD)
    folder = inst.tree.mkdir(inst.tree.get(alice.root_id), "Dupont Jeanne")
    for name, data in (("irm.pdf", b"%PDF-irm"), ("compte-rendu.txt", b"bilan")):
        upload = inst.tree.upload(folder, name, expected_size=len(data))
        upload.write(data)
        upload.finish()
    inst.tree.mkdir(folder, "Examens")

    def make(mode: str = "read", **kwargs: Any) -> Shared:
        made = inst.shares.create(alice.principal(), folder, email="p@example.org", password=PASSWORD, mode=mode,
                                  **kwargs)  # fmt: skip
        assert made.token is not None
        return Shared(server, folder, made.token, made.info.id)

    yield make


def share_audit(s: Shared) -> list[Any]:
    """The audit rows of a share's requests."""
    inst = s.server.instance
    assert inst.flush_audit()
    with inst.db.read() as tx:
        columns = (audit_t.c.surface, audit_t.c.org_id, audit_t.c.action, audit_t.c.outcome)
        return tx.all(select(*columns).where(audit_t.c.principal == f"share:{s.share_id}"))


def propfind(client: httpx.Client, path: str = "", depth: str = "1") -> httpx.Response:
    return client.request("PROPFIND", path, headers={"Depth": depth}, content=PROPFIND_BODY)


def test_a_read_only_link_lists_and_reads_and_refuses_every_change(share: Callable[..., Shared]) -> None:
    s = share()
    with s.client() as dav:
        listing = propfind(dav)
        assert listing.status_code == 207
        assert "irm.pdf" in listing.text and "Examens" in listing.text and f"/public/{s.token}/irm.pdf" in listing.text
        got = dav.get("irm.pdf")
        assert got.status_code == 200 and got.content == b"%PDF-irm"
        assert (
            got.headers["Content-Disposition"] == "attachment" and "sandbox" in got.headers["Content-Security-Policy"]
        )
        assert dav.get("irm.pdf", headers={"Range": "bytes=1-3"}).content == b"PDF"
        for response in (
            dav.put("nouveau.txt", content=b"x"),
            dav.put("irm.pdf", content=b"overwrite"),
            dav.delete("irm.pdf"),
            dav.request("MKCOL", "Nouveau"),
            dav.request("MOVE", "irm.pdf", headers={"Destination": f"{s.url}renamed.pdf"}),
            dav.delete(""),
        ):
            assert response.status_code == 403, (response.request.method, response.status_code)
        assert dav.get("irm.pdf").content == b"%PDF-irm"
    names = sorted(e.name for e in s.server.instance.tree.children(s.folder))
    assert names == ["Examens", "compte-rendu.txt", "irm.pdf"]


def test_a_link_opens_its_share_only_and_with_its_password_only(share: Callable[..., Shared]) -> None:
    s, other = share(), share()
    with s.client() as dav:
        # Another share's token in a Destination, or a climb out of the share: nothing.
        moved = dav.request("COPY", "irm.pdf", headers={"Destination": f"{other.url}copy.pdf"})
        assert moved.status_code in (403, 409, 502)
        climb = dav.get(f"{s.server.url}/public/{s.token}/%2e%2e/%2e%2e/dav/")  # encoded: the client keeps it
        assert climb.status_code == 400
    with httpx.Client(timeout=30) as anonymous:
        assert anonymous.get(s.url + "irm.pdf").status_code == 401
        assert anonymous.get(s.url + "irm.pdf", auth=("anyone", "wrong")).status_code == 401
        unknown = anonymous.get(f"{s.server.url}/public/{'a' * 40}/irm.pdf", auth=("anyone", PASSWORD))
        assert unknown.status_code == 404
        assert anonymous.get(f"{s.server.url}/public/", auth=("anyone", PASSWORD)).status_code == 404


def test_revocation_and_expiry_apply_to_the_next_request(share: Callable[..., Shared]) -> None:
    s, later = share(), share()
    inst = s.server.instance
    with s.client() as dav, later.client() as dav2:
        assert dav.get("irm.pdf").status_code == 200
        alice = inst.accounts.get("alice")
        inst.shares.revoke(alice.principal(), s.share_id)
        gone = dav.get("irm.pdf")
        assert gone.status_code == 404 and gone.text == "Not found / Introuvable\n"
        assert dav2.get("irm.pdf").status_code == 200
        real_clock = inst.shares.clock
        inst.shares.clock = lambda: real_clock() + 8 * 86400  # past the default 7 days
        assert dav2.get("irm.pdf").status_code == 404


def test_wrong_passwords_are_throttled_per_share(share: Callable[..., Shared]) -> None:
    s = share()
    with httpx.Client(timeout=30) as client:
        statuses = [client.get(s.url, auth=("anyone", f"guess-{n}")).status_code for n in range(12)]
        assert statuses[0] == 401 and 429 in statuses
        throttled = client.get(s.url, auth=("anyone", PASSWORD))
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1


def test_a_read_write_link_adds_changes_and_removes_inside_never_the_shared_folder(
    share: Callable[..., Shared],
) -> None:
    s = share("write")
    with s.client() as dav:
        assert dav.put("Examens/scanner.dcm", content=b"DICM").status_code == 201
        assert dav.put("compte-rendu.txt", content=b"bilan v2").status_code == 204
        assert dav.request("MOVE", "irm.pdf", headers={"Destination": f"{s.url}Examens/irm.pdf"}).status_code == 201
        assert dav.delete("Examens/scanner.dcm").status_code == 204
        assert dav.request("MKCOL", "Courriers").status_code == 201
        assert dav.delete("").status_code == 403  # the shared folder itself stays the owner's
    tree = s.server.instance.tree
    examens = tree.resolve_below(s.folder.id, s.folder.org_id, ["Examens"])[0]
    assert [e.name for e in tree.children(examens)] == ["irm.pdf"]
    with tree.open(tree.resolve_below(s.folder.id, s.folder.org_id, ["compte-rendu.txt"])[0]) as reader:
        assert reader.read() == b"bilan v2"


def test_a_drop_box_takes_new_files_and_reveals_nothing(share: Callable[..., Shared]) -> None:
    s = share("dropbox")
    with s.client() as dav:
        root = propfind(dav)
        assert root.status_code == 207 and root.text.lower().count("<d:response>") == 1  # the folder, empty
        assert "irm.pdf" not in root.text and "Examens" not in root.text
        for response in (
            dav.get("irm.pdf"),
            dav.head("irm.pdf"),
            dav.get("irm.pdf", headers={"Range": "bytes=0-1"}),
            propfind(dav, "irm.pdf", depth="0"),
            propfind(dav, "Examens"),
            dav.request("COPY", "irm.pdf", headers={"Destination": f"{s.url}copie.pdf"}),
            dav.request("MOVE", "irm.pdf", headers={"Destination": f"{s.url}autre.pdf"}),
            dav.delete("irm.pdf"),
            dav.get("nothing-here.pdf"),  # the same answer whether the name exists or not
            dav.delete("nothing-here.pdf"),
        ):
            assert response.status_code == 404, (response.request.method, response.request.url, response.status_code)
        assert dav.request("MKCOL", "Dossier").status_code == 403
        assert dav.get("").status_code in (403, 404, 405)
        assert dav.put("ordonnance.pdf", content=b"new").status_code == 201
        assert dav.put("irm.pdf", content=b"never over the owner's file").status_code == 201
        assert dav.put("irm.pdf", content=b"again").status_code == 201
        assert s.server.instance.shares.get(s.share_id).uploads == 3  # the owner's overview counts them
        assert dav.put("Examens/x.pdf", content=b"inside a sub-folder").status_code in (403, 404, 409)
        # What the recipient just sent shows, under the name sent; the owner's files never do.
        listed = propfind(dav).text
        assert "ordonnance.pdf" in listed and "irm.pdf" in listed and "compte-rendu" not in listed
        assert dav.get("irm.pdf").content == b"again"  # the last one sent under that name, not the owner's
        assert dav.get("compte-rendu.txt").status_code == 404
    tree = s.server.instance.tree
    names = {e.name: e for e in tree.children(s.folder)}
    assert {"ordonnance.pdf", "irm.pdf", "irm (2).pdf", "irm (3).pdf"} <= set(names)
    with tree.open(names["irm.pdf"]) as reader:
        assert reader.read() == b"%PDF-irm"  # the owner's file is intact
    with tree.open(names["irm (2).pdf"]) as reader:
        assert reader.read() == b"never over the owner's file"


def test_every_request_is_audited_as_the_shares_and_the_token_is_never_logged(
    share: Callable[..., Shared], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = share()
    with s.client() as dav:
        assert dav.get("irm.pdf").status_code == 200
        assert dav.put("x.txt", content=b"x").status_code == 403
    rows = share_audit(s)
    assert [(r.surface, r.action, r.outcome) for r in rows][-2:] == [
        ("share", "file.read", "ok"),
        ("share", "file.write", "denied"),
    ]
    server_lines = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records
                             if not r.name.startswith(("httpx", "httpcore")))  # fmt: skip  # the client logs its URLs
    assert "share:" in server_lines  # the request log names the share
    assert s.token not in server_lines and PASSWORD not in server_lines and "irm.pdf" not in server_lines


def test_rclone_syncs_a_read_only_link_down_and_fills_a_drop_box(share: Callable[..., Shared], tmp_path: Path) -> None:
    binary = require_client("rclone")
    obscured = subprocess.run([binary, "obscure", PASSWORD], capture_output=True, text=True, check=True).stdout.strip()

    def rclone(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "RCLONE_CONFIG_LINK_TYPE": "webdav",
            "RCLONE_CONFIG_LINK_URL": url,
            "RCLONE_CONFIG_LINK_VENDOR": "other",
            "RCLONE_CONFIG_LINK_USER": "patient",
            "RCLONE_CONFIG_LINK_PASS": obscured,
        }
        return subprocess.run(
            [binary, "--config", "/dev/null", "--retries", "1", "--low-level-retries", "1", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    reader = share()
    down = tmp_path / "down"
    result = rclone(reader.url, "copy", "link:", str(down))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (down / "irm.pdf").read_bytes() == b"%PDF-irm" and (down / "compte-rendu.txt").read_bytes() == b"bilan"
    refused = rclone(reader.url, "copyto", str(down / "irm.pdf"), "link:copie.pdf")
    assert refused.returncode != 0

    box = share("dropbox")
    up = tmp_path / "up"
    up.mkdir()
    (up / "resultats.pdf").write_bytes(os.urandom(3 * 1024 * 1024))
    result = rclone(
        box.url, "copyto", str(up / "resultats.pdf"), "link:resultats.pdf", "--ignore-checksum", "--no-check-dest"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stored = box.server.instance.tree.resolve_below(box.folder.id, box.folder.org_id, ["resultats.pdf"])
    assert stored and stored[0].size == 3 * 1024 * 1024


def test_a_drop_box_never_lets_a_recipient_touch_or_probe_the_owners_files(share: Callable[..., Shared]) -> None:
    s = share("dropbox")
    tree = s.server.instance.tree
    with s.client() as dav:
        assert dav.put("mine.txt", content=b"EVIL").status_code == 201
        for method in ("COPY", "MOVE"):  # over the owner's file, or over a folder: one 404 whatever the target
            for target in ("irm.pdf", "Examens", "free-name.pdf"):
                response = dav.request(method, "mine.txt", headers={"Destination": f"{s.url}{target}"})
                assert response.status_code == 404, (method, target, response.status_code)
        assert dav.delete("mine.txt").status_code == 404
        assert dav.put("irm.pdf", content=b"sent").status_code == 201  # stored as "irm (2).pdf"
        assert dav.get("irm (2).pdf").status_code == 404  # the stored name says nothing
        assert dav.get("irm.pdf").content == b"sent"  # the name sent shows the file sent

        # The owner moves the upload away, or rewrites it: it is no longer the recipient's to see.
        names = {e.name: e for e in tree.children(s.folder)}
        examens = names["Examens"]
        tree.move(names["mine.txt"], examens, "mine.txt", overwrite=False)
        assert dav.get("mine.txt").status_code == 404
        upload = tree.upload(s.folder, "irm (2).pdf", expected_size=5)
        upload.write(b"owner")
        upload.finish()
        assert dav.get("irm.pdf").status_code == 404
        listing = propfind(dav).text
        assert "mine.txt" not in listing and "irm" not in listing and "quota" not in listing
    with tree.open(tree.resolve_below(s.folder.id, s.folder.org_id, ["irm.pdf"])[0]) as reader:
        assert reader.read() == b"%PDF-irm"
    assert [e.name for e in tree.children(tree.resolve_below(s.folder.id, s.folder.org_id, ["Examens"])[0])] == [
        "mine.txt"
    ]


def test_a_link_shows_no_quota_and_locks_in_its_own_space(share: Callable[..., Shared]) -> None:
    s = share("write")
    with s.client() as dav:
        allprop = dav.request("PROPFIND", "", headers={"Depth": "0"})
        assert allprop.status_code == 207 and "quota" not in allprop.text
        locked = dav.request("LOCK", "irm.pdf", headers={"Timeout": "Second-60"}, content=LOCK_BODY)
        assert locked.status_code == 200, locked.text
        token = locked.headers["Lock-Token"]
        assert dav.put("irm.pdf", content=b"v2", headers={"If": f"({token})"}).status_code == 204
        assert dav.request("UNLOCK", "irm.pdf", headers={"Lock-Token": token}).status_code == 204


def test_wrong_link_passwords_are_audited_for_the_organisation(share: Callable[..., Shared]) -> None:
    s = share()
    with httpx.Client(timeout=30) as client:
        assert client.get(s.url, auth=("anyone", "wrong")).status_code == 401
    rows = share_audit(s)
    assert [(r.surface, r.action) for r in rows] == [("share", "auth.failed")] and rows[0].org_id == s.folder.org_id


def test_a_link_to_group_folder_content_locks_without_touching_the_groups_lock_space(
    share: Callable[..., Shared],
) -> None:
    s = share()  # the server and alice
    inst = s.server.instance
    olga = inst.accounts.create_user("olga", TEST_PASSWORD, role="org_admin")
    group = inst.tree.create_group_folder(olga.org_id, "Secrétariat", owner_id=olga.id)
    upload = inst.tree.upload(group, "planning.ods", expected_size=2)
    upload.write(b"ok")
    upload.finish()
    made = inst.shares.create(olga.principal(), group, email="p@example.org", password=PASSWORD, mode="write")
    url = f"{s.server.url}/public/{made.token}/"
    with httpx.Client(base_url=url, auth=("anyone", PASSWORD), timeout=30) as dav:
        locked = dav.request("LOCK", "planning.ods", headers={"Timeout": "Second-60"}, content=LOCK_BODY)
        assert locked.status_code == 200, locked.text
        assert (
            dav.request("UNLOCK", "planning.ods", headers={"Lock-Token": locked.headers["Lock-Token"]}).status_code
            == 204
        )


def test_a_link_with_a_download_limit_is_used_up_by_whole_files_not_by_ranges(share: Callable[..., Shared]) -> None:
    s = share(max_downloads=2)
    shares = s.server.instance.shares
    with s.client() as dav:
        assert dav.get("").status_code != 200  # a folder is no download: given back
        assert dav.get("irm.pdf").content == b"%PDF-irm"
        assert dav.get("irm.pdf", headers={"Range": "bytes=3-"}).status_code == 206  # a drive's later range
        assert dav.get("missing.pdf").status_code == 404  # nothing sent: given back
        assert shares.get(s.share_id).downloads == 1
        assert dav.get("compte-rendu.txt", headers={"Range": "bytes=0-2"}).content == b"bil"  # from byte 0
        info = shares.get(s.share_id)
        assert info.downloads == 2 and info.state(time.time()) == "used up" and info.last_access_at is not None
        assert dav.get("irm.pdf").status_code == 404  # used up: a dead link like any other
        assert propfind(dav).status_code == 404
    assert shares.get(s.share_id).downloads == 2


def test_a_share_id_is_never_given_again(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> None:
    """A share goes with its node; the next share must not take its id, which names it to the throttle, the
    cache of verified passwords, its mail jobs, its recipients' sessions and the audit log."""
    server = start_server(make_test_instance())
    inst = server.instance
    alice = inst.accounts.create_user("alice", TEST_PASSWORD)
    root = inst.tree.get(alice.root_id)
    first_folder = inst.tree.mkdir(root, "Premier")
    first = inst.shares.create(alice.principal(), first_folder, email="a@example.org", password=PASSWORD)
    with httpx.Client(base_url=f"{server.url}/public/{first.token}/", auth=("x", PASSWORD), timeout=30) as old:
        assert propfind(old).status_code == 207  # its password verified, and remembered
    inst.tree.delete(first_folder)  # the share goes with it
    second = inst.shares.create(alice.principal(), inst.tree.mkdir(root, "Second"), email="b@example.org",
                                password="Un autre mot de passe 2026")  # fmt: skip
    assert second.info.id != first.info.id
    with httpx.Client(base_url=f"{server.url}/public/{second.token}/", auth=("x", PASSWORD), timeout=30) as new:
        assert propfind(new).status_code == 401  # not the first link's password
