"""The templates, what each may be given, and how secrets are masked.

Every template is three files per locale under ``templates/<locale>/``:
``<name>.subject`` (one line), ``<name>.txt`` and ``<name>.html`` (which extends
``_layout.html``).  :data:`TEMPLATES` lists, for each name, the only context
variables it may receive: who, a link, when.  Nothing else gets in, so no file
name, note or document can end up in a mail.  ``tests/integration/test_mail.py``
checks that the variables the template files use are exactly these.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit

import jinja2

from server.mail._dates import format_when

__all__ = [
    "BUILTIN_VARIABLES",
    "LOCALES",
    "TEMPLATES",
    "TemplateSpec",
    "environment",
    "is_secret",
    "mask_secret",
    "mask_url",
    "normalise_locale",
]

#: The languages mails are written in; the first is MedDAV's own.
LOCALES = ("fr", "en")


@dataclass(frozen=True)
class TemplateSpec:
    """The context a template takes.  Names ending in ``_url`` are secret (links carry tokens)."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    #: Secret names besides the ``*_url`` ones: masked before a mail is logged.
    secret: frozenset[str] = frozenset()
    #: Whether plugins may send it (through ``PluginFacade.notify``); the account mails are the core's only.
    for_plugins: bool = False
    #: Names whose value chooses the wording, among these values (never shown as such).
    choices: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


TEMPLATES: Mapping[str, TemplateSpec] = {
    "invitation": TemplateSpec(
        required=frozenset({"inviter_name", "organisation_name", "set_password_url", "expires_at"}),
        optional=frozenset({"recipient_name"}),
    ),
    "password_reset": TemplateSpec(
        required=frozenset({"reset_url", "expires_at"}),
        optional=frozenset({"recipient_name"}),
    ),
    "second_factor_reset": TemplateSpec(
        required=frozenset({"admin_name", "reset_at"}),
        optional=frozenset({"recipient_name"}),
    ),
    "new_app_password": TemplateSpec(
        required=frozenset({"created_at", "ip_address"}),
        optional=frozenset({"app_password_name", "recipient_name"}),
    ),
    # A link share, to its recipient: who shares, the link, what it allows and until when; never the item's
    # name nor the note.  ``access``: read, write or dropbox; ``proof``: how the recipient proves it
    # (password-mail: a second mail follows; password-sms: a text message; password-owner: the owner gives it;
    # code: a code at each visit).
    "share_link": TemplateSpec(
        required=frozenset({"owner_name", "link_url", "expires_at", "access", "proof"}),
        optional=frozenset({"recipient_name"}),
        choices={
            "access": frozenset({"read", "write", "dropbox"}),
            "proof": frozenset({"password-mail", "password-sms", "password-owner", "code"}),
        },
    ),
    # The link's password, in a mail of its own (the "second channel" by default).
    "share_password": TemplateSpec(
        required=frozenset({"owner_name", "password"}),
        optional=frozenset({"recipient_name"}),
        secret=frozenset({"password"}),
    ),
    # A one-time code that opens a link share (shares opened by codes instead of a password), asked for
    # on the share's page; valid ``minutes``.
    "share_code": TemplateSpec(
        required=frozenset({"owner_name", "code", "minutes"}),
        secret=frozenset({"code"}),
    ),
    # To a drop box's owner who asked for it: how many files were put in their drop boxes since the last
    # digest (a periodic job); never a file's name.
    "dropbox_digest": TemplateSpec(
        required=frozenset({"arrivals", "boxes", "overview_url"}),
    ),
    # A plugin tells an organisation's admins of a problem only they can fix (the EHR refusing MedDAV's
    # credentials...).  ``problem`` and ``advice`` are the plugin's own sentences, in the mail's language,
    # with ids at most: a plugin never puts a file name or a patient in them.
    "plugin_alert": TemplateSpec(
        required=frozenset({"plugin_name", "problem", "noticed_at"}),
        optional=frozenset({"advice", "status_url", "recipient_name"}),
        for_plugins=True,
    ),
}

#: Variables the :class:`~server.mail.Mailer` gives every template itself:
#: the server's address (footer) and, to the HTML, the rendered subject (its title).
BUILTIN_VARIABLES = frozenset({"base_url", "subject"})


def normalise_locale(locale: str) -> str:
    """``"fr"``, ``"fr-FR"``, ``"fr_CA"`` → ``"fr"``; any other language (or none) → ``"en"``.

    French is MedDAV's own language, but someone whose browser asks for German
    more likely reads English than French.
    """
    primary = re.split(r"[-_]", locale.strip().lower(), maxsplit=1)[0]
    return "fr" if primary == "fr" else "en"


def is_secret(name: str, spec: TemplateSpec) -> bool:
    """Links (``*_url``) carry tokens; a template may declare other secret names."""
    return name.endswith("_url") or name in spec.secret


_ROUTE_WORD = re.compile(r"[a-z][a-z-]{0,15}")


def mask_url(url: str) -> str:
    """``https://host/reset/<token>?x=y`` → ``https://host/reset/…``.

    Keeps the scheme, the host and port (never a ``user:password@``), then the
    leading path segments that look like route words (lowercase letters and
    hyphens, at most 16); stops at the first other segment and always drops the
    last segment, the query and the fragment, which is where tokens travel.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    segments = parts.path.split("/")[1:-1]  # without the leading "" and the last segment
    kept: list[str] = []
    for segment in segments:
        if not _ROUTE_WORD.fullmatch(segment):
            break
        kept.append(segment)
    return f"{parts.scheme}://{host}/" + "".join(f"{segment}/" for segment in kept) + "…"


def mask_secret(name: str, value: Any) -> Any:
    """The form of a secret context value that may be logged."""
    if value is None:
        return None
    if name.endswith("_url") and isinstance(value, str):
        return mask_url(value)
    return "…"


def _when_filter(locale: str, tz: tzinfo) -> Any:
    def when(moment: datetime) -> str:
        return format_when(moment, locale, tz=tz)

    return when


@functools.cache
def environment(locale: str, tz: tzinfo = UTC) -> jinja2.Environment:
    """The Jinja environment of one locale: HTML autoescaped, undefined variables are errors.

    ``{{ moment|when }}`` writes a datetime out in words, in this locale, shown in ``tz``.
    """
    if locale not in LOCALES:
        raise ValueError(f"no templates for locale {locale!r} (known: {', '.join(LOCALES)})")
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("server.mail", f"templates/{locale}"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when_filter(locale, tz)
    return env
