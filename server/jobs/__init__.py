"""Durable background jobs: the outbox, workers under leases, retries, dead letters, periodic jobs.

What it owns: the ``jobs`` and ``periodic_jobs`` tables.  The core enqueues
a job in the same transaction as the change it reports
(:meth:`JobQueue.enqueue` with the caller's ``Tx``), so a job exists if and
only if the change committed.  Workers (:class:`WorkerPool`, in the server
process or apart with ``meddav worker``) claim due jobs under a lease and
run the handler of their kind after the commit: at least once, so handlers
are idempotent through the job's key.  Failures are retried with
exponential back-off and jitter; after ``[jobs] max_attempts`` a job is
``dead`` until an operator retries it (``meddav jobs retry``).  Payloads are
sealed (they may carry names or patient identifiers); keys, kinds and
errors are stored in clear and must not.  See ``docs/jobs.md``.
"""

from __future__ import annotations

from server.jobs._queue import (
    DEAD,
    DONE,
    ERROR_MAX,
    PENDING,
    RUNNING,
    STATES,
    ClaimedJob,
    JobInfo,
    JobQueue,
    JobSealer,
    PeriodicInfo,
    backoff_delay,
    next_daily,
    parse_daily_at,
    scrub_error,
)
from server.jobs._worker import Foreground, Handler, JobContext, JobFailed, WorkerPool, describe_exception
from server.jobs.builtin import AUDIT_PRUNE, JOBS_PURGE, builtin_handlers, schedule_builtins

__all__ = [
    "AUDIT_PRUNE",
    "DEAD",
    "DONE",
    "ERROR_MAX",
    "JOBS_PURGE",
    "PENDING",
    "RUNNING",
    "STATES",
    "ClaimedJob",
    "Foreground",
    "Handler",
    "JobContext",
    "JobFailed",
    "JobInfo",
    "JobQueue",
    "JobSealer",
    "PeriodicInfo",
    "WorkerPool",
    "backoff_delay",
    "builtin_handlers",
    "describe_exception",
    "next_daily",
    "parse_daily_at",
    "schedule_builtins",
    "scrub_error",
]
