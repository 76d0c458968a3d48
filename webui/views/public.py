"""Pages for everyone: the welcome page (how to connect a drive) and ``/healthz``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template

from webui.context import dav_url

__all__ = ["blueprint"]

blueprint = Blueprint("public", __name__)


@blueprint.get("/")
def index() -> str:
    return render_template("index.html", dav_url=dav_url())


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")
