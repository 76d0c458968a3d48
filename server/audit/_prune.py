"""Retention: remove the oldest rows, leaving an anchor from which the rest still verifies."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import bindparam, func, select

from server.audit._chain import delete_before, read_anchor, write_anchor
from server.audit._event import AuditChainBroken
from server.audit._verify import verify
from server.db import Database, prepared
from server.db.models import audit_t

__all__ = ["prune"]

_FIRST_KEPT = prepared(select(func.min(audit_t.c.id)).where(audit_t.c.at >= bindparam("before")))
_BOUNDS = prepared(select(func.min(audit_t.c.id), func.max(audit_t.c.id)))
_HASH_OF = prepared(select(audit_t.c.hash).where(audit_t.c.id == bindparam("id")))


def prune(
    db: Database,
    *,
    before: float,
    now: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Delete the rows older than ``before``; return how many were deleted.

    Only a prefix of the chain is ever removed: the rows before the first
    one (in id order) whose time is ``>= before``; a later row with an
    earlier time (a request that ended late) stays, so pruning never opens a
    hole in the middle.  The part to remove is verified first, up to and
    including the first kept row: pruning a broken part would destroy the
    evidence, so then nothing is deleted and :class:`AuditChainBroken` is
    raised.  Then, in one transaction, the rows are deleted and the single
    ``audit_anchor`` row records the first kept id, the hash it must follow
    (that of the last deleted row), the cumulative count pruned and ``now``.
    """
    with db.read() as tx:
        first, last = tx.one(_BOUNDS)
        cut = tx.scalar(_FIRST_KEPT, before=before)
    if first is None:
        return 0
    # Everything older: the chain then continues from the anchor (see chain_head).
    cut = int(last) + 1 if cut is None else int(cut)
    if cut <= first:
        return 0
    report = verify(db, upto=cut, progress=progress)
    if not report.ok:
        raise AuditChainBroken(f"not pruning: {report.reason}; investigate before anything is removed")
    with db.write() as tx:
        anchor = read_anchor(tx)
        if anchor is not None and int(anchor.first_id) >= cut:
            return 0  # pruned meanwhile by someone else
        prev_hash = tx.scalar(_HASH_OF, id=cut - 1)
        if prev_hash is None:
            raise AuditChainBroken(f"not pruning: row {cut - 1} vanished while pruning")
        deleted = delete_before(tx, cut)
        write_anchor(
            tx,
            first_id=cut,
            prev_hash=bytes(prev_hash),
            pruned_rows=(0 if anchor is None else int(anchor.pruned_rows)) + deleted,
            pruned_at=time.time() if now is None else now,
        )
    return deleted
