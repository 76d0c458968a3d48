"""The local-directory blob store.

Layout: ``<blob_dir>/<id[0:2]>/<id>``, the 256 fan-out directories created
(and made durable) when the store is first opened, so that storing a blob
never has to create and fsync a directory.  An upload is written to
``.upload-<id>-<random>`` in the blob's final directory, then flushed,
fsynced, renamed to its final name and the directory fsynced, so a blob is
either absent or complete whatever instant the process dies at.  Files are
created with mode 0600 and directories 0700.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from server.errors import NotFound, StorageError, StorageFull
from server.storage import BaseBlobStore, BlobInfo, BlobUpload

if TYPE_CHECKING:
    from server.config import Settings

__all__ = ["BlobStore"]

_ID = re.compile(r"[0-9a-f]{32}")
_UPLOAD_PREFIX = ".upload-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _storage_error(exc: OSError, action: str) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"blob store full while {action}")
    return StorageError(f"blob store I/O error while {action} ({errno.errorcode.get(exc.errno or 0, '?')})")


class _LocalUpload(BlobUpload):
    def __init__(self, store: BlobStore, blob_id: str) -> None:
        self._final = store._path(blob_id)
        self._tmp = self._final.with_name(f"{_UPLOAD_PREFIX}{blob_id}-{secrets.token_hex(4)}")
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise _storage_error(exc, "creating an upload") from None
        # Unbuffered: callers write whole sealed segments (64 KiB), one syscall each.
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self._size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise StorageError("write to a finished upload")
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                if not written:
                    raise OSError(errno.EIO, "the blob store accepted no bytes")
                view = view[written:]
        except OSError as exc:
            self.abort()
            raise _storage_error(exc, "writing") from None
        self._size += len(data)

    def commit(self) -> int:
        if self._file is None:
            raise StorageError("commit of a finished upload")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.rename(self._tmp, self._final)
            self._done = True
            _fsync_dir(self._final.parent)
        except OSError as exc:
            self.abort()
            raise _storage_error(exc, "committing") from None
        return self._size

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # the file is being discarded anyway
                self._file.close()
            self._file = None
        if not self._done:
            self._done = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)


class BlobStore(BaseBlobStore):
    """Blobs as files under ``[storage] blob_dir``."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.storage.blob_dir
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        created = False
        for i in range(256):
            directory = self.root / f"{i:02x}"
            if not directory.is_dir():
                directory.mkdir(mode=0o700, exist_ok=True)
                created = True
        if created:
            _fsync_dir(self.root)

    def _path(self, blob_id: str) -> Path:
        if not _ID.fullmatch(blob_id):
            raise ValueError("malformed blob id")
        return self.root / blob_id[0:2] / blob_id

    def begin(self, blob_id: str) -> BlobUpload:
        return _LocalUpload(self, blob_id)

    def open(self, blob_id: str) -> tuple[BinaryIO, int]:
        try:
            f = open(self._path(blob_id), "rb", buffering=0)  # noqa: SIM115 - caller closes it
        except FileNotFoundError:
            raise NotFound(f"blob {blob_id} is missing") from None
        except OSError as exc:
            raise _storage_error(exc, "opening") from None
        return f, os.fstat(f.fileno()).st_size

    def delete(self, blob_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(blob_id))

    def exists(self, blob_id: str) -> bool:
        return self._path(blob_id).is_file()

    def _walk(self) -> Iterator[os.DirEntry[str]]:
        for fan in sorted(os.scandir(self.root), key=lambda e: e.name):
            if fan.is_dir():
                yield from os.scandir(fan.path)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for entry in self._walk():
            if _ID.fullmatch(entry.name):
                st = entry.stat()
                yield BlobInfo(entry.name, st.st_size, st.st_mtime)

    def sweep_uploads(self, *, older_than: float) -> int:
        removed = 0
        for entry in self._walk():
            if entry.name.startswith(_UPLOAD_PREFIX) and entry.stat().st_mtime < older_than:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed
