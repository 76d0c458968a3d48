"""The audit log: who did what, when, from where, with which outcome, in a hash chain.

What it owns: recording audit events (:class:`AuditLog`), proving the log
intact (:func:`verify`), exporting it for compliance reviews
(:func:`export`) and removing what is past retention (:func:`prune`).  The
surfaces (WebDAV, web pages, CLI, share links) decide what to record and
build the :class:`AuditEvent`; ``server/audit/commands.py`` holds the
``meddav audit`` commands.  Nothing recorded is health data: node, user and
organisation ids, never file names; ``detail`` is a short technical note.

**What is hashed.**  Each row of ``audit_log`` carries ``prev_hash``, the
hash of the row before it, and ``hash = SHA-256(prev_hash || canonical(row))``
where :func:`canonical` encodes, after the tag ``b"meddav-audit-v1\\0"``, the
fields ``id, at, org_id, user_id, principal, address, surface, action,
node_id, target_id, outcome, status, detail`` in that order, each as a tag
byte and a fixed-width or length-prefixed value (``N`` NULL; ``i`` signed
64-bit big-endian integer; ``f`` IEEE-754 binary64 big-endian; ``s`` 32-bit
big-endian length + UTF-8).  The row id is hashed, so moving a row changes
its hash.  The first row follows 32 zero bytes (:data:`GENESIS`); after
pruning, the first kept row follows the hash recorded in ``audit_anchor``.

**Why one writer.**  The chain is linear: each row's hash needs the one
before, so appends are serial whatever we do.  If every request appended in
its own transaction, requests would queue on the database's write lock and
each would pay a durable commit, so latency would grow with concurrency.
Instead :meth:`AuditLog.record` only queues the event and returns; one
writer thread appends the queued events in batches (hundreds of rows, one
commit).  Each batch reads the current head inside its write transaction
(one indexed query, microseconds against a commit's fsync), so another
process appending to the same database (the CLI beside the server) extends
the same single chain; no head is cached between batches.

**What verify proves, and what it does not.**  :func:`verify` recomputes
every row's hash and checks every link, so it names the first row that was
modified (hash mismatch), and the row after a deleted, inserted or moved row
(broken link); after pruning it also checks that the log starts where the
anchor says.  It cannot detect, by itself, that someone with write access to
the database removed rows from the end, or rewrote the chain from some row
on with recomputed hashes: the hash function is public and no secret is
involved.  Closing that gap needs a copy of a recent head outside the
database: ``meddav audit verify`` prints the head as ``ID:HEX``; keep it
elsewhere (a ticket, a printout, another system) and give it back with
``--expect`` (:class:`Checkpoint`): every row up to it is then proved
unchanged since it was noted.
"""

from __future__ import annotations

from server.audit._chain import GENESIS, append, canonical, row_hash
from server.audit._event import OUTCOMES, SURFACES, AuditChainBroken, AuditEvent, AuditOverflow
from server.audit._export import FORMATS, export, export_columns
from server.audit._log import AuditLog
from server.audit._prune import prune
from server.audit._verify import Checkpoint, VerifyReport, verify

__all__ = [
    "FORMATS",
    "GENESIS",
    "OUTCOMES",
    "SURFACES",
    "AuditChainBroken",
    "AuditEvent",
    "AuditLog",
    "AuditOverflow",
    "Checkpoint",
    "VerifyReport",
    "append",
    "canonical",
    "export",
    "export_columns",
    "prune",
    "row_hash",
    "verify",
]
