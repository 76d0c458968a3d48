"""Fixtures of the web page tests: a signed-in httpx client, a member account, an SMTP server, a browser.

Pages are driven as a browser would: each form is fetched first, its CSRF
token read from the page, then posted with the cookies the page set.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from server.testing import TEST_PASSWORD, LiveServer
from tests.conftest import require_client

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MEMBER = "alice"
MEMBER_EMAIL = "alice@example.org"
#: Throttle settings that let a test fail a few codes on purpose without being refused.
LENIENT_THROTTLE = {"throttle": {"delay_after": 50, "max_failures": 100}}


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


class Web(httpx.Client):
    """An httpx client that fills in forms like a browser."""

    def form(self, page: str, action: str | None = None, data: dict[str, str] | None = None) -> httpx.Response:
        """GET ``page``, then POST ``data`` with its CSRF token to ``action`` (default: the page itself)."""
        token = csrf_of(self.get(page).text)
        return self.post(action or page, data={**(data or {}), "csrf_token": token})

    def login(self, username: str, password: str = TEST_PASSWORD) -> httpx.Response:
        return self.form("/ui/login", data={"username": username, "password": password})

    def upload_form(self, page: str) -> tuple[str, dict[str, str]]:
        """Where the upload form of ``page`` sends files, and the headers its script adds (the CSRF token)."""
        html = self.get(page).text
        target = re.search(r'data-target="([^"]+)"', html)
        assert target is not None, "no upload form on the page"
        return target.group(1), {"X-CSRF-Token": csrf_of(html), "Content-Type": "application/octet-stream"}

    def put_file(self, page: str, name: str, data: bytes) -> httpx.Response:
        """Send a file as the upload form of ``page`` does (``webui/static/share.js``): the raw body of a PUT."""
        target, headers = self.upload_form(page)
        return self.put(target, params={"name": name}, content=data, headers=headers)


@pytest.fixture
def web_client() -> Iterator[Callable[..., Web]]:
    """Make clients of a server (closed after the test); keyword arguments go to httpx."""
    clients: list[Web] = []

    def make(server: LiveServer, **kwargs: Any) -> Web:
        client = Web(base_url=server.url, timeout=30, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def add_member(server: LiveServer, name: str = MEMBER, *, email: str | None = MEMBER_EMAIL, locale: str = "fr") -> str:
    """A member account (no second factor required), with an e-mail address and a language."""
    server.instance.accounts.create_user(name, TEST_PASSWORD, email=email, locale=locale)
    return name


@dataclass
class Mailbox:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    box = Mailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


def smtp_settings(mailbox: Mailbox) -> dict[str, dict[str, Any]]:
    return {"mail": {"backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": mailbox.port, "smtp_security": "none"}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module (FACTS.md section 2: Debian's chromium and chromedriver)."""
    require_client("chromium")
    require_client("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "fr-FR,fr"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
