"""Which commits wait for their fsync, and the deferred fsync of the others.

Contents, and every change that frees a blob (deleted after the commit), must
be on disk when acknowledged; changes of names only may be acknowledged
before their fsync, which the WAL syncer then does within
``[database] namespace_sync_ms``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from server.config import load_settings
from server.db import Database
from server.instance import Instance, open_instance
from server.testing import TestInstance
from server.tree import Entry


@contextmanager
def opened(make_test_instance: Callable[..., TestInstance], sync_ms: int = 1000) -> Iterator[Instance]:
    made = make_test_instance({"database": {"namespace_sync_ms": sync_ms}})
    instance = open_instance(load_settings(made.config_path))
    try:
        yield instance
    finally:
        instance.close()


def root_of(instance: Instance) -> Entry:
    return instance.tree.get(instance.accounts.get("admin").root_id)


def store(instance: Instance, folder: Entry, name: str, data: bytes) -> Entry:
    upload = instance.tree.upload(folder, name, expected_size=len(data))
    upload.write(data)
    return upload.finish()


@contextmanager
def commits(db: Database) -> Iterator[dict[str, int]]:
    """The number of durable and deferred commits made inside the block."""
    before = (db.durable_commits, db.deferred_commits)
    counts: dict[str, int] = {}
    yield counts
    counts["durable"] = db.durable_commits - before[0]
    counts["deferred"] = db.deferred_commits - before[1]


def test_changes_of_names_only_do_not_wait_for_their_fsync(make_test_instance: Any) -> None:
    with opened(make_test_instance) as instance:
        tree, root = instance.tree, root_of(instance)
        with commits(instance.db) as made:
            folder = tree.mkdir(root, "dossiers")
            tree.move(folder, root, "archives", overwrite=False)
            tree.set_properties(folder, [("{urn:x}tag", b"<x:tag xmlns:x='urn:x'>1</x:tag>")])
            tree.delete(folder)
        assert made == {"durable": 0, "deferred": 4}


def test_content_and_whatever_frees_content_is_durable(make_test_instance: Any) -> None:
    with opened(make_test_instance) as instance:
        tree, root = instance.tree, root_of(instance)
        folder = tree.mkdir(root, "dossiers")
        with commits(instance.db) as made:
            first = store(instance, folder, "a.pdf", b"first")
            store(instance, folder, "a.pdf", b"second version")  # frees the first blob
        assert made == {"durable": 2, "deferred": 0}

        other = store(instance, root, "b.pdf", b"other")
        with commits(instance.db) as made:
            tree.move(other, folder, "a.pdf", overwrite=True)  # replaces a file: frees its blob
        assert made == {"durable": 1, "deferred": 0}

        store(instance, folder, "c.pdf", b"c")
        with commits(instance.db) as made:
            tree.delete(folder)  # a folder holding files
        assert made == {"durable": 1, "deferred": 0}
        assert first.version is not None
        assert not instance.blobs.exists(first.version.blob_id)


def test_a_deferred_commit_is_synced_within_the_window(make_test_instance: Any) -> None:
    with opened(make_test_instance, sync_ms=50) as instance:
        syncer = instance.db._syncer
        assert syncer is not None
        before = syncer.syncs
        instance.tree.mkdir(root_of(instance), "dossiers")
        deadline = time.monotonic() + 5
        while syncer.syncs == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert syncer.syncs == before + 1


def test_a_durable_commit_takes_the_pending_sync_with_it(make_test_instance: Any) -> None:
    with opened(make_test_instance, sync_ms=60000) as instance:
        syncer = instance.db._syncer
        assert syncer is not None
        root = root_of(instance)
        instance.tree.mkdir(root, "dossiers")
        assert syncer._due is not None
        store(instance, root, "a.pdf", b"content")
        assert syncer._due is None


def test_closing_syncs_what_is_pending(make_test_instance: Any) -> None:
    made = make_test_instance({"database": {"namespace_sync_ms": 60000}})
    instance = open_instance(load_settings(made.config_path))
    syncer = instance.db._syncer
    assert syncer is not None
    instance.tree.mkdir(root_of(instance), "dossiers")
    before = syncer.syncs
    instance.close()
    assert syncer.syncs == before + 1


@pytest.mark.parametrize("settings", [{"namespace_sync_ms": 0}, {"sqlite_synchronous": "normal"}])
def test_no_deferral_when_disabled_or_already_relaxed(make_test_instance: Any, settings: dict[str, Any]) -> None:
    made = make_test_instance({"database": settings})
    instance = open_instance(load_settings(made.config_path))
    try:
        assert instance.db._syncer is None
        with commits(instance.db) as counts:
            instance.tree.mkdir(root_of(instance), "dossiers")
        assert counts == {"durable": 1, "deferred": 0}
    finally:
        instance.close()


def test_a_batch_with_durable_work_commits_durably(make_test_instance: Any) -> None:
    """Group commit: deferred and durable work of concurrent threads in one batch."""
    with opened(make_test_instance) as instance:
        db = instance.db
        gate = threading.Event()
        entered = threading.Event()

        def slow(c: Any) -> None:
            entered.set()
            gate.wait(5)

        holder = threading.Thread(target=db.grouped, args=(slow,), kwargs={"durable": False})
        holder.start()
        entered.wait(5)
        # Both queue behind the holder's batch and run together in the next one.
        results: list[Any] = []
        workers = [
            threading.Thread(target=lambda: results.append(db.grouped(lambda c: "names", durable=False))),
            threading.Thread(target=lambda: results.append(db.grouped(lambda c: "content"))),
        ]
        with commits(db) as made:
            for worker in workers:
                worker.start()
            time.sleep(0.2)
            gate.set()
            holder.join(5)
            for worker in workers:
                worker.join(5)
        assert sorted(results) == ["content", "names"]
        assert made["durable"] == 1
        assert made["durable"] + made["deferred"] == 2  # the holder's batch, then both together


def test_a_job_is_durable_once_enqueued_and_its_bookkeeping_is_not(make_test_instance: Any) -> None:
    """A power cut may undo a claim or a completion (the job runs again), never the job itself."""
    with opened(make_test_instance) as instance:
        jobs = instance.jobs
        with commits(instance.db) as made:
            jobs.enqueue(None, "test.durability", "one", {"n": 1})
        assert made == {"durable": 1, "deferred": 0}

        with commits(instance.db) as made:
            claimed = jobs.claim("worker-1", ["test.durability"])
            assert claimed is not None
            renewed = jobs.extend(claimed)
            assert renewed is not None
            assert jobs.fail(renewed, "worker-1", "the EHR is down")
        assert made == {"durable": 0, "deferred": 3}

        with commits(instance.db) as made:
            again = jobs.claim("worker-1", ["test.durability"], now=jobs.clock() + 86400)
            assert again is not None and again.attempt == 2
            assert jobs.complete(again, "worker-1")
        assert made == {"durable": 0, "deferred": 2}


def test_work_that_requires_durability_overrides_a_deferred_write(make_test_instance: Any) -> None:
    with opened(make_test_instance) as instance:
        with commits(instance.db) as made, instance.db.write(durable=False) as tx:
            tx.require_durable()
        assert made == {"durable": 1, "deferred": 0}


def test_actions_wait_for_the_commit_and_go_with_a_rollback(make_test_instance: Any) -> None:
    """What a transaction registers with after_commit (waking job workers) runs once it committed, never
    if it rolled back, also for a piece of a group commit rolled back alone."""
    with opened(make_test_instance) as instance:
        db, ran = instance.db, []
        with db.write() as tx:
            tx.after_commit(lambda: ran.append("write"))
            assert ran == []  # not before the commit
        assert ran == ["write"]
        with pytest.raises(RuntimeError), db.write() as tx:
            tx.after_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("the change failed")

        def failing(tx: Any) -> None:
            tx.after_commit(lambda: ran.append("failed piece"))
            raise ValueError("this piece fails")

        db.grouped(lambda tx: tx.after_commit(lambda: ran.append("grouped")), durable=False)
        with pytest.raises(ValueError):
            db.grouped(failing, durable=False)
        assert ran == ["write", "grouped"]
