"""Outgoing e-mail: invitations, password resets and security alerts.

Mails never carry health data: no file name, no note, no document.  Each
template takes a fixed set of context variables (:data:`TEMPLATES`), only who,
a link and when, and :meth:`Mailer.send` refuses any other::

    mailer = Mailer.from_settings(settings.mail, base_url=settings.public_base_url())
    mailer.send(
        "password_reset",
        "martin@example.org",
        locale="fr",
        context={"reset_url": f"{base}/reset/{token}", "expires_at": expires_at},
    )

A mail is plain text plus HTML (``multipart/alternative``), rendered from
``templates/<locale>/<template>.subject|.txt|.html`` (Jinja2, HTML autoescaped,
an undefined variable is an error), in French or English (:func:`normalise_locale`:
any locale other than French gets English).  It is marked ``Auto-Submitted:
auto-generated``.

``[mail] backend`` picks where it goes (:func:`load_backend`):

- ``"console"`` (:class:`ConsoleBackend`, the default): to the log, every secret
  masked (context names ending in ``_url`` carry tokens; see :func:`mask_url`);
- ``"smtp"`` (:class:`SmtpBackend`): to an SMTP server, over TLS or STARTTLS with
  certificate verification (``"none"`` for loopback relays only).

Errors::

    MedDAVError
     └── MailError            the mail could not be sent (names the [mail] setting to check)
          └── InvalidMail     malformed recipient or header value (also a BadRequest); nothing sent

``docs/mail.md`` is the operator's guide.
"""

from __future__ import annotations

from server.mail._base import BaseMailBackend, InvalidMail, MailError, OutgoingMail
from server.mail._dates import format_when
from server.mail._mailer import INTERNAL_TYPES, Mailer, load_backend, parse_address
from server.mail._render import (
    BUILTIN_VARIABLES,
    LOCALES,
    TEMPLATES,
    TemplateSpec,
    is_secret,
    mask_secret,
    mask_url,
    normalise_locale,
)
from server.mail.console import ConsoleBackend
from server.mail.smtp import SmtpBackend

#: The job kind that sends one mail later, retried like any job (payload: template, to, locale, context).
MAIL_JOB = "mail.send"

__all__ = [
    "BUILTIN_VARIABLES",
    "INTERNAL_TYPES",
    "LOCALES",
    "MAIL_JOB",
    "TEMPLATES",
    "BaseMailBackend",
    "ConsoleBackend",
    "InvalidMail",
    "MailError",
    "Mailer",
    "OutgoingMail",
    "SmtpBackend",
    "TemplateSpec",
    "format_when",
    "is_secret",
    "load_backend",
    "mask_secret",
    "mask_url",
    "normalise_locale",
    "parse_address",
]
