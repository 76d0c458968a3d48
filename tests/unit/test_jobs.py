"""Background jobs: the outbox, claiming under leases, retries, dead letters, periodic jobs, workers, commands.

Every test runs on a real instance (SQLite database made by ``meddav init``);
time is an injected clock wherever it matters.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.audit import AuditEvent, append
from server.config import JobSettings, load_settings
from server.db.models import audit_t, jobs_t
from server.instance import Instance, open_instance
from server.jobs import (
    AUDIT_PRUNE,
    DEAD,
    DONE,
    ERROR_MAX,
    PENDING,
    RUNNING,
    JobContext,
    JobFailed,
    JobQueue,
    JobSealer,
    WorkerPool,
    backoff_delay,
    builtin_handlers,
    next_daily,
    parse_daily_at,
    schedule_builtins,
)
from server.jobs.commands import add_commands
from server.testing import TestInstance

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SETTINGS = JobSettings(workers=2, lease_seconds=300, max_attempts=8, backoff_seconds=10, max_backoff_seconds=3600)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def opened(instance_dir: TestInstance) -> Iterator[Callable[[], Instance]]:
    """Open the test instance (as many times as wanted: each is a "process" of its own)."""
    instances: list[Instance] = []

    def open_one() -> Instance:
        inst = open_instance(load_settings(instance_dir.config_path))
        instances.append(inst)
        return inst

    yield open_one
    for inst in instances:
        inst.close()


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(opened: Callable[[], Instance], key: bytes, clock: Clock) -> JobQueue:
    return JobQueue(opened().db, JobSealer(key), SETTINGS, clock=clock)


def _state(queue: JobQueue, job_id: int) -> str:
    info = queue.get(job_id)
    assert info is not None
    return info.state


# -- enqueue ------------------------------------------------------------------------


def test_enqueue_in_rolled_back_transaction_leaves_no_job(queue: JobQueue) -> None:
    with pytest.raises(RuntimeError), queue.db.write() as tx:
        queue.enqueue(tx, "file.written", "node:1:v1", {"node": 1})
        raise RuntimeError("the change failed")
    assert queue.list() == []
    with queue.db.write() as tx:
        job_id = queue.enqueue(tx, "file.written", "node:1:v1", {"node": 1})
    assert [j.id for j in queue.list()] == [job_id]
    assert queue.counts() == {PENDING: 1, RUNNING: 0, DONE: 0, DEAD: 0}


def test_enqueue_is_idempotent_on_kind_and_key(queue: JobQueue) -> None:
    first = queue.enqueue(None, "share.created", "share:7", {"share": 7})
    assert queue.enqueue(None, "share.created", "share:7", {"share": 8}) == first
    other_kind = queue.enqueue(None, "share.revoked", "share:7", {"share": 7})
    assert other_kind != first
    assert len(queue.list()) == 2
    job = queue.claim("w")
    assert job is not None and job.id == first and job.payload == {"share": 7}  # the first payload stays
    assert queue.complete(job, "w")
    # A done job is not run again: the key names one piece of work.
    assert queue.enqueue(None, "share.created", "share:7", {"share": 7}) == first
    assert _state(queue, first) == DONE


def test_payload_is_sealed_in_the_database(queue: JobQueue, instance_dir: TestInstance) -> None:
    secret = "Jeanne Dupont-Marchal, born 1961-04-02"
    job_id = queue.enqueue(None, "appointment.document", "appt:42", {"patient": secret, "n": 1})
    queue.db.close()
    files = list(instance_dir.data_dir.glob("meddav.sqlite3*"))
    assert files
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    again = JobQueue(
        open_instance(load_settings(instance_dir.config_path)).db, queue._sealer, SETTINGS, clock=queue.clock
    )
    try:
        job = again.claim("w")
        assert job is not None and job.id == job_id and job.payload == {"patient": secret, "n": 1}
    finally:
        again.db.close()


def test_payload_does_not_open_under_another_key_or_row(queue: JobQueue, key: bytes) -> None:
    a = queue.enqueue(None, "k", "a", {"x": "one"})
    b = queue.enqueue(None, "k", "b", {"x": "two"})
    with queue.db.write() as tx:  # an attacker swaps the sealed payloads
        pa = tx.scalar(jobs_t.select().with_only_columns(jobs_t.c.payload).where(jobs_t.c.id == a))
        tx.run(jobs_t.update().where(jobs_t.c.id == b).values(payload=pa))
    first = queue.claim("w")
    assert first is not None and first.id == a
    assert queue.claim("w") is None  # b does not open: it is dead, not run
    assert _state(queue, b) == DEAD
    wrong = JobQueue(queue.db, JobSealer(secrets.token_bytes(32)), SETTINGS, clock=queue.clock)
    c = wrong.enqueue(None, "k", "c", {"x": "three"})
    assert queue.claim("w") is None and _state(queue, c) == DEAD


def test_cancel_withdraws_only_work_not_started(queue: JobQueue) -> None:
    for key in ("a", "b", "c"):
        queue.enqueue(None, "mail.send", key, {})
    running = queue.claim("w")  # a
    done = queue.claim("w")  # b
    assert running is not None and done is not None and queue.complete(done, "w")
    with queue.db.write() as tx:
        assert queue.cancel(tx, "mail.send", running.key) is False  # running: stays
        assert queue.cancel(tx, "mail.send", done.key) is False  # done: stays
        assert queue.cancel(tx, "mail.send", "c") is True  # pending: withdrawn
        assert queue.cancel(tx, "mail.send", "unknown") is False
    assert sorted(j.key for j in queue.list()) == ["a", "b"]


# -- claiming -----------------------------------------------------------------------


def test_concurrent_workers_of_two_processes_never_share_a_job(opened: Callable[[], Instance], key: bytes) -> None:
    queues = [JobQueue(opened().db, JobSealer(key), SETTINGS) for _ in range(2)]
    with queues[0].db.write() as tx:
        for i in range(500):
            queues[0].enqueue(tx, "work", f"job:{i}", {"i": i})
    holding: set[int] = set()
    overlaps: list[int] = []
    done: Counter[int] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(q: JobQueue, worker_id: str) -> None:
        try:
            while (job := q.claim(worker_id)) is not None:
                with lock:
                    if job.id in holding:
                        overlaps.append(job.id)
                    holding.add(job.id)
                time.sleep(0.0005)
                with lock:
                    holding.discard(job.id)
                if q.complete(job, worker_id):
                    with lock:
                        done[job.payload["i"]] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(q, f"p{p}/t{t}")) for p, q in enumerate(queues) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert overlaps == []
    assert sorted(done) == list(range(500)) and set(done.values()) == {1}
    assert queues[1].counts()[DONE] == 500


def test_expired_lease_is_claimed_again_and_late_result_ignored(
    queue: JobQueue, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = queue.enqueue(None, "slow", "s:1", {"n": 1})
    first = queue.claim("w1")
    assert first is not None and first.attempt == 1 and first.lease_until == T0 + 300
    assert queue.claim("w2") is None  # leased
    clock.now = T0 + 299
    assert queue.claim("w2") is None
    clock.now = T0 + 301
    second = queue.claim("w2")
    assert second is not None and second.id == job_id and second.attempt == 2
    with caplog.at_level(logging.WARNING, logger="server.jobs"):
        assert not queue.complete(first, "w1")
        assert not queue.fail(first, "w1", "too late")
    assert "lease lost" in caplog.text
    assert _state(queue, job_id) == RUNNING
    assert queue.complete(second, "w2")
    assert _state(queue, job_id) == DONE
    # The same worker id on a later attempt does not count as the earlier holder either.
    other = queue.enqueue(None, "slow", "s:2", {})
    a = queue.claim("w")
    clock.now += 400
    b = queue.claim("w")
    assert a is not None and b is not None and a.id == b.id == other
    assert not queue.complete(a, "w") and queue.complete(b, "w")


def test_expired_lease_on_last_attempt_goes_dead(queue: JobQueue, clock: Clock) -> None:
    job_id = queue.enqueue(None, "crash", "c:1", {}, max_attempts=2)
    for _ in range(2):
        assert queue.claim("w") is not None
        clock.now += 301
    assert queue.claim("w") is None
    info = queue.get(job_id)
    assert info is not None and info.state == DEAD and "lease expired" in (info.last_error or "")


def test_claim_only_the_given_kinds_and_due_jobs(queue: JobQueue, clock: Clock) -> None:
    queue.enqueue(None, "a", "1", {})
    later = queue.enqueue(None, "b", "2", {}, run_after=T0 + 60)
    assert queue.claim("w", kinds=[]) is None
    assert queue.claim("w", kinds=["b"]) is None  # not due yet
    clock.now = T0 + 60
    job = queue.claim("w", kinds=["b"])
    assert job is not None and job.id == later


# -- retries and dead letters ---------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert backoff_delay(1, SETTINGS, lambda a, b: 1.0) == 10
    assert [backoff_delay(n, SETTINGS, lambda a, b: 1.0) for n in range(2, 5)] == [20, 40, 80]
    assert backoff_delay(30, SETTINGS, lambda a, b: 1.0) == 3600
    assert backoff_delay(200, SETTINGS, lambda a, b: 1.0) == 3600
    assert backoff_delay(3, SETTINGS, lambda a, b: a) == 20 and backoff_delay(3, SETTINGS, lambda a, b: b) == 60
    samples = {backoff_delay(2, SETTINGS) for _ in range(50)}
    assert len(samples) > 40 and all(10 <= s <= 30 for s in samples)


def test_fail_reschedules_with_backoff_then_dead_then_retry(queue: JobQueue, clock: Clock) -> None:
    secret = "Martin Lefebvre"
    job_id = queue.enqueue(None, "ehr.push", "doc:9", {"patient": secret}, max_attempts=3)
    delays = []
    for attempt in (1, 2):
        job = queue.claim("w")
        assert job is not None and job.attempt == attempt
        assert queue.fail(job, "w", f"EHR refused {secret}: " + "x" * 1000)
        info = queue.get(job_id)
        assert info is not None and info.state == PENDING and info.worker is None
        delays.append(info.run_after - clock.now)
        assert queue.claim("w") is None  # backing off
        clock.now = info.run_after
    assert 5 <= delays[0] <= 15 and 10 <= delays[1] <= 30
    job = queue.claim("w")
    assert job is not None and job.attempt == 3
    assert queue.fail(job, "w", f"still refused {secret}")
    info = queue.get(job_id)
    assert info is not None and info.state == DEAD
    assert secret not in (info.last_error or "") and "still refused" in (info.last_error or "")
    clock.now += 10**6
    assert queue.claim("w") is None
    assert [j.id for j in queue.list(state=DEAD)] == [job_id]
    assert queue.retry(job_id) and not queue.retry(job_id)
    info = queue.get(job_id)
    assert info is not None and info.state == PENDING and info.attempts == 0
    job = queue.claim("w")
    assert job is not None and job.attempt == 1 and queue.complete(job, "w")


def test_error_is_truncated(queue: JobQueue) -> None:
    queue.enqueue(None, "k", "1", {}, max_attempts=1)
    job = queue.claim("w")
    assert job is not None
    queue.fail(job, "w", "e" * 5000)
    info = queue.get(job.id)
    assert info is not None and info.state == DEAD and len(info.last_error or "") == ERROR_MAX


def test_retry_dead_by_kind(queue: JobQueue) -> None:
    for kind, key in (("a", "1"), ("a", "2"), ("b", "3")):
        queue.enqueue(None, kind, key, {}, max_attempts=1)
        job = queue.claim("w")
        assert job is not None
        queue.fail(job, "w", "boom")
    assert queue.counts()[DEAD] == 3
    assert queue.retry_dead("a") == 2
    assert queue.counts() == {PENDING: 2, RUNNING: 0, DONE: 0, DEAD: 1}
    assert queue.retry_dead() == 1


# -- periodic jobs ------------------------------------------------------------------------


def test_daily_and_every_computations() -> None:
    assert parse_daily_at("03:30") == (3, 30)
    for bad in ("3:30", "24:00", "12:60", "ab:cd", "1230"):
        with pytest.raises(ValueError):
            parse_daily_at(bad)
    midnight = 1_799_971_200.0  # 2027-01-15T00:00:00Z
    assert midnight % 86400 == 0
    assert next_daily("03:30", midnight) == midnight + 3.5 * 3600
    assert next_daily("03:30", midnight + 3.5 * 3600) == midnight + 86400 + 3.5 * 3600  # strictly after
    assert next_daily("00:00", midnight + 1) == midnight + 86400
    assert next_daily("23:59", midnight) == midnight + 86340


def test_every_n_schedule_enqueues_and_advances(queue: JobQueue, clock: Clock) -> None:
    info = queue.schedule("ping", "ping", every_seconds=600)
    assert info.next_run == T0 + 1 + 600
    assert queue.run_scheduler() == 0
    clock.now = info.next_run
    assert queue.run_scheduler() == 1
    assert queue.run_scheduler() == 0
    [job] = queue.list()
    assert job.kind == "ping" and job.key == f"ping@{int(info.next_run)}"
    assert queue.periodic()[0].next_run == info.next_run + 600
    # Down for an hour: one catch-up run, and the phase is kept.
    clock.now = info.next_run + 3600 + 5
    assert queue.run_scheduler() == 1
    assert queue.periodic()[0].next_run == info.next_run + 3600 + 600


def test_daily_schedule_and_restart_keep_next_run(
    queue: JobQueue, opened: Callable[[], Instance], key: bytes, clock: Clock
) -> None:
    info = queue.schedule("nightly", "audit.prune", daily_at="03:30")
    assert info.next_run == next_daily("03:30", T0) and info.next_run > T0
    clock.now = info.next_run + 10
    assert queue.run_scheduler() == 1
    after = queue.periodic()[0]
    assert after.next_run == info.next_run + 86400 and after.last_run == clock.now
    # A restart: a new queue over a new connection declares the same schedule.
    restarted = JobQueue(opened().db, JobSealer(key), SETTINGS, clock=Clock(clock.now + 60))
    assert restarted.schedule("nightly", "audit.prune", daily_at="03:30").next_run == after.next_run
    assert restarted.run_scheduler() == 0
    # A changed definition is rescheduled.
    assert restarted.schedule("nightly", "audit.prune", daily_at="04:00").next_run == next_daily(
        "04:00", clock.now + 60
    )
    with pytest.raises(ValueError):
        queue.schedule("x", "x")
    with pytest.raises(ValueError):
        queue.schedule("x", "x", every_seconds=5, daily_at="01:00")


def test_two_schedulers_do_not_double_enqueue(opened: Callable[[], Instance], key: bytes) -> None:
    clocks = [Clock(), Clock()]
    queues = [JobQueue(opened().db, JobSealer(key), SETTINGS, clock=c) for c in clocks]
    for q in queues:
        q.schedule("tick", "tick", every_seconds=60)
    enqueued: list[int] = []
    for step in range(1, 21):
        for c in clocks:
            c.now = T0 + 61 * step
        barrier = threading.Barrier(2)

        def run(q: JobQueue, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            enqueued.append(q.run_scheduler())

        threads = [threading.Thread(target=run, args=(q,)) for q in queues]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    jobs = queues[0].list(limit=1000)
    assert sum(enqueued) == len(jobs) == len({j.key for j in jobs})
    assert 15 <= len(jobs) <= 21


def test_builtin_audit_prune(make_test_instance: Callable[..., TestInstance], key: bytes) -> None:
    inst_dir = make_test_instance({"audit": {"retention_days": 30}})
    inst = open_instance(load_settings(inst_dir.config_path))
    try:
        old = time.time() - 40 * 86400
        events = [AuditEvent(principal="t", address="local", surface="cli", action="x", outcome="ok", at=old)] * 3
        append(inst.db, [*events, AuditEvent(principal="t", address="local", surface="cli", action="y", outcome="ok")])
        with inst.db.read() as tx:
            before = tx.scalar(audit_t.select().with_only_columns(audit_t.c.id.is_not(None)).limit(1))
        assert before
        queue = JobQueue(inst.db, JobSealer(key), inst.settings.jobs)
        schedule_builtins(queue)
        [prune_row] = [p for p in queue.periodic() if p.name == AUDIT_PRUNE]
        assert prune_row.daily_at == "03:30"
        queue.run_scheduler(now=prune_row.next_run)
        pool = WorkerPool(queue, builtin_handlers(inst.db, inst.settings, queue), threads=1)
        assert pool.run_one("w")
        [job] = queue.list(kind=AUDIT_PRUNE)
        assert job.state == DONE
        with inst.db.read() as tx:
            actions = [r.action for r in tx.all(audit_t.select().with_only_columns(audit_t.c.action))]
        assert "x" not in actions and "y" in actions
    finally:
        inst.close()


# -- workers ----------------------------------------------------------------------------


def test_pool_runs_in_process_job_promptly_after_notify(queue: JobQueue) -> None:
    ran = threading.Event()
    seen: list[JobContext] = []

    def handler(ctx: JobContext) -> None:
        seen.append(ctx)
        ran.set()

    pool = WorkerPool(queue, {"mail.send": handler}, threads=2, poll=30)
    pool.start()
    try:
        time.sleep(0.1)  # the workers found nothing and sleep for 30 s
        started = time.monotonic()
        queue.enqueue(None, "mail.send", "msg:1", {"to": 5})
        assert ran.wait(5)
        assert time.monotonic() - started < 2
        ran.clear()
        with queue.db.write() as tx:  # in the caller's transaction: runs once committed
            queue.enqueue(tx, "mail.send", "msg:2", {"to": 6})
        assert ran.wait(5)
    finally:
        assert pool.stop(timeout=5)
    assert [(c.key, c.payload, c.attempt) for c in seen] == [("msg:1", {"to": 5}, 1), ("msg:2", {"to": 6}, 1)]
    assert seen[0].deadline == queue.clock() + SETTINGS.lease_seconds
    assert queue.counts()[DONE] == 2


def test_handler_raising_does_not_kill_the_worker(queue: JobQueue) -> None:
    done = threading.Event()

    def handler(ctx: JobContext) -> None:
        if ctx.payload["bad"] == 1:
            raise ValueError(f"cannot reach patient {ctx.payload['who']}")
        if ctx.payload["bad"] == 2:
            raise JobFailed("EHR answered 503")
        done.set()

    pool = WorkerPool(queue, {"k": handler}, threads=1, poll=0.05)
    with pool:
        a = queue.enqueue(None, "k", "a", {"bad": 1, "who": "Odile Renard"})
        b = queue.enqueue(None, "k", "b", {"bad": 2, "who": "x"})
        queue.enqueue(None, "k", "c", {"bad": 0})
        assert done.wait(5)
    info_a, info_b = queue.get(a), queue.get(b)
    assert info_a is not None and info_b is not None
    assert info_a.state == PENDING and info_a.attempts == 1
    assert (info_a.last_error or "").startswith("ValueError at test_jobs.py:")
    assert "Odile" not in (info_a.last_error or "")
    assert info_b.last_error == "EHR answered 503"
    assert pool.failed == 2 and pool.completed == 1


def test_stop_waits_for_running_handler(queue: JobQueue) -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def handler(ctx: JobContext) -> None:
        entered.set()
        release.wait(5)
        finished.set()

    pool = WorkerPool(queue, {"k": handler}, threads=1, poll=0.05)
    pool.start()
    queue.enqueue(None, "k", "1", {})
    assert entered.wait(5)
    threading.Timer(0.2, release.set).start()
    assert pool.stop(timeout=5)
    assert finished.is_set() and queue.counts()[DONE] == 1


def test_extend_keeps_the_lease(queue: JobQueue, clock: Clock) -> None:
    queue.enqueue(None, "long", "1", {})
    job = queue.claim("w")
    assert job is not None
    ctx = JobContext(job.id, job.kind, job.key, job.payload, 1, 8, job.lease_until, "w", queue, [job])
    clock.now += 200
    assert ctx.extend()
    assert ctx.deadline == clock.now + 300
    clock.now += 200
    assert queue.claim("other") is None
    assert ctx.remaining() == 100


# -- commands -----------------------------------------------------------------------------


def _cli(instance_dir: TestInstance, key: bytes, clock: Clock) -> Callable[..., int]:
    def open_with_jobs(_args: argparse.Namespace) -> Instance:
        inst = open_instance(load_settings(instance_dir.config_path))
        inst.jobs = JobQueue(inst.db, JobSealer(key), inst.settings.jobs, clock=clock)  # type: ignore[attr-defined]
        return inst

    parser = argparse.ArgumentParser(prog="meddav")
    add_commands(parser.add_subparsers(dest="command", required=True), open_with_jobs)

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        code: int = args.func(args)
        return code

    return run


def test_jobs_list_and_retry_commands(
    queue: JobQueue, instance_dir: TestInstance, key: bytes, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = _cli(instance_dir, key, clock)
    dead = queue.enqueue(None, "ehr.push", "doc:1", {"patient": "Paul Girard"}, max_attempts=1)
    job = queue.claim("w")
    assert job is not None
    queue.fail(job, "w", "EHR answered 500")
    live = queue.enqueue(None, "mail.send", "msg:1", {})
    capsys.readouterr()
    assert cli("jobs", "list") == 0
    out = capsys.readouterr()
    assert str(dead) in out.out and str(live) in out.out and "EHR answered 500" in out.out
    assert "Paul" not in out.out and "1 pending" in out.err and "1 dead" in out.err
    assert cli("jobs", "list", "--dead") == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 2 and lines[1].split()[:3] == [str(dead), "ehr.push", "dead"]
    assert cli("jobs", "retry", str(live)) == 1
    assert "not dead" in capsys.readouterr().err
    assert cli("jobs", "retry") == 2
    assert cli("jobs", "retry", str(dead)) == 0
    assert _state(queue, dead) == PENDING
    job = queue.claim("w", kinds=["ehr.push"])
    assert job is not None
    queue.fail(job, "w", "again")
    assert cli("jobs", "retry", "--all-dead", "--kind", "mail.send") == 0
    assert "0 dead jobs" in capsys.readouterr().out
    assert cli("jobs", "retry", "--all-dead") == 0
    assert "1 dead job will" in capsys.readouterr().out


# -- processes ----------------------------------------------------------------------------

_CLAIMER = textwrap.dedent(
    """
    import sys
    from server.config import load_settings
    from server.instance import open_instance
    from server.jobs import JobQueue, JobSealer
    config, key, name = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
    inst = open_instance(load_settings(config))
    queue = JobQueue(inst.db, JobSealer(key), inst.settings.jobs)
    print("ready", flush=True)
    sys.stdin.readline()
    while (job := queue.claim(name)) is not None:
        if queue.complete(job, name):
            print(job.payload["i"], flush=True)
    inst.close()
    """
)


def test_two_processes_claim_from_one_database(
    opened: Callable[[], Instance], instance_dir: TestInstance, key: bytes
) -> None:
    queue = JobQueue(opened().db, JobSealer(key), SETTINGS)  # real time, like the child processes
    with queue.db.write() as tx:
        for i in range(200):
            queue.enqueue(tx, "work", f"job:{i}", {"i": i})
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(instance_dir.config_path), key.hex(), f"proc{n}"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    done = Counter(int(line) for out in outputs for line in out.split())
    assert sorted(done) == list(range(200)) and set(done.values()) == {1}
    assert queue.counts()[DONE] == 200


def test_settings_replace_is_used(queue: JobQueue) -> None:
    short = dataclasses.replace(SETTINGS, lease_seconds=5)
    q = JobQueue(queue.db, queue._sealer, short, clock=queue.clock)
    q.enqueue(None, "k", "1", {})
    job = q.claim("w")
    assert job is not None and job.lease_until == queue.clock() + 5
