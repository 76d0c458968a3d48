"""The local blob store: durable commit, invisible uploads, sweeping, safe ids."""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path

import pytest

from server.config import settings_from_dict
from server.errors import NotFound
from server.storage.local import BlobStore


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(settings_from_dict({"storage": {"data_dir": "data"}}, base_dir=tmp_path))


def test_committed_blob_reads_back(store: BlobStore) -> None:
    blob_id = uuid.uuid4().hex
    with store.begin(blob_id) as upload:
        upload.write(b"abc")
        upload.write(b"def")
        assert upload.commit() == 6
    f, size = store.open(blob_id)
    with f:
        assert (f.read(), size) == (b"abcdef", 6)
    assert [b.blob_id for b in store.iter_blobs()] == [blob_id]


def test_files_are_private(store: BlobStore) -> None:
    blob_id = uuid.uuid4().hex
    with store.begin(blob_id) as upload:
        upload.write(b"x")
        upload.commit()
    path = store.root / blob_id[:2] / blob_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_uncommitted_upload_is_invisible_and_aborted(store: BlobStore) -> None:
    blob_id = uuid.uuid4().hex
    with store.begin(blob_id) as upload:
        upload.write(b"partial")
        assert not store.exists(blob_id)
    assert not store.exists(blob_id)
    assert list(store.iter_blobs()) == []
    with pytest.raises(NotFound):
        store.open(blob_id)


def test_sweep_removes_only_old_unfinished_uploads(store: BlobStore) -> None:
    old = store.begin(uuid.uuid4().hex)
    old.write(b"x")  # a process that died: never committed nor aborted
    recent = store.begin(uuid.uuid4().hex)
    recent.write(b"y")
    tmp_old = old._tmp  # type: ignore[attr-defined]
    os.utime(tmp_old, (time.time() - 7200, time.time() - 7200))
    assert store.sweep_uploads(older_than=time.time() - 3600) == 1
    assert not Path(tmp_old).exists()
    recent.abort()


def test_delete_is_idempotent(store: BlobStore) -> None:
    blob_id = uuid.uuid4().hex
    with store.begin(blob_id) as upload:
        upload.commit()
    store.delete(blob_id)
    store.delete(blob_id)
    assert not store.exists(blob_id)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABCDEF" * 6, "", "0" * 31, "0" * 31 + "/"])
def test_ids_cannot_reach_outside_the_store(store: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.begin(bad)
    with pytest.raises(ValueError):
        store.open(bad)
