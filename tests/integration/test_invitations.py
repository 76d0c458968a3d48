"""Inviting a user: an account nobody can log in to until the e-mailed link sets its password."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from server.config import load_settings
from server.instance import open_instance
from server.testing import LiveServer, TestInstance
from tests.integration.test_mail import SmtpServer, parts, smtp_server  # noqa: F401 - the fixture


def test_invitation_by_mail(
    make_test_instance: Callable[..., TestInstance],
    smtp_server: Callable[..., SmtpServer],  # noqa: F811 - the imported fixture
    start_server: Callable[[TestInstance], LiveServer],
) -> None:
    smtp = smtp_server()
    made = make_test_instance(
        {"mail": {"backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "none"}}
    )
    result = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(made.config_path), "user", "invite", "bob",
         "--email", "bob@cabinet.example", "--lang", "en", "--inviter", "Dr Martin"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(smtp.received) == 1
    mail = smtp.received[0].message
    assert mail["To"] == "bob@cabinet.example"
    text, _ = parts(mail)
    assert "Dr Martin invites you" in text
    match = re.search(r"/ui/invite/([a-z2-7]+)", text)
    assert match is not None
    token = match.group(1)
    assert token not in result.stdout + result.stderr
    # Nobody can use the account before the link sets a password.
    server = start_server(made)
    with httpx.Client(base_url=server.dav_url, auth=("bob", "")) as client:
        assert client.request("PROPFIND", "", headers={"Depth": "0"}).status_code == 401
    user = server.instance.accounts.get("bob")
    assert user.email == "bob@cabinet.example" and user.locale == "en"
    assert server.instance.credentials.token_user(token, "invite") == user.id
    # A second invitation of the same name is refused; an invitation needs an address.
    again = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(made.config_path), "user", "invite", "bob",
         "--email", "bob@cabinet.example"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1 and "taken" in again.stderr


def test_an_invited_user_needs_an_address(make_test_instance: Callable[..., TestInstance]) -> None:
    made = make_test_instance()
    instance = open_instance(load_settings(made.config_path))
    try:
        from server.errors import BadRequest

        with pytest.raises(BadRequest):
            instance.accounts.create_user("carol", None)
    finally:
        instance.close()
