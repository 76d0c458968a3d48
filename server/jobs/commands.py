"""The ``meddav jobs list|retry`` and ``meddav worker`` commands.

``server/cli.py`` calls :func:`add_commands` with its sub-parsers and its
way of opening the configured instance.  Each command returns the exit
status: 0 success, 1 failure (nothing to retry), 2 bad usage.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from server.jobs._queue import DEAD, RUNNING, STATES, JobQueue
from server.jobs._worker import Handler, WorkerPool
from server.jobs.builtin import builtin_handlers

if TYPE_CHECKING:
    from server.instance import Instance

__all__ = ["add_commands", "cmd_jobs_list", "cmd_jobs_retry", "cmd_worker", "instance_handlers", "instance_queue"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

OpenInstance = Callable[[argparse.Namespace], "Instance"]


def instance_queue(instance: Instance) -> JobQueue:
    """The instance's job queue (``instance.jobs``)."""
    queue = getattr(instance, "jobs", None)
    if not isinstance(queue, JobQueue):
        raise RuntimeError("this instance has no job queue (instance.jobs)")
    return queue


def instance_handlers(instance: Instance) -> dict[str, Handler]:
    """The core's handlers, plus the plugins' from ``instance.job_handlers`` when present."""
    queue = instance_queue(instance)
    handlers = builtin_handlers(instance.db, instance.settings, queue)
    extra: Mapping[str, Handler] | None = getattr(instance, "job_handlers", None)
    if extra:
        handlers.update(extra)
    return handlers


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def cmd_jobs_list(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    instance = open_instance(args)
    try:
        queue = instance_queue(instance)
        state = DEAD if args.dead else args.state
        jobs = queue.list(state=state, kind=args.kind, limit=args.limit)
        counts = queue.counts()
    finally:
        instance.close()
    header = f"{'ID':>8}  {'KIND':<24} {'STATE':<8} {'TRIES':>5}  {'NEXT RUN':<20}  LAST ERROR"
    print(header)
    for job in jobs:
        if job.state == RUNNING:
            nxt = f"lease {_when(job.lease_until)}"
        elif job.state in (DEAD, "done"):
            nxt = "-"
        else:
            nxt = _when(job.run_after)
        tries = f"{job.attempts}/{job.max_attempts}"
        print(f"{job.id:>8}  {job.kind:<24} {job.state:<8} {tries:>5}  {nxt:<20}  {job.last_error or ''}")
    print(", ".join(f"{counts[s]} {s}" for s in STATES), file=sys.stderr)
    return EXIT_OK


def cmd_jobs_retry(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    if (args.id is None) == (not args.all_dead):
        print("meddav jobs retry: give a job ID or --all-dead", file=sys.stderr)
        return EXIT_USAGE
    if args.id is not None and args.kind is not None:
        print("meddav jobs retry: --kind goes with --all-dead", file=sys.stderr)
        return EXIT_USAGE
    instance = open_instance(args)
    try:
        queue = instance_queue(instance)
        if args.id is not None:
            if not queue.retry(args.id):
                job = queue.get(args.id)
                why = "no such job" if job is None else f"it is {job.state}, not dead"
                print(f"meddav jobs retry: job {args.id} not retried: {why}", file=sys.stderr)
                return EXIT_FAILED
            print(f"job {args.id} will run again")
        else:
            count = queue.retry_dead(args.kind)
            print(f"{count} dead job{'' if count == 1 else 's'} will run again")
    finally:
        instance.close()
    return EXIT_OK


def cmd_worker(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    instance = open_instance(args)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        queue = instance_queue(instance)
        instance.start_plugins()
        instance.schedule_jobs()
        handlers = instance_handlers(instance)
        pool = WorkerPool(queue, handlers, threads=args.threads, poll=args.poll)
        pool.start()
        print(
            f"meddav worker: {pool.threads} threads for {', '.join(sorted(handlers))}; Ctrl-C or SIGTERM stops",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
        print("meddav worker: stopping, waiting for running jobs", file=sys.stderr, flush=True)
        clean = pool.stop(timeout=args.stop_timeout)
        instance.plugins.call_each("meddav_shutdown")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        instance.close()
    return EXIT_OK if clean else EXIT_FAILED


_LIST_HELP = """\
List jobs, newest first: id, kind, state, attempts, next run (or the end of
the lease of a running job) and last error. Payloads are never shown (they
are encrypted). Counts by state go to standard error."""

_RETRY_HELP = """\
Bring a dead job (one that failed [jobs] max_attempts times) back: it is due
at once, with its attempts reset. --all-dead retries every dead job, or every
dead job of --kind."""

_WORKER_HELP = """\
Run job workers apart from the server, until SIGINT or SIGTERM: they claim
due jobs (several workers never run one job at the same time), run them,
retry failures with back-off, and enqueue periodic jobs. On stop, running
jobs are waited for (--stop-timeout); an unfinished one is claimed again
once its lease expires."""


def add_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    open_instance: OpenInstance,
) -> None:
    """Add ``jobs list|retry`` and ``worker`` to ``subparsers``; each sets ``func(args) -> exit status``."""

    def bind(command: Callable[[argparse.Namespace, OpenInstance], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: command(args, open_instance)

    def usage(_args: argparse.Namespace) -> int:
        return EXIT_USAGE

    raw = argparse.RawDescriptionHelpFormatter
    jobs = subparsers.add_parser(
        "jobs", help="list background jobs, retry dead ones", description="Background jobs: list them, retry dead ones."
    )
    jobs.set_defaults(func=usage)
    actions = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    p = actions.add_parser(
        "list", help="list jobs (--dead: the dead letters)", description=_LIST_HELP, formatter_class=raw
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--dead", action="store_true", help="only dead jobs (failed max_attempts times)")
    which.add_argument("--state", choices=STATES, help="only jobs in this state")
    p.add_argument("--kind", metavar="K", help="only jobs of this kind")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N jobs (default 100)")
    p.set_defaults(func=bind(cmd_jobs_list))

    p = actions.add_parser("retry", help="run dead jobs again", description=_RETRY_HELP, formatter_class=raw)
    p.add_argument("id", type=int, nargs="?", metavar="ID", help="the dead job to retry")
    p.add_argument("--all-dead", action="store_true", help="retry every dead job (of --kind)")
    p.add_argument("--kind", metavar="K", help="with --all-dead: only jobs of this kind")
    p.set_defaults(func=bind(cmd_jobs_retry))

    def positive(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError("must be at least 1")
        return value

    p = subparsers.add_parser(
        "worker", help="run job workers until Ctrl-C", description=_WORKER_HELP, formatter_class=raw
    )
    p.add_argument("--threads", type=positive, metavar="N", help="worker threads (default: [jobs] workers)")
    p.add_argument(
        "--poll", type=float, default=1.0, metavar="SECONDS", help="look for due jobs this often (default 1)"
    )
    p.add_argument(
        "--stop-timeout", type=float, default=30.0, metavar="SECONDS", help="wait this long for running jobs on stop"
    )
    p.set_defaults(func=bind(cmd_worker))
