"""A clinic on a real server, for the hostile-input tests, and the means to show a request changed nothing.

One server per test module (the hostile requests must leave it as it was, which the tests check):

- Cabinet Martin: alice, who owns ``Dupont Jeanne/`` (``irm.pdf``, ``Examens/``), ``ordonnance.pdf`` and
  ``Dépôt/``; bob, her colleague, who owns ``bob.txt`` and is given ``Dupont Jeanne`` read-only and
  ``Commun/`` read-write;
- Clinique B: mallory, who owns ``mallory.txt``;
- three links on alice's items: ``Dupont Jeanne`` read-only, ``Commun`` read-write, ``Dépôt`` a drop box.

:func:`stored` reads everything a request could change (the tree, versions, dead properties, locks,
shares, and every file of the blob store, temporary ones included); the audit log is not in it, since
refused attempts are recorded there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from server.accounts import UserInfo
from server.auth import MemoryThrottleStore, Throttle
from server.db.models import audit_t, dead_properties_t, locks_t, nodes_t, shares_t, versions_t
from server.testing import LiveServer, make_instance
from server.tree import Entry

PASSWORD = "une phrase de passe assez longue"
LINK_PASSWORD = "Tulipe ocre 2026!"

STORED_TABLES = (nodes_t, versions_t, dead_properties_t, locks_t, shares_t)
#: Bookkeeping a refused request may move, as the audit log: when a link was last opened with its password.
BOOKKEEPING = {"last_access_at"}


@dataclass
class Clinic:
    server: LiveServer
    users: dict[str, UserInfo]
    items: dict[str, Entry]
    links: dict[str, str]  # "read" / "write" / "dropbox" -> token
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def dav_url(self) -> str:
        return self.server.dav_url

    def __getitem__(self, user: str) -> httpx.Client:
        return self.clients[user]

    def link(self, mode: str, password: str = LINK_PASSWORD) -> httpx.Client:
        """A WebDAV client of a link, at /public/<token>/."""
        client = httpx.Client(base_url=f"{self.url}/public/{self.links[mode]}/", auth=("anyone", password), timeout=30)
        self.clients[f"link:{mode}:{id(client)}"] = client
        return client

    def audit_mark(self) -> int:
        """The id of the newest audit row: :meth:`audited_since` shows what came after."""
        inst = self.server.instance
        assert inst.flush_audit()
        with inst.db.read() as tx:
            rows = tx.all(select(audit_t.c.id).order_by(audit_t.c.id.desc()).limit(1))
        return rows[0][0] if rows else 0

    def audited_since(self, mark: int) -> list[Any]:
        """Audit rows after ``mark``, in order."""
        inst = self.server.instance
        assert inst.flush_audit()
        with inst.db.read() as tx:
            return tx.all(select(audit_t).where(audit_t.c.id > mark).order_by(audit_t.c.id))


def stored(server: LiveServer) -> dict[str, Any]:
    """Everything stored that a request could change: rows of the tree's tables and every blob-store file."""
    inst = server.instance
    assert inst.flush_audit()
    snapshot: dict[str, Any] = {}
    with inst.db.read() as tx:
        for table in STORED_TABLES:
            columns = [column for column in table.c if column.name not in BOOKKEEPING]
            snapshot[table.name] = sorted(tuple(row) for row in tx.all(select(*columns)))
    blob_root = inst.settings.storage.blob_dir
    snapshot["files"] = sorted(
        (os.path.relpath(os.path.join(folder, name), blob_root), os.path.getsize(os.path.join(folder, name)))
        for folder, _dirs, names in os.walk(blob_root)
        for name in names
    )
    return snapshot


def _upload(server: LiveServer, parent: Entry, name: str, data: bytes) -> Entry:
    upload = server.instance.tree.upload(parent, name, expected_size=len(data))
    upload.write(data)
    return upload.finish()


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    inst = make_instance(tmp_path_factory.mktemp("clinic") / "data")
    with LiveServer(inst.config_path) as server:
        accounts, tree, shares = server.instance.accounts, server.instance.tree, server.instance.shares
        alice = accounts.create_user("alice", PASSWORD)
        bob = accounts.create_user("bob", PASSWORD)
        mallory = accounts.create_user("mallory", PASSWORD, org_id=accounts.create_organisation("Clinique B"))
        root = tree.get(alice.root_id)
        folder = tree.mkdir(root, "Dupont Jeanne")
        items = {
            "folder": folder,
            "irm": _upload(server, folder, "irm.pdf", b"%PDF-irm of Jeanne Dupont"),
            "examens": tree.mkdir(folder, "Examens"),
            "ordonnance": _upload(server, root, "ordonnance.pdf", b"%PDF-ordonnance"),
            "commun": tree.mkdir(root, "Commun"),
            "depot": tree.mkdir(root, "Dépôt"),
            "bob": _upload(server, tree.get(bob.root_id), "bob.txt", b"bob's own"),
            "mallory": _upload(server, tree.get(mallory.root_id), "mallory.txt", b"mallory's own"),
        }
        _upload(server, items["commun"], "commun.txt", b"shared notes")
        _upload(server, items["depot"], "déjà là.pdf", b"an earlier upload")
        actor = alice.principal()
        shares.create(actor, folder, colleague=bob.id, mode="read")
        shares.create(actor, items["commun"], colleague=bob.id, mode="write")
        links = {}
        for mode, item in (("read", folder), ("write", items["commun"]), ("dropbox", items["depot"])):
            made = shares.create(actor, item, email="patient@example.org", password=LINK_PASSWORD, mode=mode)
            assert made.token is not None
            links[mode] = made.token
        clinic = Clinic(server, {"alice": alice, "bob": bob, "mallory": mallory}, items, links)
        for name in ("alice", "bob", "mallory"):
            clinic.clients[name] = httpx.Client(base_url=server.dav_url, auth=(name, PASSWORD), timeout=30)
        try:
            yield clinic
        finally:
            for client in clinic.clients.values():
                client.close()


@pytest.fixture(autouse=True)
def _fresh_throttles(request: pytest.FixtureRequest) -> None:
    """Each test of the clinic starts with no failure counted: the clinic's server lives for the module, and
    the hostile requests of one test (tokens missed, passwords guessed) would throttle the next one's."""
    if "clinic" not in request.fixturenames:
        return
    authenticator = request.getfixturevalue("clinic").server.instance.authenticator
    authenticator.throttle = Throttle(authenticator.throttle.settings, MemoryThrottleStore())
    authenticator.links = Throttle(authenticator.links.settings, MemoryThrottleStore())


@pytest.fixture
def unchanged(clinic: Clinic) -> Iterator[None]:
    """The test's requests leave everything stored as it was."""
    before = stored(clinic.server)
    yield
    after = stored(clinic.server)
    for key in before:
        assert after[key] == before[key], f"{key} changed"
