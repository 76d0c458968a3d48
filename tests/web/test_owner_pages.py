"""The owner's pages, on a real server, with httpx: the drive in the browser (/ui/files), the share
dialog, the shares overview (/ui/shares) with change, end and send again, the link's visits, and the
drop-box digest mailed to owners who asked for it (through aiosmtpd).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

import pytest
from sqlalchemy import select

from server.db.models import audit_t
from server.jobs import WorkerPool
from server.jobs.commands import instance_handlers
from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from tests.web.conftest import Mailbox, Web, csrf_of, mailbox, smtp_settings  # noqa: F401 - the mailbox fixture

FOLDER = "Dupont Jeanne"


@pytest.fixture
def server(make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer],
           mailbox: Mailbox) -> LiveServer:  # noqa: F811 - the fixture  # fmt: skip
    live = start_server(make_test_instance(smtp_settings(mailbox)))
    accounts = live.instance.accounts
    accounts.create_user("alice", TEST_PASSWORD, email="alice@example.org", locale="fr")
    accounts.create_user("bob", TEST_PASSWORD, email="bob@example.org")
    tree = live.instance.tree
    folder = tree.mkdir(tree.get(accounts.get("alice").root_id), FOLDER)
    upload = tree.upload(folder, "irm.pdf", expected_size=8)
    upload.write(b"%PDF-irm")
    upload.finish()
    return live


def signed_in(server: LiveServer, web_client: Callable[..., Web], name: str) -> Web:
    web = web_client(server)
    assert web.login(name).status_code in (302, 303)
    return web


def run_jobs(server: LiveServer) -> None:
    workers = WorkerPool(server.instance.jobs, instance_handlers(server.instance), threads=0, scheduler=False)
    while workers.run_one("test"):
        pass


def test_the_drive_in_the_browser(server: LiveServer, web_client: Callable[..., Web]) -> None:
    web = signed_in(server, web_client, "alice")
    root = web.get("/ui/files/")
    assert root.status_code == 200 and FOLDER in root.text
    inside = web.get(f"/ui/files/{quote(FOLDER)}")
    assert "irm.pdf" in inside.text
    got = web.get(f"/ui/files/{quote(FOLDER)}/irm.pdf")
    assert got.content == b"%PDF-irm" and got.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in got.headers["Content-Security-Policy"]
    # Upload: never over a file; a new folder, a rename, a delete.
    assert web.put_file(f"/ui/files/{quote(FOLDER)}", "irm.pdf", b"%PDF-new").json() == {"name": "irm (2).pdf"}
    assert web.get(f"/ui/files/{quote(FOLDER)}/irm.pdf").content == b"%PDF-irm"
    made = web.form(f"/ui/files/{quote(FOLDER)}", "/ui/files/mkdir", {"path": FOLDER, "name": "Courriers"})
    assert made.status_code == 303
    renamed = web.form(f"/ui/files/{quote(FOLDER)}", "/ui/files/rename", {"path": f"{FOLDER}/irm (2).pdf",
                                                                        "name": "irm-v2.pdf"})  # fmt: skip
    assert renamed.status_code == 303
    taken = web.form(f"/ui/files/{quote(FOLDER)}", "/ui/files/rename", {"path": f"{FOLDER}/irm-v2.pdf",
                                                                      "name": "irm.pdf"})  # fmt: skip
    assert "error=taken" in taken.headers["Location"]
    deleted = web.form(f"/ui/files/{quote(FOLDER)}", "/ui/files/delete", {"path": f"{FOLDER}/irm-v2.pdf"})
    assert deleted.status_code == 303
    listing = web.get(f"/ui/files/{quote(FOLDER)}").text
    assert "Courriers/" in listing and "irm-v2.pdf" not in listing and "irm.pdf" in listing
    assert server.instance.flush_audit()
    with server.instance.db.read() as tx:
        actions = [r.action for r in tx.all(select(audit_t.c.action).where(audit_t.c.principal == "alice",
                                                                             audit_t.c.surface == "web"))]  # fmt: skip
    for action in ("file.read", "file.write", "folder.create", "node.move", "node.delete"):
        assert action in actions, (action, actions)
    # Nothing without the CSRF token; nothing of another user's.
    assert web.post("/ui/files/delete", data={"path": f"{FOLDER}/irm.pdf"}).status_code == 400
    bob = signed_in(server, web_client, "bob")
    assert bob.get(f"/ui/files/{quote(FOLDER)}").status_code == 404
    assert bob.form("/ui/files/", "/ui/files/delete", {"path": f"{FOLDER}/irm.pdf"}).status_code == 404
    assert web.get(f"/ui/files/{quote(FOLDER)}/irm.pdf").status_code == 200


def test_sharing_with_a_colleague_from_the_dialog(server: LiveServer, web_client: Callable[..., Web]) -> None:
    alice = signed_in(server, web_client, "alice")
    dialog = alice.get(f"/ui/share/{quote(FOLDER)}")
    assert dialog.status_code == 200 and 'value="bob"' in dialog.text  # the colleagues to choose from
    choice = {"kind": "colleague", "colleague": "bob", "mode": "write", "expires": "", "note": "Dossier à relire"}
    made = alice.form(f"/ui/share/{quote(FOLDER)}", data=choice)
    assert made.status_code == 200 and "Il apparaît dans le lecteur de votre collègue." in made.text
    bob = signed_in(server, web_client, "bob")
    root = bob.get("/ui/files/").text
    assert FOLDER in root
    assert bob.get(f"/ui/files/{quote(FOLDER)}/irm.pdf").content == b"%PDF-irm"
    assert bob.put_file(f"/ui/files/{quote(FOLDER)}", "bilan.txt", b"bilan").status_code == 201
    # The shared folder itself is neither renamed nor removed by the colleague, read-write or not.
    for action, data in (("rename", {"path": FOLDER, "name": "Autre nom"}), ("delete", {"path": FOLDER})):
        answer = bob.form("/ui/files/", f"/ui/files/{action}", data)
        assert answer.status_code == 303 and "error=refused" in answer.headers["Location"], action
    assert FOLDER in alice.get("/ui/files/").text
    overview = bob.get("/ui/shares").text
    assert FOLDER in overview and "alice" in overview and "Dossier à relire" in overview  # the note, for bob
    # Nobody else's share: bob cannot end alice's share, nor see its page.
    share_id = server.instance.shares.by_owner(server.instance.accounts.get("alice").id)[0].id
    assert bob.get(f"/ui/shares/{share_id}").status_code == 404
    ended = bob.form("/ui/shares", f"/ui/shares/{share_id}/revoke")
    assert ended.status_code == 404
    assert server.instance.shares.get(share_id).revoked_at is None


def test_a_link_from_the_dialog_then_the_overview(server: LiveServer, web_client: Callable[..., Web],
                                                  mailbox: Mailbox) -> None:  # noqa: F811  # fmt: skip
    alice = signed_in(server, web_client, "alice")
    made = alice.form(f"/ui/share/{quote(FOLDER)}", data={
        "kind": "link", "email": "patient@example.org", "mode": "read", "proof": "password", "password": "",
        "password_by": "owner", "note": "Vos résultats", "lang": "fr"})  # fmt: skip
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    link = re.search(r'id="share-link">([^<]+)<', made.text)
    password = re.search(r'id="share-password">([^<]+)<', made.text)
    assert link is not None and password is not None
    token = link.group(1).rsplit("/", 1)[1]
    run_jobs(server)
    assert [m["To"] for m in mailbox.messages] == ["patient@example.org"]  # the link; the password is alice's to give
    guest = web_client(server)
    assert guest.form(f"/s/{token}", data={"password": password.group(1)}).status_code == 303
    assert guest.get(f"/s/{token}/get/irm.pdf").content == b"%PDF-irm"

    overview = alice.get("/ui/shares")
    assert "patient@example.org" in overview.text and FOLDER in overview.text
    share_id = int(re.findall(r'data-share="(\d+)"', overview.text)[0])
    # A failed login typing "share:<id>" as a user name is no visit of the share.
    web_client(server).form("/ui/login", data={"username": f"share:{share_id}", "password": "x"})
    assert server.instance.flush_audit()  # the audit log is written in the background
    detail = alice.get(f"/ui/shares/{share_id}").text
    assert "auth.login" not in detail
    assert "share.download" in detail and "share.open" in detail  # the recipient's visits
    # Change the last day and the note.
    edit = {"mode": "read", "expires": "", "note": "Nouvelle note"}
    changed = alice.form(f"/ui/shares/{share_id}", f"/ui/shares/{share_id}/edit", edit)
    assert changed.status_code == 303
    assert server.instance.shares.note(server.instance.shares.get(share_id)) == "Nouvelle note"
    # Send again: a new link and password; the old ones open nothing any more.
    resent = alice.form(f"/ui/shares/{share_id}", f"/ui/shares/{share_id}/resend", {"password_by": "owner"})
    new_password = re.search(r'id="share-password">([^<]+)<', resent.text)
    assert resent.status_code == 200 and new_password is not None
    assert guest.get(f"/s/{token}").status_code == 404
    run_jobs(server)
    new_mail = mailbox.messages[-1]
    body = new_mail.get_body(("plain",))
    assert body is not None
    new_link = re.search(r"(https?://\S+/s/\S+)", body.get_content())
    assert new_link is not None and token not in new_link.group(1)
    new_token = new_link.group(1).rsplit("/", 1)[1]
    other = web_client(server)
    assert other.form(f"/s/{new_token}", data={"password": password.group(1)}).status_code == 401
    assert other.form(f"/s/{new_token}", data={"password": new_password.group(1)}).status_code == 303
    # End it.
    assert alice.form(f"/ui/shares/{share_id}", f"/ui/shares/{share_id}/revoke").status_code == 303
    assert other.get(f"/s/{new_token}").status_code == 404


def test_drop_box_owners_get_a_digest_not_a_mail_per_file(server: LiveServer, web_client: Callable[..., Web],
                                                          mailbox: Mailbox) -> None:  # noqa: F811  # fmt: skip
    inst = server.instance
    alice = inst.accounts.get("alice")
    folder = inst.tree.resolve(alice.root_id, [FOLDER])
    assert folder is not None
    made = inst.shares.create(alice.principal(), folder, email="lab@example.org", mode="dropbox",
                              password="Tulipe ocre 2026!", notify_uploads=True)  # fmt: skip
    quiet = inst.shares.create(alice.principal(), folder, email="x@example.org", mode="dropbox",
                               password="Tulipe ocre 2026!")  # fmt: skip
    run_jobs(server)
    mailbox.messages.clear()
    for share in (made, quiet):
        guest = web_client(server)
        assert guest.form(f"/s/{share.token}", data={"password": "Tulipe ocre 2026!"}).status_code == 303
        for name in ("a.pdf", "b.pdf", "secret-name.pdf"):
            assert guest.put_file(f"/s/{share.token}", name, b"%PDF").status_code == 201
    assert inst.shares.digest() == 1
    assert inst.shares.digest() == 0  # told once
    run_jobs(server)
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["To"] == "alice@example.org" and "3 nouveaux fichiers" in str(mail["Subject"])
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "secret-name" not in text and FOLDER not in text and "/ui/shares" in text
    # More files later: the next digest tells those only.
    guest = web_client(server)
    guest.form(f"/s/{made.token}", data={"password": "Tulipe ocre 2026!"})
    assert guest.put_file(f"/s/{made.token}", "c.pdf", b"%PDF").status_code == 201
    assert inst.shares.digest() == 1
    run_jobs(server)
    assert "1 nouveau fichier" in str(mailbox.messages[-1]["Subject"])
    # Only drop boxes and read-write links have uploads to tell of.
    with pytest.raises(Exception, match="read-only"):
        inst.shares.create(alice.principal(), folder, email="y@example.org", notify_uploads=True)
