"""The job queue: enqueue in the caller's transaction, claim under a lease, complete, fail, retry.

See :mod:`server.jobs` and ``docs/jobs.md`` for the model; this module holds the SQL.
"""

from __future__ import annotations

import builtins
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from server.config import JobSettings
from server.crypto import JobSealer
from server.db import Database, Prepared, Tx, prepared
from server.db.models import jobs_t, periodic_jobs_t
from server.errors import DecryptionFailed

__all__ = [
    "DAY",
    "DEAD",
    "DONE",
    "ERROR_MAX",
    "PENDING",
    "RUNNING",
    "STATES",
    "ClaimedJob",
    "JobInfo",
    "JobQueue",
    "JobSealer",
    "PeriodicInfo",
    "backoff_delay",
    "next_daily",
    "parse_daily_at",
    "scrub_error",
]

logger = logging.getLogger(__name__)

PENDING, RUNNING, DONE, DEAD = "pending", "running", "done", "dead"
STATES = (PENDING, RUNNING, DONE, DEAD)
ERROR_MAX = 500  # jobs.last_error is String(500)
KIND_MAX, KEY_MAX, WORKER_MAX = 100, 200, 100
DAY = 86400.0
_CANDIDATES = 8  # due rows read per claim; the conditional UPDATE decides which one is ours


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker holds until ``lease_until`` (its deadline), for attempt number ``attempt``."""

    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    lease_until: float
    worker: str


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as listed for operators: never its payload."""

    id: int
    kind: str
    key: str
    state: str
    attempts: int
    max_attempts: int
    run_after: float
    lease_until: float | None
    worker: str | None
    last_error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class PeriodicInfo:
    name: str
    kind: str
    interval_seconds: int | None
    daily_at: str | None
    next_run: float
    last_run: float | None


def backoff_delay(attempts: int, settings: JobSettings, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait after failed attempt number ``attempts`` (1-based): exponential, capped, jittered ±50 %."""
    exponent = min(max(attempts - 1, 0), 62)
    base = min(float(settings.max_backoff_seconds), settings.backoff_seconds * 2.0**exponent)
    return base * rng(0.5, 1.5)


def parse_daily_at(text: str) -> tuple[int, int]:
    """``"HH:MM"`` (UTC) as (hour, minute); ValueError otherwise."""
    hours, sep, minutes = text.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"daily_at {text!r}: expected HH:MM (UTC), e.g. 03:30")
    hour, minute = int(hours), int(minutes)
    if hour > 23 or minute > 59:
        raise ValueError(f"daily_at {text!r}: expected HH:MM (UTC), e.g. 03:30")
    return hour, minute


def next_daily(daily_at: str, after: float) -> float:
    """The first time strictly after ``after`` that is ``daily_at`` (HH:MM, UTC)."""
    hour, minute = parse_daily_at(daily_at)
    midnight = (int(after) // int(DAY)) * DAY
    at = midnight + hour * 3600 + minute * 60
    return at if at > after else at + DAY


def _next_every(previous: float, interval: int, now: float) -> float:
    """The next run after ``previous`` on the same phase, skipping runs missed while nobody was scheduling."""
    nxt = previous + interval
    if nxt <= now:
        nxt += ((now - nxt) // interval + 1) * interval
    return nxt


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def scrub_error(error: str, payload: Mapping[str, Any] | None = None) -> str:
    """An error text fit for ``last_error``: no payload value in it, at most :data:`ERROR_MAX` characters."""
    if payload:
        for value in _strings(payload):
            if len(value) >= 3:
                error = error.replace(value, "[…]")
    if not error.isprintable():
        error = "".join(ch if ch.isprintable() else " " for ch in error)
    return error if len(error) <= ERROR_MAX else error[: ERROR_MAX - 1] + "…"


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


# -- statements -----------------------------------------------------------------------

_ID_BY_KEY = prepared(select(jobs_t.c.id).where(jobs_t.c.kind == bindparam("kind"), jobs_t.c.key == bindparam("key")))
_INSERT = prepared(
    insert(jobs_t)
    .values(
        kind=bindparam("kind"),
        key=bindparam("key"),
        payload=bindparam("payload"),
        state=PENDING,
        attempts=0,
        max_attempts=bindparam("max_attempts"),
        run_after=bindparam("run_after"),
        lease_until=None,
        worker=None,
        last_error=None,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(jobs_t.c.id)
)
_DUE = or_(
    and_(jobs_t.c.state == PENDING, jobs_t.c.run_after <= bindparam("now")),
    and_(jobs_t.c.state == RUNNING, jobs_t.c.lease_until < bindparam("now")),
)
_CANDIDATE_COLUMNS = (
    jobs_t.c.id,
    jobs_t.c.kind,
    jobs_t.c.key,
    jobs_t.c.state,
    jobs_t.c.attempts,
    jobs_t.c.max_attempts,
)
_CANDIDATES_ANY = prepared(
    select(*_CANDIDATE_COLUMNS).where(_DUE).order_by(jobs_t.c.run_after, jobs_t.c.id).limit(_CANDIDATES)
)
# The claim itself: the condition is re-checked on the row, so of two workers
# that picked the same candidate only one UPDATE touches it (rowcount 1).
_TAKE = prepared(
    update(jobs_t)
    .where(jobs_t.c.id == bindparam("id"), _DUE)
    .values(
        state=RUNNING,
        lease_until=bindparam("lease_until"),
        worker=bindparam("worker"),
        attempts=jobs_t.c.attempts + 1,
        updated_at=bindparam("now"),
    )
)
_TAKEN = prepared(select(jobs_t.c.attempts, jobs_t.c.payload).where(jobs_t.c.id == bindparam("id")))
_BURY_EXPIRED = prepared(
    update(jobs_t)
    .where(jobs_t.c.id == bindparam("id"), jobs_t.c.state == RUNNING, jobs_t.c.lease_until < bindparam("now"))
    .values(state=DEAD, lease_until=None, worker=None, last_error=bindparam("error"), updated_at=bindparam("now"))
)
_HELD = and_(
    jobs_t.c.id == bindparam("id"),
    jobs_t.c.state == RUNNING,
    jobs_t.c.worker == bindparam("holder"),
    jobs_t.c.attempts == bindparam("held_attempt"),
)
_COMPLETE = prepared(
    update(jobs_t)
    .where(_HELD)
    .values(state=DONE, lease_until=None, worker=None, last_error=None, updated_at=bindparam("now"))
)
_FAIL = prepared(
    update(jobs_t)
    .where(_HELD)
    .values(
        state=bindparam("state"),
        run_after=bindparam("run_after"),
        lease_until=None,
        worker=None,
        last_error=bindparam("error"),
        updated_at=bindparam("now"),
    )
)
_EXTEND = prepared(
    update(jobs_t).where(_HELD).values(lease_until=bindparam("lease_until"), updated_at=bindparam("now"))
)
_CANCEL = prepared(
    delete(jobs_t).where(
        jobs_t.c.kind == bindparam("kind"),
        jobs_t.c.key == bindparam("key"),
        or_(jobs_t.c.state == PENDING, jobs_t.c.state == DEAD),
    )
)
_RETRY = prepared(
    update(jobs_t)
    .where(jobs_t.c.id == bindparam("id"), jobs_t.c.state == DEAD)
    .values(state=PENDING, attempts=0, run_after=bindparam("now"), updated_at=bindparam("now"))
)
_COUNTS = prepared(select(jobs_t.c.state, func.count()).group_by(jobs_t.c.state))
_COUNTS_OF_KINDS = prepared(
    select(jobs_t.c.state, func.count())
    # A prefix compared as a string, not a LIKE pattern ("_" in "ehr_bridge." is no wildcard).
    .where(func.substr(jobs_t.c.kind, 1, func.length(bindparam("prefix"))) == bindparam("prefix"))
    .group_by(jobs_t.c.state)
)
_PURGE = prepared(delete(jobs_t).where(jobs_t.c.state == DONE, jobs_t.c.updated_at < bindparam("before")))

_PERIODIC = prepared(select(*periodic_jobs_t.c).where(periodic_jobs_t.c.name == bindparam("name")))
_PERIODIC_ALL = prepared(select(*periodic_jobs_t.c).order_by(periodic_jobs_t.c.name))
_PERIODIC_DUE = prepared(
    select(*periodic_jobs_t.c).where(periodic_jobs_t.c.next_run <= bindparam("now")).order_by(periodic_jobs_t.c.name)
)
_PERIODIC_INSERT = prepared(
    insert(periodic_jobs_t).values(
        name=bindparam("name"),
        kind=bindparam("kind"),
        interval_seconds=bindparam("interval_seconds"),
        daily_at=bindparam("daily_at"),
        next_run=bindparam("next_run"),
        last_run=None,
    )
)
_PERIODIC_REDEFINE = prepared(
    update(periodic_jobs_t)
    .where(periodic_jobs_t.c.name == bindparam("name"))
    .values(
        kind=bindparam("kind"),
        interval_seconds=bindparam("interval_seconds"),
        daily_at=bindparam("daily_at"),
        next_run=bindparam("next_run"),
    )
)
# Advancing is conditional on the next_run that was read: of two schedulers
# (threads or processes) that saw the same due row, one advances it and enqueues.
_PERIODIC_ADVANCE = prepared(
    update(periodic_jobs_t)
    .where(periodic_jobs_t.c.name == bindparam("name"), periodic_jobs_t.c.next_run == bindparam("old"))
    .values(next_run=bindparam("new"), last_run=bindparam("now"))
)
_PERIODIC_DELETE = prepared(delete(periodic_jobs_t).where(periodic_jobs_t.c.name == bindparam("name")))


class JobQueue:
    """Durable jobs in the ``jobs`` table, and the periodic ones of ``periodic_jobs``.

    Thread-safe, and safe between processes sharing the database: every state
    change is one conditional UPDATE whose row count says whether it applied.
    ``clock`` gives the time (seconds since the epoch); tests inject their own.

    A job is on disk once enqueued (with its caller's change, or in a durable
    transaction of its own).  The bookkeeping of its runs (claim, lease,
    completion, failure) commits without waiting for the fsync of SQLite's
    log (``Database.write(durable=False)``): a power cut may undo its last
    second, and the job then runs again, which at-least-once delivery and
    idempotent handlers allow.  It saves an fsync per step on a server whose
    uploads wait on the same log.
    """

    def __init__(
        self,
        db: Database,
        sealer: JobSealer,
        settings: JobSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self._sealer = sealer
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()
        self._candidate_queries: dict[tuple[str, ...], Prepared] = {}

    # -- wake-ups ---------------------------------------------------------------------

    def add_listener(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` whenever a job is enqueued through this object (a pool waking its workers)."""
        with self._listeners_lock:
            self._listeners.append(wake)

    def remove_listener(self, wake: Callable[[], None]) -> None:
        with self._listeners_lock:
            if wake in self._listeners:
                self._listeners.remove(wake)

    def notify(self) -> None:
        """Wake this process's workers now instead of at their next poll."""
        with self._listeners_lock:
            listeners = list(self._listeners)
        for wake in listeners:
            wake()

    # -- enqueue ----------------------------------------------------------------------

    def enqueue(
        self,
        tx: Tx | None,
        kind: str,
        key: str,
        payload: Mapping[str, Any],
        *,
        run_after: float | None = None,
        max_attempts: int | None = None,
    ) -> int:
        """Add a job; return its id.

        With ``tx``, the job is inserted in the caller's transaction: it exists
        if and only if that transaction commits (the outbox pattern).  Without,
        in a transaction of its own.

        Idempotent on (``kind``, ``key``): if such a job already exists, in any
        state, nothing changes and its id is returned.  A ``done`` job is not
        run again (the key names one piece of work, done once); a ``dead`` one
        waits for ``meddav jobs retry``.  Done jobs are purged after a while
        (:meth:`purge_done`), after which the key may be used again.

        ``key`` is stored in clear: ids, never names.  ``payload`` (JSON-able)
        is sealed, bound to ``kind`` and ``key``.
        """
        if not kind or len(kind) > KIND_MAX:
            raise ValueError(f"job kind must be 1 to {KIND_MAX} characters")
        if not key or len(key) > KEY_MAX:
            raise ValueError(f"job key must be 1 to {KEY_MAX} characters")
        attempts = self.settings.max_attempts if max_attempts is None else max_attempts
        if attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        plain = json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
        now = self.clock()
        params = {
            "kind": kind,
            "key": key,
            "payload": self._sealer.seal(kind, key, plain),
            "max_attempts": attempts,
            "run_after": now if run_after is None else run_after,
            "now": now,
        }

        def insert_once(t: Tx) -> int:
            existing = t.scalar(_ID_BY_KEY, kind=kind, key=key)
            if existing is not None:
                return int(existing)
            return t.insert(_INSERT, **params)

        if tx is not None:
            job_id = insert_once(tx)
        else:
            try:
                with self.db.write() as own:
                    job_id = insert_once(own)
            except IntegrityError:
                # Inserted meanwhile by another process (PostgreSQL): it is the same job.
                with self.db.read() as own:
                    job_id = int(own.scalar(_ID_BY_KEY, kind=kind, key=key))
        # Workers of this process are woken once the job is committed (a worker woken earlier would find
        # nothing and sleep a poll); those of other processes find it at their next poll.
        if tx is not None:
            tx.after_commit(self.notify)
        else:
            self.notify()
        return job_id

    # -- claiming ---------------------------------------------------------------------

    def claim(self, worker_id: str, kinds: Sequence[str] | None = None, now: float | None = None) -> ClaimedJob | None:
        """Take one due job for ``worker_id`` (pending and due, or running with an expired lease), or None.

        Atomic between threads and processes: the UPDATE re-checks that the
        row is still due, and only the worker whose UPDATE touched it holds it.
        A job whose lease expired on its last allowed attempt is not run again:
        it goes to ``dead``.  ``kinds`` restricts the claim (a worker claims
        only the kinds it has handlers for); an empty sequence claims nothing.
        """
        if len(worker_id) > WORKER_MAX:
            raise ValueError(f"worker id must be at most {WORKER_MAX} characters")
        if kinds is not None and not kinds:
            return None
        now = self.clock() if now is None else now
        lease_until = now + self.settings.lease_seconds
        candidates_stmt = _CANDIDATES_ANY if kinds is None else self._candidates_of(tuple(kinds))
        # An idle worker looks first in a read transaction: the write lock (which
        # every upload and rename of the server needs) is taken only when a job is due.
        with self.db.read() as tx:
            due = tx.all(candidates_stmt, now=now)
        if not due:
            return None
        while True:
            with self.db.write(durable=False) as tx:  # a claim undone by a power cut: the job runs again
                candidates = tx.all(candidates_stmt, now=now)
                if not candidates:
                    return None
                for row in candidates:
                    if row.state == RUNNING and row.attempts >= row.max_attempts:
                        error = (
                            f"lease expired on attempt {row.attempts} of {row.max_attempts} (worker died or overran)"
                        )
                        if tx.run(_BURY_EXPIRED, id=row.id, now=now, error=error):
                            logger.warning(
                                "job dead", extra={"fields": {"job": row.id, "kind": row.kind, "reason": "lease"}}
                            )
                        continue
                    if tx.run(_TAKE, id=row.id, now=now, lease_until=lease_until, worker=worker_id) != 1:
                        continue  # taken meanwhile by another worker
                    taken = tx.one(_TAKEN, id=row.id)
                    try:
                        payload = json.loads(self._sealer.open(row.kind, row.key, bytes(taken.payload)))
                    except (DecryptionFailed, ValueError):
                        tx.run(
                            _FAIL,
                            id=row.id,
                            holder=worker_id,
                            held_attempt=taken.attempts,
                            state=DEAD,
                            run_after=now,
                            error="payload cannot be opened (wrong master key or damaged row)",
                            now=now,
                        )
                        logger.error("job payload cannot be opened", extra={"fields": {"job": row.id}})
                        continue
                    if row.state == RUNNING:
                        logger.warning(
                            "job lease expired, claimed again",
                            extra={"fields": {"job": row.id, "kind": row.kind, "worker": worker_id}},
                        )
                    return ClaimedJob(
                        id=int(row.id),
                        kind=str(row.kind),
                        key=str(row.key),
                        payload=payload,
                        attempt=int(taken.attempts),
                        max_attempts=int(row.max_attempts),
                        lease_until=lease_until,
                        worker=worker_id,
                    )
            # Every candidate was taken or buried meanwhile: look again.

    def _candidates_of(self, kinds: tuple[str, ...]) -> Prepared:
        """The due-candidates query of a set of kinds, compiled once: a pool claims with the same kinds
        every time, and compiling the statement at each claim cost more than running it."""
        found = self._candidate_queries.get(kinds)
        if found is None:
            # The kinds as bound values of the statement itself: compiled once, the time given per claim.
            listed: list[Any] = [bindparam(f"kind_{i}", value=kind) for i, kind in enumerate(kinds)]
            found = prepared(
                select(*_CANDIDATE_COLUMNS)
                .where(_DUE, jobs_t.c.kind.in_(listed))
                .order_by(jobs_t.c.run_after, jobs_t.c.id)
                .limit(_CANDIDATES)
            )
            if len(self._candidate_queries) < 64:  # one per pool's kinds in practice; never unbounded
                self._candidate_queries[kinds] = found
        return found

    def extend(self, job: ClaimedJob, seconds: float | None = None) -> ClaimedJob | None:
        """Push the lease of a job still held by its worker; the renewed job, or None if it was lost."""
        now = self.clock()
        lease_until = now + (self.settings.lease_seconds if seconds is None else seconds)
        with self.db.write(durable=False) as tx:
            held = tx.run(
                _EXTEND, id=job.id, holder=job.worker, held_attempt=job.attempt, lease_until=lease_until, now=now
            )
        if not held:
            return None
        return ClaimedJob(
            job.id, job.kind, job.key, job.payload, job.attempt, job.max_attempts, lease_until, job.worker
        )

    def complete(self, job: ClaimedJob, worker_id: str) -> bool:
        """Mark a job done; False (and a log line) if ``worker_id`` no longer holds it.

        Holding means: the row is still running, by this worker, on this
        attempt.  Once another worker has claimed the job again after the
        lease expired, this late result is ignored.
        """
        now = self.clock()
        with self.db.write(durable=False) as tx:  # undone by a power cut, the job runs again (idempotent)
            held = tx.run(_COMPLETE, id=job.id, holder=worker_id, held_attempt=job.attempt, now=now)
        if not held:
            self._lost(job, worker_id, "complete")
        return bool(held)

    def fail(self, job: ClaimedJob, worker_id: str, error: str) -> bool:
        """Record a failed attempt: back to pending after the back-off, or ``dead`` after the last attempt.

        ``error`` is stored scrubbed of the payload's values and cut to
        :data:`ERROR_MAX` characters.  False if ``worker_id`` no longer holds
        the job (the result is then ignored).
        """
        now = self.clock()
        dead = job.attempt >= job.max_attempts
        run_after = now if dead else now + backoff_delay(job.attempt, self.settings)
        with self.db.write(durable=False) as tx:
            held = tx.run(
                _FAIL,
                id=job.id,
                holder=worker_id,
                held_attempt=job.attempt,
                state=DEAD if dead else PENDING,
                run_after=run_after,
                error=scrub_error(error, job.payload),
                now=now,
            )
        if not held:
            self._lost(job, worker_id, "fail")
        elif dead:
            logger.warning("job dead", extra={"fields": {"job": job.id, "kind": job.kind, "attempts": job.attempt}})
        return bool(held)

    def _lost(self, job: ClaimedJob, worker_id: str, what: str) -> None:
        logger.warning(
            "job result ignored: lease lost",
            extra={
                "fields": {"job": job.id, "kind": job.kind, "worker": worker_id, "attempt": job.attempt, "op": what}
            },
        )

    # -- operators --------------------------------------------------------------------

    def get(self, job_id: int) -> JobInfo | None:
        with self.db.read() as tx:
            row = tx.one(select(*_INFO_COLUMNS).where(jobs_t.c.id == job_id))
        return None if row is None else JobInfo(*row)

    def list(self, state: str | None = None, kind: str | None = None, limit: int = 100) -> builtins.list[JobInfo]:
        """Jobs, newest first, optionally of one state and kind (payloads are never listed)."""
        if state is not None and state not in STATES:
            raise ValueError(f"job state {state!r}: one of {', '.join(STATES)}")
        stmt = select(*_INFO_COLUMNS)
        if state is not None:
            stmt = stmt.where(jobs_t.c.state == state)
        if kind is not None:
            stmt = stmt.where(jobs_t.c.kind == kind)
        stmt = stmt.order_by(jobs_t.c.id.desc()).limit(limit)
        with self.db.read() as tx:
            return [JobInfo(*row) for row in tx.all(stmt)]

    def retry(self, job_id: int) -> bool:
        """Bring a dead job back to pending, due now, with its attempts reset; False if it is not dead."""
        with self.db.write() as tx:
            changed = tx.run(_RETRY, id=job_id, now=self.clock())
        if changed:
            self.notify()
        return bool(changed)

    def cancel(self, tx: Tx, kind: str, key: str) -> bool:
        """Withdraw a job that has not started (pending or dead), in the caller's transaction: work made
        pointless by a change (the mail of a share revoked before it went).  A running or done job stays."""
        return bool(tx.run(_CANCEL, kind=kind, key=key))

    def cancel_prefixed(self, tx: Tx, kind: str, prefix: str) -> int:
        """:meth:`cancel` every job of ``kind`` whose key starts with ``prefix`` (all the mails of a share)."""
        statement = delete(jobs_t).where(
            jobs_t.c.kind == kind,
            jobs_t.c.key.startswith(prefix, autoescape=True),
            or_(jobs_t.c.state == PENDING, jobs_t.c.state == DEAD),
        )
        return int(tx.run(statement))

    def retry_dead(self, kind: str | None = None) -> int:
        """Retry every dead job (of ``kind``); return how many."""
        now = self.clock()
        stmt = update(jobs_t).where(jobs_t.c.state == DEAD)
        if kind is not None:
            stmt = stmt.where(jobs_t.c.kind == kind)
        with self.db.write() as tx:
            changed = tx.run(stmt.values(state=PENDING, attempts=0, run_after=now, updated_at=now))
        if changed:
            self.notify()
        return changed

    def counts(self, kind_prefix: str | None = None) -> dict[str, int]:
        """Number of jobs in each state (every state present, zero included), of the kinds
        starting with ``kind_prefix`` when given (``"ehr_bridge."``: one plugin's jobs)."""
        with self.db.read() as tx:
            rows = tx.all(_COUNTS) if kind_prefix is None else tx.all(_COUNTS_OF_KINDS, prefix=kind_prefix)
            found = {str(state): int(n) for state, n in rows}
        return {state: found.get(state, 0) for state in STATES}

    def purge_done(self, before: float) -> int:
        """Delete the done jobs finished before ``before``; return how many."""
        with self.db.write() as tx:
            return tx.run(_PURGE, before=before)

    # -- periodic jobs ----------------------------------------------------------------

    def schedule(
        self,
        name: str,
        kind: str,
        *,
        every_seconds: int | None = None,
        daily_at: str | None = None,
        now: float | None = None,
    ) -> PeriodicInfo:
        """Declare a periodic job: every ``every_seconds``, or daily at ``daily_at`` ("HH:MM", UTC).

        Idempotent, and meant to be called at each start: an unchanged
        definition keeps its ``next_run`` (the schedule survives restarts); a
        changed one is rescheduled from now.  The first run of an every-N job
        is N seconds after it is first scheduled.
        """
        if (every_seconds is None) == (daily_at is None):
            raise ValueError("give exactly one of every_seconds and daily_at")
        if every_seconds is not None and every_seconds < 1:
            raise ValueError("every_seconds must be at least 1")
        if daily_at is not None:
            parse_daily_at(daily_at)
        if not name or len(name) > 100 or not kind or len(kind) > KIND_MAX:
            raise ValueError("periodic job name and kind must be 1 to 100 characters")
        now = self.clock() if now is None else now
        start = float(int(now) + 1)  # whole seconds: the key of each run is exact
        first = next_daily(daily_at, now) if daily_at is not None else start + (every_seconds or 0)
        params = {"name": name, "kind": kind, "interval_seconds": every_seconds, "daily_at": daily_at}
        with self.db.write() as tx:
            row = tx.one(_PERIODIC, name=name)
            if row is None:
                tx.run(_PERIODIC_INSERT, next_run=first, **params)
            elif (row.kind, row.interval_seconds, row.daily_at) != (kind, every_seconds, daily_at):
                tx.run(_PERIODIC_REDEFINE, next_run=first, **params)
            row = tx.one(_PERIODIC, name=name)
        return PeriodicInfo(*row)

    def unschedule(self, name: str) -> bool:
        with self.db.write() as tx:
            return bool(tx.run(_PERIODIC_DELETE, name=name))

    def periodic(self) -> builtins.list[PeriodicInfo]:
        with self.db.read() as tx:
            return [PeriodicInfo(*row) for row in tx.all(_PERIODIC_ALL)]

    def run_scheduler(self, now: float | None = None) -> int:
        """Enqueue the periodic jobs that are due; return how many were enqueued.

        Each due run becomes a job of key ``"{name}@{next_run}"`` (next_run in
        whole seconds), enqueued in the transaction that advances ``next_run``,
        and only if ``next_run`` was still the one read: two schedulers never
        enqueue a run twice, and a scheduler that dies between the two steps
        leaves neither.  Runs missed while no scheduler ran are run once.
        """
        now = self.clock() if now is None else now
        with self.db.read() as tx:
            due = tx.all(_PERIODIC_DUE, now=now)
        enqueued = 0
        for row in due:
            old = float(row.next_run)
            if row.daily_at is not None:
                new = next_daily(str(row.daily_at), now)
            else:
                new = _next_every(old, int(row.interval_seconds), now)
            with self.db.write() as tx:
                if tx.run(_PERIODIC_ADVANCE, name=row.name, old=old, new=new, now=now) != 1:
                    continue  # another scheduler took this run
                self.enqueue(tx, str(row.kind), f"{row.name}@{int(old)}", {"name": row.name, "scheduled": old})
            logger.info(
                "periodic job enqueued",
                extra={"fields": {"name": row.name, "scheduled": _iso(old), "next": _iso(new)}},
            )
            enqueued += 1
        return enqueued


_INFO_COLUMNS = (
    jobs_t.c.id,
    jobs_t.c.kind,
    jobs_t.c.key,
    jobs_t.c.state,
    jobs_t.c.attempts,
    jobs_t.c.max_attempts,
    jobs_t.c.run_after,
    jobs_t.c.lease_until,
    jobs_t.c.worker,
    jobs_t.c.last_error,
    jobs_t.c.created_at,
    jobs_t.c.updated_at,
)
