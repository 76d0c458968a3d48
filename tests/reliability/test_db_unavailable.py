"""The SQLite database locked by another connection: requests wait for it, or fail cleanly and change nothing.

Another connection (a backup, ``sqlite3`` in a shell, a stuck ``meddav``
command) takes the write lock with ``BEGIN EXCLUSIVE`` while ``meddav serve``
runs.  A write of the server waits for it up to ``[database]
busy_timeout_ms`` (``server.db``: ``BEGIN IMMEDIATE`` with SQLite's busy
timeout, after the process's own writer lock, waited for as long).

- Held for less than the busy timeout, the lock is waited for: every kind of
  write (PUT new and overwrite, MKCOL, DELETE, COPY, MOVE, PROPPATCH, LOCK,
  share creation) succeeds once it is released, and not before.
- Held for longer, each write gets 503 with Retry-After, the answer MedDAV
  gives whenever it is too busy (``server.errors.Busy``), never a 500; nothing
  of it is stored, no blob is left behind; once the lock is released the same
  requests succeed, without a restart.
- Reads need no write lock (WAL): they are served while it is held.

Making the database file unreadable is not tested: the server keeps its
connections open (and runs as root here), so permissions would change nothing.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from server.testing import ServerProcess, TestInstance
from tests.reliability.conftest import (
    Op,
    Outcome,
    blob_files,
    copy,
    delete,
    differences,
    lock,
    meddav,
    mkcol,
    move,
    proppatch,
    put,
    run,
    share,
    snapshot,
    states_along,
    stored_files,
)

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


@contextmanager
def write_locked(database: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (``BEGIN EXCLUSIVE``) until the block ends."""
    connection = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def prepare(server: ServerProcess, auth: tuple[str, str]) -> None:
    """What the writes act on."""
    ops = [
        put("/dossier.bin", b"old version\n" * 1000),
        mkcol("/folder/"),
        put("/folder/a.txt", b"a\n"),
        put("/folder/b.txt", b"b\n"),
        mkcol("/src/"),
        put("/src/c.bin", b"c" * MiB),
        put("/move-me.txt", b"renamed\n"),
        put("/props.txt", b"properties\n"),
        put("/to-lock.txt", b"locked\n"),
        mkcol("/shared/"),
    ]
    outcome = Outcome()
    run(server.url, auth, ops, outcome)
    assert outcome.acked == len(ops), outcome.refused or outcome.error


def writes() -> list[Op]:
    """One write of each kind, each on its own paths (their order does not matter)."""
    return [
        put("/dossier.bin", b"new version\n" * 100_000),
        put("/nouveau.bin", b"n" * MiB),
        mkcol("/created/"),
        delete("/folder/"),
        copy("/src/", "/copy/"),
        move("/move-me.txt", "/moved.txt"),
        proppatch("/props.txt", {"patient": "Dupont", "exam": "IRM"}),
        lock("/to-lock.txt"),
        share("/shared", "patient@example.org", "read"),
    ]


def refused_cleanly(response: httpx.Response) -> bool:
    """503 with Retry-After; for a PROPPATCH, a multi-status whose every property is 503 or 424 does too."""
    if response.status_code == 503:
        return "Retry-After" in response.headers
    statuses = set(re.findall(r"<D:status>HTTP/1.1 (\d+)", response.text))
    return response.status_code == 207 and bool(statuses) and statuses <= {"503", "424"}


def described(response: httpx.Response) -> str:
    inner = sorted(set(re.findall(r"<D:status>HTTP/1.1 (\d+)", response.text)))
    return (
        f"{response.status_code}"
        + (f" (properties: {', '.join(inner)})" if inner else "")
        + (f", Retry-After: {response.headers['Retry-After']}" if "Retry-After" in response.headers else "")
    )


def send_alone(server: ServerProcess, auth: tuple[str, str], op: Op) -> httpx.Response:
    with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
        return op.send(client)


def test_a_lock_held_shorter_than_the_busy_timeout_is_waited_for(
    make_test_instance: Callable[..., TestInstance],
) -> None:
    made = make_test_instance({"database": {"busy_timeout_ms": 5000}})
    auth = (made.user, made.password)
    server = ServerProcess(made.config_path)
    try:
        prepare(server, auth)
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            before = snapshot(client, shares=True)
        ops = writes()
        answers: dict[str, tuple[httpx.Response | Exception, float]] = {}

        def send(op: Op) -> None:
            try:
                answers[op.label] = (send_alone(server, auth, op), time.monotonic())
            except httpx.HTTPError as exc:
                answers[op.label] = (exc, time.monotonic())

        senders = [threading.Thread(target=send, args=(op,)) for op in ops]
        with write_locked(made.data_dir / "meddav.sqlite3"):
            for sender in senders:
                sender.start()
            time.sleep(0.8)
            released = time.monotonic()
        for sender in senders:
            sender.join(timeout=30)

        wrong = {}
        for op in ops:
            answer, at = answers[op.label]
            if isinstance(answer, Exception) or not op.accepted(answer):
                wrong[op.label] = answer if isinstance(answer, Exception) else answer.status_code
            elif at < released:
                wrong[op.label] = "answered while the database was locked"
        assert not wrong, f"writes that did not wait for a lock shorter than the busy timeout: {wrong}"
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            found = snapshot(client, shares=True)
        expected = states_along(before, ops)[-1]
        assert found == expected, differences(found, expected)
    finally:
        server.stop()


def test_a_lock_held_past_the_busy_timeout_gets_503_and_changes_nothing(
    make_test_instance: Callable[..., TestInstance],
) -> None:
    made = make_test_instance({"database": {"busy_timeout_ms": 300}})
    auth = (made.user, made.password)
    server = ServerProcess(made.config_path)
    try:
        prepare(server, auth)
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            before = snapshot(client, shares=True)
        ops = writes()
        with write_locked(made.data_dir / "meddav.sqlite3"):
            answers = [send_alone(server, auth, op) for op in ops]
        unclean = {
            op.label: described(answer) for op, answer in zip(ops, answers, strict=True) if not refused_cleanly(answer)
        }

        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            found = snapshot(client, shares=True)
            assert found == before, "writes refused for a locked database changed something:\n" + differences(
                found, before
            )
            # Released: the same requests succeed, without a restart.
            again = [op.send(client) for op in ops]
            failed = {
                op.label: answer.status_code for op, answer in zip(ops, again, strict=True) if not op.accepted(answer)
            }
            assert not failed, f"writes still failing once the lock is released: {failed}"
            found = snapshot(client, shares=True)
        expected = states_along(before, ops)[-1]
        assert found == expected, differences(found, expected)
        assert not unclean, (
            f"writes answered otherwise than 503 with Retry-After while the database was locked: {unclean}"
        )
    finally:
        server.stop()
    blobs, uploads = blob_files(made.data_dir / "blobs")
    assert uploads == [] and len(blobs) == stored_files(found), "blobs of refused writes were left behind"
    report = meddav(made.config_path, "fsck", "--dry-run")
    assert report.returncode == 0 and "orphan blobs found: 0" in report.stdout, report.stdout + report.stderr
    verified = meddav(made.config_path, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_reads_are_served_while_another_connection_holds_the_write_lock(
    make_test_instance: Callable[..., TestInstance],
) -> None:
    made = make_test_instance({"database": {"busy_timeout_ms": 300}})
    auth = (made.user, made.password)
    server = ServerProcess(made.config_path)
    try:
        prepare(server, auth)
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            assert share("/shared", "patient@example.org", "read").send(client).status_code == 201
            with write_locked(made.data_dir / "meddav.sqlite3"):
                answers = {
                    "GET": client.get("/dav/dossier.bin"),
                    "PROPFIND": client.request("PROPFIND", "/dav/", headers={"Depth": "1"}),
                    "API list of shares": client.get("/api/v1/shares"),
                }
        statuses = {name: answer.status_code for name, answer in answers.items()}
        assert statuses == {"GET": 200, "PROPFIND": 207, "API list of shares": 200}
        assert answers["GET"].content == b"old version\n" * 1000
    finally:
        server.stop()
