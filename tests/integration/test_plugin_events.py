"""Plugins hear about changes through the durable outbox; a failing plugin never fails the user.

A real ``meddav serve`` in a child process, with two plugins installed the
way pip would (a ``.dist-info`` with its entry point on the child's path):
``recorder`` appends each event it gets to a file; ``broken`` raises.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.testing import ServerProcess, make_instance

RECORDER = """
import json
from server.hooks import ConfigOption, hookimpl

def _path(value):
    if not isinstance(value, str) or not value:
        raise ValueError("must be a file path")
    return value

@hookimpl
def meddav_config_schema():
    return [ConfigOption("path", "", "Where to append the events.", _path)]

@hookimpl
def meddav_event(event, plugin):
    with open(plugin.config["path"], "a") as out:
        out.write(json.dumps({"kind": event.kind, "node_id": getattr(event, "node_id", None)}) + "\\n")
"""

BROKEN = """
from server.hooks import hookimpl

@hookimpl
def meddav_event(event):
    raise RuntimeError("this plugin always fails")
"""


def install(site: Path, name: str, source: str) -> None:
    (site / f"{name}.py").write_text(source)
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[meddav]\n{name} = {name}\n")


def wait_for(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_events_reach_plugins_and_a_failing_one_is_dead_lettered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "recorder", RECORDER)
    install(site, "broken", BROKEN)
    install(site, "stranger", RECORDER)  # a recorder granted no organisation: it must hear nothing
    monkeypatch.syspath_prepend(str(site))  # installed here too: creating the instance loads its plugins
    importlib.invalidate_caches()
    events, overheard = tmp_path / "events.jsonl", tmp_path / "overheard.jsonl"
    granted = ["Default organisation"]
    made = make_instance(
        tmp_path / "data",
        settings={
            "plugins": {
                "enabled": ["recorder", "broken", "stranger"],
                "recorder": {"path": str(events), "organisations": granted},
                "broken": {"organisations": granted},
                "stranger": {"path": str(overheard)},
            },
            "jobs": {"max_attempts": 2, "backoff_seconds": 1, "max_backoff_seconds": 1},
        },
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    server = ServerProcess(made.config_path, env=env)
    try:
        with httpx.Client(base_url=server.dav_url, auth=(made.user, made.password), timeout=30) as dav:
            assert dav.put("compte-rendu.pdf", content=b"%PDF report").status_code == 201  # broken cannot fail it
            assert dav.get("compte-rendu.pdf").content == b"%PDF report"
            assert wait_for(lambda: events.exists() and "FileWritten" in events.read_text())
            assert dav.delete("compte-rendu.pdf").status_code == 204
            assert wait_for(lambda: "FileDeleted" in events.read_text())
        recorded = [json.loads(line) for line in events.read_text().splitlines()]
        # Once each: the admin account that meddav init created, then the file written and deleted.
        assert sorted(r["kind"] for r in recorded) == ["AccountCreated", "FileDeleted", "FileWritten"]
        assert "compte-rendu" not in events.read_text()  # events carry ids, not names
        assert not overheard.exists()  # not granted the organisation: not told of its events

        def dead() -> str:
            listing = subprocess.run(
                [sys.executable, "-m", "server", "--config", str(made.config_path), "jobs", "list", "--dead"],
                capture_output=True, text=True, timeout=60, env={**os.environ, **env},
            )  # fmt: skip
            return listing.stdout

        assert wait_for(lambda: dead().count("plugins.event") == 3, timeout=30)  # broken's three, dead-lettered
    finally:
        server.stop()
