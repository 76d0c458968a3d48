"""A link's password by text message, through the notification channel "sms" a plugin provides.

A plugin (installed under an entry point, as pip would) offers the channel; the share's link goes by
e-mail (aiosmtpd) saying the password comes by text, and the password goes to the channel, never in a
mail nor stored with the share.  Without such a plugin, "sms" is refused with what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from server.config import load_settings
from server.errors import BadRequest
from server.hooks import hookimpl
from server.instance import open_instance
from server.jobs import WorkerPool
from server.jobs.commands import instance_handlers
from server.testing import TEST_PASSWORD, TestInstance
from tests.integration.test_plugin_facade import install  # noqa: F401 - the fixture, used here
from tests.web.conftest import Mailbox, mailbox, smtp_settings  # noqa: F401 - the mailbox fixture


class Texter:
    """A plugin providing the channel "sms": it records what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    @hookimpl
    def meddav_notification_channels(self) -> Mapping[str, Callable[[str, str, Mapping[str, Any]], None]]:
        def sms(to: str, template: str, context: Mapping[str, Any]) -> None:
            self.sent.append((to, template, dict(context)))

        return {"sms": sms}


def test_the_password_goes_by_text_when_a_plugin_provides_the_channel(
    install: Callable[[dict[str, object]], None],  # noqa: F811 - the fixture
    make_test_instance: Callable[..., TestInstance],
    mailbox: Mailbox,  # noqa: F811 - the fixture
) -> None:
    texter = Texter()
    install({"texter": texter})
    made = make_test_instance({**smtp_settings(mailbox), "plugins": {"enabled": ["texter"]}})
    instance = open_instance(load_settings(made.config_path))
    try:
        alice = instance.accounts.create_user("alice", TEST_PASSWORD)
        folder = instance.tree.mkdir(instance.tree.get(alice.root_id), "Dupont Jeanne")
        assert "sms" in instance.shares.second_channels()
        for phone in (None, "0612345678", "+33 6 12", "+33612345678; rm"):
            with pytest.raises(BadRequest, match="international form"):
                instance.shares.create(alice.principal(), folder, email="p@example.org", second_channel="sms",
                                       phone=phone)  # fmt: skip
        share = instance.shares.create(alice.principal(), folder, email="p@example.org", second_channel="sms",
                                       phone="+33 6 12 34 56 78", locale="en")  # fmt: skip
        assert share.password is None  # the owner does not see it: it went by text
        workers = WorkerPool(instance.jobs, instance_handlers(instance), threads=0, scheduler=False)
        while workers.run_one("test"):
            pass
        assert len(texter.sent) == 1
        to, template, context = texter.sent[0]
        assert (to, template) == ("+33612345678", "share_password")
        assert context["owner_name"] == "alice" and context["locale"] == "en"
        found = instance.shares.find_link(share.token or "")
        assert found is not None and instance.shares.check_password(found, context["password"])
        assert len(mailbox.messages) == 1  # the link only; its text says the password comes by text message
        body = mailbox.messages[0].get_body(("plain",))
        assert body is not None
        assert "text message" in body.get_content() and context["password"] not in body.get_content()
    finally:
        instance.close()


def test_without_a_channel_sms_is_refused_with_what_to_do(make_test_instance: Callable[..., TestInstance]) -> None:
    instance = open_instance(load_settings(make_test_instance().config_path))
    try:
        alice = instance.accounts.create_user("alice", TEST_PASSWORD)
        folder = instance.tree.mkdir(instance.tree.get(alice.root_id), "Dupont Jeanne")
        assert "sms" not in instance.shares.second_channels()
        with pytest.raises(BadRequest, match="enable a plugin that provides the channel sms"):
            instance.shares.create(alice.principal(), folder, email="p@example.org", second_channel="sms",
                                   phone="+33612345678")  # fmt: skip
        assert instance.shares.by_owner(alice.id) == []
    finally:
        instance.close()
