"""Dates written out in words, in French or English, whatever the system locale.

``strftime("%A")`` follows the process locale (often ``C`` on a server), so the
day and month names are kept here.  Only the two languages MedDAV mails in are
known; :func:`format_when` is given a locale :func:`server.mail.normalise_locale`
already reduced to ``"fr"`` or ``"en"``.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

__all__ = ["format_when"]

_DAYS = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def format_when(moment: datetime, locale: str, *, tz: tzinfo = UTC) -> str:
    """``jeudi 26 novembre 2026 à 14:05 (UTC)`` / ``Thursday 26 November 2026 at 14:05 (UTC)``.

    ``moment`` must be timezone-aware (a naive datetime is ambiguous: ValueError);
    it is shown in ``tz``, whose abbreviation (``UTC``, ``CET``, ``CEST``) ends the text.
    French writes the first day of a month ``1er``.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a date shown in a mail must be timezone-aware (e.g. datetime.now(UTC))")
    if locale not in _DAYS:
        raise ValueError(f"no date format for locale {locale!r} (known: {', '.join(sorted(_DAYS))})")
    local = moment.astimezone(tz)
    label = local.tzname() or "UTC"
    day = _DAYS[locale][local.weekday()]
    month = _MONTHS[locale][local.month - 1]
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if locale == "fr":
        number = "1er" if local.day == 1 else str(local.day)
        return f"{day} {number} {month} {local.year} à {clock} ({label})"
    return f"{day} {local.day} {month} {local.year} at {clock} ({label})"
