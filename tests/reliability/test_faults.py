"""SIGKILL at random instants of every mutating operation: after a restart the state is one a client could see.

``test_crash.py`` kills one large overwrite ten times; this extends it to
every request that changes something: PUT of new files and overwrites, COPY
and MOVE of files and folders, DELETE of folders holding files, PROPPATCH,
LOCK, and share creation through the JSON API.  For each, ``meddav serve``
runs in a child process; a thread sends a stream of such requests one after
the other, and the server is killed with SIGKILL at a random instant of a
randomly chosen request of the stream (seeded by ``MEDDAV_CRASH_SEED``;
several instants per operation, ``MEDDAV_FAULT_KILLS``).  Then ``meddav fsck`` and
``meddav audit verify`` run, the server restarts, and the whole tree is read
back over WebDAV: every folder, every file's content, dead properties, locks,
and the shares through the API.

The test keeps a model: the state before the stream, and after each of its
requests.  Requests are sent one at a time, so the state found must be the
model after the last acknowledged request (every 2xx the client received is
there), or after the one in flight (it took effect whole): never anything in
between, never a file whose content was not written whole.  A COPY of a
folder is one transaction (``server.tree.Tree.copy``: blobs first, then every
row at once), so it is all or nothing too, and so is a PROPPATCH of several
properties (RFC 4918 §9.2: "either all be executed or none").  After fsck the
blob store holds exactly one blob per file with content, and no unfinished
upload.

Some requests take more than one transaction, and a random instant seldom
falls between them: a LOCK of an unmapped URL (the lock, then the empty file;
a lock left on nothing is dropped at the next start), a DELETE or a MOVE of a
locked file (the tree, then the locks; same), and a PROPPATCH (one
transaction since this test found it took one per property).  The second
test kills the server exactly there:
a ``sitecustomize`` hook given to the server's interpreter pauses after each
database commit, and the kill comes in the pause that follows the request's
first commit.  The request must then be undone or done, and a path it freed
must take a new file (no lock of the deleted file left on it).
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.db.models import dead_properties_t, nodes_t
from server.testing import ServerProcess, TestInstance
from tests.reliability.conftest import (
    Op,
    Outcome,
    State,
    after_crash,
    blob_files,
    copy,
    delete,
    differences,
    lock,
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
from tests.web.conftest import Web, csrf_of

pytestmark = pytest.mark.slow

KiB = 1024
MiB = 1024 * KiB
KILLS = int(os.environ.get("MEDDAV_FAULT_KILLS", "3"))
SEED = os.environ.get("MEDDAV_CRASH_SEED", "meddav")


# -- one stream per operation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Requests made before each stream (never interrupted), and the stream the kill interrupts."""

    setup: Callable[[int, random.Random], list[Op]]
    stream: Callable[[int, random.Random], list[Op]]
    shares: bool = False


def _put_new_setup(trial: int, rng: random.Random) -> list[Op]:
    return [mkcol(f"/new{trial}/")]


def _put_new(trial: int, rng: random.Random) -> list[Op]:
    return [put(f"/new{trial}/scan-{i}.bin", rng.randbytes(6 * MiB)) for i in range(4)]


def _overwrite_setup(trial: int, rng: random.Random) -> list[Op]:
    if trial:
        return []
    return [
        put("/dossier.bin", rng.randbytes(2 * MiB)),
        put("/note.txt", b"first version\n"),
        proppatch("/dossier.bin", {"kept": "across versions"}),
    ]


def _overwrite(trial: int, rng: random.Random) -> list[Op]:
    ops = []
    for i in range(3):
        ops.append(put("/dossier.bin", rng.randbytes(rng.choice((4, 8)) * MiB)))
        ops.append(put("/note.txt", f"trial {trial} version {i}\n".encode() * 1000))
    return ops


def _copy_setup(trial: int, rng: random.Random) -> list[Op]:
    if trial:
        return []
    return [
        mkcol("/src/"),
        put("/src/a.bin", rng.randbytes(MiB)),
        put("/src/b.bin", rng.randbytes(MiB)),
        mkcol("/src/sub/"),
        put("/src/sub/c.bin", rng.randbytes(MiB)),
        put("/src/sub/d.txt", b"small\n" * 100),
        proppatch("/src/a.bin", {"patient": "Dupont"}),
        proppatch("/src/sub/", {"exam": "IRM"}),
    ]


def _copy(trial: int, rng: random.Random) -> list[Op]:
    return [
        copy("/src/", f"/copy{trial}-0/"),
        copy("/src/a.bin", "/single.bin"),  # a file, onto the previous trial's copy
        copy("/src/", f"/copy{trial}-1/"),
        copy("/src/sub/", f"/copy{trial}-0/"),  # a folder onto an existing folder: replaced whole
    ]


def _move_setup(trial: int, rng: random.Random) -> list[Op]:
    return [
        mkcol(f"/m{trial}-0/"),
        put(f"/m{trial}-0/x.bin", rng.randbytes(256 * KiB)),
        mkcol(f"/m{trial}-0/sub/"),
        put(f"/m{trial}-0/sub/y.bin", rng.randbytes(256 * KiB)),
        put(f"/victim{trial}.bin", rng.randbytes(128 * KiB)),
        proppatch(f"/m{trial}-0/sub/", {"moved": "with it"}),
    ]


def _move(trial: int, rng: random.Random) -> list[Op]:
    ops = []
    for i in range(1, 16):
        ops.append(move(f"/m{trial}-{i - 1}/", f"/m{trial}-{i}/"))
        if i == 8:  # a file onto an existing file: the replaced content's blob is freed
            ops.append(move(f"/m{trial}-{i}/x.bin", f"/victim{trial}.bin"))
    return ops


def _delete_setup(trial: int, rng: random.Random) -> list[Op]:
    ops = []
    for k in range(5):
        folder = f"/del{trial}-{k}/"
        ops += [mkcol(folder), mkcol(folder + "sub/"), put(folder + "sub/z.bin", rng.randbytes(64 * KiB))]
        ops += [put(f"{folder}f{i}.bin", rng.randbytes(128 * KiB)) for i in range(3)]
    return ops


def _delete(trial: int, rng: random.Random) -> list[Op]:
    return [delete(f"/del{trial}-{k}/") for k in range(5)]


def _proppatch_setup(trial: int, rng: random.Random) -> list[Op]:
    return [] if trial else [put("/props.txt", b"a file with properties\n"), mkcol("/propdir/")]


def _proppatch(trial: int, rng: random.Random) -> list[Op]:
    return [
        proppatch(("/props.txt", "/propdir/")[i % 2], {f"p{k}": f"t{trial}-{i}" for k in range(10)}) for i in range(12)
    ]


def _lock_setup(trial: int, rng: random.Random) -> list[Op]:
    return [mkcol(f"/locks{trial}/")] + [put(f"/locks{trial}/old{k}.txt", b"locked later\n") for k in range(3)]


def _lock(trial: int, rng: random.Random) -> list[Op]:
    ops = []
    for i in range(9):
        ops.append(lock(f"/locks{trial}/new{i}.txt"))  # an unmapped URL
        if i % 3 == 2:
            ops.append(lock(f"/locks{trial}/old{i // 3}.txt"))
    return ops


def _share_setup(trial: int, rng: random.Random) -> list[Op]:
    return [] if trial else [mkcol("/shared/"), put("/shared/compte-rendu.txt", b"resultats\n")]


def _share(trial: int, rng: random.Random) -> list[Op]:
    return [share("/shared", f"patient{trial}-{i}@example.org", ("read", "write")[i % 2]) for i in range(6)]


SCENARIOS = {
    "put_new": Scenario(_put_new_setup, _put_new),
    "put_overwrite": Scenario(_overwrite_setup, _overwrite),
    "copy": Scenario(_copy_setup, _copy),
    "move": Scenario(_move_setup, _move),
    "delete_folder": Scenario(_delete_setup, _delete),
    "proppatch": Scenario(_proppatch_setup, _proppatch),
    "lock": Scenario(_lock_setup, _lock),
    "share": Scenario(_share_setup, _share, shares=True),
}


# -- running a stream ----------------------------------------------------------------------------------


def set_up(server: ServerProcess, auth: tuple[str, str], ops: list[Op], model: State) -> State:
    """Send the requests a stream acts on (never interrupted); the model after them."""
    outcome = Outcome()
    run(server.url, auth, ops, outcome)
    assert outcome.refused is None and outcome.error is None, outcome.refused or outcome.error
    return states_along(model, ops)[-1]


def check_links(server: ServerProcess, answers: list[httpx.Response]) -> None:
    """Each share the client saw made opens with its password after the restart, and serves the file."""
    for answer in answers:
        made = answer.json()
        token = made["link"].rsplit("/", 1)[1]
        with Web(base_url=server.url, timeout=30) as web:
            page = web.get(f"/s/{token}")
            assert page.status_code == 200, page.status_code
            opened = web.post(f"/s/{token}", data={"password": made["password"], "csrf_token": csrf_of(page.text)})
            assert opened.status_code == 303, (opened.status_code, opened.text[:300])
            assert web.get(f"/s/{token}/get/compte-rendu.txt").content == b"resultats\n"


@pytest.mark.parametrize("operation", list(SCENARIOS))
def test_a_kill_at_any_instant_leaves_the_state_before_or_after_each_request(
    operation: str, instance_dir: TestInstance
) -> None:
    scenario = SCENARIOS[operation]
    rng = random.Random(f"{SEED}-{operation}")
    config = instance_dir.config_path
    auth = (instance_dir.user, instance_dir.password)
    blob_dir = instance_dir.data_dir / "blobs"

    server = ServerProcess(config)
    try:
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            model = snapshot(client, shares=scenario.shares)
        # Trial 0, not interrupted: every request of the stream works, and the stream takes this long.
        model = set_up(server, auth, scenario.setup(0, rng), model)
        ops = scenario.stream(0, rng)
        outcome = Outcome()
        run(server.url, auth, ops, outcome)
        duration = time.monotonic() - outcome.began
        assert outcome.acked == len(ops), outcome.refused or outcome.error
        model = states_along(model, ops)[-1]
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            found = snapshot(client, shares=scenario.shares)
        assert found == model, "the stream did not do what the model says:\n" + differences(found, model)

        interrupted: list[str] = []
        for trial in range(1, KILLS + 1):
            model = set_up(server, auth, scenario.setup(trial, rng), model)
            ops = scenario.stream(trial, rng)
            states = states_along(model, ops)
            outcome = Outcome()
            client_thread = threading.Thread(target=run, args=(server.url, auth, ops, outcome))
            client_thread.start()
            # The kill comes at a random instant of a random request: once the answers before it are in,
            # after a random part of a request's mean duration.
            target, offset = rng.randrange(len(ops)), rng.uniform(0.0, 1.2 * duration / len(ops))
            deadline = time.monotonic() + 60
            while outcome.acked < target and client_thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(offset)
            server.kill()
            client_thread.join(timeout=60)
            assert not client_thread.is_alive()
            assert outcome.refused is None, outcome.refused

            with after_crash(config) as report:
                blobs, uploads = blob_files(blob_dir)
                server = ServerProcess(config)
                with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
                    found = snapshot(client, shares=scenario.shares)

            acked = outcome.acked
            in_flight = ops[acked].label if acked < len(ops) else "none"
            candidates = states[acked : acked + 2]
            assert found in candidates, (
                f"trial {trial}: killed after {acked} of {len(ops)} answers (in flight: {in_flight}); the state is "
                "neither the one after the last answer nor the one after the request in flight.\n"
                "against the state after the last answer:\n" + differences(found, candidates[0])
            )
            assert uploads == [], f"unfinished uploads left after fsck: {uploads}\n{report}"
            assert len(blobs) == stored_files(found), f"orphan blobs left after fsck:\n{report}"
            if scenario.shares:
                check_links(server, outcome.answers)
            model = found
            if acked < len(ops):
                interrupted.append(f"{acked}/{len(ops)}" + (" (took effect)" if found != states[acked] else ""))
        assert interrupted, "every kill came after the stream had ended: the test proved nothing"
        print(f"{operation}: stream of {duration:.2f} s, kills after answers {interrupted}")
    finally:
        server.stop()
    log = (instance_dir.data_dir / "serve.log").read_text()
    errors = [line for line in log.splitlines() if "level=error" in line]
    assert not errors, "the server logged errors:\n" + "\n".join(line[:400] for line in errors[:5])


# -- requests the server carries out in several transactions ----------------------------------------------


@dataclass(frozen=True)
class Split:
    """A request carried out in several transactions: what it acts on is made first by ``prepare``,
    which returns the request.  ``freed``: a path the request leaves free (a new file may be made there)."""

    prepare: Callable[[httpx.Client], Op]
    freed: str | None = None


def _lock_token(client: httpx.Client, path: str) -> str:
    answer = lock(path).send(client)
    assert answer.status_code in (200, 201), answer.text
    return answer.headers["Lock-Token"]


def _many_properties(client: httpx.Client) -> Op:
    assert client.put("/dav/compte-rendu.txt", content=b"IRM du genou\n").status_code == 201
    return proppatch("/compte-rendu.txt", {f"p{k}": f"value {k}" for k in range(20)})


def _lock_unmapped(client: httpx.Client) -> Op:
    return lock("/nouveau.docx")


def _delete_locked(client: httpx.Client) -> Op:
    assert client.put("/dav/ancien.txt", content=b"to be deleted\n").status_code == 201
    return delete("/ancien.txt", headers={"If": f"({_lock_token(client, '/ancien.txt')})"})


def _move_locked(client: httpx.Client) -> Op:
    assert client.put("/dav/brouillon.txt", content=b"to be renamed\n").status_code == 201
    return move("/brouillon.txt", "/final.txt", headers={"If": f"({_lock_token(client, '/brouillon.txt')})"})


SPLITS = {
    # wsgidav's do_PROPPATCH calls set_property_value once per property; each is a transaction.
    "proppatch_of_20_properties": Split(_many_properties),
    # do_LOCK makes the empty file (create_empty_resource), then takes the lock.
    "lock_of_an_unmapped_url": Split(_lock_unmapped),
    # handle_delete and handle_move commit the tree, then drop the locks of the old path.
    "delete_of_a_locked_file": Split(_delete_locked, freed="/ancien.txt"),
    "move_of_a_locked_file": Split(_move_locked, freed="/brouillon.txt"),
}


#: Loaded by the server's interpreter at start (``sitecustomize`` on its PYTHONPATH): while the flag file
#: exists, every database commit is followed by a pause of half a second, so that the test can see the first
#: commit of a request and kill the server before the next one.  Nothing else of the server changes.
_PAUSE_HOOK = """
import os, pathlib, time
flag = pathlib.Path(os.environ["MEDDAV_TEST_PAUSE_FLAG"])
from server.db import Database
commit = Database._commit
def _commit_then_pause(self, conn, *, durable):
    commit(self, conn, durable=durable)
    if flag.exists():
        flag.with_suffix(".paused").touch()
        time.sleep(0.5)
Database._commit = _commit_then_pause
flag.with_suffix(".installed").touch()
"""


def _tree_rows(connection: sqlite3.Connection) -> list[list[Any]]:
    """The committed rows of the tree and of the dead properties (sealed: compared as they are)."""
    tables = (nodes_t.name, dead_properties_t.name)
    return [connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in tables]


def paused_server(config: Path, hook_dir: Path) -> tuple[ServerProcess, Path]:
    """``meddav serve`` with the pause hook; returns it and the flag that turns the pauses on."""
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(_PAUSE_HOOK)
    flag = hook_dir / "pause"
    path = os.pathsep.join(p for p in (str(hook_dir), os.environ.get("PYTHONPATH", "")) if p)
    server = ServerProcess(config, env={"PYTHONPATH": path, "MEDDAV_TEST_PAUSE_FLAG": str(flag)})
    assert flag.with_suffix(".installed").exists(), "the pause hook was not loaded: see serve.log"
    return server, flag


def kill_after_first_commit(server: ServerProcess, database: Path, flag: Path, sending: threading.Thread) -> None:
    """Kill the server as soon as the request's first transaction has changed the tree's rows, in the pause
    that follows that commit (the pauses are on).  ``PRAGMA data_version`` (cheap) tells when anything was
    committed; the rows are compared then (the audit writer commits too)."""
    watcher = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        before = _tree_rows(watcher)
        version = watcher.execute("PRAGMA data_version").fetchone()
        deadline = time.monotonic() + 30
        while sending.is_alive() and time.monotonic() < deadline:
            now = watcher.execute("PRAGMA data_version").fetchone()
            if now != version:
                version = now
                if _tree_rows(watcher) != before:
                    paused, until = flag.with_suffix(".paused"), time.monotonic() + 0.3
                    while not paused.exists() and time.monotonic() < until:  # touched just after the commit
                        time.sleep(0.002)
                    assert paused.exists(), "the server did not pause after its commit"
                    break
            time.sleep(0.002)
    finally:
        watcher.close()
        server.kill()


@pytest.mark.parametrize("case", list(SPLITS))
def test_a_kill_between_the_commits_of_one_request_leaves_it_undone_or_done(
    case: str, instance_dir: TestInstance
) -> None:
    """The kill comes as soon as the first transaction of the request is committed (seen in the database),
    in a pause the server makes after each commit (:data:`_PAUSE_HOOK`): the next ones have not begun."""
    split = SPLITS[case]
    config = instance_dir.config_path
    auth = (instance_dir.user, instance_dir.password)
    database = instance_dir.data_dir / "meddav.sqlite3"

    server, flag = paused_server(config, instance_dir.data_dir.parent / "hook")
    try:
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            op = split.prepare(client)
            before = snapshot(client)
        after = states_along(before, [op])[-1]
        outcome = Outcome()
        flag.touch()
        client_thread = threading.Thread(target=run, args=(server.url, auth, [op], outcome))
        client_thread.start()
        kill_after_first_commit(server, database, flag, client_thread)
        flag.unlink()
        client_thread.join(timeout=60)
        assert outcome.refused is None, outcome.refused

        with after_crash(config):
            server = ServerProcess(config)
            with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
                found = snapshot(client)
                assert found in (before, after), (
                    f"{op.label}, killed between its commits, is half done:\n" + differences(found, before)
                )
                if split.freed is not None and split.freed not in found:
                    again = client.put("/dav" + split.freed, content=b"a new file where the old one was\n")
                    assert again.status_code == 201, (
                        f"{split.freed} is gone, yet a new file cannot be made there: {again.status_code} "
                        "(a lock of the old file outlived it)"
                    )
    finally:
        server.stop()
