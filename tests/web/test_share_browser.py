"""Sharing in a real browser (headless Chromium through Selenium), with a real SMTP server (aiosmtpd).

alice signs in, opens her files and shares a folder by a link from the share dialog; the link and
the password arrive in two mails.  The recipient opens the link, types the password, downloads a
file and the folder as a zip; a drop box takes three files (one of them a name already there) from
the file picker, with the progress shown; a read-write recipient adds a file; ending a share closes
an open recipient page at its next click.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from server.jobs import WorkerPool
from server.jobs.commands import instance_handlers
from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from tests.web.conftest import LENIENT_THROTTLE, Mailbox, mailbox, smtp_settings  # noqa: F401 - the mailbox fixture
from tests.web.test_login_flows import Page

pytestmark = pytest.mark.client
FOLDER = "Dupont Jeanne"
PASSWORD = "Tulipe ocre 2026!"


@pytest.fixture
def server(make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer],
           mailbox: Mailbox) -> Iterator[LiveServer]:  # noqa: F811 - the fixture  # fmt: skip
    live = start_server(make_test_instance({**smtp_settings(mailbox), **LENIENT_THROTTLE}))
    inst = live.instance
    alice = inst.accounts.create_user("alice", TEST_PASSWORD, email="alice@example.org", locale="fr")
    folder = inst.tree.mkdir(inst.tree.get(alice.root_id), FOLDER)
    exams = inst.tree.mkdir(folder, "Examens")
    for parent, name, data in ((folder, "irm.pdf", b"%PDF-irm"), (exams, "bilan.txt", b"bilan sanguin")):
        upload = inst.tree.upload(parent, name, expected_size=len(data))
        upload.write(data)
        upload.finish()
    yield live


def run_jobs(server: LiveServer) -> None:
    workers = WorkerPool(server.instance.jobs, instance_handlers(server.instance), threads=0, scheduler=False)
    while workers.run_one("test"):
        pass


def downloads_into(browser: Any, directory: Path) -> None:
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(directory)})


def downloaded(directory: Path, name: str, timeout: float = 20) -> bytes:
    path = directory / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and not list(directory.glob("*.crdownload")):
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {sorted(p.name for p in directory.iterdir())}")


def plain_text(message: Any) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def send_files(browser: Any, files: list[Path]) -> None:
    """Pick files in the upload form, send them, and wait until the page reloads with them."""
    picker = browser.find_element(By.ID, "files")
    picker.send_keys("\n".join(str(f) for f in files))
    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, "send").click()
    WebDriverWait(browser, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#progress li.sent")) == len(files)
                                     or _gone(old))  # fmt: skip
    WebDriverWait(browser, 20).until(lambda d: _gone(old))  # the page reloads once every file is in


def _gone(element: Any) -> bool:
    try:
        element.is_enabled()
    except Exception:  # stale: the page was replaced
        return True
    return False


def test_an_external_share_from_the_dialog_to_the_recipients_downloads(
    browser: Any,
    server: LiveServer,
    mailbox: Mailbox,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    page = Page(browser, server.url)
    browser.delete_all_cookies()
    page.login("alice", TEST_PASSWORD)
    page.click("nav-files")
    assert FOLDER in page.text("#listing")
    share_link = browser.find_element(By.CSS_SELECTOR, f'a.share[href$="{quote(FOLDER)}"]')
    page.press(share_link)
    page.type("email", "patient@example.org")
    page.type("password", PASSWORD)
    page.type("note", "Vos résultats d'IRM")
    page.click("share-submit")
    assert "/s/" in page.text("#share-link")  # on the instance's public address ([server] public_url)

    # Two mails: the link (no name of what is shared, no note), then the password.
    run_jobs(server)
    assert [m["To"] for m in mailbox.messages] == ["patient@example.org", "patient@example.org"]
    link_mail, password_mail = mailbox.messages
    link = re.search(r"(https?://\S+/s/[a-z0-9]+)", plain_text(link_mail))
    assert link is not None and PASSWORD in plain_text(password_mail)
    for mail in mailbox.messages:
        assert FOLDER not in plain_text(mail) and "IRM" not in plain_text(mail)

    # The recipient, in a browser of their own.
    browser.delete_all_cookies()
    downloads_into(browser, tmp_path)
    browser.get(server.url + "/s/" + link.group(1).rsplit("/s/", 1)[1])  # the test server's own port
    page.type("password", "not the password")
    page.click("submit")
    assert "incorrect" in page.text(".error")
    page.type("password", PASSWORD)
    page.click("submit")
    assert "Vos résultats d'IRM" in page.text("#note")
    browser.find_element(By.LINK_TEXT, "irm.pdf").click()
    assert downloaded(tmp_path, "irm.pdf") == b"%PDF-irm"
    browser.find_element(By.ID, "zip").click()
    archive = downloaded(tmp_path, f"{FOLDER}.zip")
    with zipfile.ZipFile(tmp_path / f"{FOLDER}.zip") as opened:
        assert sorted(opened.namelist()) == ["Examens/bilan.txt", "irm.pdf"] and len(archive) > 0
        assert opened.read("Examens/bilan.txt") == b"bilan sanguin"

    # alice ends the share: the recipient's next click finds nothing.
    share = server.instance.shares.by_owner(server.instance.accounts.get("alice").id)[0]
    server.instance.shares.revoke(server.instance.accounts.get("alice").principal(), share.id)
    page.press(browser.find_element(By.LINK_TEXT, "Examens/"))
    assert "Page introuvable" in page.text("h1")


def test_a_drop_box_and_a_read_write_link_take_files_from_the_browser(
    browser: Any, server: LiveServer, tmp_path: Path
) -> None:
    inst = server.instance
    alice = inst.accounts.get("alice")
    folder = inst.tree.resolve(alice.root_id, [FOLDER])
    assert folder is not None
    box = inst.shares.create(alice.principal(), folder, email="lab@example.org", mode="dropbox", password=PASSWORD)
    files = []
    for name, data in (("scanner.pdf", b"%PDF-scan"), ("irm.pdf", b"%PDF-lab"), ("lettre.txt", b"lettre")):
        path = tmp_path / name
        path.write_bytes(data)
        files.append(path)

    page = Page(browser, server.url)
    browser.delete_all_cookies()
    page.open(f"/s/{box.token}")
    page.type("password", PASSWORD)
    page.click("submit")
    assert "irm.pdf" not in page.text("main")  # the owner's files: not even their names
    send_files(browser, files)
    sent = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#sent li")]
    assert sent == ["scanner.pdf", "irm.pdf", "lettre.txt"]
    stored = {e.name for e in inst.tree.children(folder)}
    assert {"scanner.pdf", "irm.pdf", "irm (2).pdf", "lettre.txt"} <= stored
    with inst.tree.open(inst.tree.resolve(alice.root_id, [FOLDER, "irm.pdf"])) as reader:  # type: ignore[arg-type]
        assert reader.read() == b"%PDF-irm"  # never overwritten

    writer = inst.shares.create(alice.principal(), folder, email="dr@example.org", mode="write", password=PASSWORD)
    browser.delete_all_cookies()
    page.open(f"/s/{writer.token}")
    page.type("password", PASSWORD)
    page.click("submit")
    extra = tmp_path / "compte-rendu.txt"
    extra.write_bytes(b"compte rendu")
    send_files(browser, [extra])
    assert "compte-rendu.txt" in page.text("#listing")
    assert inst.tree.resolve(alice.root_id, [FOLDER, "compte-rendu.txt"]) is not None
