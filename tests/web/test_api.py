"""The JSON API of shares (/api/v1) on a real server: app passwords for scripts, the web session with
its CSRF header for pages; the store's rules answered with the right status, as JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from tests.web.conftest import Web, add_member, csrf_of
from webui import create_app


def _office(server: LiveServer) -> LiveServer:
    inst = server.instance
    add_member(server, "alice", email="alice@example.org")
    add_member(server, "bob", email="bob@example.org")
    alice = inst.accounts.get("alice")
    folder = inst.tree.mkdir(inst.tree.get(alice.root_id), "Dupont Jeanne")
    upload = inst.tree.upload(folder, "irm.pdf", expected_size=3)
    upload.write(b"pdf")
    upload.finish()
    return server


@pytest.fixture
def server(make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]) -> Any:
    return _office(start_server(make_test_instance({"server": {"public_url": "https://fichiers.example.org"}})))


@pytest.fixture
def plain_server(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> Any:
    """Reached as it is announced, over plain HTTP: a browser keeps its cookies (Secure under HTTPS)."""
    return _office(start_server(make_test_instance()))


def script(server: LiveServer, user: str) -> httpx.Client:
    """A script's client: HTTP Basic with an app password of ``user``."""
    inst = server.instance
    _, password = inst.credentials.create_app_password(inst.accounts.get(user).id, "script")
    return httpx.Client(base_url=server.url, auth=(user, password), timeout=30)


def test_a_script_shares_lists_changes_and_revokes(server: LiveServer) -> None:
    with script(server, "alice") as api:
        made = api.post(
            "/api/v1/shares", json={"path": "/Dupont Jeanne", "email": "p@example.org", "password_by": "owner"}
        )
        assert made.status_code == 201, made.text
        body = made.json()
        share = body["share"]
        assert body["link"].startswith("https://fichiers.example.org/s/") and len(body["password"]) == 19
        assert share["kind"] == "link" and share["mode"] == "read" and share["state"] == "active"
        assert share["recipient"] == "p@example.org" and share["expires_at"].endswith("Z")
        assert made.headers["Cache-Control"] == "no-store"
        assert "Dupont" not in made.text  # ids, never names

        colleague = api.post(
            "/api/v1/shares", json={"path": "Dupont Jeanne/irm.pdf", "colleague": "bob", "mode": "write"}
        )
        assert colleague.status_code == 201 and colleague.json()["share"]["recipient"] == "bob"

        listed = api.get("/api/v1/shares").json()
        assert [s["id"] for s in listed["shares"]] == [share["id"], colleague.json()["share"]["id"]]
        assert listed["shared_with_me"] == []

        changed = api.patch(f"/api/v1/shares/{share['id']}", json={"mode": "write", "note": "Résultats"})
        assert changed.status_code == 200 and changed.json()["share"]["mode"] == "write"
        assert api.get(f"/api/v1/shares/{share['id']}").json()["share"]["note"] == "Résultats"

        ended = api.delete(f"/api/v1/shares/{share['id']}")
        assert ended.status_code == 200 and ended.json()["share"]["state"] == "revoked"
        assert ended.json()["share"]["ended_at"] is not None

    with script(server, "bob") as bob:
        mine = bob.get("/api/v1/shares").json()
        assert mine["shares"] == [] and [s["recipient"] for s in mine["shared_with_me"]] == ["bob"]
        other = colleague.json()["share"]["id"]
        for response in (
            bob.get(f"/api/v1/shares/{other}"),  # the recipient does not read the maker's details
            bob.patch(f"/api/v1/shares/{other}", json={"mode": "read"}),
            bob.delete(f"/api/v1/shares/{other}"),
            bob.post("/api/v1/shares", json={"node_id": share["node_id"], "email": "x@example.org"}),  # not his
        ):
            assert response.status_code == 404, response.text
            assert response.json() == {"error": {"status": 404, "message": "no such share or item"}}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"path": "/Dupont Jeanne"}, 400, "one of the two"),
        ({"path": "/Dupont Jeanne", "email": "p@example.org", "mode": "admin"}, 400, "unknown mode"),
        ({"path": "/Dupont Jeanne", "email": "p@example.org", "expires": "demain"}, 400, "YYYY-MM-DD"),
        ({"path": "/Dupont Jeanne", "email": "p@example.org", "password": "x"}, 400, "password"),
        ({"path": "/Dupont Jeanne", "email": "p@example.org", "max_downloads": True}, 400, "wrong type"),
        ({"path": "/Dupont Jeanne", "email": "p@example.org", "owner": "eve"}, 400, "unknown fields: owner"),
        ({"path": "/Nulle part", "email": "p@example.org"}, 404, "no such share or item"),
        ({"email": "p@example.org"}, 400, "by path"),
    ],
)
def test_bad_requests_get_a_clear_error_and_change_nothing(
    server: LiveServer, body: dict[str, Any], status: int, message: str
) -> None:
    with script(server, "alice") as api:
        response = api.post("/api/v1/shares", json=body)
        assert response.status_code == status and message in response.json()["error"]["message"], response.text
        assert (
            api.post("/api/v1/shares", content=b"{not json", headers={"Content-Type": "application/json"}).status_code
            == 400
        )
        assert api.get("/api/v1/shares").json()["shares"] == []


def test_credentials_are_required_and_throttled(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        refused = anonymous.get("/api/v1/shares")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
        assert anonymous.get("/api/v1/shares", headers={"Authorization": "Basic !!!"}).status_code == 400
        statuses = [anonymous.get("/api/v1/shares", auth=("alice", f"wrong-{n}")).status_code for n in range(12)]
        assert statuses[0] == 401 and statuses[-1] == 429
        assert anonymous.get("/api/v1/nothing-here").json() == {"error": {"status": 404, "message": "Not Found"}}
    assert server.instance.shares.all() == []


def test_the_web_session_needs_the_csrf_header_to_change_anything(
    plain_server: LiveServer, web_client: Callable[..., Web]
) -> None:
    server = plain_server
    web = web_client(server)
    assert web.login("alice", TEST_PASSWORD).status_code in (200, 302, 303)
    assert web.get("/api/v1/shares").status_code == 200  # reading needs no token
    share = {"path": "/Dupont Jeanne", "email": "p@example.org"}
    forged = web.post("/api/v1/shares", json=share)  # what another site could make the browser send
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["error"]["message"]
    assert server.instance.shares.all() == []
    token = csrf_of(web.get("/ui").text)
    made = web.post("/api/v1/shares", json=share, headers={"X-CSRF-Token": token})
    assert made.status_code == 201, made.text


def test_the_openapi_document_describes_every_route(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        doc = client.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/shares", "/shares/{id}"}
    assert set(doc["paths"]["/shares/{id}"]) == {"parameters", "get", "patch", "delete"}
    app = create_app(server.instance)
    routes = {
        (rule.rule.removeprefix("/api/v1"), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert len(routes) == 5
    for path, method in routes:
        assert method in doc["paths"][path.replace("<int:share_id>", "{id}")], (path, method)
