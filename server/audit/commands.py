"""The ``meddav audit`` commands: verify, export, prune.

``server/cli.py`` calls :func:`add_commands` with its sub-parsers and its
way of opening the configured instance.  Each command returns the exit
status: 0 success, 1 the log is broken (or the work failed), 2 bad usage.
Exporting and pruning are themselves recorded in the audit log (surface
``cli``, principal: the operating-system user).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

from server.audit._chain import append
from server.audit._event import AuditChainBroken, AuditEvent
from server.audit._export import FORMATS, export
from server.audit._prune import prune
from server.audit._verify import Checkpoint, verify
from server.errors import NotFound

if TYPE_CHECKING:
    from server.instance import Instance

__all__ = ["add_commands", "cmd_audit_export", "cmd_audit_prune", "cmd_audit_verify", "parse_time"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DAY = 86400.0

OpenInstance = Callable[[argparse.Namespace], "Instance"]


def parse_time(text: str) -> float:
    """An ISO 8601 date or date and time (``2026-11-01``, ``2026-11-01T08:30``), UTC unless it says otherwise."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected an ISO 8601 date such as 2026-11-01 or 2026-11-01T08:30 (UTC)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _checkpoint(text: str) -> Checkpoint:
    try:
        return Checkpoint.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A callback (done, total) drawing a progress bar on stderr when it is a terminal."""
    from tqdm import tqdm

    bar = tqdm(desc=label, unit=" rows", file=sys.stderr, disable=None, leave=False)

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


def _record(instance: Instance, action: str, detail: str) -> None:
    """Record a CLI action in the audit log, now (this process is short-lived)."""
    try:
        principal = getpass.getuser()
    except (KeyError, OSError):
        principal = "-"
    event = AuditEvent(principal=principal, address="local", surface="cli", action=action, outcome="ok", detail=detail)
    append(instance.db, [event])


# -- commands ---------------------------------------------------------------------


def cmd_audit_verify(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    instance = open_instance(args)
    try:
        with _progress("verify") as progress:
            report = verify(instance.db, expect=args.expect, progress=progress)
    finally:
        instance.close()
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_audit_export(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    if args.since is not None and args.until is not None and args.since >= args.until:
        print("meddav audit export: --since must be before --until", file=sys.stderr)
        return EXIT_USAGE
    instance = open_instance(args)
    try:
        name_of: Callable[[int], str | None] | None = None
        if args.with_names:
            tree = instance.tree

            def name_of(node_id: int) -> str | None:
                try:
                    return tree.get(node_id).name
                except NotFound:
                    return None

        out: IO[str]
        if args.output:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            out = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
        else:
            out = sys.stdout
        try:
            with _progress("export") as progress:
                count = export(
                    instance.db,
                    out,
                    since=args.since,
                    until=args.until,
                    fmt=args.format,
                    name_of=name_of,
                    org_id=args.org,
                    progress=lambda done: progress(done, 0),
                )
        finally:
            if out is not sys.stdout:
                out.close()
            else:
                out.flush()
        span = f"from {_iso(args.since) if args.since is not None else 'start'}"
        span += f" to {_iso(args.until) if args.until is not None else 'now'}"
        org = f" org={args.org}" if args.org is not None else ""
        _record(
            instance,
            "audit.export",
            f"rows={count} format={args.format}{org} names={'yes' if args.with_names else 'no'}",
        )
    finally:
        instance.close()
    summary = f"exported {count} audit rows {span}" + (f" to {args.output}" if args.output else "")
    print(summary, file=sys.stdout if args.output else sys.stderr)
    return EXIT_OK


def cmd_audit_prune(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    instance = open_instance(args)
    try:
        before = args.before
        if before is None:
            days = instance.settings.audit.retention_days
            if days <= 0:
                print(
                    "meddav audit prune: [audit] retention_days = 0 keeps every row; "
                    "give --before DATE to prune anyway",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            before = time.time() - days * DAY
        try:
            with _progress("check before pruning") as progress:
                deleted = prune(instance.db, before=before, progress=progress)
        except AuditChainBroken as exc:
            print(f"meddav audit prune: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if deleted:
            _record(instance, "audit.prune", f"rows={deleted} before={_iso(before)}")
    finally:
        instance.close()
    print(f"pruned {deleted} audit rows older than {_iso(before)}")
    return EXIT_OK


# -- parser -----------------------------------------------------------------------

_VERIFY_HELP = """\
Walk the whole audit chain: every row must carry the hash of its own content
and of the row before it. Exit status 0 when intact, 1 naming the first
broken row (modified, or following a deleted, inserted or moved row).

The last line prints the head (ROW_ID:HASH). Keep it outside the server: the
chain alone cannot show that someone with write access to the database
removed the newest rows or rewrote the chain from some row on; giving the
head back with --expect later can."""

_EXPORT_HELP = """\
Write the audit rows of a period, oldest first, as CSV (with a header line)
or JSON lines (one object per row). Times are UTC: --since 2026-11-01
--until 2026-12-01 is November (--since included, --until excluded).
Default: everything. Rows hold ids, never file names, unless --with-names.
Each row carries its prev_hash and hash, so a reviewer can check it."""

_PRUNE_HELP = """\
Delete the audit rows older than --before (default: now minus [audit]
retention_days). Only the oldest part of the chain is removed, after
checking it; the rest stays verifiable from the anchor kept in the database.
Refuses when [audit] retention_days = 0 (keep all) unless --before is given."""


def add_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    open_instance: OpenInstance,
) -> argparse.ArgumentParser:
    """Add ``audit verify|export|prune`` to ``subparsers``; each sets ``func(args) -> exit status``.

    ``open_instance`` opens the configured instance from the parsed arguments;
    the commands close it.  Returns the ``audit`` parser.
    """

    def bind(command: Callable[[argparse.Namespace, OpenInstance], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: command(args, open_instance)

    def usage(_args: argparse.Namespace) -> int:
        return EXIT_USAGE

    raw = argparse.RawDescriptionHelpFormatter
    audit = subparsers.add_parser(
        "audit",
        help="verify, export or prune the audit log",
        description="The audit log: who did what, when, from where, with which outcome (ids, never file names).",
    )
    audit.set_defaults(func=usage)
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    p = actions.add_parser(
        "verify",
        help="prove the audit chain intact, or name the first broken row",
        description=_VERIFY_HELP,
        formatter_class=raw,
    )
    p.add_argument(
        "--expect",
        type=_checkpoint,
        metavar="HEAD",
        help="a head printed by an earlier verify (ROW_ID:HASH): fail unless that row is still there, unchanged",
    )
    p.set_defaults(func=bind(cmd_audit_verify))

    p = actions.add_parser(
        "export",
        help="write the audit rows of a period as CSV or JSON lines",
        description=_EXPORT_HELP,
        formatter_class=raw,
    )
    p.add_argument("--since", type=parse_time, metavar="DATE", help="first time included (ISO 8601, UTC)")
    p.add_argument("--until", type=parse_time, metavar="DATE", help="first time excluded (ISO 8601, UTC)")
    p.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or jsonl")
    p.add_argument("--output", metavar="FILE", help="write to FILE (created mode 0600) instead of standard output")
    p.add_argument("--org", type=int, metavar="ID", help="only the rows of organisation ID")
    p.add_argument(
        "--with-names",
        action="store_true",
        help="add a node_name column with each node's current name (health data: only for readers allowed to see it)",
    )
    p.set_defaults(func=bind(cmd_audit_export))

    p = actions.add_parser(
        "prune", help="delete audit rows past the retention period", description=_PRUNE_HELP, formatter_class=raw
    )
    p.add_argument(
        "--before",
        type=parse_time,
        metavar="DATE",
        help="delete rows older than this (ISO 8601, UTC; default: now minus [audit] retention_days)",
    )
    p.set_defaults(func=bind(cmd_audit_prune))
    return audit
