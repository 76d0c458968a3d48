"""Blob stores: where the ciphertext of file versions lives.

A blob store knows nothing of names, users or keys: it keeps opaque, already
encrypted byte strings under random ids.  Its contract, for every backend:

- :meth:`BaseBlobStore.begin` returns an upload; the bytes written to it are
  invisible until :meth:`BlobUpload.commit`, which returns only once they are
  durable (on the local store: file fsync, rename, directory fsync).  An upload
  that is aborted, or whose process dies, leaves at most a temporary object
  that :meth:`BaseBlobStore.sweep_uploads` removes.
- :meth:`BaseBlobStore.open` gives a seekable reader, so a range request reads
  only the segments it needs.
- :meth:`BaseBlobStore.delete` is idempotent.

Backends are sibling modules exposing a class named ``BlobStore`` (Radicale's
layout); :func:`load` picks one from ``[storage] backend``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from server.config import Settings

__all__ = ["INTERNAL_TYPES", "BaseBlobStore", "BlobInfo", "BlobUpload", "load"]

INTERNAL_TYPES = ("local",)


@dataclass(frozen=True, slots=True)
class BlobInfo:
    blob_id: str
    size: int
    mtime: float


class BlobUpload(ABC):
    """One blob being written.  Use as a context manager: it aborts unless committed."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Append bytes.  Must raise :class:`~server.errors.StorageError` on failure."""

    @abstractmethod
    def commit(self) -> int:
        """Make the blob durable and visible under its id; return its size."""

    @abstractmethod
    def abort(self) -> None:
        """Discard what was written.  Safe to call more than once, and after commit (no-op)."""

    def __enter__(self) -> BlobUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class BaseBlobStore(ABC):
    """Abstract blob store; see the module docstring for the contract."""

    @abstractmethod
    def begin(self, blob_id: str) -> BlobUpload:
        """Start writing a new blob (the id must not exist yet)."""

    @abstractmethod
    def open(self, blob_id: str) -> tuple[BinaryIO, int]:
        """Open a blob for reading: a seekable binary stream and its size.

        Must raise :class:`~server.errors.NotFound` when it does not exist.
        """

    @abstractmethod
    def delete(self, blob_id: str) -> None:
        """Remove a blob; a missing blob is not an error."""

    @abstractmethod
    def exists(self, blob_id: str) -> bool: ...

    @abstractmethod
    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every committed blob (for ``meddav fsck``)."""

    @abstractmethod
    def sweep_uploads(self, *, older_than: float) -> int:
        """Remove uploads never committed and last touched before ``older_than``
        (a POSIX time); return how many were removed."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources.  May be overridden."""


def load(settings: Settings) -> BaseBlobStore:
    """Create the blob store selected by ``[storage] backend``."""
    backend = settings.storage.backend
    if backend not in INTERNAL_TYPES:
        raise ValueError(f"unknown blob store backend {backend!r}")
    module = importlib.import_module(f"server.storage.{backend}")
    store: BaseBlobStore = module.BlobStore(settings)
    return store
