"""MedDAV's web pages (Flask + Jinja2), mounted at ``/`` by :mod:`server.app`.

- ``/``: the welcome page (how to connect a drive) and ``/healthz``;
- ``/ui/login``, ``/ui/login/code``, ``/ui/logout``, ``/ui/forgot``,
  ``/ui/reset/<token>``: signing in and out (:mod:`webui.views.auth`);
- ``/ui``: the account's home (:mod:`webui.views.account`);
- ``/ui/files``: the user's drive and the share dialog (:mod:`webui.views.files`);
- ``/ui/shares``: the shares I made and those made to me (:mod:`webui.views.shares`);
- ``/ui/security``: password and second factor (:mod:`webui.views.security`);
- ``/ui/app-passwords``, ``/ui/sessions`` (:mod:`webui.views.devices`);
- ``/ui/invite/<token>``: accepting an invitation (:mod:`webui.views.invite`);
- ``/ui/admin``: administering an organisation: members (:mod:`webui.views.admin`),
  group folders (:mod:`webui.views.groups`), audit log (:mod:`webui.views.audit`);
- ``/ui/admin/jobs``: the instance's background jobs (:mod:`webui.views.jobs`);
- ``/api/v1``: the JSON API of shares, with its OpenAPI document (:mod:`webui.views.api`);
- ``/s/<token>``: a link share's pages, for its recipient (:mod:`webui.views.recipient`);
- ``/plugins/<name>/``: the pages of a plugin (its ``meddav_web_blueprint``).

Around every view: the session is read (:mod:`webui.sessions`), the language
chosen (:mod:`webui.i18n`) and a POST's CSRF token checked (:mod:`webui.csrf`),
in that order.  Pages ask :mod:`server.credentials`, :mod:`server.accounts`
and :mod:`server.auth`, never SQL.  Templates are autoescaped and carry no
inline script (the Content-Security-Policy of :mod:`server.app` forbids it).
``docs/web.md`` is the guide.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException

from server.errors import Busy
from webui import csrf, i18n, sessions
from webui.context import EXTENSION
from webui.views import BLUEPRINTS
from webui.views.admin import can_administer
from webui.views.recipient import init_app as init_recipients

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from server.instance import Instance

__all__ = ["create_app"]


def _lang_url() -> str:
    """This page in the other language (GET pages; after a form, the start page of the area)."""
    path = request.path
    if request.method != "GET":
        path = "/ui" if sessions.current() is not None else "/ui/login"
    return f"{path}?lang={i18n.other()}"


def _error_text(code: int, description: str | None) -> tuple[str, str]:
    if code == 400 and description == "csrf":
        return _("This form has expired"), _(
            "For your security, the form could not be accepted. Go back, reload the page and try again."
        )
    titles = {
        400: (_("Bad request"), _("The request could not be understood.")),
        403: (_("Access denied"), _("Your account may not open this page.")),
        404: (_("Page not found"), _("There is nothing at this address.")),
        405: (_("Not allowed"), _("This page cannot be used that way.")),
        503: (_("Server busy"), _("The server is busy. Please try again in a few seconds.")),
    }
    return titles.get(code, (_("Error"), _("Something went wrong.")))


class _Pages(Flask):
    """Flask, whose log of an unexpected error names the view, never the path: a path may carry a share's
    token (``/s/<token>``) or a file name."""

    def log_exception(self, exc_info: Any) -> None:
        self.logger.error("exception in view %s [%s]", request.endpoint, request.method, exc_info=exc_info)


def create_app(instance: Instance) -> Flask:
    """The Flask application of the web pages (mounted at ``/``)."""
    app = _Pages(__name__)
    # Flask's own (signed-cookie) session is not used: sessions live on the server (webui.sessions).
    app.config.update(SECRET_KEY=None, JSON_AS_ASCII=False, MAX_CONTENT_LENGTH=64 * 1024)
    app.extensions[EXTENSION] = instance
    i18n.init_app(app)
    init_recipients(app)

    @app.before_request
    def before() -> None:
        if request.endpoint in ("static", "public.healthz"):
            return
        sessions.load()
        i18n.choose()
        if request.blueprint != "api":  # the API checks its own header (webui.views.api)
            csrf.protect()

    @app.after_request
    def after(response: Response) -> Response:
        if request.endpoint in ("static", "public.healthz"):
            return response
        response = sessions.after_request(response)
        response = csrf.after_request(response)
        return i18n.after_request(response)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str | Response, int]:
        code = error.code or 500
        if request.blueprint == "api" or request.path.startswith("/api/"):
            return jsonify(error={"status": code, "message": error.name}), code
        title, message = _error_text(code, error.description)
        return render_template("message.html", title=title, message=message), code

    @app.errorhandler(Busy)
    def busy(error: Busy) -> tuple[str, int, dict[str, str]]:
        title, message = _error_text(503, None)
        return render_template("message.html", title=title, message=message), 503, {"Retry-After": "5"}

    app.jinja_env.globals.update(
        csrf_token=csrf.token,
        csrf_field=csrf.FIELD,
        current_session=sessions.current,
        lang=i18n.current,
        other_lang=i18n.other,
        lang_url=_lang_url,
        can_administer=can_administer,
    )
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    taken = set(app.blueprints)
    for name, blueprint in instance.plugins.blueprints():
        if name in taken:
            logger.error("plugin %s: its web pages are not mounted, the name is one of the core's pages", name)
            continue
        app.register_blueprint(blueprint, url_prefix=f"/plugins/{name}", name=name)
    return app
