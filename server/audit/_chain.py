"""The chain: canonical encoding of a row, its hash, and appending rows in order."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from server.audit._event import AuditEvent
from server.db import Database, Tx, prepared
from server.db.models import audit_anchor_t, audit_t

__all__ = ["FIELDS", "GENESIS", "HASH_FIELDS", "canonical", "chain_head", "insert_events", "row_hash"]

#: The prev_hash of the very first row of an instance.
GENESIS = bytes(32)

#: Version tag at the start of every canonical encoding; a new encoding gets a new tag.
_TAG = b"meddav-audit-v1\x00"

#: The hashed fields, in the order they are encoded, with their kind:
#: "i" integer, "i?" integer or NULL, "f" float, "s" string, "s?" string or NULL.
HASH_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "i"),
    ("at", "f"),
    ("org_id", "i?"),
    ("user_id", "i?"),
    ("principal", "s"),
    ("address", "s"),
    ("surface", "s"),
    ("action", "s"),
    ("node_id", "i?"),
    ("target_id", "i?"),
    ("outcome", "s"),
    ("status", "i?"),
    ("detail", "s?"),
)

#: Every column, in the order rows are selected.
FIELDS: tuple[str, ...] = (*(name for name, _ in HASH_FIELDS), "prev_hash", "hash")

_INT = struct.Struct(">q")
_FLOAT = struct.Struct(">d")
_LEN = struct.Struct(">I")


def canonical(values: Sequence[Any]) -> bytes:
    """The canonical encoding of a row's hashed fields (``values`` in :data:`HASH_FIELDS` order).

    ``b"meddav-audit-v1\\0"``, then for each field one tag byte and its payload:
    ``N`` NULL (nothing follows); ``i`` a signed 64-bit big-endian integer;
    ``f`` an IEEE-754 binary64 big-endian float; ``s`` a 32-bit big-endian
    byte length and the UTF-8 bytes.  Fixed order, fixed widths or length
    prefixes: two different rows never encode alike.  A value of the wrong
    type (an integer stored as text by hand) raises ``TypeError``: the
    writer never produces one, so verification reports the row as altered.
    """
    parts = [_TAG]
    for (name, kind), value in zip(HASH_FIELDS, values, strict=True):
        if value is None:
            if not kind.endswith("?"):
                raise TypeError(f"{name} is NULL")
            parts.append(b"N")
        elif kind[0] == "i":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} is not an integer")
            try:
                parts += (b"i", _INT.pack(value))
            except struct.error:
                raise TypeError(f"{name} is out of range") from None
        elif kind[0] == "f":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} is not a number")
            parts += (b"f", _FLOAT.pack(float(value)))
        else:
            if not isinstance(value, str):
                raise TypeError(f"{name} is not a string")
            try:
                data = value.encode("utf-8")
            except UnicodeEncodeError:
                raise TypeError(f"{name} is not valid UTF-8") from None
            parts += (b"s", _LEN.pack(len(data)), data)
    return b"".join(parts)


def _int(value: int | None) -> bytes:
    return b"N" if value is None else b"i" + _INT.pack(value)


def _str(value: str | None) -> bytes:
    if value is None:
        return b"N"
    data = value.encode("utf-8")
    return b"s" + _LEN.pack(len(data)) + data


def encode_event(row_id: int, event: AuditEvent) -> bytes:
    """:func:`canonical` of ``event_values(row_id, event)``, for the writer: the fields of an
    event are already checked (``AuditEvent``), so this skips the per-field type tests.
    A test keeps the two encodings identical."""
    return b"".join(
        (
            _TAG,
            b"i",
            _INT.pack(row_id),
            b"f",
            _FLOAT.pack(event.at),
            _int(event.org_id),
            _int(event.user_id),
            _str(event.principal),
            _str(event.address),
            _str(event.surface),
            _str(event.action),
            _int(event.node_id),
            _int(event.target_id),
            _str(event.outcome),
            _int(event.status),
            _str(event.detail),
        )
    )


def row_hash(prev_hash: bytes, values: Sequence[Any]) -> bytes:
    """``sha256(prev_hash || canonical(values))``: the hash a row must carry."""
    return hashlib.sha256(bytes(prev_hash) + canonical(values)).digest()


def event_values(row_id: int, event: AuditEvent) -> tuple[Any, ...]:
    """The hashed fields of the row ``event`` becomes under ``row_id``."""
    return (
        row_id,
        event.at,
        event.org_id,
        event.user_id,
        event.principal,
        event.address,
        event.surface,
        event.action,
        event.node_id,
        event.target_id,
        event.outcome,
        event.status,
        event.detail,
    )


_LAST = prepared(select(audit_t.c.id, audit_t.c.hash).order_by(audit_t.c.id.desc()).limit(1))
_ANCHOR = prepared(
    select(
        audit_anchor_t.c.first_id,
        audit_anchor_t.c.prev_hash,
        audit_anchor_t.c.pruned_rows,
        audit_anchor_t.c.pruned_at,
    ).where(audit_anchor_t.c.id == 1)
)
_INSERT = prepared(insert(audit_t).values({name: bindparam(name) for name in FIELDS}))
_UPDATE_ANCHOR = prepared(
    update(audit_anchor_t)
    .where(audit_anchor_t.c.id == 1)
    .values(
        first_id=bindparam("first_id"),
        prev_hash=bindparam("prev_hash"),
        pruned_rows=bindparam("pruned_rows"),
        pruned_at=bindparam("pruned_at"),
    )
)
_INSERT_ANCHOR = prepared(
    insert(audit_anchor_t).values(
        id=1,
        first_id=bindparam("first_id"),
        prev_hash=bindparam("prev_hash"),
        pruned_rows=bindparam("pruned_rows"),
        pruned_at=bindparam("pruned_at"),
    )
)
_DELETE_BEFORE = prepared(delete(audit_t).where(audit_t.c.id < bindparam("first_id")))


def read_anchor(tx: Tx) -> Any:
    """The anchor row (first_id, prev_hash, pruned_rows, pruned_at), or None if nothing was ever pruned."""
    return tx.one(_ANCHOR)


def write_anchor(tx: Tx, *, first_id: int, prev_hash: bytes, pruned_rows: int, pruned_at: float) -> None:
    params = {"first_id": first_id, "prev_hash": prev_hash, "pruned_rows": pruned_rows, "pruned_at": pruned_at}
    if not tx.run(_UPDATE_ANCHOR, **params):
        tx.run(_INSERT_ANCHOR, **params)


def delete_before(tx: Tx, first_id: int) -> int:
    return tx.run(_DELETE_BEFORE, first_id=first_id)


def chain_head(tx: Tx) -> tuple[int, bytes]:
    """(id the next row gets, hash it must follow), read inside the caller's transaction.

    The last row when there is one; after everything was pruned, the anchor;
    on a new instance, id 1 after :data:`GENESIS`.
    """
    last = tx.one(_LAST)
    if last is not None:
        return int(last.id) + 1, bytes(last.hash)
    anchor = read_anchor(tx)
    if anchor is not None:
        return int(anchor.first_id), bytes(anchor.prev_hash)
    return 1, GENESIS


def insert_events(tx: Tx, events: Sequence[AuditEvent]) -> int:
    """Append ``events`` to the chain in a write transaction; return the id of the last one.

    The head is read inside the same transaction (a write transaction on
    SQLite holds the database's write lock from its start), so appenders in
    other processes extend one linear chain.  Ids are given explicitly and
    are part of the hash: on a database without such a lock, two appenders
    reading the same head collide on the primary key and one retries.
    """
    next_id, prev = chain_head(tx)
    rows = []
    for event in events:
        digest = hashlib.sha256(prev + encode_event(next_id, event)).digest()
        rows.append(dict(zip(FIELDS, (*event_values(next_id, event), prev, digest), strict=True)))
        prev = digest
        next_id += 1
    tx.run_many(_INSERT, rows)
    return next_id - 1


def append(db: Database, events: Sequence[AuditEvent]) -> int:
    """Append ``events`` now, in one durable transaction of the caller's thread; return the last id.

    For short-lived processes (the CLI) and the writer thread of
    :class:`~server.audit.AuditLog`; request threads use ``AuditLog.record``.
    """
    if not events:
        raise ValueError("nothing to append")
    with db.write() as tx:
        return insert_events(tx, events)
