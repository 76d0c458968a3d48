"""Languages of the pages (French and English) and how dates are written.

**Catalogues.**  The source strings, in the code (``gettext``) and the templates
(``_()``, ``{% trans %}``), are English; ``translations/fr/LC_MESSAGES/messages.po``
gives the French.  The compiled ``messages.mo`` beside it is kept in git
(an installed MedDAV needs no build step), and ``tests/web/test_translations.py``
fails when it is out of step with the ``.po``, or when a string of the code
or the templates has no French.  After changing strings::

    pybabel extract -F webui/babel.cfg -o /tmp/messages.pot webui
    pybabel update -i /tmp/messages.pot -d webui/translations
    (translate in messages.po)
    pybabel compile -d webui/translations

**Which language.**  First ``?lang=fr|en`` (kept in the ``meddav_lang`` cookie,
and as the user's language when signed in, which is also the language of the
mails they get); then that cookie; then the signed-in user's language; then
the browser's ``Accept-Language``; French when nothing says.

**Dates** are written with Babel in the page's language and shown in Paris
time (``Europe/Paris``), e.g. "26 novembre 2026, 15:05" / "November 26, 2026, 3:05 PM";
the audit log to the second ("26 nov. 2026, 15:05:09").  Sizes in decimal
units of the language ("1,5 Go" / "1.5 GB", :mod:`webui.sizes`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime, format_time, get_timezone
from flask import Flask, Response, g, request
from flask_babel import Babel  # type: ignore[import-untyped]

from server.accounts import LOCALES
from server.errors import BadRequest, NotFound
from webui import sessions
from webui.context import instance
from webui.sizes import format_size

__all__ = [
    "COOKIE",
    "DEFAULT",
    "TIMEZONE",
    "after_request",
    "choose",
    "current",
    "init_app",
    "other",
    "size",
    "when",
    "when_exact",
]

COOKIE = "meddav_lang"
DEFAULT = "fr"
TIMEZONE = "Europe/Paris"
TRANSLATIONS = Path(__file__).parent / "translations"
_COOKIE_SECONDS = 365 * 24 * 3600


def current() -> str:
    """The language of this request's page: "fr" or "en"."""
    lang: str | None = g.get("lang")
    return lang or DEFAULT


def other() -> str:
    return "en" if current() == "fr" else "fr"


def choose() -> None:
    """Decide the language of this request (before every view; after the session is read)."""
    session = sessions.current()
    chosen = request.args.get("lang")
    if chosen in LOCALES:
        g.lang_chosen = chosen
        if session is not None and session.user.locale != chosen:
            with contextlib.suppress(NotFound, BadRequest):
                instance().accounts.set_contact(session.user.username, locale=chosen)
        g.lang = chosen
        return
    cookie = request.cookies.get(COOKIE)
    if cookie in LOCALES:
        g.lang = cookie
    elif session is not None and session.user.locale in LOCALES:
        g.lang = session.user.locale
    else:
        g.lang = request.accept_languages.best_match(list(LOCALES), default=DEFAULT)


def after_request(response: Response) -> Response:
    chosen: str | None = g.get("lang_chosen")
    if chosen is not None:
        response.set_cookie(
            COOKIE,
            chosen,
            max_age=_COOKIE_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=instance().settings.server.https,
            path="/",
        )
    response.headers.setdefault("Content-Language", current())
    vary = response.headers.get("Vary")
    response.headers["Vary"] = f"{vary}, Accept-Language, Cookie" if vary else "Accept-Language, Cookie"
    return response


def when(moment: float | dt.datetime | None) -> str:
    """A POSIX time (or an aware datetime) as a date and time in words, in Paris time; "—" for none."""
    if moment is None:
        return "—"
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    locale = Locale.parse(current())
    tz = get_timezone(TIMEZONE)
    date = format_date(moment.astimezone(tz).date(), "long", locale=locale)
    clock = format_time(moment, "short", tzinfo=tz, locale=locale)
    pattern = str(locale.datetime_formats["long"]).replace("'", "")
    return pattern.replace("{1}", date).replace("{0}", clock)


def when_exact(moment: float) -> str:
    """A POSIX time to the second, shorter, in Paris time (audit log): "26 nov. 2026, 15:05:09"."""
    when_utc = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    return str(format_datetime(when_utc, "medium", tzinfo=get_timezone(TIMEZONE), locale=Locale.parse(current())))


def size(value: int | None) -> str:
    """A number of bytes in words of the page's language ("1,5 Go"); "—" for none."""
    return "—" if value is None else format_size(value, current())


def init_app(app: Flask) -> None:
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT
    app.config["BABEL_DEFAULT_TIMEZONE"] = TIMEZONE
    Babel(app, locale_selector=current, timezone_selector=lambda: TIMEZONE)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["when_exact"] = when_exact
    app.jinja_env.filters["size"] = size
