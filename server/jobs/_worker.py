"""Workers: threads that claim jobs, run their handlers, and record the outcome.

A handler is a plain function of a :class:`JobContext`.  It returns to
succeed and raises to fail; :class:`JobFailed` carries a message written for
operators (stored as the job's last error), any other exception is recorded
by type and place only, since its message may quote health data.

Python threads cannot be interrupted: a handler that runs past its deadline
(``ctx.deadline``, the end of its lease) keeps running, while the job is
claimed again by another worker.  Handlers are therefore idempotent, through
``ctx.key``; long ones call ``ctx.extend()`` to keep their lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from server.errors import MedDAVError
from server.jobs._queue import ClaimedJob, JobQueue

__all__ = ["Handler", "JobContext", "JobFailed", "WorkerPool", "describe_exception"]

logger = logging.getLogger(__name__)


class JobFailed(MedDAVError):
    """Raised by a handler to fail its attempt with a message safe to store and show (no health data)."""


@dataclass(frozen=True)
class JobContext:
    """What a handler gets: the job's identity, its decrypted payload and its deadline."""

    job_id: int
    kind: str
    key: str  # the idempotency key: the same key means the same piece of work
    payload: dict[str, Any]
    attempt: int  # 1 for the first attempt
    max_attempts: int
    deadline: float  # end of the lease (clock time): past it, another worker may run the job too
    worker: str
    _queue: JobQueue = field(repr=False)
    _job: list[ClaimedJob] = field(repr=False)

    def remaining(self) -> float:
        """Seconds left before the lease expires (negative once past it)."""
        return self._job[0].lease_until - self._queue.clock()

    def extend(self, seconds: float | None = None) -> bool:
        """Renew the lease for ``seconds`` (default ``[jobs] lease_seconds``) from now; False if already lost."""
        renewed = self._queue.extend(self._job[0], seconds)
        if renewed is None:
            return False
        self._job[0] = renewed
        object.__setattr__(self, "deadline", renewed.lease_until)
        return True


Handler = Callable[[JobContext], None]


def describe_exception(exc: BaseException) -> str:
    """A handler's exception as stored: a JobFailed's message; otherwise type and place, never the message."""
    if isinstance(exc, JobFailed):
        return str(exc) or "JobFailed"
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"


class Foreground:
    """The work job workers give way to: the server counts its requests in flight here.

    ``begin()`` and ``end()`` around each request (the request log does it); ``busy()`` tells the
    workers of the same process to pause between jobs (``[jobs] yield_ms``).  With Python's one
    interpreter lock, a worker thread running a job takes the CPU from the requests of its process;
    pausing between jobs while requests are in flight lets them go first, and the jobs, durable in
    the database, catch up as soon as the server is idle."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def begin(self) -> None:
        with self._idle:
            self._count += 1

    def end(self) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    def busy(self) -> bool:
        return self._count > 0

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no request is in flight; False if ``timeout`` ended first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


class WorkerPool:
    """``threads`` workers claiming the kinds of ``handlers``, plus a scheduler for periodic jobs.

    ``start()`` starts the threads; ``notify()`` (also called by the queue when
    a job is enqueued in this process) wakes idle workers at once instead of
    at their next poll; ``stop(timeout)`` stops claiming and waits for the
    running handlers.  ``yield_to`` (a :class:`Foreground`'s ``busy``) makes
    each worker pause ``yield_seconds`` after a job while it answers True.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        threads: int | None = None,
        poll: float = 0.5,
        scheduler: bool = True,
        name: str | None = None,
        yield_to: Callable[[], bool] | None = None,
        yield_seconds: float = 0.05,
    ) -> None:
        self.queue = queue
        self.yield_to = yield_to
        self.yield_seconds = yield_seconds
        self.handlers = dict(handlers)
        self.threads = queue.settings.workers if threads is None else threads
        self.poll = poll
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._scheduler = scheduler
        self._kinds = sorted(self.handlers)
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._generation = 0
        self._workers: list[threading.Thread] = []
        self.completed = 0
        self.failed = 0

    # -- control ----------------------------------------------------------------------

    def start(self) -> None:
        if self._workers:
            raise RuntimeError("worker pool already started")
        self.queue.add_listener(self.notify)
        for i in range(self.threads):
            worker_id = f"{self.name}/{i}"[-100:]
            thread = threading.Thread(target=self._run, args=(worker_id,), name=f"meddav-job-{i}", daemon=True)
            self._workers.append(thread)
        if self._scheduler:
            self._workers.append(threading.Thread(target=self._schedule, name="meddav-job-scheduler", daemon=True))
        for thread in self._workers:
            thread.start()
        logger.info("job workers started", extra={"fields": {"threads": self.threads, "kinds": ",".join(self._kinds)}})

    def notify(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop claiming, wait up to ``timeout`` for running handlers; True if every thread ended."""
        self._stopping.set()
        self.queue.remove_listener(self.notify)
        self.notify()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._workers:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._workers if t.is_alive()]
        if alive:
            logger.warning("job workers still running at stop", extra={"fields": {"threads": len(alive)}})
        return not alive

    def __enter__(self) -> WorkerPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(timeout=self.queue.settings.lease_seconds)

    # -- work -------------------------------------------------------------------------

    def run_one(self, worker_id: str) -> bool:
        """Claim and run one job; False if none was due."""
        job = self.queue.claim(worker_id, self._kinds)
        if job is None:
            return False
        self._execute(job, worker_id)
        return True

    def _execute(self, job: ClaimedJob, worker_id: str) -> None:
        handler = self.handlers[job.kind]
        holder = [job]
        ctx = JobContext(
            job_id=job.id,
            kind=job.kind,
            key=job.key,
            payload=job.payload,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            deadline=job.lease_until,
            worker=worker_id,
            _queue=self.queue,
            _job=holder,
        )
        started = time.monotonic()
        try:
            handler(ctx)
        except Exception as exc:
            error = describe_exception(exc)
            logger.warning(
                "job attempt failed",
                extra={"fields": {"job": job.id, "kind": job.kind, "attempt": job.attempt, "error": error}},
            )
            self.queue.fail(holder[0], worker_id, error)
            self.failed += 1
            return
        self.queue.complete(holder[0], worker_id)
        self.completed += 1
        logger.debug(
            "job done",
            extra={"fields": {"job": job.id, "kind": job.kind, "ms": round((time.monotonic() - started) * 1000)}},
        )

    def _run(self, worker_id: str) -> None:
        while not self._stopping.is_set():
            with self._cond:
                generation = self._generation
            try:
                worked = self.run_one(worker_id)
            except Exception as exc:  # the database is busy or gone: wait, then try again
                logger.error(
                    "job worker error", extra={"fields": {"worker": worker_id, "error": describe_exception(exc)}}
                )
                worked = False
                self._stopping.wait(self.poll)
            if worked:
                if self.yield_to is not None and self.yield_seconds > 0 and self.yield_to():
                    self._stopping.wait(self.yield_seconds)  # requests first; the next job after a pause
                continue
            with self._cond:
                if self._generation == generation and not self._stopping.is_set():
                    self._cond.wait(self.poll)

    def _schedule(self) -> None:
        while not self._stopping.is_set():
            try:
                self.queue.run_scheduler()
            except Exception as exc:
                logger.error("job scheduler error", extra={"fields": {"error": describe_exception(exc)}})
            self._stopping.wait(self.poll)
