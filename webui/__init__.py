"""MedDAV's web pages.

For now: the welcome page at ``/`` (how to connect a drive, in French or
English after the browser's preference) and ``/healthz`` for load balancers
and tests.  The sharing and accounts issues add the recipient pages
(``/s/<token>``), the owner's pages (``/ui``) and the JSON API (``/api/v1``).
Pages ask :mod:`server.policy` and :mod:`server.tree`, never SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify, render_template, request

if TYPE_CHECKING:
    from server.instance import Instance

__all__ = ["create_app"]

_TEXT = {
    "fr": {
        "title": "MedDAV — lecteur réseau chiffré",
        "lead": "Vos documents de santé, chiffrés au repos, dans un lecteur réseau.",
        "connect": "Connecter un lecteur",
        "address": "Adresse WebDAV :",
        "login": "Identifiez-vous avec votre nom d'utilisateur et votre mot de passe MedDAV.",
        "windows": "Windows : Explorateur › Ce PC › Connecter un lecteur réseau, puis coller l'adresse.",
        "macos": "macOS : Finder › Aller › Se connecter au serveur (⌘K), puis coller l'adresse.",
        "linux": "Linux : davfs2 (mount -t davfs) ou le gestionnaire de fichiers (davs://).",
        "rclone": "rclone : type webdav, vendor other.",
        "other": "English",
    },
    "en": {
        "title": "MedDAV — encrypted network drive",
        "lead": "Your health documents, encrypted at rest, in a network drive.",
        "connect": "Connect a drive",
        "address": "WebDAV address:",
        "login": "Sign in with your MedDAV user name and password.",
        "windows": "Windows: File Explorer › This PC › Map network drive, then paste the address.",
        "macos": "macOS: Finder › Go › Connect to Server (⌘K), then paste the address.",
        "linux": "Linux: davfs2 (mount -t davfs) or your file manager (davs://).",
        "rclone": "rclone: type webdav, vendor other.",
        "other": "Français",
    },
}


def create_app(instance: Instance) -> Flask:
    """The Flask application of the web pages (mounted at ``/``)."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=None, JSON_AS_ASCII=False)

    @app.get("/")
    def index() -> str:
        chosen = request.args.get("lang")
        lang = chosen if chosen in _TEXT else request.accept_languages.best_match(["fr", "en"], default="fr")
        return render_template(
            "index.html",
            t=_TEXT[lang],
            lang=lang,
            other_lang="en" if lang == "fr" else "fr",
            # The address this page was reached at, unless the operator set a public one.
            dav_url=(instance.settings.server.public_url or request.host_url.rstrip("/")) + "/dav/",
        )

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
