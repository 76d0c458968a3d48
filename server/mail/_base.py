"""What every mail backend shares: the errors, the message handed over, the base class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from email.message import EmailMessage

from server.errors import BadRequest, MedDAVError

__all__ = ["BaseMailBackend", "InvalidMail", "MailError", "OutgoingMail"]


class MailError(MedDAVError):
    """A mail could not be sent.

    The message names the ``[mail]`` setting to check; it never holds the SMTP
    password, a link or the body of the mail.
    """


class InvalidMail(MailError, BadRequest):
    """The recipient or a header value is malformed (not one address, CR/LF); nothing was sent."""


@dataclass(frozen=True)
class OutgoingMail:
    """One composed mail, as the :class:`~server.mail.Mailer` hands it to a backend.

    ``message`` is what the recipient gets.  ``redacted`` is the same mail
    rendered with every secret context value masked (links carrying tokens):
    the only form a backend may write to a log.
    """

    template: str
    locale: str
    message: EmailMessage
    redacted: EmailMessage


class BaseMailBackend(ABC):
    """Where composed mails go.  Backends are sibling modules (``console.py``, ``smtp.py``)."""

    @abstractmethod
    def deliver(self, mail: OutgoingMail) -> None:
        """Send ``mail.message`` (or record ``mail.redacted``); return once it is handed over.

        Must raise :class:`MailError` when the mail cannot be handed over, with a
        message naming the setting to check and no secret in it.  Must never log
        ``mail.message``: only ``mail.redacted`` may be logged.
        """
