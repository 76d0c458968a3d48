"""AuditLog: request threads enqueue events, one writer thread chains them into the database."""

from __future__ import annotations

import collections
import logging
import threading
import time

from server.audit._chain import append
from server.audit._event import AuditEvent, AuditOverflow
from server.db import Database

__all__ = ["AuditLog"]

logger = logging.getLogger("server.audit")


class AuditLog:
    """The append side of the audit log, shared by every request of a process.

    :meth:`record` only puts the event on a queue; a single writer thread
    takes up to ``batch_size`` queued events at a time and appends them in one
    durable transaction (see :func:`server.audit.append`).  Request latency
    therefore does not grow with concurrency: the chain is linear, so its
    rows must be hashed one after the other anyway, and one thread doing so
    in batches costs one commit per batch instead of one per request.  The
    writer lingers up to ``linger`` seconds after the first event of a batch
    for others to join it (one transaction per request was the largest cost
    of a small GET); :meth:`flush` does not wait for it.

    Events are never dropped:

    - a database error is logged (logger ``server.audit``) and the batch is
      retried, with a growing pause (up to ``max_retry_delay``), until it is
      written; the events behind it stay queued, in order;
    - the queue holds at most ``max_queued`` events.  When it is full the
      database has not accepted anything for a while; :meth:`record` then
      waits up to ``full_timeout`` seconds for room, and if there is still
      none it logs the event and raises :class:`AuditOverflow` (a ``Busy``):
      the request fails visibly (503) rather than going unrecorded;
    - :meth:`close` writes what is queued; if the database still refuses
      when its timeout ends, the number of events lost is logged as an error;
    - after :meth:`close`, :meth:`record` appends in the caller's thread.
    """

    def __init__(
        self,
        db: Database,
        *,
        batch_size: int = 500,
        max_queued: int = 100_000,
        full_timeout: float = 10.0,
        max_retry_delay: float = 5.0,
        linger: float = 0.1,
    ) -> None:
        self.db = db
        self.batch_size = batch_size
        self.linger = linger
        self.max_queued = max_queued
        self.full_timeout = full_timeout
        self.max_retry_delay = max_retry_delay
        self._queue: collections.deque[AuditEvent] = collections.deque()
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)  # the writer waits here
        self._progress = threading.Condition(self._lock)  # flush() and full record() wait here
        self._flushers = 0  # threads waiting in flush(): no lingering then
        self._recorded = 0  # events queued since start
        self._written = 0  # of which written (always a prefix: the queue is FIFO)
        self._closing = False
        self._closed = False
        #: Counters for tests and metrics.
        self.batches = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="meddav-audit-writer", daemon=True)
        self._thread.start()

    # -- request side -------------------------------------------------------------

    def record(self, event: AuditEvent) -> None:
        """Queue ``event`` for the log; returns at once unless the queue is full (see the class)."""
        with self._lock:
            queued = self._enqueue(event)
        if not queued:
            # A late event of a shutting-down process: written here, after what is queued.
            self.flush(self.full_timeout)
            append(self.db, [event])

    def _enqueue(self, event: AuditEvent) -> bool:
        """Put ``event`` on the queue (the caller holds the lock); False when closing."""
        deadline: float | None = None
        while len(self._queue) >= self.max_queued and not self._closing:
            if deadline is None:
                deadline = time.monotonic() + self.full_timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.error(
                    "audit queue full (%d events): refused %s %s by %s from %s, outcome %s",
                    len(self._queue),
                    event.surface,
                    event.action,
                    event.principal,
                    event.address,
                    event.outcome,
                )
                raise AuditOverflow("the audit log is not keeping up; retry shortly")
            self._progress.wait(remaining)
        if self._closing:
            return False
        self._queue.append(event)
        self._recorded += 1
        if len(self._queue) == 1 or len(self._queue) >= self.batch_size:
            self._has_work.notify()  # the first event of a batch, or a full one: not every event
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded so far is in the database; False if ``timeout`` ended first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._recorded
            self._flushers += 1
            self._has_work.notify()
        try:
            return self._wait_written(target, deadline)
        finally:
            with self._lock:
                self._flushers -= 1

    def _wait_written(self, target: int, deadline: float | None) -> bool:
        with self._lock:
            while self._written < target:
                if not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(remaining if remaining is not None else 1.0)
            return True

    @property
    def saturated(self) -> bool:
        """True when the queue is nine-tenths full: surfaces refuse new work (503) rather than
        act on something they could not record."""
        return len(self._queue) >= self.max_queued * 9 // 10

    @property
    def pending(self) -> int:
        """Events recorded and not yet written."""
        with self._lock:
            return self._recorded - self._written

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued (waiting at most ``timeout`` seconds), then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
            self._has_work.notify()
            self._progress.notify_all()
        self._thread.join(timeout)
        with self._lock:
            self._closed = True
            lost = self._recorded - self._written
        if lost:
            logger.error("audit log closed with %d events not written: the database kept refusing them", lost)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer thread -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._has_work.wait()
                if not self._queue:
                    return  # closing, and everything is written
                until = time.monotonic() + self.linger
                while len(self._queue) < self.batch_size and not self._closing and not self._flushers:
                    remaining = until - time.monotonic()
                    if remaining <= 0:
                        break
                    self._has_work.wait(remaining)
                # Copied, not popped: the events leave the queue only once committed.
                batch = [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))]
            self._write(batch)
            with self._lock:
                for _ in batch:
                    self._queue.popleft()
                self._written += len(batch)
                self._progress.notify_all()

    def _write(self, batch: list[AuditEvent]) -> None:
        """Append ``batch``, retrying until the database takes it (or the process is closing for good)."""
        delay = 0.05
        while True:
            try:
                append(self.db, batch)
            except Exception:
                self.failures += 1
                logger.exception("audit: appending %d events failed; retrying in %.2f s", len(batch), delay)
                time.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
            else:
                self.batches += 1
                return
