"""The ``console`` backend (the default): mails go to the log, never to anyone.

It lets ``make run`` and development instances work without a mail server.
Each mail becomes one INFO record of the ``server.mail.console`` logger, with
its template, locale, recipient, subject, Message-ID and plain-text body, all
taken from the *redacted* rendering: links carrying tokens and other secret
values are masked before the template ever sees them (see
:func:`server.mail.mask_secret`), so no token can reach the log.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

from server.mail._base import BaseMailBackend, OutgoingMail

__all__ = ["ConsoleBackend"]

logger = logging.getLogger(__name__)


def _plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if not isinstance(part, EmailMessage):
        return ""
    text = part.get_content()
    return text if isinstance(text, str) else ""


class ConsoleBackend(BaseMailBackend):
    """Writes the redacted form of each mail to the log."""

    def deliver(self, mail: OutgoingMail) -> None:
        redacted = mail.redacted
        logger.info(
            "mail not sent (console backend)",
            extra={
                "fields": {
                    "template": mail.template,
                    "locale": mail.locale,
                    "to": str(redacted["To"]),
                    "subject": str(redacted["Subject"]),
                    "message_id": str(redacted["Message-ID"]),
                    "text": _plain_text(redacted),
                }
            },
        )
