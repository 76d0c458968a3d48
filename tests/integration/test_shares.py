"""Shares as the core keeps them (server.sharing): making, finding, ending, and what is stored.

The surfaces (recipient's pages, /public/<token>/ over WebDAV, the colleague's
drive) are tested with their own clients; here the store and the CLI, on a real
instance: links found by their token in constant work, passwords and notes
never stored in clear, expiry at the end of the day in the organisation's time
zone, revocation and expiry effective at once, every action audited.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from server.accounts import UserInfo
from server.config import load_settings
from server.db.models import audit_t, shares_t
from server.errors import BadRequest, NotFound, PolicyDenied
from server.instance import SHARES_SWEEP, Instance, open_instance
from server.jobs import WorkerPool
from server.jobs.commands import instance_handlers
from server.policy import Action, Operator, Shared, SharePrincipal, allows
from server.testing import TEST_PASSWORD, TestInstance
from server.tree import Entry
from tests.web.conftest import Mailbox, mailbox, smtp_settings  # noqa: F401 - the mailbox fixture, used here

# Thursday 26 November 2026, 14:05 UTC (15:05 in Paris).
T0 = dt.datetime(2026, 11, 26, 14, 5, tzinfo=dt.UTC).timestamp()


@dataclass
class World:
    made: TestInstance
    instance: Instance
    alice: UserInfo
    bob: UserInfo
    eve: UserInfo  # another organisation
    folder: Entry
    file: Entry
    now: list[float]


@pytest.fixture
def world(make_test_instance: Callable[..., TestInstance]) -> Iterator[World]:
    made = make_test_instance()
    instance = open_instance(load_settings(made.config_path))
    now = [T0]
    instance.shares.clock = lambda: now[0]
    try:
        accounts = instance.accounts
        alice = accounts.create_user("alice", TEST_PASSWORD, email="alice@example.org")
        bob = accounts.create_user("bob", TEST_PASSWORD)
        other = accounts.create_organisation("Clinique du Port")
        eve = accounts.create_user("eve", TEST_PASSWORD, org_id=other)
        root = instance.tree.get(alice.root_id)
        folder = instance.tree.mkdir(root, "Dupont Jeanne")
        upload = instance.tree.upload(folder, "compte-rendu.pdf", expected_size=5)
        upload.write(b"%PDF-")
        file = upload.finish()
        yield World(made, instance, alice, bob, eve, folder, file, now)
    finally:
        instance.close()


def audit_rows(instance: Instance, action: str) -> list[Any]:
    assert instance.flush_audit()
    with instance.db.read() as tx:
        return tx.all(
            select(audit_t.c.outcome, audit_t.c.target_id, audit_t.c.detail).where(audit_t.c.action == action)
        )


def test_a_link_is_found_by_its_token_only_and_proved_by_its_password(world: World) -> None:
    shares = world.instance.shares
    made = shares.create(
        world.alice.principal(), world.folder, email="patient@example.org", note="Résultats IRM", second_channel="owner"
    )
    assert made.token is not None and made.password is not None  # generated, shown once
    assert len(made.token) >= 40 and made.info.kind == "link" and made.info.mode == "read"

    found = shares.find_link(made.token)
    assert found is not None and found.id == made.info.id
    display = "-".join(made.token[i : i + 4] for i in range(0, len(made.token), 4)).upper()
    assert shares.find_link(display) == found  # typed back with dashes and capitals
    for wrong in ("", made.token[:-1], made.token[:-1] + ("a" if made.token[-1] != "a" else "b"), "x" * 40, "../" * 20):
        assert shares.find_link(wrong) is None
    assert shares.check_password(found, made.password)
    assert not shares.check_password(found, made.password.upper())
    assert shares.note(found) == "Résultats IRM"

    # Nothing of the token, the password or the note is stored in clear.
    world.instance.db.close()
    for path in world.made.data_dir.glob("meddav.sqlite3*"):
        data = path.read_bytes()
        for secret in (made.token, made.password, "Résultats IRM", "patient@example.org".upper()):
            assert secret.encode() not in data, (path, secret)


def test_a_given_password_and_the_modes(world: World) -> None:
    shares = world.instance.shares
    made = shares.create(
        world.alice.principal(), world.folder, email="dr.martin@example.org", password="Tulipe 2026!", mode="dropbox"
    )
    assert made.password is None  # the owner knows it
    assert shares.check_password(made.info, "Tulipe 2026!")
    coded = shares.create(world.alice.principal(), world.file, email="p@example.org", code_by_email=True)
    assert coded.password is None and not coded.info.has_password
    assert not shares.check_password(coded.info, "")
    for bad in (
        {"mode": "dropbox"},  # on a file
        {"mode": "admin"},
        {"password": "x", "code_by_email": True},
        {"password": "   "},
        {"note": "x" * 2001},
        {"max_downloads": 0},
        {"networks": ["not a network"]},
    ):
        with pytest.raises(BadRequest):
            shares.create(world.alice.principal(), world.file, email="p@example.org", **bad)
    with pytest.raises(BadRequest):
        shares.create(world.alice.principal(), world.file, email="not an address")
    with pytest.raises(BadRequest):
        shares.create(world.alice.principal(), world.file)  # neither a colleague nor an address


def test_links_expire_at_the_end_of_the_day_in_the_organisations_time_zone(world: World) -> None:
    shares = world.instance.shares
    made = shares.create(world.alice.principal(), world.file, email="p@example.org")
    # Seven days from Thursday 26 November, to the end of Thursday 3 December in Paris (CET, UTC+1).
    assert made.info.expires_at == dt.datetime(2026, 12, 3, 23, 0, tzinfo=dt.UTC).timestamp()
    chosen = shares.create(world.alice.principal(), world.file, email="p@example.org", expires_on=dt.date(2026, 11, 26))
    assert chosen.info.expires_at == dt.datetime(2026, 11, 26, 23, 0, tzinfo=dt.UTC).timestamp()
    with pytest.raises(BadRequest, match="in the past"):
        shares.create(world.alice.principal(), world.file, email="p@example.org", expires_on=dt.date(2026, 11, 25))
    with pytest.raises(BadRequest, match="2027-02-24 at the latest"):
        shares.create(world.alice.principal(), world.file, email="p@example.org", expires_on=dt.date(2027, 2, 25))

    world.instance.accounts.set_time_zone(world.alice.org_id, "America/Cayenne")  # UTC-3
    cayenne = shares.create(world.alice.principal(), world.file, email="p@example.org")
    assert cayenne.info.expires_at == dt.datetime(2026, 12, 4, 3, 0, tzinfo=dt.UTC).timestamp()
    with pytest.raises(BadRequest, match="unknown time zone"):
        world.instance.accounts.set_time_zone(world.alice.org_id, "Mars/Olympus")


def test_expiry_and_revocation_apply_to_the_next_request(world: World) -> None:
    shares = world.instance.shares
    short = shares.create(
        world.alice.principal(), world.folder, email="p@example.org", expires_on=dt.date(2026, 11, 26)
    )
    other = shares.create(world.alice.principal(), world.folder, email="q@example.org")
    assert short.token and other.token
    link = SharePrincipal(short.info.grant())
    assert allows(link, Shared(world.folder, short.info.grant(), world.now[0]), Action.LIST)

    world.now[0] = short.info.expires_at or 0  # midnight in Paris
    assert shares.find_link(short.token) is None  # the same answer as an unknown link
    assert not allows(link, Shared(world.folder, short.info.grant(), world.now[0]), Action.LIST)
    assert shares.get(short.info.id).state(world.now[0]) == "expired"

    assert shares.find_link(other.token) is not None
    revoked = shares.revoke(world.alice.principal(), other.info.id)
    assert revoked.state(world.now[0]) == "revoked" and shares.find_link(other.token) is None
    assert not allows(SharePrincipal(revoked.grant()), Shared(world.folder, revoked.grant(), world.now[0]), Action.LIST)
    shares.revoke(world.alice.principal(), other.info.id)  # again: nothing changes, no error

    # The sweep ends the expired share for good and audits it, once.
    assert shares.sweep() == 1 and shares.sweep() == 0
    assert shares.get(short.info.id).state(world.now[0] + 86400) == "expired"
    assert [(r.outcome, r.target_id) for r in audit_rows(world.instance, "share.expire")] == [("ok", short.info.id)]
    assert SHARES_SWEEP in world.instance.job_handlers


def test_only_who_may_share_makes_or_ends_a_share_and_the_refusals_are_audited(world: World) -> None:
    shares = world.instance.shares
    with pytest.raises(PolicyDenied):
        shares.create(world.bob.principal(), world.folder, email="p@example.org")  # not his
    made = shares.create(world.alice.principal(), world.folder, colleague=world.bob.id)
    with pytest.raises(NotFound):
        shares.revoke(world.bob.principal(), made.info.id)  # the recipient cannot end it: the owner does
    assert shares.get(made.info.id).state(world.now[0]) == "active"
    assert [r.outcome for r in audit_rows(world.instance, "share.create")] == ["denied", "ok"]
    assert [r.outcome for r in audit_rows(world.instance, "share.revoke")] == ["denied"]
    created = audit_rows(world.instance, "share.create")[1]
    assert created.target_id == made.info.id and created.detail == "kind=colleague mode=read"


def test_a_colleague_share_stays_inside_the_organisation(world: World) -> None:
    shares, alice = world.instance.shares, world.alice.principal()
    made = shares.create(alice, world.folder, colleague=world.bob.id, mode="write", expires_on=dt.date(2026, 12, 31))
    assert made.token is None and made.password is None
    assert made.info.expires_at == dt.datetime(2027, 1, 1, 0, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert [s.id for s in shares.for_recipient(world.bob.id)] == [made.info.id]
    assert [s.id for s in shares.by_owner(world.alice.id)] == [made.info.id]
    with pytest.raises(NotFound):
        shares.create(alice, world.folder, colleague=world.eve.id)  # another organisation
    with pytest.raises(BadRequest):
        shares.create(alice, world.folder, colleague=world.alice.id)
    with pytest.raises(BadRequest):
        shares.create(alice, world.folder, colleague=world.bob.id, mode="dropbox")
    with pytest.raises(BadRequest):
        shares.create(alice, world.folder, colleague=world.bob.id, password="x")
    shares.revoke(alice, made.info.id)
    assert shares.for_recipient(world.bob.id) == []


def test_deleting_the_shared_item_ends_its_shares(world: World) -> None:
    shares = world.instance.shares
    made = shares.create(world.alice.principal(), world.folder, email="p@example.org")
    assert made.token
    world.instance.tree.delete(world.folder)
    assert shares.find_link(made.token) is None
    with world.instance.db.read() as tx:
        assert tx.all(select(shares_t.c.id)) == []


def test_the_cli_creates_lists_and_revokes_without_prompts(world: World, tmp_path: Any) -> None:
    world.instance.close()
    config = str(world.made.config_path)

    def meddav(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server", "--config", config, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    note = tmp_path / "note.txt"
    note.write_text("IRM du genou, à revoir avec le Dr Martin\n", encoding="utf-8")
    created = meddav(
        "share", "create", "--owner", "alice", "--path", "/Dupont Jeanne", "--email", "p@example.org",
        "--password-stdin", "--note-file", str(note), "--expires", "2099-01-01", stdin="Tulipe 2026!\n",
    )  # fmt: skip
    assert created.returncode == 1 and "at the latest" in created.stderr  # beyond [sharing] max_expiry_days
    created = meddav(
        "share", "create", "--owner", "alice", "--path", "/Dupont Jeanne", "--email", "p@example.org",
        "--password-stdin", "--note-file", str(note), "--mode", "dropbox", stdin="Tulipe 2026!\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    share_id, url = created.stdout.split()
    assert url.split("/s/")[0].startswith("http") and len(url.split("/s/")[1]) >= 40
    assert "password" not in created.stdout and "drop box, until" in created.stderr

    colleague = meddav("share", "create", "--owner", "alice", "--path", "Dupont Jeanne", "--colleague", "bob")
    assert colleague.returncode == 0 and colleague.stdout.split() == [str(int(share_id) + 1)]
    generated = meddav(
        "share", "create", "--owner", "alice", "--path", "/Dupont Jeanne", "--email", "q@example.org",
        "--password-by", "owner",
    )  # fmt: skip
    assert generated.returncode == 0 and generated.stdout.splitlines()[2].startswith("password: ")
    mailed = meddav("share", "create", "--owner", "alice", "--path", "/Dupont Jeanne", "--email", "r@example.org")
    assert mailed.returncode == 0 and len(mailed.stdout.splitlines()) == 2  # the password goes by e-mail

    listed = meddav("share", "list", "--owner", "alice")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 5 and "dropbox" in lines[1] and "p@example.org" in lines[1] and "bob" in lines[2]
    assert "Dupont" not in listed.stdout and "IRM" not in listed.stdout  # ids, never names nor notes

    assert meddav("share", "revoke", share_id).returncode == 0
    assert " revoked " in meddav("share", "list").stdout.splitlines()[1]
    missing = meddav("share", "create", "--owner", "alice", "--path", "/Nope", "--email", "p@example.org")
    assert missing.returncode == 1 and "nothing at /Nope" in missing.stderr
    assert meddav("share", "revoke", "999").returncode == 1


def run_jobs(instance: Instance) -> None:
    pool = WorkerPool(instance.jobs, instance_handlers(instance), threads=0, scheduler=False)
    while pool.run_one("test"):
        pass


def test_a_links_recipient_gets_the_link_and_the_password_in_two_mails_without_health_data(
    make_test_instance: Callable[..., TestInstance],
    mailbox: Mailbox,  # noqa: F811 - the fixture imported above
) -> None:
    made = make_test_instance({**smtp_settings(mailbox), "server": {"public_url": "https://fichiers.example.org"}})
    instance = open_instance(load_settings(made.config_path))
    try:
        instance.shares.clock = lambda: T0
        alice = instance.accounts.create_user("alice", TEST_PASSWORD)
        folder = instance.tree.mkdir(instance.tree.get(alice.root_id), "Dupont Jeanne")
        shares = instance.shares
        link = shares.create(alice.principal(), folder, email="patient@example.org", password="Tulipe 2026!",
                             note="IRM du genou")  # fmt: skip
        coded = shares.create(alice.principal(), folder, email="dr@example.org", code_by_email=True, mode="dropbox",
                              locale="en")  # fmt: skip
        told = shares.create(alice.principal(), folder, email="owner-tells@example.org", second_channel="owner")
        assert link.token and coded.token and told.password  # a generated password, to give by telephone
        assert mailbox.messages == []  # jobs: sent by the workers, retried if the mail server is down
        run_jobs(instance)
    finally:
        instance.close()

    by_rcpt: dict[str, list[EmailMessage]] = {}
    for message in mailbox.messages:
        by_rcpt.setdefault(message["To"], []).append(message)
    assert sorted(len(m) for m in by_rcpt.values()) == [1, 1, 2]

    def text(message: EmailMessage) -> str:
        body = message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())

    link_mail, password_mail = sorted(by_rcpt["patient@example.org"], key=lambda m: "mot de passe" in m["Subject"])
    assert link_mail["Subject"] == "alice partage un document avec vous sur MedDAV"
    body = text(link_mail)
    assert f"https://fichiers.example.org/s/{link.token}" in body
    assert "jusqu'au jeudi 3 décembre 2026 à 23:59 (CET)" in body  # the end of the day, in Paris
    assert "second message" in body and "Tulipe" not in body
    assert password_mail["Subject"] == "Le mot de passe du partage de alice"
    assert "Tulipe 2026!" in text(password_mail) and link.token not in text(password_mail)
    english = text(by_rcpt["dr@example.org"][0])
    assert "invites you to send them documents" in english and "a code will be sent" in english
    assert "par un autre moyen" in text(by_rcpt["owner-tells@example.org"][0])
    for message in (m for messages in by_rcpt.values() for m in messages):
        whole = message.as_string()
        assert "Dupont" not in whole and "IRM" not in whole  # never the item's name nor the note


def test_a_share_is_changed_by_its_maker_within_the_same_rules(world: World) -> None:
    shares, alice = world.instance.shares, world.alice.principal()
    made = shares.create(alice, world.folder, email="p@example.org", note="première note")
    changed = shares.update(alice, made.info.id, mode="write", expires_on=dt.date(2026, 12, 24), note="")
    assert changed.mode == "write" and shares.note(changed) is None
    assert changed.expires_at == dt.datetime(2026, 12, 24, 23, 0, tzinfo=dt.UTC).timestamp()
    with pytest.raises(BadRequest, match="at the latest"):  # counted from the link's creation
        shares.update(alice, made.info.id, expires_on=dt.date(2027, 3, 1))
    with pytest.raises(NotFound):
        shares.update(world.bob.principal(), made.info.id, mode="read")  # not his: unknown to him
    colleague = shares.create(alice, world.file, colleague=world.bob.id)
    with pytest.raises(BadRequest):
        shares.update(alice, colleague.info.id, mode="dropbox")
    with pytest.raises(BadRequest, match="in the past"):
        shares.update(alice, colleague.info.id, expires_on=dt.date(2026, 11, 1))
    shares.revoke(alice, made.info.id)
    with pytest.raises(BadRequest, match="has ended"):
        shares.update(alice, made.info.id, mode="read")
    updates = audit_rows(world.instance, "share.update")
    assert [(r.outcome, r.detail) for r in updates] == [
        ("ok", "kind=link mode=read changed=mode,expires_at,note"),
        ("denied", "kind=link mode=write"),
    ]


def test_a_disabled_accounts_shares_stop_working_with_it(world: World) -> None:
    shares, alice = world.instance.shares, world.alice.principal()
    link = shares.create(alice, world.folder, email="p@example.org", second_channel="owner")
    colleague = shares.create(alice, world.folder, colleague=world.bob.id)
    assert link.token
    world.instance.accounts.set_disabled("alice", disabled=True)
    assert shares.find_link(link.token) is None
    assert shares.get(colleague.info.id).state(world.now[0]) == "suspended"
    assert not shares.get(colleague.info.id).grant().live(world.now[0])
    assert shares.for_recipient(world.bob.id) == []
    world.instance.accounts.set_disabled("alice", disabled=False)
    assert shares.find_link(link.token) is not None  # back with the account

    # The operator ends a share whoever made it (alice may be gone); the audit log names the operator.
    world.instance.accounts.set_disabled("alice", disabled=True)
    shares.revoke(Operator("os:root"), link.info.id)
    assert shares.get(link.info.id).state(world.now[0]) == "revoked"
    revoked = audit_rows(world.instance, "share.revoke")
    assert [(r.outcome, r.target_id) for r in revoked] == [("ok", link.info.id)]


def test_what_a_share_refuses_changes_nothing(world: World) -> None:
    shares, alice = world.instance.shares, world.alice.principal()
    for bad in (
        {"email": "p@example.org", "password": "x"},  # the rules of account passwords
        {"email": "p@example.org", "password": "password1234"},
        {"email": "p@example.org", "locale": "de"},
        {"email": "p@example.org", "expires_on": dt.date.max},
        {"colleague": world.bob.id, "networks": ["192.0.2.0/24"]},
        {"colleague": world.bob.id, "max_downloads": 3},
        {"colleague": world.bob.id, "expires_on": dt.date.max},
    ):
        with pytest.raises(BadRequest):
            shares.create(alice, world.folder, **bad)  # type: ignore[arg-type]
    assert shares.all() == [] and world.instance.jobs.counts()["pending"] == 0
    refusals = [(r.outcome, r.detail) for r in audit_rows(world.instance, "share.create")]
    assert refusals == [("failed", "refused=PasswordRejected")] * 2 + [("failed", "refused=BadRequest")] * 5
    assert shares.find_link("a" * 10_000) is None and shares.find_link("\x00" * 64) is None


def test_a_demoted_admin_may_end_the_shares_of_a_group_folder_not_widen_them(world: World) -> None:
    instance, shares = world.instance, world.instance.shares
    instance.accounts.set_role("bob", "org_admin")
    bob = instance.accounts.get("bob")
    group = instance.tree.create_group_folder(bob.org_id, "Secrétariat", owner_id=bob.id)
    made = shares.create(bob.principal(), group, email="p@example.org", second_channel="owner")
    instance.accounts.set_role("bob", "member")  # members may not share a group folder
    demoted = instance.accounts.get("bob").principal()
    with pytest.raises(PolicyDenied):
        shares.update(demoted, made.info.id, mode="write")
    with pytest.raises(PolicyDenied):  # nor a new link and password, which it would see with "owner"
        shares.resend(demoted, made.info.id, second_channel="owner")
    assert shares.get(made.info.id).mode == "read"
    assert shares.find_link(made.token or "") is not None  # the link is unchanged
    shares.revoke(demoted, made.info.id)  # ending it only ever narrows access


def test_revoking_a_link_withdraws_its_mails_not_yet_sent(world: World) -> None:
    shares = world.instance.shares
    made = shares.create(world.alice.principal(), world.folder, email="p@example.org")  # the password by mail too
    assert sorted(j.key for j in world.instance.jobs.list(kind="mail.send")) == [
        f"share:{made.info.id}:link",
        f"share:{made.info.id}:password",
    ]
    shares.revoke(world.alice.principal(), made.info.id)
    assert world.instance.jobs.list(kind="mail.send") == []


def test_uploads_that_only_add_never_overwrite_each_other(world: World) -> None:
    """Two senders of one name into a drop box: the second to finish gets a free name, chosen as it is
    stored (a name chosen when the upload began would be taken by then)."""
    tree = world.instance.tree
    slow = tree.upload(world.folder, "scan.pdf", expected_size=4, new_only=True)
    fast = tree.upload(world.folder, "scan.pdf", expected_size=4, new_only=True)
    fast.write(b"fast")
    first = fast.finish()
    slow.write(b"slow")
    second = slow.finish()
    assert (first.name, second.name) == ("scan.pdf", "scan (2).pdf")
    for entry, data in ((first, b"fast"), (second, b"slow")):
        with tree.open(tree.get(entry.id)) as reader:
            assert reader.read() == data
    # An ordinary upload replaces (a drive saving a document); an adding one never does.
    again = tree.upload(world.folder, "compte-rendu.pdf", expected_size=2, new_only=True)
    again.write(b"v2")
    assert again.finish().name == "compte-rendu (2).pdf"
    with tree.open(tree.get(world.file.id)) as reader:
        assert reader.read() == b"%PDF-"


def test_a_free_name_fits_the_limit_of_names() -> None:
    from server.tree import MAX_NAME_BYTES, free_name, validate_name

    long_name = "é" * 125 + ".pdf"  # 254 bytes
    taken = {long_name}
    free = free_name(long_name, lambda name: name in taken)
    assert free.endswith(" (2).pdf") and len(free.encode()) <= MAX_NAME_BYTES and validate_name(free)
    assert free_name("notes", lambda name: name == "notes") == "notes (2)"
    assert free_name(".profile", lambda name: name == ".profile") == ".profile (2)"


def test_a_free_name_for_a_name_all_extension_ends() -> None:
    """A 255-byte name whose extension alone fills it: the tail is cut too (it once looped for ever)."""
    from server.tree import MAX_NAME_BYTES, free_name, validate_name

    name = "a." + "x" * 253
    taken = {name}
    free = free_name(name, lambda candidate: candidate in taken)
    assert free != name and len(free.encode()) <= MAX_NAME_BYTES and validate_name(free)
    # Every numbered name taken: a random one, still valid.
    numbered = re.compile(r"scan( \(\d+\))?\.pdf")
    crowded = free_name("scan.pdf", lambda candidate: numbered.fullmatch(candidate) is not None)
    assert re.fullmatch(r"scan \([0-9a-f]{12}\)\.pdf", crowded)


def test_a_drive_is_not_shared_whole(world: World) -> None:
    root = world.instance.tree.get(world.alice.root_id)
    with pytest.raises(BadRequest, match="not shared whole"):
        world.instance.shares.create(world.alice.principal(), root, colleague=world.bob.id)
    assert world.instance.shares.all() == []
