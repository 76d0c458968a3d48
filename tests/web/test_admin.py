"""The administration pages through httpx against a live server, checked through WebDAV as well.

The first organisation ("Default organisation", the instance's) has the
instance admin, olga (org admin) and alice (member); "Clinique du Port" has
bruno (org admin) and berthe (member).  Admins need no second factor here
(``[web] admins_need_second_factor = false``), so the pages are reached with
a password; the rule itself is tested in ``test_pages.py``.
"""

from __future__ import annotations

import csv
import html
import io
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlparse
from zoneinfo import ZoneInfo

import httpx
import pyotp
import pytest
from sqlalchemy import update

from server.db.models import one_time_tokens_t
from server.policy import ROLE_ORG_ADMIN
from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from tests.web.conftest import LENIENT_THROTTLE, Mailbox, Web, csrf_of, smtp_settings
from webui.i18n import TIMEZONE

NEW_PASSWORD = "une-phrase-de-passe-assez-longue-2026"
INVITE_LINK = re.compile(r"https?://\S+?(/ui/invite/[A-Za-z0-9_-]+)")
#: A file name that must never appear in an admin page or export.
SECRET_NAME = "Dupont-Jeanne-IRM-cerebrale-confidentiel.pdf"
SHARED = "Dossiers partagés"


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


@dataclass
class Site:
    server: LiveServer
    admin: str  # the instance admin, of the first organisation
    org_a: int
    org_b: int
    web_client: Callable[..., Web]
    mailbox: Mailbox | None

    @property
    def instance(self) -> Any:
        return self.server.instance

    def user_id(self, name: str) -> int:
        return int(self.instance.accounts.get(name).id)

    def web(self, name: str, *, lang: str = "fr", password: str = TEST_PASSWORD) -> Web:
        client = self.web_client(self.server, headers={"Accept-Language": lang})
        assert client.login(name, password).status_code == 303
        return client

    def dav(self, name: str, password: str = TEST_PASSWORD) -> httpx.Client:
        return httpx.Client(base_url=self.server.dav_url, auth=(name, password), timeout=30)


def make_site(
    make_test_instance: Callable[..., TestInstance],
    start_server: Callable[[TestInstance], LiveServer],
    web_client: Callable[..., Web],
    mailbox: Mailbox | None = None,
) -> Site:
    settings: dict[str, dict[str, Any]] = {"web": {"admins_need_second_factor": False}, **LENIENT_THROTTLE}
    if mailbox is not None:
        settings.update(smtp_settings(mailbox))
    inst = make_test_instance(settings)
    server = start_server(inst)
    accounts = server.instance.accounts
    org_a = accounts.default_organisation()
    org_b = accounts.create_organisation("Clinique du Port")
    accounts.create_user("olga", TEST_PASSWORD, org_id=org_a, role=ROLE_ORG_ADMIN, email="olga@example.org")
    accounts.create_user("alice", TEST_PASSWORD, org_id=org_a, email="alice@example.org", locale="fr")
    accounts.create_user("bruno", TEST_PASSWORD, org_id=org_b, role=ROLE_ORG_ADMIN)
    accounts.create_user("berthe", TEST_PASSWORD, org_id=org_b)
    return Site(server, inst.user, org_a, org_b, web_client, mailbox)


@pytest.fixture
def site(
    make_test_instance: Callable[..., TestInstance],
    start_server: Callable[[TestInstance], LiveServer],
    web_client: Callable[..., Web],
) -> Site:
    return make_site(make_test_instance, start_server, web_client)


@pytest.fixture
def mail_site(
    make_test_instance: Callable[..., TestInstance],
    start_server: Callable[[TestInstance], LiveServer],
    web_client: Callable[..., Web],
    mailbox: Mailbox,
) -> Site:
    return make_site(make_test_instance, start_server, web_client, mailbox)


@pytest.fixture
def dav_clients() -> Iterator[list[httpx.Client]]:
    clients: list[httpx.Client] = []
    yield clients
    for client in clients:
        client.close()


def post(web: Web, page: str, action: str, data: dict[str, str] | None = None) -> httpx.Response:
    """POST ``data`` to ``action`` with a CSRF token read from ``page``."""
    return web.form(page, action, data or {})


def wait_for_mail(mailbox: Mailbox, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(mailbox.messages) < count:
        assert time.monotonic() < deadline, f"{count} mail(s) expected, {len(mailbox.messages)} arrived"
        time.sleep(0.05)


def plain_body(mailbox: Mailbox, index: int) -> str:
    body = mailbox.messages[index].get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


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


def admin_posts(org: int, user: int, group: int) -> list[str]:
    return [
        f"/ui/admin/{org}/invite",
        f"/ui/admin/{org}/second-factor",
        f"/ui/admin/{org}/members/{user}/role",
        f"/ui/admin/{org}/members/{user}/disable",
        f"/ui/admin/{org}/members/{user}/enable",
        f"/ui/admin/{org}/members/{user}/reset-2fa",
        f"/ui/admin/{org}/members/{user}/quota",
        f"/ui/admin/{org}/groups",
        f"/ui/admin/{org}/groups/{group}",
        f"/ui/admin/{org}/groups/{group}/delete",
    ]


def admin_pages(org: int, user: int, group: int) -> list[str]:
    return [
        "/ui/admin",
        f"/ui/admin/{org}",
        f"/ui/admin/{org}/members/{user}",
        f"/ui/admin/{org}/groups",
        f"/ui/admin/{org}/groups/{group}/delete",
        f"/ui/admin/{org}/audit",
        f"/ui/admin/{org}/audit.csv",
    ]


POST_DATA = {"name": "mallory", "email": "m@example.org", "role": "org_admin", "required": "yes", "quota": "1"}


# -- who may --------------------------------------------------------------------------------------


def test_a_member_gets_403_on_every_admin_page_and_post(site: Site) -> None:
    olga = site.user_id("olga")
    group = site.instance.tree.create_group_folder(site.org_a, SHARED, owner_id=olga)
    web = site.web("alice")
    assert 'id="nav-admin"' not in web.get("/ui").text
    for page in admin_pages(site.org_a, olga, group.id):
        response = web.get(page)
        assert response.status_code == 403, page
        assert "Accès refusé" in text_of(response)
    token = csrf_of(web.get("/ui").text)
    for action in admin_posts(site.org_a, olga, group.id):
        assert web.post(action, data={**POST_DATA, "csrf_token": token, "confirm": "yes"}).status_code == 403, action
    accounts = site.instance.accounts
    assert accounts.get("olga").role == ROLE_ORG_ADMIN and not accounts.get("olga").disabled
    assert [g.id for g in site.instance.tree.group_folders(site.org_a)] == [group.id]
    assert not accounts.organisation(site.org_a).require_second_factor
    with pytest.raises(Exception, match="no such user"):
        accounts.get("mallory")


def test_an_org_admin_cannot_see_or_act_on_another_organisation(site: Site) -> None:
    bruno, berthe = site.user_id("bruno"), site.user_id("berthe")
    group_b = site.instance.tree.create_group_folder(site.org_b, "Radiologie", owner_id=bruno)
    web = site.web("olga")
    assert 'id="nav-admin"' in web.get("/ui").text
    assert web.get("/ui/admin").headers["location"] == f"/ui/admin/{site.org_a}"  # straight to her own
    for page in admin_pages(site.org_b, berthe, group_b.id)[1:]:
        assert web.get(page).status_code == 403, page
    token = csrf_of(web.get("/ui").text)
    for action in admin_posts(site.org_b, berthe, group_b.id):
        assert web.post(action, data={**POST_DATA, "csrf_token": token, "confirm": "yes"}).status_code == 403, action
    # Her own organisation in the address, another's member or group folder: not found.
    assert web.get(f"/ui/admin/{site.org_a}/members/{berthe}").status_code == 404
    own = f"/ui/admin/{site.org_a}"
    assert post(web, own, f"{own}/members/{berthe}/disable").status_code == 404
    assert post(web, own, f"{own}/groups/{group_b.id}/delete", {"confirm": "yes"}).status_code == 404
    assert not site.instance.accounts.get("berthe").disabled
    assert len(site.instance.tree.group_folders(site.org_b)) == 1
    members = web.get(own).text
    assert "alice" in members and "berthe" not in members and "Clinique du Port" not in members

    # The instance admin chooses among the organisations, and sees ids, not names, of others' group folders.
    admin = site.web(site.admin)
    chooser = text_of(admin.get("/ui/admin"))
    assert "Clinique du Port" in chooser and "Default organisation" in chooser
    assert "berthe" in admin.get(f"/ui/admin/{site.org_b}").text
    groups = admin.get(f"/ui/admin/{site.org_b}/groups").text
    assert f"#{group_b.id}" in groups and "Radiologie" not in groups


def test_an_org_admin_cannot_change_an_instance_admin_nor_lock_themselves_out(site: Site) -> None:
    web = site.web("olga")
    org = f"/ui/admin/{site.org_a}"
    admin_id, olga_id = site.user_id(site.admin), site.user_id("olga")
    for change in ("role", "disable", "reset-2fa", "quota"):
        refused = post(web, org, f"{org}/members/{admin_id}/{change}", {"role": "member", "quota": "1"})
        assert refused.status_code == 403, change
    for change in ("role", "disable", "reset-2fa"):
        refused = post(web, org, f"{org}/members/{olga_id}/{change}", {"role": "member"})
        assert refused.status_code == 403, change
        assert "votre propre compte" in text_of(refused)
    # Nor make anyone an instance admin.
    alice = site.user_id("alice")
    assert post(web, org, f"{org}/members/{alice}/role", {"role": "instance_admin"}).status_code == 403
    assert (
        post(web, org, f"{org}/invite", {"name": "x", "email": "x@example.org", "role": "instance_admin"}).status_code
        == 403
    )
    accounts = site.instance.accounts
    assert accounts.get(site.admin).role == "instance_admin" and not accounts.get(site.admin).disabled
    assert accounts.get("olga").role == ROLE_ORG_ADMIN and accounts.get("alice").role == "member"


# -- members -----------------------------------------------------------------------------------------


def test_an_invitation_by_mail_sets_the_password_once_and_signs_in(
    mail_site: Site, dav_clients: list[httpx.Client]
) -> None:
    site = mail_site
    assert site.mailbox is not None
    web = site.web("olga")
    org = f"/ui/admin/{site.org_a}"
    invited = post(
        web, org, f"{org}/invite", {"name": "Marc", "email": "marc@example.org", "role": "member", "locale": "en"}
    )
    assert invited.status_code == 303 and "notice=invited" in invited.headers["location"]
    taken = post(web, org, f"{org}/invite", {"name": "marc", "email": "marc@example.org", "role": "member"})
    assert taken.status_code == 409 and "déjà pris" in text_of(taken)
    marc = site.instance.accounts.get("marc")
    assert marc.org_id == site.org_a and marc.email == "marc@example.org" and marc.locale == "en"
    page = text_of(web.get(org))
    assert "marc@example.org" in page

    wait_for_mail(site.mailbox, 1)
    mail = site.mailbox.messages[0]
    assert mail["To"] == "marc@example.org" and mail["Content-Language"] == "en"
    body = plain_body(site.mailbox, 0)
    assert "olga" in body and "Default organisation" in body
    match = INVITE_LINK.search(body)
    assert match is not None
    path = match.group(1)

    newcomer = site.web_client(site.server, headers={"Accept-Language": "en"})
    form = newcomer.get(path)
    assert form.status_code == 200 and "marc" in form.text and "Default organisation" in form.text
    token = csrf_of(form.text)
    assert newcomer.post(path, data={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}).status_code == 400
    weak = newcomer.post(path, data={"csrf_token": token, "new_password": "marc12", "confirm_password": "marc12"})
    assert weak.status_code == 400 and "too short" in text_of(weak)  # the policy, in the page's language
    done = newcomer.post(
        path, data={"csrf_token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    )
    assert done.status_code == 303 and done.headers["location"] == "/ui"
    assert "marc" in newcomer.get("/ui").text  # signed in
    # Used: the link shows and accepts nothing more.
    stranger = site.web_client(site.server)
    assert stranger.get(path).status_code == 404
    again = stranger.form("/ui/login", path, {"new_password": "x" * 30, "confirm_password": "x" * 30})
    assert again.status_code == 404
    assert site.web("marc", password=NEW_PASSWORD).get("/ui").status_code == 200
    drive = site.dav("marc", NEW_PASSWORD)
    dav_clients.append(drive)
    assert drive.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 207

    # An expired invitation says so.
    post(web, org, f"{org}/invite", {"name": "nora", "email": "nora@example.org", "role": "member", "locale": "fr"})
    wait_for_mail(site.mailbox, 2)
    late = INVITE_LINK.search(plain_body(site.mailbox, 1))
    assert late is not None
    with site.instance.db.write() as c:
        c.run(update(one_time_tokens_t).values(expires_at=time.time() - 1))
    expired = site.web_client(site.server).get(late.group(1))
    assert expired.status_code == 404 and "n'est plus valide" in text_of(expired)


def test_a_role_change_applies_at_once_on_webdav(site: Site, dav_clients: list[httpx.Client]) -> None:
    olga = site.user_id("olga")
    site.instance.tree.create_group_folder(site.org_a, "Protocoles", owner_id=olga, member_access="ro")
    alice = site.dav("alice")
    dav_clients.append(alice)
    assert alice.put("Protocoles/note.txt", content=b"x").status_code == 403
    web = site.web("olga")
    org = f"/ui/admin/{site.org_a}"
    alice_id = site.user_id("alice")
    assert post(web, org, f"{org}/members/{alice_id}/role", {"role": "org_admin"}).status_code == 303
    assert alice.put("Protocoles/note.txt", content=b"x").status_code == 201
    assert site.web("alice").get(f"/ui/admin/{site.org_a}").status_code == 200  # the pages too
    assert post(web, org, f"{org}/members/{alice_id}/role", {"role": "member"}).status_code == 303
    assert alice.put("Protocoles/note.txt", content=b"y").status_code == 403


def test_disabling_shuts_webdav_and_the_web_at_once(site: Site, dav_clients: list[httpx.Client]) -> None:
    alice = site.dav("alice")
    dav_clients.append(alice)
    assert alice.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 207
    browser = site.web("alice")
    web = site.web("olga")
    org = f"/ui/admin/{site.org_a}"
    alice_id = site.user_id("alice")
    assert post(web, org, f"{org}/members/{alice_id}/disable").status_code == 303
    assert alice.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 401
    assert browser.get("/ui").headers["location"] == "/ui/login"
    assert "désactivé" in text_of(web.get(org))
    assert post(web, org, f"{org}/members/{alice_id}/enable").status_code == 303
    assert alice.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 207


def test_reset_second_factor_tells_the_member_by_mail(mail_site: Site) -> None:
    site = mail_site
    assert site.mailbox is not None
    credentials = site.instance.credentials
    alice_id = site.user_id("alice")
    enrolment = credentials.start_totp("alice")
    credentials.confirm_totp(alice_id, enrolment.secret, pyotp.TOTP(enrolment.secret).now())
    web = site.web("olga")
    org = f"/ui/admin/{site.org_a}"
    assert re.search(rf'id="member-{alice_id}">(?:(?!</tr>).)*<td>oui</td>', web.get(org).text, re.S)
    assert post(web, f"{org}/members/{alice_id}", f"{org}/members/{alice_id}/reset-2fa").status_code == 303
    assert not credentials.has_totp(alice_id) and credentials.recovery_codes_left(alice_id) == 0
    wait_for_mail(site.mailbox, 1)
    assert site.mailbox.messages[0]["To"] == "alice@example.org" and "olga" in plain_body(site.mailbox, 0)
    # A member without a second factor has nothing to reset.
    assert 'id="reset-2fa"' not in web.get(f"{org}/members/{alice_id}").text


def test_a_quota_applies_at_once_on_webdav(site: Site, dav_clients: list[httpx.Client]) -> None:
    alice = site.dav("alice")
    dav_clients.append(alice)
    web = site.web("olga")
    org = f"/ui/admin/{site.org_a}"
    alice_id = site.user_id("alice")
    wrong = post(web, f"{org}/members/{alice_id}", f"{org}/members/{alice_id}/quota", {"quota": "beaucoup"})
    assert wrong.status_code == 400
    assert (
        post(web, f"{org}/members/{alice_id}", f"{org}/members/{alice_id}/quota", {"quota": "2 ko"}).status_code == 303
    )
    assert site.instance.accounts.get("alice").quota_bytes == 2000
    assert alice.put("small.bin", content=b"x" * 1500).status_code == 201
    assert alice.put("big.bin", content=b"x" * 1000).status_code == 507
    assert "2 ko" in web.get(org).text.replace("\xa0", " ")
    assert post(web, f"{org}/members/{alice_id}", f"{org}/members/{alice_id}/quota", {"quota": "0"}).status_code == 303
    assert alice.put("big.bin", content=b"x" * 1000).status_code == 201


def test_an_organisation_can_require_a_second_factor(site: Site, dav_clients: list[httpx.Client]) -> None:
    berthe = site.dav("berthe")
    dav_clients.append(berthe)
    assert berthe.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 207
    bruno = site.web("bruno")
    admin = site.web(site.admin)  # of another organisation: what changes there does not touch them
    org = f"/ui/admin/{site.org_b}"
    assert 'id="second-factor-optional"' in admin.get(org).text
    assert post(bruno, org, f"{org}/second-factor", {"required": "yes"}).status_code == 303
    assert site.instance.accounts.organisation(site.org_b).require_second_factor
    assert berthe.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 401  # app passwords only now
    assert bruno.get(org).headers["location"] == "/ui/security"  # an admin without one sets it up first
    assert 'id="second-factor-required"' in admin.get(org).text
    assert post(admin, org, f"{org}/second-factor", {"required": "no"}).status_code == 303
    assert berthe.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 207
    assert not site.instance.accounts.organisation(site.org_a).require_second_factor


# -- group folders -----------------------------------------------------------------------------------


def test_group_folders_are_created_changed_and_deleted_in_members_drives(
    site: Site, dav_clients: list[httpx.Client]
) -> None:
    alice = site.dav("alice")
    dav_clients.append(alice)
    web = site.web("olga")
    groups = f"/ui/admin/{site.org_a}/groups"
    created = post(web, groups, groups, {"name": SHARED, "access": "rw", "quota": "1 ko"})
    assert created.status_code == 303
    assert post(web, groups, groups, {"name": SHARED, "access": "rw"}).status_code == 409
    assert SHARED in listing(alice)
    root = site.instance.tree.group_folder_named(site.org_a, SHARED)
    assert root is not None and root.group_access == "rw"
    assert alice.put(f"{quote(SHARED)}/a.txt", content=b"x" * 600).status_code == 201
    assert alice.put(f"{quote(SHARED)}/b.txt", content=b"x" * 600).status_code == 507  # the group's quota
    page = text_of(web.get(groups))
    assert SHARED in page and "lecture et écriture" in page

    assert post(web, groups, f"{groups}/{root.id}", {"access": "ro", "quota": ""}).status_code == 303
    assert alice.put(f"{quote(SHARED)}/b.txt", content=b"x" * 600).status_code == 403  # read only now
    assert "lecture seule" in text_of(web.get(groups))

    confirm = web.get(f"{groups}/{root.id}/delete")
    assert confirm.status_code == 200 and SHARED in text_of(confirm)
    unconfirmed = web.post(f"{groups}/{root.id}/delete", data={"csrf_token": csrf_of(confirm.text)})
    assert unconfirmed.status_code == 400 and SHARED in listing(alice)
    deleted = web.post(f"{groups}/{root.id}/delete", data={"csrf_token": csrf_of(confirm.text), "confirm": "yes"})
    assert deleted.status_code == 303
    assert SHARED not in listing(alice)
    assert web.get(f"{groups}/{root.id}/delete").status_code == 404


# -- audit log ----------------------------------------------------------------------------------------


def audit_rows(page: str) -> list[str]:
    return re.findall(r'<tr data-id="(\d+)">', page)


def test_the_audit_log_filters_pages_and_exports_without_file_names(
    site: Site, dav_clients: list[httpx.Client]
) -> None:
    alice = site.dav("alice")
    dav_clients.append(alice)
    assert alice.request("MKCOL", "Patients-Dupont-Jeanne/").status_code == 201
    assert alice.put(f"Patients-Dupont-Jeanne/{SECRET_NAME}", content=b"%PDF").status_code == 201
    assert alice.get(f"Patients-Dupont-Jeanne/{SECRET_NAME}").status_code == 200
    assert alice.get("Patients-Dupont-Jeanne/absent-Martin-Paul.pdf").status_code == 404
    for _ in range(55):
        alice.request("PROPFIND", "", headers={"Depth": "0"})
    web = site.web("olga")
    org = f"/ui/admin/{site.org_a}"
    alice_id = site.user_id("alice")
    post(web, f"{org}/members/{alice_id}", f"{org}/members/{alice_id}/quota", {"quota": "5 Go"})
    audit = f"{org}/audit"

    first = web.get(audit)
    assert first.status_code == 200
    rows = audit_rows(first.text)
    assert len(rows) == 50 and rows == sorted(rows, key=int, reverse=True)
    assert "admin.user.quota" in first.text  # newest first
    older = re.search(r'href="([^"]+)" id="older"', first.text)
    assert older is not None
    second = web.get(html.unescape(older.group(1)))
    second_rows = audit_rows(second.text)
    assert second_rows and int(second_rows[0]) < int(rows[-1])
    newer = re.search(r'href="([^"]+)" id="newer"', second.text)
    assert newer is not None and audit_rows(web.get(html.unescape(newer.group(1))).text) == rows

    written = web.get(audit, params={"action": "file.write"})
    assert len(audit_rows(written.text)) == 1 and "file.write" in written.text
    failed = web.get(audit, params={"outcome": "failed", "user": str(alice_id)})
    assert len(audit_rows(failed.text)) == 1 and "404" in failed.text
    admin_only = web.get(audit, params={"action": "admin.", "user": str(site.user_id("olga"))})
    assert len(audit_rows(admin_only.text)) == 1
    today = datetime.now(ZoneInfo(TIMEZONE)).date().isoformat()  # the page's days are Paris days, not UTC's
    assert len(audit_rows(web.get(audit, params={"from": today, "to": today}).text)) == 50
    assert audit_rows(web.get(audit, params={"to": "2001-01-01"}).text) == []
    bad_date = web.get(audit, params={"from": "demain"})
    assert bad_date.status_code == 200 and "année-mois-jour" in text_of(bad_date)
    # Other organisations' rows are not there.
    bruno = site.dav("bruno")
    dav_clients.append(bruno)
    bruno.put("autre.txt", content=b"b")
    assert site.instance.flush_audit()
    assert "bruno" not in web.get(audit, params={"action": "file."}).text

    export = web.get(f"{audit}.csv", params={"user": str(alice_id)})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(export.text)))
    assert len(table) >= 59 and {row["user_id"] for row in table} == {str(alice_id)}
    assert "node_name" not in table[0] and {"hash", "node_id", "action"} <= set(table[0])
    pages = [first.text, second.text, written.text, failed.text, export.text]
    for text in pages:
        for fragment in ("Dupont", "Jeanne", "IRM", "Martin-Paul", SECRET_NAME):
            assert fragment not in text
    assert site.instance.flush_audit()
    exported = web.get(audit, params={"action": "audit.export"})
    assert len(audit_rows(exported.text)) == 1


def test_admin_actions_are_audited_with_their_target(site: Site) -> None:
    web = site.web("olga")
    org = f"/ui/admin/{site.org_a}"
    alice_id = site.user_id("alice")
    post(web, org, f"{org}/members/{alice_id}/disable")
    post(web, org, f"{org}/members/{alice_id}/enable")
    post(web, org, f"{org}/members/{site.user_id('olga')}/disable")  # refused
    post(web, f"{org}/groups", f"{org}/groups", {"name": "Compta", "access": "ro"})
    export = web.get(f"{org}/audit.csv", params={"action": "admin."})
    rows = [(r["action"], r["outcome"], r["target_id"], r["org_id"]) for r in csv.DictReader(io.StringIO(export.text))]
    group = site.instance.tree.group_folder_named(site.org_a, "Compta")
    assert group is not None
    assert rows == [
        ("admin.user.disable", "ok", str(alice_id), str(site.org_a)),
        ("admin.user.enable", "ok", str(alice_id), str(site.org_a)),
        ("admin.user.disable", "denied", str(site.user_id("olga")), str(site.org_a)),
        ("admin.group.create", "ok", str(group.id), str(site.org_a)),
    ]


# -- CSRF and languages -------------------------------------------------------------------------------


def test_every_admin_post_needs_a_csrf_token(site: Site) -> None:
    olga = site.user_id("olga")
    alice = site.user_id("alice")
    group = site.instance.tree.create_group_folder(site.org_a, SHARED, owner_id=olga)
    web = site.web(site.admin)
    foreign = csrf_of(site.web("olga").get("/ui").text)
    for action in admin_posts(site.org_a, alice, group.id):
        for token in (None, "forged", foreign):
            data = (
                {**POST_DATA, "confirm": "yes"}
                if token is None
                else {**POST_DATA, "confirm": "yes", "csrf_token": token}
            )
            assert web.post(action, data=data).status_code == 400, action
    accounts = site.instance.accounts
    assert accounts.get("alice").role == "member" and not accounts.get("alice").disabled
    assert accounts.get("alice").quota_bytes is None
    assert [g.id for g in site.instance.tree.group_folders(site.org_a)] == [group.id]
    assert not accounts.organisation(site.org_a).require_second_factor


def test_admin_pages_speak_french_and_english(site: Site) -> None:
    french = site.web("olga", lang="fr")
    english = site.web("bruno", lang="en")
    fr = text_of(french.get(f"/ui/admin/{site.org_a}"))
    en = text_of(english.get(f"/ui/admin/{site.org_b}"))
    assert 'lang="fr"' in fr and "Inviter un membre" in fr and "Administrateur de l'organisation" in fr
    assert 'lang="en"' in en and "Invite a member" in en and "Organisation administrator" in en
    assert "Journal d'audit" in text_of(french.get(f"/ui/admin/{site.org_a}/audit"))
    assert "Group folders" in text_of(english.get(f"/ui/admin/{site.org_b}/groups"))


# -- forgotten password: rate limit ------------------------------------------------------------------------


def test_reset_requests_are_limited_per_address_whatever_the_account(
    make_test_instance: Callable[..., TestInstance],
    start_server: Callable[[TestInstance], LiveServer],
    web_client: Callable[..., Web],
    mailbox: Mailbox,
) -> None:
    server = start_server(make_test_instance(smtp_settings(mailbox)))
    server.instance.accounts.create_user("alice", TEST_PASSWORD, email="alice@example.org")
    web = web_client(server)
    answers = [web.form("/ui/forgot", data={"who": who}) for who in ("alice", "nobody", "alice", "nobody", "alice")]
    assert [a.status_code for a in answers] == [200] * 5
    wait_for_mail(mailbox, 3)
    for who in ("alice", "nobody"):
        refused = web.form("/ui/forgot", data={"who": who})
        assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 3600
        assert "Trop de demandes" in text_of(refused)
    time.sleep(0.3)
    assert len(mailbox.messages) == 3
