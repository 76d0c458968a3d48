"""The JSON API, ``/api/v1``: an owner's shares (create, list, read, change, revoke).

Authenticated by the web session (a state-changing request then carries the
page's CSRF token in the ``X-CSRF-Token`` header: another site can make the
browser send the cookie, not that header), or by HTTP Basic with the account
name and an app password (for scripts; the account password too while the user
has no second factor, as for drives), throttled like every login.  Every
decision is :mod:`server.sharing`'s, hence :mod:`server.policy`'s; a share the
caller may not see is answered 404, like one that does not exist.  Errors are
``{"error": {"status": ..., "message": ...}}``.  ``/api/v1/openapi.json``
describes it all (OpenAPI 3.1).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Response, jsonify, request

from server.accounts import UserInfo
from server.errors import AuthenticationFailed, BadRequest, Busy, NotFound, PolicyDenied
from server.policy import SHARE_MODES, Principal
from server.sharing import SECOND_CHANNELS, ShareInfo
from webui import csrf, sessions
from webui.context import address, instance

__all__ = ["OPENAPI", "blueprint"]

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

P = ParamSpec("P")
R = TypeVar("R")

_CREATE_FIELDS = frozenset(
    {"path", "node_id", "email", "colleague", "mode", "expires", "password", "code_by_email", "password_by",
     "phone", "notify_uploads", "note", "max_downloads", "networks", "lang"}
)  # fmt: skip
_UPDATE_FIELDS = frozenset({"mode", "expires", "note"})


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> tuple[Response, int, dict[str, str]]:
    return jsonify(error={"status": status, "message": message}), status, headers or {}


def _caller() -> UserInfo:
    """The signed-in user (web session, fully signed in) or the one of the Basic credentials."""
    session = sessions.current()
    if session is not None and session.state is sessions.State.FULL:
        if request.method not in ("GET", "HEAD") and not csrf.check_value(request.headers.get("X-CSRF-Token", "")):
            raise _Refused(403, "a request from the web pages carries the X-CSRF-Token header")
        return session.user
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        raise _Refused(401, "sign in, or send an app password (HTTP Basic)", {"WWW-Authenticate": _CHALLENGE})
    try:
        username, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _Refused(400, "malformed Authorization header") from None
    try:
        principal: Principal = instance().authenticator.authenticate(username, password, address=address())
    except AuthenticationFailed as failed:
        retry = getattr(failed, "retry_after", None)
        if retry is not None:
            raise _Refused(429, "too many failed attempts; retry later", {"Retry-After": str(int(retry) + 1)}) from None
        raise _Refused(401, "wrong name or password", {"WWW-Authenticate": _CHALLENGE}) from None
    return instance().accounts.get_by_id(principal.user_id)


_CHALLENGE = 'Basic realm="MedDAV API", charset="UTF-8"'


def api(view: Callable[P, Any]) -> Callable[P, Any]:
    """JSON in, JSON out, errors as JSON with the right status; the caller in the first argument."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return view(*args, **kwargs)
        except _Refused as refused:
            return _error(refused.status, refused.message, refused.headers)
        except (NotFound, PolicyDenied):
            return _error(404, "no such share or item")
        except BadRequest as bad:
            return _error(400, str(bad))
        except Busy:
            return _error(503, "the server is busy; retry in a few seconds", {"Retry-After": "5"})

    return wrapper


def _body(allowed: frozenset[str]) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("send a JSON object (Content-Type: application/json)")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return data


def _typed(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is int)):
        raise BadRequest(f"{name}: wrong type")
    return value


def _day(data: dict[str, Any]) -> dt.date | None:
    text = _typed(data, "expires", str)
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest("expires: a day, YYYY-MM-DD") from None


def _iso(at: float | None) -> str | None:
    return None if at is None else dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


def _share_json(share: ShareInfo, *, recipient: str | None = None, note: str | None = None) -> dict[str, Any]:
    instance_ = instance()
    if recipient is None and share.recipient_user_id is not None:
        recipient = instance_.accounts.get_by_id(share.recipient_user_id).username
    out: dict[str, Any] = {
        "id": share.id,
        "node_id": share.node_id,
        "kind": share.kind,
        "mode": share.mode,
        "recipient": recipient or share.recipient_email,
        "state": share.state(instance_.shares.clock()),
        "expires_at": _iso(share.expires_at),
        "created_at": _iso(share.created_at),
        "ended_at": _iso(share.revoked_at),
        "last_access_at": _iso(share.last_access_at),
        "downloads": share.downloads,
        "uploads": share.uploads,
        "max_downloads": share.max_downloads,
        "networks": list(share.networks),
        "code_by_email": share.code_by_email,
    }
    if note is not None:
        out["note"] = note
    return out


def _mine(user: UserInfo, share_id: int) -> ShareInfo:
    return instance().shares.administered(user.principal(), share_id)  # the details are the maker's


@blueprint.get("/shares")
@api
def list_shares() -> Any:
    user = _caller()
    shares = instance().shares
    return jsonify(
        shares=[_share_json(s) for s in shares.by_owner(user.id)],
        shared_with_me=[_share_json(s) for s in shares.for_recipient(user.id)],
    )


@blueprint.post("/shares")
@api
def create_share() -> Any:
    user = _caller()
    data = _body(_CREATE_FIELDS)
    inst = instance()
    path, node_id = _typed(data, "path", str), _typed(data, "node_id", int)
    if (path is None) == (node_id is None):
        raise BadRequest("give the item by path (from your drive's root) or by node_id")
    if path is not None:
        node = inst.tree.resolve(user.root_id, [part for part in path.split("/") if part])
        if node is None:
            raise NotFound("no such item")
    else:
        node = inst.tree.get(node_id)
    colleague_name = _typed(data, "colleague", str)
    colleague = inst.accounts.get(colleague_name).id if colleague_name else None
    networks = _typed(data, "networks", list) or []
    if not all(isinstance(n, str) for n in networks):
        raise BadRequest("networks: a list of strings")
    made = inst.shares.create(
        user.principal(),
        node,
        mode=_typed(data, "mode", str) or "read",
        colleague=colleague,
        email=_typed(data, "email", str),
        password=_typed(data, "password", str),
        code_by_email=bool(_typed(data, "code_by_email", bool)),
        expires_on=_day(data),
        note=_typed(data, "note", str),
        max_downloads=_typed(data, "max_downloads", int),
        networks=networks,
        second_channel=_typed(data, "password_by", str) or "email",
        phone=_typed(data, "phone", str),
        notify_uploads=bool(_typed(data, "notify_uploads", bool)),
        locale=_typed(data, "lang", str) or "fr",
        surface="web",
        address=address(),
    )
    body: dict[str, Any] = {"share": _share_json(made.info, recipient=colleague_name)}
    if made.token is not None:
        body["link"] = f"{inst.settings.public_base_url()}/s/{made.token}"
    if made.password is not None:
        body["password"] = made.password
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"  # a link and a password, shown once
    return response, 201


@blueprint.get("/shares/<int:share_id>")
@api
def get_share(share_id: int) -> Any:
    user = _caller()
    share = _mine(user, share_id)
    return jsonify(share=_share_json(share, note=instance().shares.note(share) or ""))


@blueprint.patch("/shares/<int:share_id>")
@api
def update_share(share_id: int) -> Any:
    user = _caller()
    data = _body(_UPDATE_FIELDS)
    changed = instance().shares.update(
        user.principal(),
        share_id,
        mode=_typed(data, "mode", str),
        expires_on=_day(data),
        note=_typed(data, "note", str),
        surface="web",
        address=address(),
    )
    return jsonify(share=_share_json(changed))


@blueprint.delete("/shares/<int:share_id>")
@api
def revoke_share(share_id: int) -> Any:
    user = _caller()
    ended = instance().shares.revoke(user.principal(), share_id, surface="web", address=address())
    return jsonify(share=_share_json(ended))


@blueprint.get("/openapi.json")
def openapi() -> Any:
    return jsonify(OPENAPI)


def _share_schema() -> dict[str, Any]:
    text, when = {"type": "string"}, {"type": ["string", "null"], "format": "date-time"}
    return {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "node_id": {"type": "integer"},
            "kind": {"enum": ["colleague", "link"]},
            "mode": {"enum": list(SHARE_MODES)},
            "recipient": text,
            "state": {"enum": ["active", "suspended", "used up", "expired", "revoked"]},
            "expires_at": when,
            "created_at": when,
            "ended_at": when,
            "last_access_at": when,
            "downloads": {"type": "integer"},
            "uploads": {"type": "integer"},
            "max_downloads": {"type": ["integer", "null"]},
            "networks": {"type": "array", "items": text},
            "code_by_email": {"type": "boolean"},
            "note": {"type": "string", "description": "only in GET /shares/{id}, for the share's maker"},
        },
    }


def _operation(summary: str, *, body: str | None = None, ok: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "done", "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": body}}}}
    return op


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "MedDAV API", "version": "1", "description": __doc__},
    "servers": [{"url": "/api/v1"}],
    "security": [{"session": []}, {"appPassword": []}],
    "paths": {
        "/shares": {
            "get": _operation("The shares I made, and the live ones made to me"),
            "post": _operation(
                "Share an item (a link is returned once)", body="#/components/schemas/NewShare", ok="201"
            ),
        },
        "/shares/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": _operation("One of my shares, with its note"),
            "patch": _operation(
                "Change a live share's mode, last day or note", body="#/components/schemas/ShareChange"
            ),
            "delete": _operation("End a share now"),
        },
    },
    "components": {
        "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": sessions.COOKIE},
            "appPassword": {"type": "http", "scheme": "basic"},
        },
        "responses": {
            "Error": {
                "description": "refused",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "error": {
                                    "type": "object",
                                    "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
                                }
                            },
                        }
                    }
                },
            }
        },
        "schemas": {
            "Share": _share_schema(),
            "NewShare": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "path": {"type": "string", "description": "from the root of my drive"},
                    "node_id": {"type": "integer"},
                    "email": {"type": "string", "description": "a link to this address"},
                    "colleague": {"type": "string", "description": "the user name of a colleague"},
                    "mode": {"enum": list(SHARE_MODES), "default": "read"},
                    "expires": {"type": "string", "format": "date", "description": "the last day"},
                    "password": {"type": "string"},
                    "code_by_email": {"type": "boolean"},
                    "password_by": {
                        "enum": list(SECOND_CHANNELS),
                        "default": "email",
                        "description": "sms: when a plugin provides the channel",
                    },
                    "phone": {"type": "string", "description": "for password_by sms: +33..."},
                    "notify_uploads": {"type": "boolean", "description": "e-mail me a digest of files added"},
                    "note": {"type": "string", "maxLength": 2000},
                    "max_downloads": {"type": "integer", "minimum": 1},
                    "networks": {"type": "array", "items": {"type": "string"}},
                    "lang": {"enum": ["fr", "en"], "default": "fr"},
                },
            },
            "ShareChange": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "mode": {"enum": list(SHARE_MODES)},
                    "expires": {"type": "string", "format": "date"},
                    "note": {"type": "string", "description": "empty: no note"},
                },
            },
        },
    },
}
