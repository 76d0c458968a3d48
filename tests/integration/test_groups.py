"""Organisations, roles and group folders, through WebDAV against a live server.

Organisation "Cabinet Martin" (the instance's first organisation) has olga (org
admin), bob and alice (members); "Clinique B" has eve.  The group folders
"Dossiers partagés" (members read and write) and "Protocoles" (read only)
belong to the first organisation.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlparse

import httpx
import pytest

from server.policy import ROLE_ORG_ADMIN
from server.testing import LiveServer

PASSWORD = "a long enough passphrase"
SHARED = "Dossiers partagés"
READ_ONLY = "Protocoles"
LOCKINFO = (
    b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"
)


@dataclass
class Org:
    server: LiveServer
    clients: dict[str, httpx.Client]

    def __getitem__(self, name: str) -> httpx.Client:
        return self.clients[name]


@pytest.fixture
def org(live_server: LiveServer) -> Iterator[Org]:
    accounts, tree = live_server.instance.accounts, live_server.instance.tree
    first = accounts.default_organisation()
    other = accounts.create_organisation("Clinique B")
    olga = accounts.create_user("olga", PASSWORD, org_id=first, role=ROLE_ORG_ADMIN)
    accounts.create_user("bob", PASSWORD, org_id=first)
    accounts.create_user("alice", PASSWORD, org_id=first)
    accounts.create_user("eve", PASSWORD, org_id=other)
    tree.create_group_folder(first, SHARED, owner_id=olga.id)
    tree.create_group_folder(first, READ_ONLY, owner_id=olga.id, member_access="ro")
    clients = {
        name: httpx.Client(base_url=live_server.dav_url, auth=(name, PASSWORD), timeout=30)
        for name in ("olga", "bob", "alice", "eve")
    }
    yield Org(live_server, clients)
    for client in clients.values():
        client.close()


def listing(client: httpx.Client, path: str = "") -> set[str]:
    response = client.request("PROPFIND", path, headers={"Depth": "1"})
    assert response.status_code == 207, response.status_code
    base = unquote(urlparse(str(response.url)).path).rstrip("/")
    names = set()
    for item in ET.fromstring(response.content).findall("{DAV:}response"):
        href = unquote(urlparse(item.findtext("{DAV:}href") or "").path).rstrip("/")
        if href != base:
            names.add(href.rsplit("/", 1)[-1])
    return names


def test_group_folders_appear_in_members_drives_only(org: Org) -> None:
    for member in ("olga", "bob", "alice"):
        assert {SHARED, READ_ONLY} <= listing(org[member]), member
    assert listing(org["eve"]) == set()
    assert org["eve"].request("PROPFIND", SHARED + "/", headers={"Depth": "0"}).status_code == 404


def test_members_share_the_content_of_a_read_write_group_folder(org: Org) -> None:
    assert org["bob"].put(f"{SHARED}/compte-rendu.pdf", content=b"%PDF shared").status_code == 201
    assert org["alice"].get(f"{SHARED}/compte-rendu.pdf").content == b"%PDF shared"
    assert org["alice"].request("MKCOL", f"{SHARED}/2026/").status_code == 201
    move = {"Destination": org.server.dav_url + quote(f"{SHARED}/2026/compte-rendu.pdf")}
    assert org["alice"].request("MOVE", f"{SHARED}/compte-rendu.pdf", headers=move).status_code == 201
    assert listing(org["bob"], f"{SHARED}/2026/") == {"compte-rendu.pdf"}
    assert org["eve"].get(f"{SHARED}/2026/compte-rendu.pdf").status_code == 404


def test_read_only_group_folder(org: Org) -> None:
    assert org["olga"].put(f"{READ_ONLY}/protocole.pdf", content=b"%PDF v1").status_code == 201
    assert org["bob"].get(f"{READ_ONLY}/protocole.pdf").content == b"%PDF v1"
    assert org["bob"].put(f"{READ_ONLY}/protocole.pdf", content=b"%PDF v2").status_code == 403
    assert org["bob"].put(f"{READ_ONLY}/new.pdf", content=b"x").status_code == 403
    assert org["bob"].delete(f"{READ_ONLY}/protocole.pdf").status_code == 403
    assert org["bob"].request("MKCOL", f"{READ_ONLY}/sub/").status_code == 403
    assert org["olga"].get(f"{READ_ONLY}/protocole.pdf").content == b"%PDF v1"


def test_the_group_folder_itself_is_not_renamed_or_deleted_from_a_drive(org: Org) -> None:
    for who in ("bob", "olga"):
        assert org[who].delete(f"{SHARED}/").status_code == 403
        move = {"Destination": org.server.dav_url + quote("renamed/")}
        assert org[who].request("MOVE", f"{SHARED}/", headers=move).status_code == 403
    assert SHARED in listing(org["bob"])


def test_a_private_item_cannot_take_a_group_folders_name(org: Org) -> None:
    assert org["bob"].request("MKCOL", f"{READ_ONLY}/").status_code == 405  # the name is taken
    assert org["bob"].put("notes.txt", content=b"x").status_code == 201
    move = {"Destination": org.server.dav_url + READ_ONLY}
    assert org["bob"].request("MOVE", "notes.txt", headers=move).status_code == 403  # would replace the group folder
    assert org["bob"].get("notes.txt").content == b"x"
    assert {READ_ONLY, "notes.txt"} <= listing(org["bob"])
    # eve's organisation has no such group folder: the name is free for her.
    assert org["eve"].request("MKCOL", f"{SHARED}/").status_code == 201


def test_admins_never_see_members_private_files(org: Org) -> None:
    assert org["bob"].put("private.pdf", content=b"%PDF private").status_code == 201
    assert org["olga"].get("private.pdf").status_code == 404
    assert "private.pdf" not in listing(org["olga"])


def test_usage_moves_between_private_tree_and_group_folder(org: Org) -> None:
    accounts, tree = org.server.instance.accounts, org.server.instance.tree
    group = tree.group_folder_named(accounts.default_organisation(), SHARED)
    assert group is not None
    assert org["bob"].put("report.pdf", content=b"x" * 1000).status_code == 201
    assert accounts.get("bob").used_bytes == 1000
    move = {"Destination": org.server.dav_url + quote(f"{SHARED}/report.pdf")}
    assert org["bob"].request("MOVE", "report.pdf", headers=move).status_code == 201
    assert accounts.get("bob").used_bytes == 0
    assert tree.usage(group)[0] == 1000
    # Now the group's: alice may delete it, and the group's usage drops.
    assert org["alice"].delete(f"{SHARED}/report.pdf").status_code == 204
    assert tree.usage(group)[0] == 0


def test_group_folder_quota(org: Org) -> None:
    tree, accounts = org.server.instance.tree, org.server.instance.accounts
    group = tree.group_folder_named(accounts.default_organisation(), SHARED)
    assert group is not None
    tree.set_group_folder(group, quota_bytes=1000)
    assert org["bob"].put(f"{SHARED}/small.bin", content=b"x" * 600).status_code == 201
    assert org["alice"].put(f"{SHARED}/big.bin", content=b"x" * 600).status_code == 507
    assert listing(org["bob"], f"{SHARED}/") == {"small.bin"}
    # A move into the group folder past its quota is refused and changes nothing.
    assert org["bob"].put("mine.bin", content=b"x" * 600).status_code == 201
    move = {"Destination": org.server.dav_url + quote(f"{SHARED}/mine.bin")}
    assert org["bob"].request("MOVE", "mine.bin", headers=move).status_code == 507
    assert org["bob"].get("mine.bin").status_code == 200


def test_a_members_lock_holds_for_the_other_members(org: Org) -> None:
    assert org["bob"].put(f"{SHARED}/rapport.docx", content=b"v1").status_code == 201
    lock = org["bob"].request("LOCK", f"{SHARED}/rapport.docx", content=LOCKINFO)
    assert lock.status_code == 200
    token = lock.headers["Lock-Token"]
    assert org["alice"].put(f"{SHARED}/rapport.docx", content=b"alice").status_code == 423
    assert org["alice"].delete(f"{SHARED}/rapport.docx").status_code == 423
    assert org["bob"].put(f"{SHARED}/rapport.docx", content=b"v2", headers={"If": f"({token})"}).status_code == 204
    assert org["bob"].request("UNLOCK", f"{SHARED}/rapport.docx", headers={"Lock-Token": token}).status_code == 204
    assert org["alice"].get(f"{SHARED}/rapport.docx").content == b"v2"


def test_a_new_role_applies_at_once(org: Org) -> None:
    accounts = org.server.instance.accounts
    assert org["bob"].put(f"{READ_ONLY}/x.pdf", content=b"x").status_code == 403
    accounts.set_role("bob", ROLE_ORG_ADMIN)
    assert org["bob"].put(f"{READ_ONLY}/x.pdf", content=b"x").status_code == 201


def test_locking_needs_the_right_to_write(org: Org) -> None:
    assert org["olga"].put(f"{READ_ONLY}/protocole.pdf", content=b"%PDF").status_code == 201
    assert org["bob"].request("LOCK", f"{READ_ONLY}/protocole.pdf", content=LOCKINFO).status_code == 403
    assert org["bob"].request("LOCK", f"{READ_ONLY}/new.pdf", content=LOCKINFO).status_code == 403
    for who in ("bob", "olga"):  # the group folder itself: nobody may lock everyone out of it
        root_lock = org[who].request("LOCK", f"{SHARED}/", headers={"Depth": "infinity"}, content=LOCKINFO)
        assert root_lock.status_code == 403, who
    assert org["olga"].put(f"{READ_ONLY}/protocole.pdf", content=b"%PDF v2").status_code == 204
    assert org["bob"].put(f"{SHARED}/mine.pdf", content=b"x").status_code == 201
    assert org["bob"].request("LOCK", f"{SHARED}/mine.pdf", content=LOCKINFO).status_code == 200


def test_changes_of_folders_apply_at_once_to_deeper_paths(org: Org) -> None:
    """Folders on the way of a request are cached: every change must show at once."""
    tree, accounts = org.server.instance.tree, org.server.instance.accounts
    bob = org["bob"]
    assert bob.request("MKCOL", "a/").status_code == 201
    assert bob.request("MKCOL", "a/b/").status_code == 201
    assert bob.put("a/b/c.txt", content=b"c").status_code == 201
    assert bob.get("a/b/c.txt").status_code == 200  # a/ and a/b/ now cached
    rename = {"Destination": org.server.dav_url + "z/"}
    assert bob.request("MOVE", "a/", headers=rename).status_code == 201
    assert bob.get("a/b/c.txt").status_code == 404
    assert bob.get("z/b/c.txt").content == b"c"
    # Into the group folder: the group's rules apply to the whole subtree at once.
    into_group = {"Destination": org.server.dav_url + quote(f"{SHARED}/z/")}
    assert bob.request("MOVE", "z/", headers=into_group).status_code == 201
    assert org["alice"].get(quote(f"{SHARED}/z/b/c.txt")).content == b"c"
    assert org["alice"].put(quote(f"{SHARED}/z/b/d.txt"), content=b"d").status_code == 201
    group = tree.group_folder_named(accounts.default_organisation(), SHARED)
    assert group is not None
    tree.set_group_folder(group, member_access="ro")
    assert org["alice"].put(quote(f"{SHARED}/z/b/e.txt"), content=b"e").status_code == 403
    tree.set_group_folder(group, member_access="rw")
    assert org["alice"].delete(quote(f"{SHARED}/z/")).status_code == 204
    assert org["bob"].get(quote(f"{SHARED}/z/b/c.txt")).status_code == 404
