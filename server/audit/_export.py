"""Export for compliance reviews: rows of a period as CSV or JSON lines, streamed."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import bindparam, func, select

from server.audit._verify import iter_rows
from server.db import Database, prepared
from server.db.models import audit_t

__all__ = ["FORMATS", "export", "export_columns"]

FORMATS = ("csv", "jsonl")

_FIRST_FROM = prepared(select(func.min(audit_t.c.id)).where(audit_t.c.at >= bindparam("since")))
_LAST_BEFORE = prepared(select(func.max(audit_t.c.id)).where(audit_t.c.at < bindparam("until")))
_LAST = prepared(select(func.max(audit_t.c.id)))

_COLUMNS = (
    "id",
    "time",
    "at",
    "org_id",
    "user_id",
    "principal",
    "address",
    "surface",
    "action",
    "node_id",
    "target_id",
    "outcome",
    "status",
    "detail",
)


def export_columns(*, names: bool) -> tuple[str, ...]:
    """The exported columns, in order: ``node_name`` only when names are shown; the hashes last."""
    return (*_COLUMNS, *(("node_name",) if names else ()), "prev_hash", "hash")


_NAME_CACHE = 10_000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell: empty for NULL; text a spreadsheet would run as a formula gets a leading apostrophe.

    Principals come from clients (the user name of a failed login), and a
    reviewer may open the file in a spreadsheet; the JSON lines export is exact.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and value != "-":
        return "'" + value
    return value


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def export(
    db: Database,
    out: TextIO,
    *,
    since: float | None = None,
    until: float | None = None,
    fmt: str = "csv",
    name_of: Callable[[int], str | None] | None = None,
    org_id: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the rows with ``since <= at < until`` (either bound optional) to ``out``; return how many.

    Rows come in chain (id) order, each with its time as ISO 8601 UTC
    (``time``) and as POSIX seconds (``at``, exact), its ``prev_hash`` and
    ``hash`` in hex: with :func:`server.audit.row_hash` a reviewer can check
    each exported row, and the links of an unfiltered export.  ``org_id``
    keeps one organisation's rows.

    ``name_of`` maps a node id to its current name (None if it no longer
    exists); the caller passes it only when the reader may see the names,
    and only then is there a ``node_name`` column.  Without it the export
    holds ids, never a file name.  ``progress`` is called with the number of
    rows read so far, every few thousand rows.

    CSV: a header line, then one line per row (empty cell for NULL; text
    starting like a spreadsheet formula gets a leading apostrophe).
    JSON lines: one object per row, null for NULL, exact.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    with db.read() as tx:
        # Rows are read by id, the chain's order; times follow ids only roughly
        # (events are queued as requests end), so the id range is found from the
        # times and each row's own time decides.
        lo = tx.scalar(_FIRST_FROM, since=since) if since is not None else 0
        hi = tx.scalar(_LAST_BEFORE, until=until) if until is not None else tx.scalar(_LAST)
    columns = export_columns(names=name_of is not None)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
    if lo is None or hi is None:
        return 0
    low, high = -math.inf if since is None else since, math.inf if until is None else until
    names: dict[int, str | None] = {}
    written = read = 0
    for row in iter_rows(db, after=int(lo) - 1, upto=int(hi)):
        read += 1
        if progress is not None and read % 5000 == 0:
            progress(read)
        if not low <= row.at < high or (org_id is not None and row.org_id != org_id):
            continue
        record: dict[str, Any] = {
            "id": row.id,
            "time": _iso(row.at),
            "at": row.at,
            "org_id": row.org_id,
            "user_id": row.user_id,
            "principal": row.principal,
            "address": row.address,
            "surface": row.surface,
            "action": row.action,
            "node_id": row.node_id,
            "target_id": row.target_id,
            "outcome": row.outcome,
            "status": row.status,
            "detail": row.detail,
        }
        if name_of is not None:
            name = None
            if row.node_id is not None:
                if row.node_id not in names:
                    if len(names) >= _NAME_CACHE:
                        names.clear()
                    names[row.node_id] = name_of(row.node_id)
                name = names[row.node_id]
            record["node_name"] = name
        record["prev_hash"] = bytes(row.prev_hash).hex()
        record["hash"] = bytes(row.hash).hex()
        if fmt == "csv":
            writer.writerow([_cell(value) for value in record.values()])
        else:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        written += 1
    if progress is not None:
        progress(read)
    return written
