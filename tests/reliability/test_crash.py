"""SIGKILL during a large overwrite: after restart the file is whole, old or new.

The server runs in a child process.  Each trial overwrites a 200 MiB file and
kills the server with SIGKILL at a random instant of the upload (the body
streaming, the blob fsync and rename, the database commit, the deletion of the
old blob).  Then ``meddav fsck`` runs, the server restarts, and the file must
hash to the previous version or to the complete new one, never a mix; a write
the client saw acknowledged must be the one that is there.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.testing import ServerProcess, TestInstance

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
SIZE = 200 * MiB
TRIALS = 10


def body(block: bytes) -> Iterator[bytes]:
    for i in range(SIZE // MiB):
        yield i.to_bytes(4, "big") + block[4:]


def digest(block: bytes) -> str:
    h = hashlib.sha256()
    for chunk in body(block):
        h.update(chunk)
    return h.hexdigest()


def remote_digest(server: ServerProcess, auth: tuple[str, str]) -> str:
    h = hashlib.sha256()
    with httpx.stream("GET", server.dav_url + "scan.bin", auth=auth, timeout=120) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes(MiB):
            h.update(chunk)
    return h.hexdigest()


def put(server: ServerProcess, auth: tuple[str, str], block: bytes, outcome: dict[str, object]) -> None:
    try:
        response = httpx.put(
            server.dav_url + "scan.bin",
            content=body(block),
            headers={"Content-Length": str(SIZE)},
            auth=auth,
            timeout=120,
        )
        outcome["status"] = response.status_code
    except httpx.HTTPError as exc:
        outcome["error"] = exc


def fsck(config: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(config), "fsck"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr  # nothing missing, orphans removed
    return result.stdout


def blob_files(instance: TestInstance) -> list[str]:
    return [f for _, _, files in os.walk(instance.data_dir / "blobs") for f in files]


def test_sigkill_during_overwrite_never_leaves_a_partial_file(instance_dir: TestInstance) -> None:
    auth = (instance_dir.user, instance_dir.password)
    rng = random.Random(os.environ.get("MEDDAV_CRASH_SEED", "meddav"))

    server = ServerProcess(instance_dir.config_path)
    current = os.urandom(MiB)
    started = time.monotonic()
    outcome: dict[str, object] = {}
    put(server, auth, current, outcome)
    duration = time.monotonic() - started
    assert outcome.get("status") == 201
    current_hash = digest(current)

    kinds = {"old": 0, "new": 0}
    for _ in range(TRIALS):
        new = os.urandom(MiB)
        new_hash = digest(new)
        outcome = {}
        writer = threading.Thread(target=put, args=(server, auth, new, outcome))
        writer.start()
        time.sleep(rng.uniform(0.0, duration * 1.3))
        server.kill()
        writer.join(timeout=60)

        report = fsck(instance_dir.config_path)
        assert "files whose blob is missing: 0" in report
        server = ServerProcess(instance_dir.config_path)
        found = remote_digest(server, auth)
        assert found in (current_hash, new_hash), "partial or mixed content after a crash"
        if outcome.get("status") in (201, 204):
            assert found == new_hash, "an acknowledged write was lost"
        kinds["new" if found == new_hash else "old"] += 1
        current_hash = found

    server.stop()
    fsck(instance_dir.config_path)
    leftovers = blob_files(instance_dir)
    assert len(leftovers) == 1, leftovers  # the current version only: orphans and partial uploads are gone
    print(f"outcomes over {TRIALS} kills: {kinds}")
