"""The fsync of SQLite's write-ahead log, now or a little later.

The request path's connections run with ``PRAGMA synchronous = NORMAL``: a
commit writes its WAL frames without an fsync, so it survives a crash of
MedDAV at once and a power cut only once the frames reach the disk (SQLite
does not allow changing this inside a transaction, where we learn whether a
commit must be durable).  :class:`WalSyncer` does the fsync instead, through
its own descriptor of the WAL file (an fsync flushes every written page of a
file, whichever descriptor wrote it): at once for a commit that must be
durable when acknowledged, or within ``delay`` seconds, from its own thread,
for a change of names only.  Each fsync covers every frame before it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

__all__ = ["WalSyncer"]

logger = logging.getLogger(__name__)


class WalSyncer:
    """Fsync a database's WAL file at most ``delay`` seconds after it was asked to."""

    def __init__(self, database_path: Path, delay: float) -> None:
        self.wal_path = Path(f"{database_path}-wal")
        self.delay = delay
        self.syncs = 0  # completed fsyncs, for tests and metrics
        self._due: float | None = None  # monotonic deadline of the pending fsync
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Frames were committed without fsync: have them synced within the delay."""
        with self._wake:
            if self._due is None:
                self._due = time.monotonic() + self.delay
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="meddav-wal-sync", daemon=True)
                    self._thread.start()
                self._wake.notify()

    def sync_now(self) -> None:
        """Fsync the WAL now (a commit that must be durable when acknowledged).

        Every frame written so far goes to disk with it: nothing stays pending.
        """
        with self._wake:
            self._due = None
        self._fsync()

    def close(self) -> None:
        """Sync what is pending now and stop the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._due is None and not self._stopping:
                    self._wake.wait()
                while self._due is not None and not self._stopping and time.monotonic() < self._due:
                    self._wake.wait(max(0.0, self._due - time.monotonic()))
                if self._due is None:
                    if self._stopping:
                        return
                    continue  # a full commit did it
                self._due = None
                stopping = self._stopping
            self._fsync()
            if stopping:
                return

    def _fsync(self) -> None:
        try:
            fd = os.open(self.wal_path, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and removed: the frames are in the (synced) database file
        try:
            os.fsync(fd)
            self.syncs += 1
        except OSError:
            logger.exception("could not fsync the database WAL; recent renames may not survive a power cut")
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
