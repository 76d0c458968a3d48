"""The :class:`Mailer`: renders a template into a mail and hands it to a backend."""

from __future__ import annotations

import ssl
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Any

from server.config import MailSettings
from server.mail._base import BaseMailBackend, InvalidMail, MailError, OutgoingMail
from server.mail._render import (
    TEMPLATES,
    TemplateSpec,
    environment,
    is_secret,
    mask_secret,
    normalise_locale,
)
from server.mail.console import ConsoleBackend
from server.mail.smtp import SmtpBackend

__all__ = ["INTERNAL_TYPES", "Mailer", "load_backend", "parse_address"]

#: The backends bundled with MedDAV, by their ``[mail] backend`` name.
INTERNAL_TYPES = ("console", "smtp")


def load_backend(settings: MailSettings, *, ssl_context: ssl.SSLContext | None = None) -> BaseMailBackend:
    """The backend ``[mail] backend`` names.  ``ssl_context`` replaces the system's trusted authorities."""
    if settings.backend == "console":
        return ConsoleBackend()
    if settings.backend == "smtp":
        return SmtpBackend(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout_seconds=settings.smtp_timeout_seconds,
            ssl_context=ssl_context,
        )
    raise MailError(f"[mail] backend = {settings.backend!r} is not known; use one of {', '.join(INTERNAL_TYPES)}")


def _has_control(text: str) -> bool:
    """CR, LF, NUL and every other control or line/paragraph separator."""
    return any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in text)


def parse_address(text: str) -> Address:
    """One address (``a@b.org`` or ``Dr Martin <a@b.org>``), or :class:`InvalidMail`.

    Refuses control characters (a CR/LF would let the value add headers), lists
    of addresses and anything :class:`email.headerregistry.Address` will not parse.
    """
    if _has_control(text):
        raise InvalidMail("the recipient address contains a line break or control character")
    pairs = getaddresses([text])
    if len(pairs) != 1:
        raise InvalidMail("give exactly one recipient address")
    name, addr_spec = pairs[0]
    try:
        address = Address(display_name=name, addr_spec=addr_spec)
    except (ValueError, IndexError, HeaderParseError):
        raise InvalidMail("the recipient is not a valid e-mail address") from None
    if not address.username or not address.domain or " " in address.domain:
        raise InvalidMail("the recipient is not a valid e-mail address")
    return address


class Mailer:
    """Writes mails from templates and hands them to a backend.

    ``base_url`` is the server's public address (``Settings.public_base_url()``):
    shown in every mail's footer, and every link given in the context must start
    with it, so a mail from MedDAV never points elsewhere.  Dates are shown in
    ``tz`` (UTC unless given, e.g. ``ZoneInfo("Europe/Paris")``).
    """

    def __init__(self, backend: BaseMailBackend, *, from_address: str, base_url: str, tz: tzinfo = UTC) -> None:
        try:
            self._from = parse_address(from_address)
        except InvalidMail:
            raise MailError(f"[mail] from_address = {from_address!r} is not one e-mail address") from None
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self.backend = backend
        self.base_url = base_url.rstrip("/")
        self.tz = tz

    @classmethod
    def from_settings(
        cls,
        settings: MailSettings,
        *,
        base_url: str,
        ssl_context: ssl.SSLContext | None = None,
        tz: tzinfo = UTC,
    ) -> Mailer:
        """A mailer for the ``[mail]`` section; ``ssl_context`` replaces the system's trusted authorities."""
        backend = load_backend(settings, ssl_context=ssl_context)
        return cls(backend, from_address=settings.from_address, base_url=base_url, tz=tz)

    def send(
        self, template: str, to: str, *, locale: str, context: Mapping[str, Any], tz: tzinfo | None = None
    ) -> None:
        """Render ``template`` for ``to`` in ``locale`` and hand it to the backend.

        Raises :class:`InvalidMail` for a malformed recipient or header value,
        :class:`MailError` when the backend cannot send, ``ValueError`` or
        ``TypeError`` when the context is not what the template takes (see
        :data:`~server.mail.TEMPLATES`): those are programming errors.
        """
        self.backend.deliver(self.compose(template, to, locale=locale, context=context, tz=tz))

    def compose(
        self, template: str, to: str, *, locale: str, context: Mapping[str, Any], tz: tzinfo | None = None
    ) -> OutgoingMail:
        """The mail :meth:`send` would hand over, with its redacted twin; sends nothing.  Dates are shown
        in ``tz`` (the recipient's, e.g. the organisation's), by default the mailer's."""
        spec = TEMPLATES.get(template)
        if spec is None:
            raise ValueError(f"no mail template {template!r} (known: {', '.join(sorted(TEMPLATES))})")
        values = self._checked_context(template, spec, context)
        recipient = parse_address(to)
        locale = normalise_locale(locale)
        headers = {
            "Date": format_datetime(datetime.now(UTC)),
            "Message-ID": make_msgid(domain=self._from.domain),
            "Auto-Submitted": "auto-generated",  # RFC 3834: robots must not answer it
            "X-Auto-Response-Suppress": "All",  # the same, for Exchange
        }
        masked = {name: mask_secret(name, value) if is_secret(name, spec) else value for name, value in values.items()}
        return OutgoingMail(
            template=template,
            locale=locale,
            message=self._render(template, locale, recipient, headers, values, tz or self.tz),
            redacted=self._render(template, locale, recipient, headers, masked, tz or self.tz),
        )

    def _checked_context(self, template: str, spec: TemplateSpec, context: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(context) - spec.allowed
        if unknown:
            raise ValueError(
                f"mail template {template!r} takes no {', '.join(sorted(unknown))}: mails carry only who, a link "
                f"and when ({', '.join(sorted(spec.allowed))})"
            )
        missing = spec.required - {name for name, value in context.items() if value is not None}
        if missing:
            raise ValueError(f"mail template {template!r} needs {', '.join(sorted(missing))}")
        values: dict[str, Any] = dict.fromkeys(spec.optional)
        for name, value in context.items():
            if value is None:
                continue
            if name.endswith("_at") and not isinstance(value, datetime):
                raise TypeError(f"{name}: a datetime is expected (names ending in _at are moments)")
            if isinstance(value, datetime):
                if value.tzinfo is None or value.utcoffset() is None:
                    raise ValueError(f"{name}: a date shown in a mail must be timezone-aware")
            elif not isinstance(value, str | int) or isinstance(value, bool):
                raise TypeError(f"{name}: a mail context value is a str, an int or a datetime, not {type(value)}")
            if name in spec.choices and value not in spec.choices[name]:
                raise ValueError(f"{name}: one of {', '.join(sorted(spec.choices[name]))}, not {value!r}")
            if name.endswith("_url") and not (value == self.base_url or str(value).startswith(self.base_url + "/")):
                raise ValueError(f"{name}: links in mails must point to this server ({self.base_url})")
            values[name] = value
        return values

    def _render(
        self,
        template: str,
        locale: str,
        recipient: Address,
        headers: Mapping[str, str],
        values: Mapping[str, Any],
        tz: tzinfo,
    ) -> EmailMessage:
        env = environment(locale, tz)
        context = {**values, "base_url": self.base_url}
        subject = env.get_template(f"{template}.subject").render(context).strip()
        if _has_control(subject):
            raise InvalidMail("the subject would contain a line break or control character")
        text = env.get_template(f"{template}.txt").render(context).rstrip("\n") + "\n"
        html = env.get_template(f"{template}.html").render({**context, "subject": subject}).rstrip("\n") + "\n"
        message = EmailMessage()
        message["From"] = str(self._from)
        message["To"] = str(recipient)
        message["Subject"] = subject
        for name, value in headers.items():
            message[name] = value
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        message["Content-Language"] = locale  # after the parts: making them moves Content-* headers down
        return message
