"""The plugin facade against a real instance: each call checked by the policy, audited, streamed, sealed.

No mock: the plugins of these tests are installed the way pip would install
them (a ``.dist-info`` with its ``meddav`` entry point, on ``sys.path``), so
``open_instance`` and ``LiveServer(plugins=True)`` find, configure and start
them as ``meddav serve`` does; the plugin objects live in this module
(:data:`PLUGINS`) and the tests read what they recorded.  Real SQLite, real
blob store, real job queue and workers, a real SMTP server (aiosmtpd).

The granted organisation is X (the admin's, "Default organisation"); Y
("Clinique Y", user ``yves``) is never granted.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import re
import secrets
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from server.accounts import UserInfo
from server.config import load_settings
from server.db.models import audit_t, plugin_state_t
from server.errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    DecryptionFailed,
    MedDAVError,
    NotFound,
    PolicyDenied,
    QuotaExceeded,
)
from server.events import AccountCreated, Event, FileWritten
from server.hooks import hookimpl
from server.instance import EVENT_JOB, Instance, open_instance
from server.jobs import DEAD, DONE, PENDING, RUNNING, WorkerPool
from server.plugins import NOTIFY_JOB, PluginFacade
from server.policy import PluginPrincipal
from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from server.tree import Entry
from tests.integration.test_mail import Collector, SmtpServer, free_port

X = "Default organisation"
Y = "Clinique Y"
#: A failing job is retried once after about a second, then dead: tests see the end in seconds.
JOBS: dict[str, Any] = {"max_attempts": 2, "backoff_seconds": 1, "max_backoff_seconds": 1}
REPORT = b"Compte rendu: RAS.\n"
SECRET = b"Y's patient file\n"
NOTICED_AT = datetime(2026, 11, 26, 14, 5, tzinfo=UTC).timestamp()  # a Thursday

#: The plugin objects the installed entry points resolve to, by module name.
PLUGINS: dict[str, object] = {}


# --- plugins --------------------------------------------------------------------------------------------


class Probe:
    """A well-behaved plugin that records what the core gives it."""

    def __init__(self) -> None:
        self.facade: PluginFacade | None = None
        self.events: list[Event] = []
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.hijacked: list[str] = []

    @property
    def f(self) -> PluginFacade:
        assert self.facade is not None, "meddav_startup was not called"
        return self.facade

    @hookimpl
    def meddav_startup(self, plugin: PluginFacade) -> None:
        self.facade = plugin

    @hookimpl
    def meddav_event(self, event: Event) -> None:
        self.events.append(event)

    @hookimpl
    def meddav_job_handlers(self, plugin: PluginFacade) -> Mapping[str, Callable[[Any], None]]:
        def work(ctx: Any) -> None:
            self.ran.append((ctx.key, dict(ctx.payload)))

        return {f"{plugin.name}.work": work}

    @hookimpl
    def meddav_notification_channels(self) -> Mapping[str, Callable[[str, str, Mapping[str, Any]], None]]:
        def pager(to: str, template: str, context: Mapping[str, Any]) -> None:
            self.sent.append((to, template, dict(context)))

        def email(to: str, template: str, context: Mapping[str, Any]) -> None:
            self.hijacked.append(to)

        return {"pager": pager, "email": email}  # "email" is the core's: must be ignored


class Broken:
    """A plugin that fails in every hook it has, with a file name in its error message."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def meddav_startup(self, plugin: PluginFacade) -> None:
        raise RuntimeError("broken at start")

    @hookimpl
    def meddav_event(self, event: Event) -> None:
        self.calls += 1
        raise RuntimeError("cannot file compte-rendu.pdf of patient Dupont")


class Quiet:
    """A plugin that listens to no event."""

    @hookimpl
    def meddav_startup(self, plugin: PluginFacade) -> None:
        pass


# --- fixtures and helpers -------------------------------------------------------------------------------


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, object]], None]]:
    """Install plugin objects under entry point names, as a pip-installed distribution would be."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(plugins: dict[str, object]) -> None:
        for name, obj in plugins.items():
            module = f"meddav_facade_test_{name}_{secrets.token_hex(4)}"
            PLUGINS[module] = obj
            (site / f"{module}.py").write_text(f"import sys\nplugin = sys.modules[{__name__!r}].PLUGINS[{module!r}]\n")
            dist = site / f"{module}-1.0.dist-info"
            dist.mkdir()
            (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
            (dist / "entry_points.txt").write_text(f"[meddav]\n{name} = {module}:plugin\n")
            modules.append(module)
        importlib.invalidate_caches()

    yield install
    for module in modules:
        PLUGINS.pop(module, None)
        sys.modules.pop(module, None)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that keeps what it receives."""
    collector = Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(port, collector)
    controller.stop()


def smtp_settings(server: SmtpServer) -> dict[str, dict[str, Any]]:
    return {"mail": {"backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_security": "none"}}


def plugin_settings(
    plugins: dict[str, object], grants: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {"plugins": {"enabled": list(plugins), **grants}, "jobs": dict(JOBS)}
    for section, values in (extra or {}).items():
        settings.setdefault(section, {}).update(values)
    return settings


def put(instance: Instance, folder: Entry, name: str, data: bytes) -> Entry:
    """Store a file as any upload does (the core's side, not the plugin's)."""
    upload = instance.tree.upload(folder, name)
    upload.write(data)
    return upload.finish()


def content(instance: Instance, entry_id: int) -> bytes:
    with instance.tree.open(instance.tree.get(entry_id)) as reader:
        return reader.read()


def blob_files(instance: Instance) -> set[Path]:
    """Every file of the blob store, finished blobs and uploads in progress alike."""
    return {p for p in instance.settings.storage.blob_dir.rglob("*") if p.is_file()}


def plugin_audit(instance: Instance, after: int = 0) -> list[Any]:
    """The audit rows of surface ``plugin`` after row id ``after``, in order."""
    assert instance.flush_audit()
    with instance.db.read() as tx:
        return tx.all(select(audit_t).where(audit_t.c.surface == "plugin", audit_t.c.id > after).order_by(audit_t.c.id))


def last_audit_id(instance: Instance) -> int:
    rows = plugin_audit(instance)
    return rows[-1].id if rows else 0


def drain(instance: Instance, pool: WorkerPool | None = None) -> WorkerPool:
    """Run every due job now, in this thread (the instance's handlers, as a worker has them)."""
    pool = pool or WorkerPool(instance.jobs, instance.job_handlers, threads=0, scheduler=False)
    while pool.run_one("test"):
        pass
    return pool


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


@dataclass
class World:
    """An opened instance with plugins started, a folder and a file in X, a file in Y."""

    made: TestInstance
    instance: Instance
    admin: UserInfo
    x_org: int
    x_root: Entry
    x_folder: Entry
    x_file: Entry
    y_org: int
    y_root: Entry
    y_file: Entry
    opened: list[Instance] = field(default_factory=list)

    def reopen(self) -> Instance:
        """The same instance opened again (a restart), plugins started."""
        instance = open_instance(load_settings(self.made.config_path))
        self.opened.append(instance)
        instance.start_plugins()
        return instance


@pytest.fixture
def world(
    install: Callable[[dict[str, object]], None], make_test_instance: Callable[..., TestInstance]
) -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(
        plugins: dict[str, object],
        *,
        access: str = "read",
        grants: dict[str, dict[str, Any]] | None = None,
        extra: dict[str, dict[str, Any]] | None = None,
    ) -> World:
        install(plugins)
        grants = grants if grants is not None else {name: {"organisations": [X], "access": access} for name in plugins}
        made = make_test_instance(plugin_settings(plugins, grants, extra))
        instance = open_instance(load_settings(made.config_path))
        try:
            admin = instance.accounts.get(made.user)
            x_root = instance.tree.get(admin.root_id)
            x_folder = instance.tree.mkdir(x_root, "Patients")
            x_file = put(instance, x_folder, "cr.txt", REPORT)
            y_org = instance.accounts.create_organisation(Y)
            yves = instance.accounts.create_user("yves", TEST_PASSWORD, org_id=y_org, role="org_admin")
            y_root = instance.tree.get(yves.root_id)
            y_file = put(instance, y_root, "secret.txt", SECRET)
            instance.start_plugins()
        except BaseException:
            instance.close()
            raise
        made_world = World(made, instance, admin, admin.org_id, x_root, x_folder, x_file, y_org, y_root, y_file)
        made_world.opened.append(instance)
        worlds.append(made_world)
        return made_world

    yield make
    for w in worlds:
        for instance in reversed(w.opened):
            instance.close()


# --- 1. the grant: organisations and access -------------------------------------------------------------


def test_startup_gives_each_plugin_its_bound_facade(world: Callable[..., World]) -> None:
    probe, peer = Probe(), Probe()
    w = world({"probe": probe, "peer": peer}, grants={"probe": {"organisations": [X], "access": "read-write"}})

    assert probe.f is w.instance.plugins.facades["probe"] and peer.f is w.instance.plugins.facades["peer"]
    assert probe.f.principal == PluginPrincipal("probe", frozenset({w.x_org}), "read-write")
    assert peer.f.principal == PluginPrincipal("peer", frozenset(), "read")  # no grant: nothing
    with pytest.raises(PolicyDenied):
        peer.f.node(w.x_file.id)


def test_the_facade_refuses_work_before_start_and_a_missing_granted_organisation_stops_it(
    install: Callable[[dict[str, object]], None], make_test_instance: Callable[..., TestInstance]
) -> None:
    install({"probe": Probe()})
    made = make_test_instance(plugin_settings({"probe": None}, {"probe": {"organisations": ["Cabinet Absent"]}}))
    instance = open_instance(load_settings(made.config_path))
    try:
        with pytest.raises(RuntimeError, match="before the instance is open"):
            instance.plugins.facades["probe"].node(1)
        with pytest.raises(ConfigError, match=r"\[plugins.probe\] organisations: .*'Cabinet Absent'"):
            instance.start_plugins()
    finally:
        instance.close()


def test_a_read_grant_reads_its_organisation_and_each_call_is_audited(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    w.instance.tree.set_properties(w.x_file, [("{urn:x-test:}code", b"R51")])
    f, start = probe.f, last_audit_id(w.instance)

    info = f.node(w.x_file.id)
    chain = f.path(w.x_file.id)
    members = f.children(w.x_folder.id)
    props = f.properties(w.x_file.id)
    with f.open_file(w.x_file.id) as reader:
        read = reader.read()
    found = f.resolve(w.admin.username, "Patients/cr.txt")

    assert w.x_file.version is not None
    assert (info.id, info.name, info.size, info.org_id, info.parent_id) == (
        w.x_file.id, "cr.txt", len(REPORT), w.x_org, w.x_folder.id
    )  # fmt: skip
    assert (info.is_dir, info.version_id, info.group_id) == (False, w.x_file.version.id, None)
    assert [(n.id, n.name, n.is_dir) for n in chain] == [
        (w.x_root.id, "", True), (w.x_folder.id, "Patients", True), (w.x_file.id, "cr.txt", False)
    ]  # fmt: skip
    assert [n.name for n in members] == ["cr.txt"]
    assert props == {"{urn:x-test:}code": b"R51"}
    assert read == REPORT
    assert found is not None and found.id == w.x_file.id

    rows = plugin_audit(w.instance, start)
    assert [(r.action, r.outcome, r.node_id) for r in rows] == [  # one row per call, path included
        ("plugin.node.read", "ok", w.x_file.id),
        ("plugin.node.path", "ok", w.x_file.id),
        ("plugin.folder.list", "ok", w.x_folder.id),
        ("plugin.node.properties", "ok", w.x_file.id),
        ("plugin.file.read", "ok", w.x_file.id),
        ("plugin.node.resolve", "ok", w.x_file.id),
    ]
    for row in rows:
        assert (row.principal, row.org_id, row.user_id, row.address) == ("plugin:probe", w.x_org, None, "local")
        assert "cr.txt" not in (row.detail or "") and "Patients" not in (row.detail or "")


def test_another_organisations_files_and_people_are_denied_and_audited(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    f, start = probe.f, last_audit_id(w.instance)

    def read(node_id: int) -> bytes:
        with f.open_file(node_id) as reader:
            return reader.read()

    calls: list[tuple[str, Callable[[], object]]] = [
        ("plugin.node.read", lambda: f.node(w.y_file.id)),
        ("plugin.node.path", lambda: f.path(w.y_file.id)),
        ("plugin.folder.list", lambda: f.children(w.y_root.id)),
        ("plugin.node.properties", lambda: f.properties(w.y_file.id)),
        ("plugin.file.read", lambda: read(w.y_file.id)),
        ("plugin.node.resolve", lambda: f.resolve("yves", "secret.txt")),
        ("plugin.user.read", lambda: f.user("yves")),
        ("plugin.user.list", lambda: f.organisation_admins(w.y_org)),
    ]
    for _, call in calls:
        with pytest.raises(PolicyDenied):
            call()

    rows = plugin_audit(w.instance, start)
    assert [(r.action, r.outcome, r.org_id) for r in rows] == [(action, "denied", w.y_org) for action, _ in calls]
    assert all(r.principal == "plugin:probe" for r in rows)
    assert rows[0].node_id == w.y_file.id
    # Within X the same people calls work.
    assert f.user(w.admin.id).username == w.admin.username
    assert f.organisation_admins(w.x_org) == []  # the admin is an instance admin, not an org admin


def test_a_missing_node_is_audited_as_failed(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    start = last_audit_id(w.instance)
    with pytest.raises(NotFound):
        probe.f.node(987654)
    assert [(r.action, r.outcome, r.node_id) for r in plugin_audit(w.instance, start)] == [
        ("plugin.node.read", "failed", 987654)
    ]


def test_a_read_grant_may_not_write_and_nothing_is_stored(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    f, start, blobs = probe.f, last_audit_id(w.instance), blob_files(w.instance)
    consumed: list[bytes] = []

    def blocks() -> Iterator[bytes]:
        for block in (b"new ", b"content"):
            consumed.append(block)
            yield block

    with pytest.raises(PolicyDenied):
        f.write_file(w.x_folder.id, "new.txt", blocks())
    with pytest.raises(PolicyDenied):
        f.write_file(w.x_folder.id, "cr.txt", blocks())  # a new version of an existing file

    assert consumed == []  # refused before reading anything
    assert [e.name for e in w.instance.tree.children(w.x_folder)] == ["cr.txt"]
    assert content(w.instance, w.x_file.id) == REPORT
    assert blob_files(w.instance) == blobs
    rows = plugin_audit(w.instance, start)
    assert [(r.action, r.outcome, r.node_id) for r in rows] == [("plugin.file.write", "denied", w.x_folder.id)] * 2


def test_a_read_write_grant_stores_files_and_new_versions_in_its_organisation_only(
    world: Callable[..., World],
) -> None:
    probe = Probe()
    w = world({"probe": probe}, access="read-write")
    f = probe.f
    drain(w.instance)
    start, blobs, heard = last_audit_id(w.instance), blob_files(w.instance), len(probe.events)

    written = f.write_file(w.x_folder.id, "synthese.txt", [b"part one, ", b"", b"part two"])

    assert (written.name, written.size, written.parent_id, written.org_id, written.is_dir) == (
        "synthese.txt", 18, w.x_folder.id, w.x_org, False
    )  # fmt: skip
    assert written.version_id is not None
    stored = w.instance.tree.resolve(w.admin.root_id, ["Patients", "synthese.txt"])
    assert stored is not None and stored.id == written.id
    assert content(w.instance, written.id) == b"part one, part two"
    with (
        LiveServer(w.made.config_path) as server,
        httpx.Client(base_url=server.dav_url, auth=(w.made.user, w.made.password), timeout=30) as dav,
    ):
        assert dav.get("Patients/synthese.txt").content == b"part one, part two"  # the owner sees it in the drive
    assert len(blob_files(w.instance)) == len(blobs) + 1

    assert w.x_file.version is not None
    again = f.write_file(w.x_folder.id, "cr.txt", io.BytesIO(b"version 2"))
    assert again.id == w.x_file.id and again.version_id not in (None, w.x_file.version.id)
    assert content(w.instance, w.x_file.id) == b"version 2"
    assert len(blob_files(w.instance)) == len(blobs) + 1  # the old version's blob is gone

    with pytest.raises(PolicyDenied):
        f.write_file(w.y_root.id, "intrus.txt", [b"x"])
    assert [e.name for e in w.instance.tree.children(w.y_root)] == ["secret.txt"]

    rows = plugin_audit(w.instance, start)
    assert [(r.action, r.outcome, r.node_id, r.target_id, r.detail) for r in rows] == [
        ("plugin.file.write", "ok", written.id, w.x_folder.id, "size=18"),
        ("plugin.file.write", "ok", w.x_file.id, w.x_folder.id, "size=9"),
        ("plugin.file.write", "denied", w.y_root.id, None, None),
    ]
    # A plugin's write is a change like any upload: listening plugins hear of it.
    drain(w.instance)
    written_events = [e for e in probe.events[heard:] if isinstance(e, FileWritten)]
    assert [(e.node_id, e.created) for e in written_events] == [(written.id, True), (w.x_file.id, False)]


def test_the_facade_offers_no_way_to_delete_move_or_share() -> None:
    forbidden = {"delete", "remove", "move", "rename", "share", "copy", "unlink", "administer", "grant", "purge"}
    public = [name for name in dir(PluginFacade) if not name.startswith("_")]
    assert [name for name in public if forbidden & set(name.split("_"))] == []


# --- 2. versions and streaming reads ---------------------------------------------------------------------


def test_reading_a_superseded_version_is_a_conflict(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    f = probe.f
    assert w.x_file.version is not None
    old = w.x_file.version.id
    with f.open_file(w.x_file.id, version_id=old) as reader:
        assert reader.read() == REPORT
    newer = put(w.instance, w.x_folder, "cr.txt", b"corrected report")
    assert newer.version is not None
    start = last_audit_id(w.instance)

    with pytest.raises(Conflict), f.open_file(w.x_file.id, version_id=old):
        pytest.fail("the old version was opened")
    with f.open_file(w.x_file.id, version_id=newer.version.id) as reader:
        assert reader.read() == b"corrected report"

    rows = plugin_audit(w.instance, start)
    assert [(r.action, r.outcome, r.detail) for r in rows] == [
        ("plugin.file.read", "failed", "superseded"),
        ("plugin.file.read", "ok", "size=16"),
    ]


def test_open_file_streams_a_large_file_in_chunks(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    data = os.urandom(3 * 1024 * 1024 + 12345)
    big = put(w.instance, w.x_folder, "scanner.bin", data)

    tracemalloc.start()
    try:
        with probe.f.open_file(big.id) as reader:
            first = reader.read(65536)
            _, peak = tracemalloc.get_traced_memory()
            digest, chunks, longest = hashlib.sha256(first), 1, len(first)
            while chunk := reader.read(65536):
                digest.update(chunk)
                chunks += 1
                longest = max(longest, len(chunk))
            reader.seek(2_000_001)
            middle = reader.read(100)
    finally:
        tracemalloc.stop()
    assert reader.closed  # closed at the end of the block

    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert chunks >= len(data) // 65536 and longest <= 65536
    assert middle == data[2_000_001:2_000_101]
    assert peak < 1024 * 1024, f"the first 64 KiB cost {peak} bytes: the file was not streamed"


# --- 3. streaming writes, and failures in the middle ---------------------------------------------------


def test_write_file_streams_from_a_generator_and_from_a_file(world: Callable[..., World], tmp_path: Path) -> None:
    probe = Probe()
    w = world({"probe": probe}, access="read-write")
    f = probe.f
    blocks = [os.urandom(100_000) for _ in range(20)]

    from_blocks = f.write_file(w.x_folder.id, "irm.bin", (block for block in blocks))
    source = tmp_path / "scan.bin"
    source.write_bytes(os.urandom(1_500_000) + b"end")
    with source.open("rb") as handle:
        from_file = f.write_file(w.x_folder.id, "scan.bin", handle)

    assert from_blocks.size == 2_000_000 and from_file.size == 1_500_003
    with f.open_file(from_blocks.id) as reader:
        assert hashlib.sha256(reader.read()).digest() == hashlib.sha256(b"".join(blocks)).digest()
    with f.open_file(from_file.id) as reader:
        assert reader.read() == source.read_bytes()


class FlakyReader(io.RawIOBase):
    """A file object whose device fails after two reads."""

    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 2:
            raise OSError("the scanner was unplugged")
        return os.urandom(max(size, 1) if size > 0 else 65536)


def test_a_failure_mid_stream_leaves_no_file_no_new_version_and_no_blob(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe}, access="read-write")
    f = probe.f
    assert w.x_file.version is not None
    start, blobs = last_audit_id(w.instance), blob_files(w.instance)

    def failing() -> Iterator[bytes]:
        for _ in range(3):
            yield os.urandom(100_000)  # several encrypted segments reach the blob store first
        raise RuntimeError("the scanner was unplugged")

    with pytest.raises(RuntimeError, match="unplugged"):
        f.write_file(w.x_folder.id, "partial.bin", failing())
    with pytest.raises(OSError, match="unplugged"):
        f.write_file(w.x_folder.id, "partial.bin", FlakyReader())
    with pytest.raises(RuntimeError, match="unplugged"):
        f.write_file(w.x_folder.id, "cr.txt", failing())  # over an existing file

    assert [e.name for e in w.instance.tree.children(w.x_folder)] == ["cr.txt"]
    current = w.instance.tree.get(w.x_file.id)
    assert current.version is not None and current.version.id == w.x_file.version.id
    assert content(w.instance, w.x_file.id) == REPORT
    assert blob_files(w.instance) == blobs  # no partial blob, no upload left behind
    rows = plugin_audit(w.instance, start)
    assert [(r.action, r.outcome, r.node_id) for r in rows] == [("plugin.file.write", "failed", w.x_folder.id)] * 3


def test_plugin_writes_are_charged_to_the_quota_and_a_write_beyond_it_leaves_nothing(
    world: Callable[..., World],
) -> None:
    probe = Probe()
    w = world({"probe": probe}, access="read-write")
    w.instance.accounts.set_quota(w.admin.username, 200_000)

    probe.f.write_file(w.x_folder.id, "ok.bin", [os.urandom(150_000)])
    blobs = blob_files(w.instance)
    with pytest.raises(QuotaExceeded):
        probe.f.write_file(w.x_folder.id, "trop-gros.bin", [os.urandom(30_000) for _ in range(2)])  # 150 kB used

    assert sorted(e.name for e in w.instance.tree.children(w.x_folder)) == ["cr.txt", "ok.bin"]
    assert blob_files(w.instance) == blobs
    assert w.instance.accounts.get(w.admin.username).used_bytes == 150_000 + len(REPORT)


# --- 4. the plugin's own records -------------------------------------------------------------------------


def test_state_round_trips_json_privately_and_sealed_at_rest(world: Callable[..., World]) -> None:
    probe, peer = Probe(), Probe()
    w = world({"probe": probe, "peer": peer})
    f, g = probe.f, peer.f
    marker = "STATEMARKER" + secrets.token_hex(6)

    assert f.state_get("cursor") is None
    assert f.state_get("cursor", {"n": 0}) == {"n": 0}
    for value in ({"last": 12, "seen": [1, 2, 3], "note": marker}, ["a", 1, None, True, 2.5], "texte é", 0, None):
        f.state_set("value", value)
        assert f.state_get("value", "absent") == value
    f.state_set("cursor", {"note": marker, "ids": [41, 42]})
    f.state_set("cursor", {"note": marker, "ids": [41, 42, 43]})  # replaced, not added

    assert f.state_get("cursor") == {"note": marker, "ids": [41, 42, 43]}
    assert g.state_get("cursor") is None  # another plugin's records are not its own
    for bad_key in ("", "k" * 201):
        with pytest.raises(ValueError):
            f.state_set(bad_key, 1)
    with pytest.raises(ValueError):
        f.state_set("cursor", float("nan"))
    assert f.state_get("cursor") == {"note": marker, "ids": [41, 42, 43]}

    with w.instance.db.read() as tx:
        rows = tx.all(select(plugin_state_t.c.plugin, plugin_state_t.c.key, plugin_state_t.c.value))
    assert sorted((r.plugin, r.key) for r in rows) == [("probe", "cursor"), ("probe", "value")]
    for row in rows:
        assert marker.encode() not in row.value and b"ids" not in row.value and b"41" not in row.value
    for path in w.made.data_dir.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path

    # A sealed value is bound to its plugin and key: copied to another plugin's row, it does not open.
    sealed = next(r.value for r in rows if r.key == "cursor")
    with w.instance.db.write() as tx:
        tx.run(insert(plugin_state_t).values(plugin="peer", key="cursor", value=sealed, updated_at=0.0))
    with pytest.raises(DecryptionFailed):
        g.state_get("cursor")

    assert w.reopen().plugins.facades["probe"].state_get("cursor") == {"note": marker, "ids": [41, 42, 43]}


def test_once_per_answers_true_once_per_period_per_plugin_and_key(world: Callable[..., World]) -> None:
    probe, peer = Probe(), Probe()
    w = world({"probe": probe, "peer": peer})
    f, g = probe.f, peer.f
    now = [1_900_000_000.0]
    w.instance.jobs.clock = lambda: now[0]

    assert f.once_per("alert:401", 3600) is True
    assert f.once_per("alert:401", 3600) is False
    assert g.once_per("alert:401", 3600) is True  # per plugin
    assert f.once_per("alert:503", 3600) is True  # per key
    now[0] += 3599
    assert f.once_per("alert:401", 3600) is False
    now[0] += 2
    assert f.once_per("alert:401", 3600) is True  # the hour has passed
    assert f.once_per("alert:401", 3600) is False

    restarted = w.reopen()  # across a restart, the period holds
    restarted.jobs.clock = lambda: now[0] + 10
    assert restarted.plugins.facades["probe"].once_per("alert:401", 3600) is False
    restarted.jobs.clock = lambda: now[0] + 3600
    assert restarted.plugins.facades["probe"].once_per("alert:401", 3600) is True


def test_records_are_durable_unless_the_plugin_says_they_need_not_be(world: Callable[..., World]) -> None:
    """A record is on disk when state_set returns; counters (durable=False), once_per and exclusive
    records skip their own fsync (a power cut may undo their last second, a crash never)."""
    probe = Probe()
    w = world({"probe": probe})
    f, db = probe.f, w.instance.db

    def counted(action: Callable[[], object]) -> tuple[int, int]:
        before = (db.durable_commits, db.deferred_commits)
        action()
        return db.durable_commits - before[0], db.deferred_commits - before[1]

    def hold() -> None:
        with f.exclusive("send:1", 60) as held:
            assert held

    assert counted(lambda: f.state_set("code", {"issued": 1})) == (1, 0)
    assert counted(lambda: f.state_update("counts", lambda n: (n or 0) + 1, durable=False)) == (0, 1)
    assert counted(lambda: f.once_per("alert:401", 3600)) == (0, 1)
    assert counted(hold) == (0, 2)  # taken, then released
    assert f.state_get("counts") == 1 and f.state_get("code") == {"issued": 1}


def test_once_per_is_true_for_one_thread_only(world: Callable[..., World]) -> None:
    probe = Probe()
    world({"probe": probe})
    answers: list[bool] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        answers.append(probe.f.once_per("alert:once", 3600))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [False] * 7 + [True]


# --- 5. the plugin's jobs ----------------------------------------------------------------------------------


def test_enqueue_takes_only_the_plugins_own_kinds_and_is_idempotent_on_its_key(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    f = probe.f
    pool = drain(w.instance)
    jobs_before = w.instance.jobs.counts()
    for kind in ("peer.work", "probework", "probe", "xprobe.work", "PROBE.work", NOTIFY_JOB, EVENT_JOB):
        with pytest.raises(ValueError):
            f.enqueue(kind, "doc:1", {"doc": 1})
    assert w.instance.jobs.counts() == jobs_before
    start = last_audit_id(w.instance)

    first = f.enqueue("probe.work", "doc:42", {"doc": 42})
    assert f.enqueue("probe.work", "doc:42", {"doc": 43}) == first
    assert [job.id for job in w.instance.jobs.list(kind="probe.work")] == [first]
    drain(w.instance, pool)
    assert probe.ran == [("doc:42", {"doc": 42})]  # run once, with the first payload
    info = w.instance.jobs.get(first)
    assert info is not None and info.state == DONE
    assert f.enqueue("probe.work", "doc:42", {"doc": 44}) == first  # done work is not done again
    drain(w.instance, pool)
    assert len(probe.ran) == 1

    now = [time.time()]
    w.instance.jobs.clock = lambda: now[0]
    later = f.enqueue("probe.work", "doc:7", {"doc": 7}, delay=60)
    assert pool.run_one("test") is False  # not due yet
    now[0] += 61
    assert pool.run_one("test") is True
    assert probe.ran[-1] == ("doc:7", {"doc": 7})

    rows = plugin_audit(w.instance, start)
    assert [(r.action, r.outcome, r.target_id, r.detail) for r in rows] == [
        ("plugin.job.enqueue", "ok", first, "probe.work")
    ] * 3 + [("plugin.job.enqueue", "ok", later, "probe.work")]


# --- 6. notifications ---------------------------------------------------------------------------------------


def alert(**extra: Any) -> dict[str, Any]:
    return {
        "plugin_name": "EHR bridge",
        "problem": "The EHR refuses the credentials of MedDAV (HTTP 401).",
        "noticed_at": NOTICED_AT,
        **extra,
    }


def test_notify_by_email_sends_a_real_mail_from_a_worker(
    install: Callable[[dict[str, object]], None], make_test_instance: Callable[..., TestInstance], smtp: SmtpServer
) -> None:
    probe = Probe()
    install({"probe": probe})
    made = make_test_instance(plugin_settings({"probe": probe}, {}, smtp_settings(smtp)))
    with LiveServer(made.config_path, plugins=True) as server:
        status_url = server.settings.public_base_url() + "/plugins/probe/status"  # links point to this server
        job_en = probe.f.notify(
            "olga@example.org", "plugin_alert", alert(advice="Renew the access token.", status_url=status_url),
            locale="en",
        )  # fmt: skip
        job_fr = probe.f.notify("yves@example.org", "plugin_alert", alert())  # French by default
        wait_for(lambda: len(smtp.received) == 2)
        wait_for(lambda: all(server.instance.jobs.get(j).state == DONE for j in (job_en, job_fr)))  # type: ignore[union-attr]
        infos = [server.instance.jobs.get(j) for j in (job_en, job_fr)]

    by_rcpt = {tuple(m.rcpt_tos): m.message for m in smtp.received}
    english, french = by_rcpt[("olga@example.org",)], by_rcpt[("yves@example.org",)]
    assert english["Subject"] == "MedDAV: EHR bridge needs your attention"
    assert french["Subject"] == "MedDAV : EHR bridge a besoin de votre intervention"
    text = english.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "The EHR refuses the credentials of MedDAV (HTTP 401)." in body
    assert "Renew the access token." in body and status_url in body
    assert "Thursday 26 November 2026 at 14:05 (UTC)" in body  # noticed_at went through JSON as a POSIX time
    for info in infos:
        assert info is not None and info.kind == NOTIFY_JOB
        # Keys are stored in clear: the plugin, channel and template, then a random part; no address, no context.
        assert re.fullmatch(r"probe:email:plugin_alert:[0-9a-f]{32}", info.key)


def test_notify_through_a_plugins_channel_and_email_stays_the_cores(
    world: Callable[..., World], smtp: SmtpServer
) -> None:
    probe = Probe()
    w = world({"probe": probe}, extra=smtp_settings(smtp))
    pool = drain(w.instance)
    start = last_audit_id(w.instance)

    pager = probe.f.notify("+33600000000", "rappel", {"count": 3, "noticed_at": 1.5}, channel="pager")
    mail = probe.f.notify("olga@example.org", "plugin_alert", alert(), locale="en")
    drain(w.instance, pool)

    assert probe.sent == [("+33600000000", "rappel", {"count": 3, "noticed_at": 1.5})]
    assert [m.rcpt_tos for m in smtp.received] == [["olga@example.org"]]
    assert probe.hijacked == []  # a plugin cannot take the built-in "email" channel
    assert [w.instance.jobs.get(j).state for j in (pager, mail)] == [DONE, DONE]  # type: ignore[union-attr]
    rows = plugin_audit(w.instance, start)
    assert [(r.action, r.target_id, r.detail) for r in rows] == [
        ("plugin.notify", pager, "channel=pager template=rappel"),
        ("plugin.notify", mail, "channel=email template=plugin_alert"),
    ]


def test_a_notification_that_cannot_be_sent_is_refused_at_once_and_makes_no_job(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    start = last_audit_id(w.instance)
    with pytest.raises(ValueError, match="no notification channel 'carrier-pigeon'"):
        probe.f.notify("someone", "rappel", {}, channel="carrier-pigeon")
    with pytest.raises(ValueError, match="plugin_alert only"):  # the account mails are the core's
        probe.f.notify("alice@example.org", "password_reset", {"reset_url": "http://x/r/1", "expires_at": 1.0})
    with pytest.raises(ValueError):  # a required variable missing
        probe.f.notify("alice@example.org", "plugin_alert", {"plugin_name": "probe", "problem": "x"})
    with pytest.raises(MedDAVError):  # not an address
        probe.f.notify("not an address", "plugin_alert", alert())
    assert w.instance.jobs.list(kind=NOTIFY_JOB) == []
    rows = [(r.action, r.outcome) for r in plugin_audit(w.instance, start)]
    assert rows == [("plugin.notify", "failed")] * 4


def test_a_notification_whose_channel_is_gone_fails_its_job_until_it_is_dead(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    pool = drain(w.instance)
    now = [time.time()]
    w.instance.jobs.clock = lambda: now[0]
    # Enqueued by a process that had the channel; run by one that has not (its plugin was disabled since).
    payload = {"plugin": "probe", "channel": "carrier-pigeon", "to": "someone", "template": "rappel"}
    job = w.instance.jobs.enqueue(None, NOTIFY_JOB, "probe:gone:1", payload | {"context": {}, "locale": "fr"})
    assert pool.run_one("test") is True
    info = w.instance.jobs.get(job)
    assert info is not None and (info.state, info.attempts) == (PENDING, 1)
    assert "no notification channel" in (info.last_error or "")
    assert pool.run_one("test") is False  # backing off
    now[0] += 10
    assert pool.run_one("test") is True
    info = w.instance.jobs.get(job)
    assert info is not None and (info.state, info.attempts) == (DEAD, JOBS["max_attempts"])


def test_two_notifications_at_the_same_instant_are_two_jobs(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    w.instance.jobs.clock = lambda: 1_900_000_000.0  # as tests inject it (or a coarse system clock)
    first = probe.f.notify("+33600000001", "rappel", {"n": 1}, channel="pager")
    second = probe.f.notify("+33600000002", "rappel", {"n": 2}, channel="pager")
    assert first != second


# --- 7. a failing plugin never fails the user ---------------------------------------------------------------


def test_a_failing_event_hook_never_fails_the_upload_and_is_counted_and_audited(
    install: Callable[[dict[str, object]], None], make_test_instance: Callable[..., TestInstance]
) -> None:
    broken, probe = Broken(), Probe()
    install({"broken": broken, "probe": probe})
    grants = {name: {"organisations": [X]} for name in ("broken", "probe")}  # only granted plugins hear events
    made = make_test_instance(plugin_settings({"broken": broken, "probe": probe}, grants))
    body = os.urandom(200_000)

    with (
        LiveServer(made.config_path, plugins=True) as server,
        httpx.Client(base_url=server.dav_url, auth=(made.user, made.password), timeout=30) as dav,
    ):
        instance = server.instance
        assert dav.put("compte-rendu.pdf", content=body).status_code == 201
        assert dav.get("compte-rendu.pdf").content == body

        def settled() -> bool:
            counts = instance.jobs.counts()
            return counts[PENDING] == 0 and counts[RUNNING] == 0

        wait_for(settled)
        jobs = instance.jobs.list(kind=EVENT_JOB)
        failures = dict(instance.plugins.failures)
        rows = [r for r in plugin_audit(instance) if r.action == "plugin.failed"]
        assert dav.get("compte-rendu.pdf").content == body

    # One delivery job per change and plugin: the upload's, and any made before (meddav init's first account).
    broken_jobs = [j for j in jobs if j.key.startswith("broken:")]
    probe_jobs = [j for j in jobs if j.key.startswith("probe:")]
    assert [j.key.split(":")[1] for j in broken_jobs].count("FileWritten") == 1
    assert {(j.state, j.attempts) for j in broken_jobs} == {(DEAD, JOBS["max_attempts"])}
    assert {j.state for j in probe_jobs} == {DONE} and len(probe_jobs) == len(broken_jobs)
    assert [type(e) for e in probe.events].count(FileWritten) == 1  # the other plugin got its event, once
    attempts = len(broken_jobs) * JOBS["max_attempts"]
    assert broken.calls == attempts
    for job in broken_jobs:
        error = job.last_error or ""
        assert "RuntimeError" in error and "compte-rendu" not in error and "Dupont" not in error
    assert failures == {("broken", "meddav_startup"): 1, ("broken", "meddav_event"): attempts}
    assert sorted((r.principal, r.outcome, r.detail) for r in rows) == [
        ("plugin:broken", "error", "hook=meddav_event")
    ] * attempts + [("plugin:broken", "error", "hook=meddav_startup")]


# --- 8. account events through the outbox --------------------------------------------------------------------


def test_creating_a_user_tells_listening_plugins_and_a_refused_creation_tells_none(
    world: Callable[..., World],
) -> None:
    probe = Probe()
    w = world({"probe": probe})
    pool = drain(w.instance)
    probe.events.clear()
    events_before = len(w.instance.jobs.list(kind=EVENT_JOB, limit=1000))

    bob = w.instance.accounts.create_user("bob", TEST_PASSWORD, email="bob@example.org")
    pending = w.instance.jobs.list(PENDING, kind=EVENT_JOB)
    assert [job.key.split(":")[:3] for job in pending] == [["probe", "AccountCreated", str(bob.id)]]
    drain(w.instance, pool)

    assert len(probe.events) == 1
    event = probe.events[0]
    assert isinstance(event, AccountCreated)
    assert (event.created_user_id, event.org_id, event.role) == (bob.id, bob.org_id, "member")
    assert probe.f.user(event.created_user_id).username == "bob"  # what a plugin does next

    with pytest.raises(AlreadyExists):
        w.instance.accounts.create_user("bob", TEST_PASSWORD)
    with pytest.raises(NotFound):
        w.instance.accounts.create_user("carla", TEST_PASSWORD, org_id=987654)
    assert len(w.instance.jobs.list(kind=EVENT_JOB, limit=1000)) == events_before + 1
    drain(w.instance, pool)
    assert len(probe.events) == 1
    with pytest.raises(NotFound):
        w.instance.accounts.get("carla")


def test_without_a_listening_plugin_no_event_job_is_made(
    install: Callable[[dict[str, object]], None], make_test_instance: Callable[..., TestInstance]
) -> None:
    install({"quiet": Quiet()})
    made = make_test_instance(plugin_settings({"quiet": None}, {}))
    instance = open_instance(load_settings(made.config_path))
    try:
        instance.start_plugins()
        user = instance.accounts.create_user("dora", TEST_PASSWORD)
        put(instance, instance.tree.get(user.root_id), "a.txt", b"a")
        assert instance.jobs.list(kind=EVENT_JOB) == []
    finally:
        instance.close()


# --- failed calls, shared key spaces, overruns ------------------------------------------------------------


def test_failed_calls_that_the_policy_allowed_are_audited_too(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe}, access="read-write")
    f, start = probe.f, last_audit_id(w.instance)
    with pytest.raises(MedDAVError) as bad_name:  # the tree's own error for an invalid name
        f.write_file(w.x_folder.id, "a/b.txt", [b"x"])
    with pytest.raises(NotFound):
        f.user("nobody-here")
    with pytest.raises(MedDAVError) as folder_read, f.open_file(w.x_folder.id):  # a folder has no content
        pass
    rows = [(r.action, r.outcome, r.detail) for r in plugin_audit(w.instance, start)]
    assert rows == [
        ("plugin.file.write", "failed", type(bad_name.value).__name__),
        ("plugin.user.read", "failed", "NotFound"),
        ("plugin.file.read", "failed", type(folder_read.value).__name__),
    ]


def test_once_per_and_the_plugins_records_do_not_share_keys(world: Callable[..., World]) -> None:
    probe = Probe()
    w = world({"probe": probe})
    probe.f.state_set("alert", {"kept": True})
    assert probe.f.once_per("alert", 3600) is True
    assert probe.f.state_get("alert") == {"kept": True}
    probe.f.state_set("alert", {"kept": "again"})
    assert probe.f.once_per("alert", 3600) is False
    assert w.instance.jobs.counts()[DEAD] == 0


class Slow:
    """A plugin whose job handler outlives its lease (until the test lets it go)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    @hookimpl
    def meddav_job_handlers(self, plugin: PluginFacade) -> Mapping[str, Callable[[Any], None]]:
        def slow(ctx: Any) -> None:
            self.started.set()
            self.release.wait(30)

        return {f"{plugin.name}.slow": slow}


def test_a_job_that_outlives_its_lease_is_counted_and_audited_as_a_time_out(world: Callable[..., World]) -> None:
    slow = Slow()
    w = world({"slow": slow}, extra={"jobs": {"lease_seconds": 5}})
    w.instance.jobs.enqueue(None, "slow.slow", "overrun:1", {})
    pool = WorkerPool(w.instance.jobs, w.instance.job_handlers, threads=0, scheduler=False)
    runner = threading.Thread(target=pool.run_one, args=("test",), daemon=True)
    runner.start()
    try:
        assert slow.started.wait(10)
        wait_for(lambda: w.instance.plugins.failures[("slow", "job slow.slow (time-out)")] == 1, timeout=10)
    finally:
        slow.release.set()
        runner.join(10)
    rows = [(r.action, r.outcome, r.principal, r.detail) for r in plugin_audit(w.instance)]
    assert ("plugin.failed", "error", "plugin:slow", "hook=job slow.slow (time-out)") in rows
