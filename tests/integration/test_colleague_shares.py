"""An item shared with a colleague, at the root of the colleague's drive, on a real server.

alice (Cabinet Martin) shares with bob, of the same organisation; eve belongs to
another one.  bob sees the item at the root of his drive, under its own name or,
when he has an item of that name, under ``name (2)``; the mode applies (read-only
refuses every change, read-write adds, modifies and deletes inside but never
removes or renames the shared item); what bob stores there counts against
alice's quota; locks of the owner and the colleague conflict; revocation and
expiry apply to the very next request.  Real clients: httpx, litmus, rclone.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import httpx
import pytest
from sqlalchemy import event

from server.accounts import UserInfo
from server.drive import Drive, Received
from server.sharing import ShareInfo
from server.testing import LiveServer, TestInstance
from server.tree import Entry
from tests.conftest import require_client

PASSWORD = "a long enough passphrase"
FOLDER = "Dupont Jeanne"
LOCKINFO = (
    b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"
)


@dataclass
class Office:
    server: LiveServer
    alice: UserInfo
    bob: UserInfo
    folder: Entry  # alice's "Dupont Jeanne", with irm.pdf and Examens/
    file: Entry  # alice's "ordonnance.pdf", at her root
    clients: dict[str, httpx.Client]

    def __getitem__(self, name: str) -> httpx.Client:
        return self.clients[name]

    def share(self, node: Entry, mode: str = "read", **kwargs: Any) -> ShareInfo:
        made = self.server.instance.shares.create(self.alice.principal(), node, colleague=self.bob.id, mode=mode,
                                                  **kwargs)  # fmt: skip
        return made.info


@pytest.fixture
def office(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> Iterator[Office]:
    server = start_server(make_test_instance())
    inst = server.instance
    accounts, tree = inst.accounts, inst.tree
    alice = accounts.create_user("alice", PASSWORD)
    bob = accounts.create_user("bob", PASSWORD)
    accounts.create_user("eve", PASSWORD, org_id=accounts.create_organisation("Clinique B"))
    root = tree.get(alice.root_id)
    folder = tree.mkdir(root, FOLDER)
    for parent, name, data in ((folder, "irm.pdf", b"%PDF-irm"), (root, "ordonnance.pdf", b"%PDF-ordo")):
        upload = tree.upload(parent, name, expected_size=len(data))
        upload.write(data)
        file = upload.finish()
    tree.mkdir(folder, "Examens")
    clients = {
        name: httpx.Client(base_url=server.dav_url, auth=(name, PASSWORD), timeout=30)
        for name in ("alice", "bob", "eve")
    }
    yield Office(server, alice, bob, folder, file, clients)
    for client in clients.values():
        client.close()


def listing(client: httpx.Client, path: str = "") -> dict[str, str]:
    """name -> displayname of the members of a folder, by PROPFIND Depth 1."""
    response = client.request("PROPFIND", path, headers={"Depth": "1"})
    assert response.status_code == 207, response.status_code
    base = unquote(urlparse(str(response.url)).path).rstrip("/")
    names = {}
    for item in ET.fromstring(response.content).findall("{DAV:}response"):
        href = unquote(urlparse(item.findtext("{DAV:}href") or "").path).rstrip("/")
        if href != base:
            names[href.rsplit("/", 1)[-1]] = item.findtext(".//{DAV:}displayname") or ""
    return names


def test_a_shared_item_shows_at_the_root_of_the_colleagues_drive_only(office: Office) -> None:
    assert FOLDER not in listing(office["bob"])
    office.share(office.folder)
    office.share(office.file)
    assert listing(office["bob"]) == {FOLDER: FOLDER, "ordonnance.pdf": "ordonnance.pdf"}
    assert set(listing(office["bob"], FOLDER + "/")) == {"irm.pdf", "Examens"}
    assert office["bob"].get(f"{FOLDER}/irm.pdf").content == b"%PDF-irm"
    assert office["bob"].get("ordonnance.pdf").content == b"%PDF-ordo"
    # Nobody else sees it: not eve, and alice sees her own items once.
    assert listing(office["eve"]) == {}
    assert office["eve"].get(f"{FOLDER}/irm.pdf").status_code == 404
    assert set(listing(office["alice"])) == {FOLDER, "ordonnance.pdf"}
    # The folder's quota is alice's business, not bob's.
    quota = b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><quota-used-bytes/></prop></propfind>'
    answer = office["bob"].request("PROPFIND", FOLDER + "/", headers={"Depth": "0"}, content=quota)
    assert answer.status_code == 207 and "404 Not Found" in answer.text


def test_a_name_clash_shows_both_items_never_hiding_one(office: Office) -> None:
    bobs = office.server.instance.tree.mkdir(office.server.instance.tree.get(office.bob.root_id), FOLDER)
    assert office["bob"].put(f"{FOLDER}/mine.txt", content=b"bob's").status_code == 201
    office.share(office.folder)
    second = office.share(office.folder, mode="write")  # the same item twice: two entries
    mine, read, write = FOLDER, f"{FOLDER} (alice)", f"{FOLDER} (alice) (2)"
    assert listing(office["bob"]) == {mine: mine, read: read, write: write}
    assert set(listing(office["bob"], mine + "/")) == {"mine.txt"}  # bob's own keeps its name
    assert set(listing(office["bob"], read + "/")) == {"irm.pdf", "Examens"}
    assert office["bob"].put(f"{read}/x.txt", content=b"x").status_code == 403  # the read-only share
    assert office["bob"].put(f"{write}/x.txt", content=b"x").status_code == 201  # the read-write one
    assert office["alice"].get(f"{FOLDER}/x.txt").content == b"x"
    assert [e.name for e in office.server.instance.tree.children(bobs)] == ["mine.txt"]
    # Named after its owner: what others share, or end, does not rename it.
    office.server.instance.shares.revoke(office.alice.principal(), second.id)
    assert set(listing(office["bob"])) == {mine, read}


def test_the_statements_of_a_colleagues_request_do_not_grow_with_the_shares_received(office: Office) -> None:
    """What bob received is read in a few statements, however many shares: their nodes in one, which of
    their names his root holds in another, the group folders' names in a third.  A clash with his own items
    or a group folder still gets the owner's name, as before."""
    inst = office.server.instance
    tree, alice_root = inst.tree, inst.tree.get(office.alice.root_id)
    tree.mkdir(tree.get(office.bob.root_id), "Patient 0")  # bob's own, named like a shared one
    tree.create_group_folder(office.alice.org_id, "Patient 1", owner_id=office.alice.id)
    statements: list[str] = []

    def counted() -> tuple[list[str], int]:
        """The names bob's root shows for what he received, and the statements it took (in a thread of its
        own, so its connection is a new one, traced from its start)."""
        found: dict[str, Received] = {}

        def read() -> None:
            found.update(Drive(tree, inst.shares, office.bob.principal(), time.time()).received())

        worker = threading.Thread(target=read, name="counted")
        statements.clear()
        worker.start()
        worker.join()
        return sorted(received.name for received in found.values()), len(statements)

    def trace(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if threading.current_thread().name == "counted":  # not a connection the audit writer opens meanwhile
            dbapi_connection.set_trace_callback(statements.append)

    for i in range(5):
        office.share(tree.mkdir(alice_root, f"Patient {i}"))
    event.listen(inst.db.engine, "checkout", trace)
    try:
        names, few = counted()
        assert names == ["Patient 0 (alice)", "Patient 1 (alice)", "Patient 2", "Patient 3", "Patient 4"]
        for i in range(5, 60):
            office.share(tree.mkdir(alice_root, f"Patient {i}"))
        names, many = counted()
    finally:
        event.remove(inst.db.engine, "checkout", trace)
    assert len(names) == 60 and "Patient 59" in names and "Patient 0 (alice)" in names
    assert many == few, (few, many)  # was 3 per share received


def test_a_long_name_that_clashes_is_shortened_not_refused(office: Office) -> None:
    tree = office.server.instance.tree
    long_name = "é" * 120 + ".pdf"  # 244 bytes
    upload = tree.upload(tree.get(office.alice.root_id), long_name, expected_size=1)
    upload.write(b"x")
    shared = upload.finish()
    tree.mkdir(tree.get(office.bob.root_id), long_name)
    office.share(shared)
    names = set(listing(office["bob"]))
    assert long_name in names and len(names) == 2
    shown = next(name for name in names if name != long_name)
    assert shown.endswith(" (alice).pdf") and len(shown.encode()) <= 255
    assert office["bob"].get(quote(shown)).content == b"x"


def test_read_only_refuses_every_change_and_changes_nothing(office: Office) -> None:
    office.share(office.folder)
    office.share(office.file)
    bob = office["bob"]
    target = f"{office.server.dav_url}{quote(FOLDER)}/renamed.pdf"
    for response in (
        bob.put(f"{FOLDER}/new.txt", content=b"x"),
        bob.put(f"{FOLDER}/irm.pdf", content=b"overwritten"),
        bob.put("ordonnance.pdf", content=b"overwritten"),
        bob.delete(f"{FOLDER}/irm.pdf"),
        bob.delete(FOLDER + "/"),
        bob.delete("ordonnance.pdf"),
        bob.request("MKCOL", f"{FOLDER}/Nouveau"),
        bob.request("MOVE", f"{FOLDER}/irm.pdf", headers={"Destination": target}),
        bob.request("COPY", "ordonnance.pdf", headers={"Destination": target}),
    ):
        assert response.status_code == 403, (response.request.method, response.request.url, response.status_code)
    patch = b'<?xml version="1.0"?><propertyupdate xmlns="DAV:" xmlns:Z="urn:x"><set><prop><Z:note>x</Z:note></prop>'
    patched = bob.request("PROPPATCH", f"{FOLDER}/irm.pdf", content=patch + b"</set></propertyupdate>")
    assert patched.status_code == 207 and "403 Forbidden" in patched.text  # per property (RFC 4918 9.2)
    assert office.server.instance.tree.properties([office.file.id]) == {}
    # Copying out into one's own drive is reading: allowed.
    copied = bob.request("COPY", f"{FOLDER}/irm.pdf", headers={"Destination": f"{office.server.dav_url}copie.pdf"})
    assert copied.status_code == 201 and bob.get("copie.pdf").content == b"%PDF-irm"
    assert office["alice"].get(f"{FOLDER}/irm.pdf").content == b"%PDF-irm"
    assert sorted(e.name for e in office.server.instance.tree.children(office.folder)) == ["Examens", "irm.pdf"]


def test_read_write_adds_modifies_and_deletes_inside_but_keeps_the_shared_item(office: Office) -> None:
    office.share(office.folder, mode="write")
    office.share(office.file, mode="write")
    bob, alice = office["bob"], office["alice"]
    assert bob.put(f"{FOLDER}/Examens/bilan.txt", content=b"bilan").status_code == 201
    assert bob.put(f"{FOLDER}/irm.pdf", content=b"%PDF-v2").status_code == 204
    assert bob.request("MKCOL", f"{FOLDER}/Courriers").status_code == 201
    destination = f"{office.server.dav_url}{quote(FOLDER)}/Courriers/bilan.txt"
    moved = bob.request("MOVE", f"{FOLDER}/Examens/bilan.txt", headers={"Destination": destination})
    assert moved.status_code == 201
    assert alice.get(f"{FOLDER}/Courriers/bilan.txt").content == b"bilan"
    assert alice.get(f"{FOLDER}/irm.pdf").content == b"%PDF-v2"
    assert bob.delete(f"{FOLDER}/Courriers").status_code == 204
    assert alice.get(f"{FOLDER}/Courriers/bilan.txt").status_code == 404
    # The shared file may be rewritten, never removed nor renamed; the shared folder neither.
    assert bob.put("ordonnance.pdf", content=b"%PDF-ordo-2").status_code == 204
    assert alice.get("ordonnance.pdf").content == b"%PDF-ordo-2"
    elsewhere = f"{office.server.dav_url}ailleurs"
    for response in (
        bob.delete(FOLDER + "/"),
        bob.delete("ordonnance.pdf"),
        bob.request("MOVE", FOLDER + "/", headers={"Destination": elsewhere + "/"}),
        bob.request("MOVE", "ordonnance.pdf", headers={"Destination": elsewhere + ".pdf"}),
    ):
        assert response.status_code == 403, (response.request.method, response.request.url, response.status_code)
    assert set(listing(alice)) == {FOLDER, "ordonnance.pdf"}
    # Nothing of it went to bob's own tree.
    inst = office.server.instance
    assert inst.tree.children(inst.tree.get(office.bob.root_id)) == []


def test_what_the_colleague_stores_counts_against_the_owners_quota(office: Office) -> None:
    inst = office.server.instance
    office.share(office.folder, mode="write")
    used, _ = inst.tree.usage(office.folder)
    inst.accounts.set_quota("alice", used + 100)
    assert office["bob"].put(f"{FOLDER}/small.txt", content=b"x" * 50).status_code == 201
    full = office["bob"].put(f"{FOLDER}/big.bin", content=b"x" * 200)
    assert full.status_code == 507
    assert office["alice"].get(f"{FOLDER}/big.bin").status_code == 404
    assert inst.tree.usage(office.folder)[0] == used + 50
    assert inst.tree.usage(inst.tree.get(office.bob.root_id))[0] == 0


def test_the_owner_and_the_colleague_lock_the_same_document(office: Office) -> None:
    office.share(office.folder, mode="write")
    alice, bob = office["alice"], office["bob"]
    locked = alice.request("LOCK", f"{FOLDER}/irm.pdf", headers={"Timeout": "Second-600"}, content=LOCKINFO)
    assert locked.status_code == 200
    token = locked.headers["Lock-Token"]
    assert bob.put(f"{FOLDER}/irm.pdf", content=b"mine").status_code == 423
    assert bob.delete(f"{FOLDER}/irm.pdf").status_code in (403, 423)
    assert bob.request("LOCK", f"{FOLDER}/irm.pdf", content=LOCKINFO).status_code == 423
    assert alice.put(f"{FOLDER}/irm.pdf", content=b"alice", headers={"If": f"({token})"}).status_code == 204
    assert alice.request("UNLOCK", f"{FOLDER}/irm.pdf", headers={"Lock-Token": token}).status_code == 204
    # And the other way round: bob's lock holds alice off.
    mine = bob.request("LOCK", f"{FOLDER}/irm.pdf", headers={"Timeout": "Second-600"}, content=LOCKINFO)
    assert mine.status_code == 200
    assert alice.put(f"{FOLDER}/irm.pdf", content=b"alice again").status_code == 423
    assert (
        bob.put(f"{FOLDER}/irm.pdf", content=b"bob", headers={"If": f"({mine.headers['Lock-Token']})"}).status_code
        == 204
    )
    assert alice.get(f"{FOLDER}/irm.pdf").content == b"bob"


def test_locks_on_a_nested_shared_folder_name_only_what_the_colleague_sees(office: Office) -> None:
    """A shared folder deep in the owner's tree: the owner's locks above or on it show, in the colleague's
    drive, under the shared item's name; never the owner's folders above it (nor a 500)."""
    tree = office.server.instance.tree
    reports = tree.mkdir(tree.mkdir(tree.get(office.alice.root_id), "Patients HIV"), "Comptes rendus")
    upload = tree.upload(reports, "irm.pdf", expected_size=3)
    upload.write(b"irm")
    upload.finish()
    office.share(reports, mode="write")
    alice, bob = office["alice"], office["bob"]
    shown = "Comptes rendus"
    locked = alice.request("LOCK", "Patients%20HIV/Comptes%20rendus/irm.pdf", headers={"Timeout": "Second-600"},
                           content=LOCKINFO)  # fmt: skip
    assert locked.status_code == 200
    seen = bob.request("PROPFIND", f"{shown}/irm.pdf", headers={"Depth": "0"})
    assert seen.status_code == 207 and "lockdiscovery" in seen.text
    assert "Patients" not in seen.text and f"/dav/{quote(shown)}/irm.pdf" in seen.text
    assert bob.request("PROPFIND", f"{shown}/", headers={"Depth": "1"}).status_code == 207
    refused = bob.put(f"{shown}/irm.pdf", content=b"bob")
    assert refused.status_code == 423 and "Patients" not in refused.text
    token = locked.headers["Lock-Token"]
    assert (
        alice.request("UNLOCK", "Patients%20HIV/Comptes%20rendus/irm.pdf", headers={"Lock-Token": token}).status_code
        == 204
    )
    # A lock on a folder above the shared item covers it, and is named by it.
    above = alice.request("LOCK", "Patients%20HIV/", headers={"Timeout": "Second-600", "Depth": "infinity"},
                          content=LOCKINFO)  # fmt: skip
    assert above.status_code == 200
    blocked = bob.put(f"{shown}/irm.pdf", content=b"bob")
    assert blocked.status_code == 423 and "Patients" not in blocked.text
    alice.request("UNLOCK", "Patients%20HIV/", headers={"Lock-Token": above.headers["Lock-Token"]})
    # bob's own lock: he gets its token, and alice is held off until he unlocks.
    mine = bob.request("LOCK", f"{shown}/irm.pdf", headers={"Timeout": "Second-600"}, content=LOCKINFO)
    assert mine.status_code == 200 and "Patients" not in mine.text
    assert alice.put("Patients%20HIV/Comptes%20rendus/irm.pdf", content=b"alice").status_code == 423
    assert (
        bob.request("UNLOCK", f"{shown}/irm.pdf", headers={"Lock-Token": mine.headers["Lock-Token"]}).status_code == 204
    )
    assert alice.put("Patients%20HIV/Comptes%20rendus/irm.pdf", content=b"alice").status_code == 204


def test_revocation_and_expiry_apply_to_the_next_request(office: Office) -> None:
    inst = office.server.instance
    share = office.share(office.folder, mode="write")
    bob = office["bob"]
    assert bob.get(f"{FOLDER}/irm.pdf").status_code == 200
    inst.shares.revoke(office.alice.principal(), share.id)
    assert bob.get(f"{FOLDER}/irm.pdf").status_code == 404
    assert bob.put(f"{FOLDER}/new.txt", content=b"x").status_code in (404, 409)
    assert FOLDER not in listing(bob)

    now = [dt.datetime.now(dt.UTC).timestamp()]
    inst.shares.clock = lambda: now[0]
    zone = inst.shares.zone(office.alice.org_id)
    today = dt.datetime.fromtimestamp(now[0], zone).date()
    office.share(office.folder, expires_on=today)
    assert bob.get(f"{FOLDER}/irm.pdf").status_code == 200
    now[0] += 86400  # tomorrow: the share ended at midnight
    assert bob.get(f"{FOLDER}/irm.pdf").status_code == 404
    assert FOLDER not in listing(bob)


def test_a_disabled_owner_suspends_what_they_shared(office: Office) -> None:
    inst = office.server.instance
    office.share(office.folder)
    inst.accounts.set_disabled("alice", disabled=True)
    assert office["bob"].get(f"{FOLDER}/irm.pdf").status_code == 404
    assert FOLDER not in listing(office["bob"])


@pytest.mark.client
def test_litmus_passes_inside_a_read_write_share(office: Office, tmp_path: Path) -> None:
    litmus = require_client("litmus")
    office.share(office.folder, mode="write")
    url = f"{office.server.dav_url}{quote(FOLDER)}/Examens/"
    result = subprocess.run([litmus, "-k", url, "bob", PASSWORD], cwd=tmp_path, capture_output=True,
                            encoding="utf-8", errors="replace", timeout=600)  # fmt: skip
    output = result.stdout + result.stderr
    summaries = dict(re.findall(r"<- summary for `(\w+)': of \d+ tests run: \d+ passed, (\d+) failed", output))
    assert set(summaries) == {"basic", "copymove", "props", "locks", "http"}, output[-3000:]
    failures = [line for line in output.splitlines() if "FAIL" in line]
    assert all(count == "0" for count in summaries.values()), "\n".join(failures)
    assert result.returncode == 0


@pytest.mark.client
def test_rclone_syncs_a_shared_folder_down_and_up(office: Office, tmp_path: Path) -> None:
    binary = require_client("rclone")
    office.share(office.folder, mode="write")
    obscured = subprocess.run([binary, "obscure", PASSWORD], capture_output=True, text=True, check=True).stdout.strip()
    env = {
        **os.environ,
        "RCLONE_CONFIG_DRIVE_TYPE": "webdav",
        "RCLONE_CONFIG_DRIVE_URL": office.server.dav_url,
        "RCLONE_CONFIG_DRIVE_VENDOR": "other",
        "RCLONE_CONFIG_DRIVE_USER": "bob",
        "RCLONE_CONFIG_DRIVE_PASS": obscured,
    }

    def rclone(*args: str) -> None:
        result = subprocess.run([binary, "--config", "/dev/null", "--retries", "1", *args], env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]

    down = tmp_path / "down"
    rclone("sync", f"drive:{FOLDER}", str(down))
    assert (down / "irm.pdf").read_bytes() == b"%PDF-irm"
    (down / "Examens").mkdir()
    (down / "Examens" / "bilan.txt").write_bytes(b"bilan de bob")
    rclone("copy", str(down), f"drive:{FOLDER}")
    assert office["alice"].get(f"{FOLDER}/Examens/bilan.txt").content == b"bilan de bob"
    rclone("lsf", "drive:")  # the drive's root lists the shared folder beside bob's own items
