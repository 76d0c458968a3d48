"""The whole second-factor story in a real browser (headless Chromium through Selenium).

An admin signs in, is made to set up TOTP (the test reads the key shown under
the QR code and computes codes with pyotp), keeps the recovery codes, signs
out and in again with a code; a replayed code and a reused recovery code are
refused.  Then an app password is created and used by real WebDAV clients
(httpx, rclone) while the account password gets 401; revoking it shuts the
door at once.  One browser serves the module.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from server.testing import LiveServer, TestInstance
from tests.conftest import require_client
from tests.web.conftest import LENIENT_THROTTLE


@pytest.fixture
def server(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> Iterator[tuple[LiveServer, TestInstance]]:
    inst = make_test_instance(LENIENT_THROTTLE)
    yield start_server(inst), inst


def _replaced(old: Any) -> Any:
    """A wait condition: the page of ``old`` (its root element) has been replaced by the next one.

    Selenium's ``staleness_of`` only counts StaleElementReferenceException; while the old document is
    being torn down Chromium may answer "Node with given id does not belong to the document" as a plain
    WebDriverException instead (seen once in CI): that is a replaced page too."""

    def check(driver: Any) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
        return False

    return check


class Page:
    """The browser, with the few gestures the tests need."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver = driver
        self.base = base

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    @property
    def path(self) -> str:
        return str(self.driver.current_url)[len(self.base) :]

    def text(self, css: str = "body") -> str:
        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def type(self, field_id: str, value: str) -> None:
        element = self.driver.find_element(By.ID, field_id)
        element.clear()
        element.send_keys(value)

    def click(self, element_id: str) -> None:
        """Click what submits a form or follows a link, and wait for the next page."""
        self.press(self.driver.find_element(By.ID, element_id))

    def press(self, element: Any) -> None:
        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, 10).until(_replaced(old))

    def login(self, username: str, password: str) -> None:
        self.open("/ui/login")
        self.type("username", username)
        self.type("password", password)
        self.click("submit")

    def code(self, value: str) -> None:
        self.type("code", value)
        self.click("submit")

    def logout(self) -> None:
        self.click("logout")
        assert self.path.startswith("/ui/login")


def rclone_lsf(server: LiveServer, user: str, password: str) -> subprocess.CompletedProcess[str]:
    binary = require_client("rclone")
    obscured = subprocess.run([binary, "obscure", password], capture_output=True, text=True, check=True).stdout.strip()
    return subprocess.run(
        [
            binary,
            "--config",
            "/dev/null",
            "--retries",
            "1",
            "--low-level-retries",
            "1",
            "lsf",
            ":webdav:",
            "--webdav-url",
            server.dav_url,
            "--webdav-vendor",
            "other",
            "--webdav-user",
            user,
            "--webdav-pass",
            obscured,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RCLONE_CONFIG": "/dev/null"},
    )


def test_second_factor_enrolment_codes_and_app_passwords(
    browser: Any, server: tuple[LiveServer, TestInstance], tmp_path: Path
) -> None:
    live, inst = server
    page = Page(browser, live.url)
    browser.delete_all_cookies()

    # The welcome page leads to the login; an admin without a second factor is sent to set it up.
    page.open("/")
    page.click("sign-in")
    assert page.path == "/ui/login"
    page.login(inst.user, inst.password)
    assert page.path == "/ui/security"
    assert "doit avoir un second facteur" in page.text("#must-enrol")

    page.click("start-totp")
    assert browser.find_elements(By.CSS_SELECTOR, ".qr svg")
    totp = pyotp.TOTP("".join(page.text("#totp-secret").split()))
    first = totp.now()
    page.type("code", first)
    page.click("confirm-totp")
    recovery = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#recovery-codes li")]
    assert len(recovery) == 10 and page.text("#totp-enabled") == "Le second facteur est activé."
    page.open("/ui")
    assert page.path == "/ui"
    page.logout()

    # Signing in again asks for a code; the one used at enrolment is refused (replay).
    page.login(inst.user, inst.password)
    assert page.path == "/ui/login/code"
    page.code(first)
    assert page.path == "/ui/login/code" and "déjà servi" in page.text(".error")
    page.open("/ui")
    assert page.path == "/ui/login/code"  # nothing else opens before the code

    # A recovery code works, once.
    page.code(recovery[0])
    assert page.path.startswith("/ui/security") and "code de secours" in page.text(".notice")
    assert "Codes de secours restants : 9" in page.text("#totp-on").replace("\u00a0", " ")
    page.logout()
    page.login(inst.user, inst.password)
    page.code(recovery[0])
    assert page.path == "/ui/login/code"

    # The next code is accepted (one step of clock skew), and then refused if replayed.
    following = totp.at(time.time() + 30)
    page.code(following)
    assert page.path == "/ui"
    page.logout()
    page.login(inst.user, inst.password)
    page.code(following)
    assert page.path == "/ui/login/code"
    page.code(recovery[1])
    assert page.path.startswith("/ui/security")

    # Drives: the account password is refused now, and the pages say why.
    assert httpx.get(live.dav_url, auth=(inst.user, inst.password)).status_code == 401
    page.open("/ui/app-passwords?lang=en")
    assert "no longer accept your account password" in page.text("#why-app-password")
    page.type("name", "Portable rclone")
    page.click("create-app-password")
    app_password = page.text("#new-app-password")
    assert page.text("#dav-url") == live.dav_url
    assert "Portable rclone" in page.text("#app-passwords")

    with httpx.Client(base_url=live.dav_url, auth=(inst.user, app_password), timeout=30) as dav:
        assert dav.put("note.txt", content=b"compte rendu").status_code in (201, 204)
        assert dav.get("note.txt").content == b"compte rendu"
    listing = rclone_lsf(live, inst.user, app_password)
    assert listing.returncode == 0, listing.stderr
    assert "note.txt" in listing.stdout.split()
    assert rclone_lsf(live, inst.user, inst.password).returncode != 0

    # The list shows the last use; revoking ends WebDAV access at once.
    page.open("/ui/app-passwords")
    assert "127.0.0.1" in page.text("#app-passwords")
    page.press(browser.find_element(By.CSS_SELECTOR, "#app-passwords button.danger"))
    assert "has been revoked" in page.text(".notice")  # English, chosen above
    assert httpx.get(live.dav_url + "note.txt", auth=(inst.user, app_password)).status_code == 401
