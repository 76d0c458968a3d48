"""Verification: walk the chain in id order and name the first row that breaks it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, bindparam, func, select

from server.audit._chain import FIELDS, GENESIS, HASH_FIELDS, read_anchor, row_hash
from server.db import Database, prepared
from server.db.models import audit_t

__all__ = ["Checkpoint", "VerifyReport", "iter_rows", "verify"]

CHUNK_ROWS = 5000

_COUNT = prepared(select(func.count()).select_from(audit_t))
_CHUNK = prepared(
    select(*(audit_t.c[name] for name in FIELDS))
    .where(audit_t.c.id > bindparam("after"))
    .where(audit_t.c.id <= bindparam("upto"))
    .order_by(audit_t.c.id)
    .limit(bindparam("n", type_=Integer))
)
_NHASHED = len(HASH_FIELDS)
_ID_MAX = 2**63 - 1


@dataclass(frozen=True)
class Checkpoint:
    """A row id and the hash it had, noted outside the database (``meddav audit verify`` prints one).

    Written ``ID:HEX``; parsed by :meth:`parse`.
    """

    row_id: int
    hash: bytes

    def __str__(self) -> str:
        return f"{self.row_id}:{self.hash.hex()}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """``ID:HEX`` (64 hex digits) as printed by ``meddav audit verify``; ValueError otherwise."""
        row_id, sep, digest = text.strip().partition(":")
        if not sep or not row_id.isdigit() or len(digest) != 64:
            raise ValueError("expected ROW_ID:SHA256_HEX as printed by `meddav audit verify`")
        return cls(int(row_id), bytes.fromhex(digest))


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found.  ``ok`` when no row breaks the chain."""

    rows_checked: int
    #: Id of the first and last rows present (None when the log is empty).
    first_id: int | None
    last_id: int | None
    #: The last row's hash: note ``head`` elsewhere and give it back as ``expect`` to detect a rewrite.
    head: Checkpoint | None
    #: Rows removed by pruning so far, and where the remaining chain must start (None: never pruned).
    pruned_rows: int = 0
    anchor_first_id: int | None = None
    #: The first row that breaks the chain, and why (None when ok).
    broken_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def lines(self) -> list[str]:
        """A human summary, for the CLI."""
        out: list[str] = []
        if self.anchor_first_id is not None:
            out.append(f"pruned: {self.pruned_rows} rows; the chain starts at row {self.anchor_first_id}")
        span = f" (rows {self.first_id}..{self.last_id})" if self.first_id is not None else ""
        out.append(f"checked {self.rows_checked} rows{span}")
        if self.ok:
            out.append("audit chain intact")
            if self.head is not None:
                out.append(f"head: {self.head}")
                out.append("  note this head outside the server; `meddav audit verify --expect HEAD` later proves")
                out.append("  that no row up to it was changed, removed or the chain rewritten since")
        else:
            out.append(f"audit chain BROKEN at row {self.broken_id}: {self.reason}")
        return out


def iter_rows(db: Database, *, after: int = 0, upto: int = _ID_MAX, chunk: int = CHUNK_ROWS) -> Iterator[Any]:
    """Rows with ``after < id <= upto`` in id order, read ``chunk`` at a time (one short transaction each)."""
    while True:
        with db.read() as tx:
            rows = tx.all(_CHUNK, after=after, upto=upto, n=chunk)
        yield from rows
        if len(rows) < chunk:
            return
        after = rows[-1].id


def _broken_link(row: Any, prev_id: int | None, anchor: Any) -> str:
    """Why ``row``'s prev_hash is not the hash it must follow."""
    if prev_id is None:
        if anchor is not None:
            return (
                f"the first row does not follow the pruning anchor (the chain must start at row {anchor.first_id}):"
                " rows were deleted or inserted at the start of the log"
            )
        return "the first row does not start the chain: rows before it were deleted"
    gap = row.id - prev_id - 1
    if gap > 0:
        return f"does not follow row {prev_id}: {gap} row(s) before it were deleted, or row {prev_id} was replaced"
    return f"does not follow row {prev_id}: row {prev_id} was rewritten, or a row was inserted or moved"


def _check(row: Any) -> str | None:
    """Why ``row`` is not intact by itself (its hash over its own fields), or None."""
    prev, digest = row.prev_hash, row.hash
    if not (isinstance(prev, bytes) and len(prev) == 32 and isinstance(digest, bytes) and len(digest) == 32):
        return "its hashes are malformed: the row was written by hand"
    try:
        computed = row_hash(prev, row[:_NHASHED])
    except TypeError as exc:
        return f"it was modified ({exc})"
    if computed != digest:
        return "its content does not match its hash: the row was modified"
    return None


def verify(
    db: Database,
    *,
    expect: Checkpoint | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK_ROWS,
    upto: int = _ID_MAX,
) -> VerifyReport:
    """Walk the whole chain; report the first row that breaks it.

    Each row must carry ``sha256(prev_hash || canonical(fields))`` (else it
    was modified) and its ``prev_hash`` must be the previous row's hash, or
    for the first row the pruning anchor's, or 32 zero bytes (else a row was
    deleted, inserted or moved before it).  ``expect``, a head noted earlier,
    must still be in the chain with the same hash: this detects rows removed
    from the end and a chain rewritten from some row on, which the links
    alone cannot.

    Reads ``chunk`` rows per short read transaction, so memory does not grow
    with the log; rows appended meanwhile are checked too.  ``progress`` is
    called after each chunk with (rows checked, rows at the start).
    ``upto`` stops the walk after that row id (pruning checks what it removes).
    """
    with db.read() as tx:
        anchor = read_anchor(tx)
        total = int(tx.scalar(_COUNT) or 0)
    expected_prev = GENESIS if anchor is None else bytes(anchor.prev_hash)
    pruned = 0 if anchor is None else int(anchor.pruned_rows)
    anchor_first = None if anchor is None else int(anchor.first_id)
    checked = 0
    first_id: int | None = None
    prev_id: int | None = None
    head: Checkpoint | None = None
    expect_seen = False

    def report(broken_id: int | None = None, reason: str | None = None) -> VerifyReport:
        return VerifyReport(checked, first_id, prev_id, head, pruned, anchor_first, broken_id, reason)

    for row in iter_rows(db, chunk=chunk, upto=upto):
        checked += 1
        if first_id is None:
            first_id = row.id
        problem = _check(row)
        if problem is None and row.prev_hash != expected_prev:
            problem = _broken_link(row, prev_id, anchor)
        if problem is None and prev_id is None and anchor_first is not None and row.id != anchor_first:
            problem = f"the pruning anchor says the chain starts at row {anchor_first}: rows were deleted or inserted"
        if problem is not None:
            return report(row.id, f"row {row.id}: {problem}")
        if expect is not None and row.id == expect.row_id:
            expect_seen = True
            if row.hash != expect.hash:
                return report(
                    row.id, f"row {row.id} differs from the head noted earlier: the chain was rewritten up to it"
                )
        expected_prev = row.hash
        prev_id = row.id
        head = Checkpoint(row.id, row.hash)
        if progress is not None and checked % chunk == 0:
            progress(checked, total)
    if progress is not None:
        progress(checked, total)
    if expect is not None and not expect_seen and expect.row_id <= upto:
        below = anchor_first if anchor_first is not None else 1
        if expect.row_id >= below:
            return report(expect.row_id, f"row {expect.row_id}, noted earlier, is gone: rows were removed")
    return report()
