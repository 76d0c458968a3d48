"""A link share's pages, /s/<token>, on a real server, driven with httpx as a browser would.

alice shares her folder "Dupont Jeanne" (irm.pdf, compte-rendu.txt, Examens/bilan.txt) by a link.
The recipient types the password, lists, downloads a file and a folder as a zip, adds files when
the share allows it; a drop box takes files, answers with the names sent and shows only what this
visit sent; codes by e-mail open a share once; a dead link, whatever killed it, is the one 404 page.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import select

from server.db.models import audit_t
from server.jobs import WorkerPool
from server.jobs.commands import instance_handlers
from server.sharing import ShareInfo
from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from server.tree import Entry
from tests.web.conftest import Mailbox, Web, csrf_of, mailbox, smtp_settings  # noqa: F401 - the mailbox fixture

PASSWORD = "Tulipe ocre 2026!"
NOTE = "Résultats de l'IRM du 12 novembre"


@dataclass
class Office:
    server: LiveServer
    folder: Entry
    clients: list[Web]

    @property
    def inst(self) -> Any:
        return self.server.instance

    def share(self, mode: str = "read", node: Entry | None = None, **kwargs: Any) -> tuple[str, ShareInfo]:
        alice = self.inst.accounts.get("alice")
        options: dict[str, Any] = {"password": PASSWORD} | kwargs
        if options.get("code_by_email"):
            options.pop("password")
        made = self.inst.shares.create(alice.principal(), node or self.folder, email="patient@example.org",
                                       mode=mode, note=NOTE, **options)  # fmt: skip
        assert made.token is not None
        return made.token, made.info

    def browser(self) -> Web:
        client = Web(base_url=self.server.url, timeout=30)
        self.clients.append(client)
        return client

    def opened(self, token: str, password: str = PASSWORD) -> Web:
        """A browser that has typed the share's password."""
        web = self.browser()
        answer = web.form(f"/s/{token}", data={"password": password})
        assert answer.status_code == 303, answer.status_code
        return web


def _office(server: LiveServer) -> Iterator[Office]:
    inst = server.instance
    alice = inst.accounts.create_user("alice", TEST_PASSWORD, email="alice@example.org")
    tree = inst.tree
    folder = tree.mkdir(tree.get(alice.root_id), "Dupont Jeanne")
    exams = tree.mkdir(folder, "Examens")
    for parent, name, data in ((folder, "irm.pdf", b"%PDF-irm"), (folder, "compte-rendu.txt", b"bilan global"),
                               (exams, "bilan.txt", b"bilan sanguin")):  # fmt: skip
        upload = tree.upload(parent, name, expected_size=len(data))
        upload.write(data)
        upload.finish()
    office = Office(server, folder, [])
    yield office
    for client in office.clients:
        client.close()


@pytest.fixture
def office(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> Iterator[Office]:
    yield from _office(start_server(make_test_instance()))


def audit(office: Office, action: str) -> list[str]:
    assert office.inst.flush_audit()
    with office.inst.db.read() as tx:
        return [row.outcome for row in tx.all(select(audit_t.c.outcome).where(audit_t.c.action == action))]


def test_the_password_opens_a_session_bound_to_the_share(office: Office) -> None:
    token, _ = office.share()
    web = office.browser()
    first = web.get(f"/s/{token}")
    assert first.status_code == 200 and 'type="password"' in first.text
    assert "irm.pdf" not in first.text and str(escape(NOTE)) not in first.text  # nothing before the password
    wrong = web.post(f"/s/{token}", data={"password": "wrong", "csrf_token": csrf_of(first.text)})
    assert wrong.status_code == 401 and "irm.pdf" not in wrong.text
    assert web.post(f"/s/{token}", data={"password": PASSWORD}).status_code == 400  # no CSRF token: refused
    opened = web.form(f"/s/{token}", data={"password": PASSWORD})
    assert opened.status_code == 303
    cookie = next(c for c in web.cookies.jar if c.name == "meddav_share")
    assert cookie.path == f"/s/{token}" and cookie.has_nonstandard_attr("HttpOnly")
    page = web.get(f"/s/{token}")
    assert page.status_code == 200
    assert "irm.pdf" in page.text and "Examens/" in page.text and str(escape(NOTE)) in page.text
    for name, value in (("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"),
                        ("X-Content-Type-Options", "nosniff")):  # fmt: skip
        assert page.headers[name] == value
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "script-src" not in page.headers["Content-Security-Policy"] or "unsafe-inline" not in page.headers[
        "Content-Security-Policy"].split("script-src")[1]  # fmt: skip
    assert audit(office, "share.open") == ["failed", "ok"]

    # The session opens this share only: another share's pages want their own password.
    other_token, _ = office.share()
    web.cookies.set("meddav_share", cookie.value, path=f"/s/{other_token}")
    assert 'type="password"' in web.get(f"/s/{other_token}").text
    assert web.get(f"/s/{other_token}/get/irm.pdf").status_code == 404


def test_files_and_folders_download_as_attachments_and_zips(office: Office) -> None:
    token, _ = office.share()
    web = office.opened(token)
    got = web.get(f"/s/{token}/get/irm.pdf")
    assert got.status_code == 200 and got.content == b"%PDF-irm"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in got.headers["Content-Security-Policy"] and got.headers["Cache-Control"] == "no-store"
    sub = web.get(f"/s/{token}/f/Examens")
    assert sub.status_code == 200 and "bilan.txt" in sub.text and "irm.pdf" not in sub.text
    assert web.get(f"/s/{token}/get/Examens/bilan.txt").content == b"bilan sanguin"

    whole = web.get(f"/s/{token}/zip/")
    assert whole.status_code == 200 and whole.headers["Content-Type"] == "application/zip"
    assert int(whole.headers["Content-Length"]) == len(whole.content)
    with zipfile.ZipFile(io.BytesIO(whole.content)) as archive:
        assert sorted(archive.namelist()) == ["Examens/bilan.txt", "compte-rendu.txt", "irm.pdf"]
        assert archive.read("Examens/bilan.txt") == b"bilan sanguin"
    part = web.get(f"/s/{token}/zip/Examens")
    with zipfile.ZipFile(io.BytesIO(part.content)) as archive:
        assert archive.namelist() == ["bilan.txt"]
    for path in ("get/nothing.pdf", "get/Examens", "zip/irm.pdf", "f/../../dav", "get/..%2F..%2Fetc", "f/irm.pdf/x"):
        assert web.get(f"/s/{token}/{path}").status_code == 404, path
    assert audit(office, "share.download") == ["ok", "ok"]


def test_a_shared_file_alone(office: Office) -> None:
    irm = office.inst.tree.resolve_below(office.folder.id, office.folder.org_id, ["irm.pdf"])[0]
    token, _ = office.share(node=irm)
    web = office.opened(token)
    page = web.get(f"/s/{token}")
    assert "irm.pdf" in page.text and "compte-rendu" not in page.text
    assert web.get(f"/s/{token}/get/").content == b"%PDF-irm"
    assert web.get(f"/s/{token}/get/compte-rendu.txt").status_code == 404
    assert web.get(f"/s/{token}/zip/").status_code == 404


def test_dead_links_get_one_page_and_close_open_sessions(office: Office) -> None:
    token, share = office.share()
    web = office.opened(token)
    assert web.get(f"/s/{token}/get/irm.pdf").status_code == 200
    unknown_token = "a" * 40
    unknown = web.get(f"/s/{unknown_token}")
    office.inst.shares.revoke(office.inst.accounts.get("alice").principal(), share.id)
    assert web.get(f"/s/{token}/get/irm.pdf").status_code == 404
    revoked = web.get(f"/s/{token}")
    assert revoked.status_code == unknown.status_code == 404
    assert revoked.text.replace(token, "TOKEN") == unknown.text.replace(unknown_token, "TOKEN")  # one page
    # Used up: the last download allowed was taken.
    limited, _ = office.share(max_downloads=1)
    web = office.opened(limited)
    assert web.get(f"/s/{limited}/get/irm.pdf").status_code == 200
    assert web.get(f"/s/{limited}/get/compte-rendu.txt").status_code == 404
    assert web.get(f"/s/{limited}").text.replace(limited, "TOKEN") == unknown.text.replace(unknown_token, "TOKEN")


def test_a_session_downloads_a_file_once_as_far_as_limits_go(office: Office) -> None:
    token, share = office.share(max_downloads=2)
    web = office.opened(token)
    for _ in range(3):  # the same file again and again, by the same visit: one download
        assert web.get(f"/s/{token}/get/irm.pdf").status_code == 200
    assert office.inst.shares.get(share.id).downloads == 1
    assert web.get(f"/s/{token}/get/compte-rendu.txt").status_code == 200
    assert office.inst.shares.get(share.id).downloads == 2
    assert web.get(f"/s/{token}/get/Examens/bilan.txt").status_code == 404  # a third file: used up


def test_wrong_passwords_are_throttled(office: Office) -> None:
    token, _ = office.share()
    web = office.browser()
    statuses = [web.form(f"/s/{token}", data={"password": f"wrong {i}"}).status_code for i in range(5)]
    assert statuses[:3] == [401, 401, 401] and 429 in statuses[3:]
    refused = web.form(f"/s/{token}", data={"password": PASSWORD})
    assert refused.status_code == 429 and "Retry-After" in refused.headers  # even the right one, for now
    assert "denied" in audit(office, "share.open")


def upload(web: Web, token: str, name: str, data: bytes, folder: str = "") -> httpx.Response:
    return web.put_file(f"/s/{token}/f/{folder}" if folder else f"/s/{token}", name, data)


def test_a_read_write_recipient_adds_files_never_replacing_one(office: Office) -> None:
    token, share = office.share(mode="write")
    web = office.opened(token)
    added = upload(web, token, "ordonnance.pdf", b"%PDF-ordo")
    assert added.status_code == 201 and added.json() == {"name": "ordonnance.pdf"}
    clash = upload(web, token, "irm.pdf", b"%PDF-other")
    assert clash.status_code == 201 and clash.json() == {"name": "irm (2).pdf"}
    deeper = upload(web, token, "nfs.txt", b"numeration", folder="Examens")
    assert deeper.status_code == 201
    tree = office.inst.tree
    assert tree.resolve_below(office.folder.id, office.folder.org_id, ["Examens", "nfs.txt"])
    assert web.get(f"/s/{token}/get/irm.pdf").content == b"%PDF-irm"  # untouched
    assert office.inst.shares.get(share.id).uploads == 3
    # No CSRF header, a wrong one, a missing size, a bad name: refused, nothing stored.
    target = f"/s/{token}/put/"
    assert web.put(target, params={"name": "x.txt"}, content=b"x").status_code == 400
    assert (
        web.put(target, params={"name": "x.txt"}, content=b"x", headers={"X-CSRF-Token": "forged"}).status_code == 400
    )
    csrf = csrf_of(web.get(f"/s/{token}").text)
    for name in ("", "..", "a/b", "x\x00y"):
        assert web.put(target, params={"name": name}, content=b"x", headers={"X-CSRF-Token": csrf}).status_code == 400

    def chunked() -> Iterator[bytes]:
        yield b"no length"

    assert (
        web.put(target, params={"name": "x.txt"}, content=chunked(), headers={"X-CSRF-Token": csrf}).status_code == 411
    )
    names = {e.name for e in tree.children(office.folder)}
    assert names == {"Examens", "irm.pdf", "compte-rendu.txt", "ordonnance.pdf", "irm (2).pdf"}


def test_a_read_only_recipient_adds_nothing(office: Office) -> None:
    token, _ = office.share()
    web = office.opened(token)
    page = web.get(f"/s/{token}")
    assert "data-target" not in page.text
    answer = web.put(f"/s/{token}/put/", params={"name": "x.txt"}, content=b"x",
                     headers={"X-CSRF-Token": csrf_of(page.text)})  # fmt: skip
    assert answer.status_code == 403
    assert "x.txt" not in {e.name for e in office.inst.tree.children(office.folder)}


def test_guest_uploads_count_against_the_owners_quota(office: Office) -> None:
    token, _ = office.share(mode="write")
    used, _quota = office.inst.tree.usage(office.folder)
    office.inst.accounts.set_quota("alice", used + 100)
    web = office.opened(token)
    assert upload(web, token, "petit.txt", b"x" * 60).status_code == 201
    full = upload(web, token, "gros.bin", b"x" * 60)
    assert full.status_code == 507 and "place" in full.json()["error"]["message"]  # in French, the default
    assert "gros.bin" not in {e.name for e in office.inst.tree.children(office.folder)}
    assert office.inst.tree.usage(office.folder)[0] == used + 60


def test_a_drop_box_takes_files_and_shows_only_this_visits(office: Office) -> None:
    token, share = office.share(mode="dropbox")
    web = office.opened(token)
    page = web.get(f"/s/{token}")
    assert "irm.pdf" not in page.text and "Examens" not in page.text and "compte-rendu" not in page.text
    for name, data in (("scanner.pdf", b"%PDF-scan"), ("irm.pdf", b"%PDF-mine"), ("lettre.txt", b"lettre")):
        sent = upload(web, token, name, data)
        assert sent.status_code == 201 and sent.json() == {"name": name}  # never whether the name was taken
    page = web.get(f"/s/{token}")
    for name in ("scanner.pdf", "irm.pdf", "lettre.txt"):
        assert f"<li>{name}</li>" in page.text
    assert "compte-rendu" not in page.text and "Examens" not in page.text
    tree = office.inst.tree
    stored = {e.name for e in tree.children(office.folder)}
    assert {"scanner.pdf", "irm (2).pdf", "lettre.txt", "irm.pdf"} <= stored
    irm = tree.resolve_below(office.folder.id, office.folder.org_id, ["irm.pdf"])[0]
    with tree.open(irm) as reader:
        assert reader.read() == b"%PDF-irm"  # the owner's, untouched
    for path in ("get/irm.pdf", "get/scanner.pdf", "f/Examens", "zip/", "get/"):
        assert web.get(f"/s/{token}/{path}").status_code == 404, path
    # Another visit sees nothing of this one's.
    other = office.opened(token)
    assert "scanner.pdf" not in other.get(f"/s/{token}").text
    assert office.inst.shares.get(share.id).uploads == 3


def test_plaintext_of_web_uploads_never_reaches_the_disk(office: Office) -> None:
    token, _ = office.share(mode="dropbox")
    web = office.opened(token)
    marker = b"PLAINTEXT-MARKER-" + b"7" * 64
    assert upload(web, token, "secret-patient-name.txt", marker * 2000).status_code == 201
    office.inst.db.close()
    data_dir = office.server.settings.storage.blob_dir.parent
    for path in data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert marker not in content and b"secret-patient-name" not in content, path


def test_codes_by_email_open_a_share_once(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer],
    mailbox: Mailbox,  # noqa: F811 - the fixture
) -> None:  # fmt: skip
    server = start_server(make_test_instance(smtp_settings(mailbox)))
    office = next(_office(server))
    token, _ = office.share(code_by_email=True)
    web = office.browser()
    page = web.get(f"/s/{token}")
    assert 'name="code"' in page.text and 'type="password"' not in page.text
    assert web.form(f"/s/{token}", f"/s/{token}", data={"code": "000000"}).status_code == 401
    asked = web.form(f"/s/{token}", f"/s/{token}/code")
    assert asked.status_code == 200
    workers = WorkerPool(server.instance.jobs, instance_handlers(server.instance), threads=0, scheduler=False)
    while workers.run_one("test"):  # the mails are durable jobs: run them here
        pass
    mail = next((m for m in mailbox.messages if "code" in str(m["Subject"]).lower()), None)
    assert mail is not None, [str(m["Subject"]) for m in mailbox.messages]
    assert mail["To"] == "patient@example.org"
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Dupont" not in text and "irm" not in text and NOTE not in text  # nothing of what is shared
    code = re.search(r"\b(\d{8})\b", text)
    assert code is not None
    # A second code within the minute is not sent.
    again = web.form(f"/s/{token}", f"/s/{token}/code")
    assert "less than a minute" in again.text or str(escape("moins d'une minute")) in again.text
    opened = web.form(f"/s/{token}", data={"code": code.group(1)})
    assert opened.status_code == 303 and "irm.pdf" in web.get(f"/s/{token}").text
    replay = office.browser().form(f"/s/{token}", data={"code": code.group(1)})
    assert replay.status_code == 401  # used once
    # The WebDAV face of such a share refuses: its codes are typed on the page.
    assert httpx.get(f"{server.url}/public/{token}/", auth=("x", code.group(1))).status_code == 403
