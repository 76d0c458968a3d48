"""Every WebDAV request leaves one audit row, chained and verifiable, naming no file."""

from __future__ import annotations

import subprocess
import sys

import httpx
from sqlalchemy import select

from server.audit import verify
from server.db.models import audit_t
from server.testing import LiveServer, TestInstance


def rows(server: LiveServer) -> list[tuple[str, str, str, int | None, int | None, int | None]]:
    assert server.instance.flush_audit()
    with server.instance.db.read() as c:
        found = c.all(
            select(
                audit_t.c.principal,
                audit_t.c.action,
                audit_t.c.outcome,
                audit_t.c.status,
                audit_t.c.node_id,
                audit_t.c.target_id,
            ).order_by(audit_t.c.id)
        )
    return [tuple(r) for r in found]


def test_one_row_per_request(live_server: LiveServer, dav: httpx.Client, instance_dir: TestInstance) -> None:
    assert dav.request("MKCOL", "dossier/").status_code == 201
    for i in range(20):
        assert dav.put(f"dossier/compte-rendu-{i}.pdf", content=b"%PDF").status_code == 201
    before = len(rows(live_server))
    assert dav.request("PROPFIND", "dossier/", headers={"Depth": "1"}).status_code == 207
    assert dav.get("dossier/compte-rendu-1.pdf").status_code == 200
    move = {"Destination": live_server.dav_url + "dossier/renamed.pdf"}
    assert dav.request("MOVE", "dossier/compte-rendu-2.pdf", headers=move).status_code == 201
    assert dav.delete("dossier/compte-rendu-3.pdf").status_code == 204
    assert dav.get("dossier/missing.pdf").status_code == 404
    with httpx.Client(base_url=live_server.dav_url, auth=(instance_dir.user, "wrong password!")) as intruder:
        assert intruder.get("dossier/compte-rendu-1.pdf").status_code == 401
    with httpx.Client(base_url=live_server.dav_url) as anonymous:
        assert anonymous.get("dossier/compte-rendu-1.pdf").status_code == 401  # a challenge, not recorded

    recorded = rows(live_server)[before:]
    user = instance_dir.user
    assert [(r[0], r[1], r[2], r[3]) for r in recorded] == [
        (user, "node.list", "ok", 207),  # one row for the folder and its 20 members
        (user, "file.read", "ok", 200),
        (user, "node.move", "ok", 201),
        (user, "node.delete", "ok", 204),
        (user, "file.read", "failed", 404),
        (user, "auth.failed", "denied", 401),
    ]
    folder = live_server.instance.tree.resolve(live_server.instance.accounts.get(user).root_id, ["dossier"])
    assert folder is not None
    assert recorded[0][4] == folder.id
    assert recorded[2][5] == folder.id  # the move's destination folder
    assert all(r[4] is not None for r in recorded[:4])
    assert verify(live_server.instance.db).ok


def test_audit_verify_from_the_command_line(
    live_server: LiveServer, dav: httpx.Client, instance_dir: TestInstance
) -> None:
    assert dav.put("a.pdf", content=b"x").status_code == 201
    assert live_server.instance.flush_audit()
    result = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(instance_dir.config_path), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # Tamper with a row: the chain names it.
    with live_server.instance.db.write() as c:
        first = c.scalar(select(audit_t.c.id).order_by(audit_t.c.id).limit(1))
        c.run(audit_t.update().where(audit_t.c.id == first).values(status=418))
    result = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(instance_dir.config_path), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert str(first) in result.stdout + result.stderr
