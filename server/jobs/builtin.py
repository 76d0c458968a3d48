"""The core's own jobs: audit pruning (daily) and purging finished jobs (daily).

:func:`schedule_builtins` declares their schedules (idempotent: called at each
start by whoever runs a scheduler); :func:`builtin_handlers` gives their
handlers, merged with the plugins' by the process that runs workers.
"""

from __future__ import annotations

import logging

from server.audit import AuditChainBroken, prune
from server.config import Settings
from server.db import Database
from server.jobs._queue import DAY, JobQueue
from server.jobs._worker import Handler, JobContext, JobFailed

__all__ = ["AUDIT_PRUNE", "DONE_RETENTION_DAYS", "JOBS_PURGE", "builtin_handlers", "schedule_builtins"]

logger = logging.getLogger(__name__)

AUDIT_PRUNE = "audit.prune"
JOBS_PURGE = "jobs.purge"
#: Done jobs are kept this long (their keys keep enqueueing idempotent), then deleted.
DONE_RETENTION_DAYS = 7


def schedule_builtins(queue: JobQueue) -> None:
    """Declare the core's periodic jobs (their next run survives restarts)."""
    queue.schedule(AUDIT_PRUNE, AUDIT_PRUNE, daily_at="03:30")
    queue.schedule(JOBS_PURGE, JOBS_PURGE, daily_at="03:45")


def builtin_handlers(db: Database, settings: Settings, queue: JobQueue) -> dict[str, Handler]:
    """Handlers of the core's jobs."""

    def audit_prune(ctx: JobContext) -> None:
        days = settings.audit.retention_days
        if days <= 0:
            return  # retention 0 keeps every row
        now = queue.clock()
        try:
            deleted = prune(db, before=now - days * DAY, now=now)
        except AuditChainBroken:
            raise JobFailed("audit chain broken: nothing pruned; run meddav audit verify") from None
        logger.info("audit pruned", extra={"fields": {"rows": deleted, "retention_days": days}})

    def jobs_purge(ctx: JobContext) -> None:
        deleted = queue.purge_done(queue.clock() - DONE_RETENTION_DAYS * DAY)
        logger.info("done jobs purged", extra={"fields": {"rows": deleted}})

    return {AUDIT_PRUNE: audit_prune, JOBS_PURGE: jobs_purge}
