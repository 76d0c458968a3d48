"""The audit log: the chain, its verification, the writer thread, export, pruning, the commands.

Every test runs on a real instance (SQLite database made by ``meddav init``);
tampering is done with SQL, as an attacker with database access would.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import bindparam, delete, func, insert, select, update

import server.audit
from server.audit import (
    GENESIS,
    AuditChainBroken,
    AuditEvent,
    AuditLog,
    AuditOverflow,
    Checkpoint,
    append,
    canonical,
    export,
    prune,
    row_hash,
    verify,
)
from server.audit._chain import FIELDS, HASH_FIELDS
from server.audit._event import ACTION_MAX, ADDRESS_MAX, DETAIL_MAX, OUTCOME_MAX, PRINCIPAL_MAX, SURFACE_MAX
from server.audit.commands import add_commands, parse_time
from server.config import load_settings
from server.db import Database
from server.db.models import audit_anchor_t, audit_t
from server.instance import Instance, open_instance
from server.testing import TestInstance

DAY = 86400.0
T0 = 1_790_000_000.0  # 2026-09-21, a fixed clock for the tests


def event(i: int = 0, **kw: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "at": T0 + i,
        "org_id": 1,
        "user_id": 1,
        "principal": "alice",
        "address": "192.0.2.7",
        "surface": "dav",
        "action": "file.read",
        "node_id": 100 + i,
        "outcome": "ok",
        "status": 200,
    }
    values.update(kw)
    return AuditEvent(**values)


def rows(db: Database) -> list[Any]:
    with db.read() as tx:
        return tx.all(select(*(audit_t.c[name] for name in FIELDS)).order_by(audit_t.c.id))


def tamper(db: Database, stmt: Any) -> None:
    with db.write() as tx:
        tx.run(stmt)


def bound(values: dict[str, Any]) -> dict[str, Any]:
    """Placeholders for ``values`` (Tx runs inline NULLs only as parameters)."""
    return {name: bindparam(name) for name in values}


def rehash(db: Database, row_id: int, **changes: Any) -> None:
    """Change a row and recompute its own hash, as an attacker who knows the algorithm would."""
    row = next(r for r in rows(db) if r.id == row_id)._replace(**changes)
    digest = row_hash(row.prev_hash, row[: len(HASH_FIELDS)])
    tamper(db, update(audit_t).where(audit_t.c.id == row_id).values(**changes, hash=digest))


@pytest.fixture
def test_instance(make_test_instance: Callable[..., TestInstance]) -> TestInstance:
    return make_test_instance()


@pytest.fixture
def instance(test_instance: TestInstance) -> Iterator[Instance]:
    inst = open_instance(load_settings(test_instance.config_path))
    yield inst
    inst.close()


@pytest.fixture
def db(instance: Instance) -> Database:
    return instance.db


@pytest.fixture
def chain(db: Database) -> list[Any]:
    """Twenty rows, one per second from T0."""
    append(db, [event(i) for i in range(20)])
    return rows(db)


# -- the event ---------------------------------------------------------------------


def test_field_limits_match_the_columns() -> None:
    limits = {
        "principal": PRINCIPAL_MAX,
        "address": ADDRESS_MAX,
        "surface": SURFACE_MAX,
        "action": ACTION_MAX,
        "outcome": OUTCOME_MAX,
        "detail": DETAIL_MAX,
    }
    for name, limit in limits.items():
        assert getattr(audit_t.c[name].type, "length", None) == limit, name


def test_over_long_client_fields_are_truncated_not_refused(db: Database) -> None:
    e = event(principal="x" * 10_000, address="a" * 100, detail="d" * 1000)
    assert len(e.principal) == PRINCIPAL_MAX and e.principal.endswith("\u2026")
    assert len(e.address) == ADDRESS_MAX
    assert e.detail is not None and len(e.detail) == DETAIL_MAX
    append(db, [e])
    (row,) = rows(db)
    assert row.principal == e.principal and row.detail == e.detail
    assert verify(db).ok


def test_control_characters_and_lone_surrogates_are_escaped(db: Database) -> None:
    e = event(principal="bob\r\nadmin\x00\ud800", detail="a\tb")
    assert e.principal == "bob\\r\\nadmin\\x00\\ud800"
    assert e.detail == "a\\tb"
    append(db, [e])
    assert verify(db).ok


def test_empty_principal_becomes_a_dash() -> None:
    assert event(principal="", address="").principal == "-"


@pytest.mark.parametrize(
    "bad",
    [
        {"surface": "ftp"},
        {"outcome": "maybe"},
        {"action": "File.Read"},
        {"action": "a" * (ACTION_MAX + 1)},
        {"action": ""},
        {"status": 42},
        {"status": True},
        {"node_id": -1},
        {"node_id": "7"},
        {"org_id": 2**63},
        {"at": float("nan")},
        {"detail": 5},
    ],
)
def test_fields_chosen_by_the_code_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="audit event"):
        event(**bad)


def test_integer_time_is_stored_as_float() -> None:
    assert isinstance(event(at=1_790_000_000).at, float)


# -- the chain ---------------------------------------------------------------------


def test_canonical_encoding_is_unambiguous() -> None:
    base = (1, T0, None, 2, "ab", "c", "dav", "file.read", None, None, "ok", 200, None)
    shifted = (1, T0, None, 2, "a", "bc", "dav", "file.read", None, None, "ok", 200, None)
    null_vs_empty = (1, T0, None, 2, "ab", "c", "dav", "file.read", None, None, "ok", 200, "")
    encodings = {canonical(v) for v in (base, shifted, null_vs_empty)}
    assert len(encodings) == 3
    assert canonical(base).startswith(b"meddav-audit-v1\x00")
    with pytest.raises(TypeError):
        canonical((1, T0, None, "2", "ab", "c", "dav", "file.read", None, None, "ok", 200, None))


def test_chain_of_rows_verifies(db: Database) -> None:
    log = AuditLog(db, batch_size=7)
    for i in range(100):
        log.record(event(i))
    assert log.flush(10)
    log.close()
    found = rows(db)
    assert [r.id for r in found] == list(range(1, 101))
    assert found[0].prev_hash == GENESIS
    for before, row in itertools.pairwise(found):
        assert row.prev_hash == before.hash
        assert row.hash == row_hash(row.prev_hash, row[: len(HASH_FIELDS)])
    report = verify(db, chunk=13)
    assert report.ok and report.rows_checked == 100
    assert report.head == Checkpoint(100, found[-1].hash)
    assert report.lines()[-3].startswith("head: 100:")


def test_empty_log_verifies(db: Database) -> None:
    report = verify(db)
    assert report.ok and report.rows_checked == 0 and report.head is None


def test_modified_row_is_named(db: Database, chain: list[Any]) -> None:
    tamper(db, update(audit_t).where(audit_t.c.id == 7).values(outcome="denied"))
    report = verify(db, chunk=4)
    assert not report.ok
    assert report.broken_id == 7
    assert report.reason is not None and "modified" in report.reason


def test_modified_row_with_recomputed_hash_breaks_the_next_link(db: Database, chain: list[Any]) -> None:
    rehash(db, 7, principal="mallory")
    report = verify(db)
    assert report.broken_id == 8
    assert report.reason is not None and "does not follow row 7" in report.reason


def test_row_changed_to_a_wrong_type_is_named(db: Database, chain: list[Any]) -> None:
    tamper(db, update(audit_t).where(audit_t.c.id == 3).values(node_id="103"))
    report = verify(db)
    assert report.broken_id == 3


def test_deleted_row_is_named(db: Database, chain: list[Any]) -> None:
    tamper(db, delete(audit_t).where(audit_t.c.id == 12))
    report = verify(db)
    assert report.broken_id == 13
    assert report.reason is not None and "1 row(s) before it were deleted" in report.reason


def test_deleted_first_row_is_named(db: Database, chain: list[Any]) -> None:
    tamper(db, delete(audit_t).where(audit_t.c.id == 1))
    report = verify(db)
    assert report.broken_id == 2
    assert report.reason is not None and "first row" in report.reason


def test_inserted_row_with_a_well_formed_hash_is_detected(db: Database, chain: list[Any]) -> None:
    # Make room at id 10 (ids are hashed, so the shifted rows no longer match),
    # then insert a row that links correctly to row 9 and carries a correct hash.
    with db.write() as tx:
        for row_id in range(20, 9, -1):
            tx.run(update(audit_t).where(audit_t.c.id == row_id).values(id=row_id + 1))
        values = (10, T0 + 9.5, 1, 1, "mallory", "198.51.100.1", "dav", "file.read", 110, None, "ok", 200, None)
        prev = chain[8].hash
        params = dict(zip(FIELDS, (*values, prev, row_hash(prev, values)), strict=True))
        tx.run(insert(audit_t).values(bound(params)), **params)
    report = verify(db)
    assert report.broken_id == 11


def test_inserted_row_copying_a_link_is_named(db: Database, chain: list[Any]) -> None:
    # A row slipped into the gap left by a deleted one, reusing that row's hashes.
    original = chain[4]
    tamper(db, delete(audit_t).where(audit_t.c.id == 5))
    forged = original._replace(principal="mallory")._asdict()
    with db.write() as tx:
        tx.run(insert(audit_t).values(bound(forged)), **forged)
    report = verify(db)
    assert report.broken_id == 5
    assert report.reason is not None and "modified" in report.reason


def test_swapped_pair_is_named(db: Database, chain: list[Any]) -> None:
    a, b = chain[5], chain[6]
    content = [name for name in FIELDS if name != "id"]
    with db.write() as tx:
        for row, other in ((a, b), (b, a)):
            values = {n: getattr(other, n) for n in content}
            tx.run(update(audit_t).where(audit_t.c.id == row.id).values(bound(values)), **values)
    report = verify(db)
    assert report.broken_id == a.id


def test_expected_head_detects_rows_removed_from_the_end(db: Database, chain: list[Any]) -> None:
    head = verify(db).head
    assert head is not None
    append(db, [event(100)])
    assert verify(db, expect=head).ok
    tamper(db, delete(audit_t).where(audit_t.c.id >= 15))
    assert verify(db).ok  # the links alone cannot tell
    report = verify(db, expect=head)
    assert not report.ok and report.broken_id == head.row_id


def test_expected_head_detects_a_rewritten_chain(db: Database, chain: list[Any]) -> None:
    head = verify(db).head
    assert head is not None
    rehash(db, 20, detail="rewritten")
    assert verify(db).ok
    report = verify(db, expect=head)
    assert report.broken_id == 20


def test_checkpoint_round_trips() -> None:
    point = Checkpoint(42, bytes(range(32)))
    assert Checkpoint.parse(str(point)) == point
    with pytest.raises(ValueError):
        Checkpoint.parse("42:abc")


def test_verify_reports_progress_in_chunks(db: Database) -> None:
    append(db, [event(i) for i in range(25)])
    seen: list[tuple[int, int]] = []
    verify(db, chunk=10, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (25, 25)
    assert [done for done, _ in seen][:2] == [10, 20]


# -- the writer thread -------------------------------------------------------------


def test_concurrent_records_make_one_linear_chain(db: Database) -> None:
    log = AuditLog(db, batch_size=50)
    threads, per = 8, 250

    def work(t: int) -> None:
        for i in range(per):
            log.record(event(i, user_id=t, node_id=t * 1000 + i))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert log.flush(30)
    log.close()
    found = rows(db)
    assert [r.id for r in found] == list(range(1, threads * per + 1))
    assert sorted(r.node_id for r in found) == sorted(t * 1000 + i for t in range(threads) for i in range(per))
    for t in range(threads):  # each thread's events in the order it recorded them
        mine = [r.node_id for r in found if r.user_id == t]
        assert mine == sorted(mine)
    assert verify(db).ok


def test_two_writers_on_one_database_keep_one_chain(test_instance: TestInstance) -> None:
    """Two opened instances stand for the server and a CLI process appending at the same time."""
    settings = load_settings(test_instance.config_path)
    first, second = open_instance(settings), open_instance(settings)
    try:
        logs = [AuditLog(first.db, batch_size=20), AuditLog(second.db, batch_size=20)]

        def work(k: int) -> None:
            for i in range(300):
                logs[k % 2].record(event(i, user_id=k, node_id=k * 1000 + i))

        workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for log in logs:
            assert log.flush(30)
            log.close()
        found = rows(first.db)
        assert [r.id for r in found] == list(range(1, 1201))
        assert verify(first.db).ok
    finally:
        first.close()
        second.close()


def _hold_write_lock(db: Database) -> sqlite3.Connection:
    """Another process's writer: a plain SQLite connection holding the write lock."""
    path = db.engine.url.database
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_database_errors_are_logged_and_retried(
    make_test_instance: Callable[..., TestInstance], caplog: pytest.LogCaptureFixture
) -> None:
    inst = open_instance(load_settings(make_test_instance({"database": {"busy_timeout_ms": 100}}).config_path))
    try:
        log = AuditLog(inst.db, max_retry_delay=0.05)
        holder = _hold_write_lock(inst.db)
        with caplog.at_level(logging.ERROR, logger="server.audit"):
            for i in range(10):
                log.record(event(i))
            assert not log.flush(0.5)
        assert log.failures >= 1 and log.pending == 10
        assert any("retrying" in r.getMessage() for r in caplog.records)
        holder.rollback()
        holder.close()
        assert log.flush(10)
        log.close()
        assert len(rows(inst.db)) == 10
        assert verify(inst.db).ok
    finally:
        inst.close()


def test_full_queue_blocks_then_refuses_visibly(
    make_test_instance: Callable[..., TestInstance], caplog: pytest.LogCaptureFixture
) -> None:
    inst = open_instance(load_settings(make_test_instance({"database": {"busy_timeout_ms": 100}}).config_path))
    try:
        log = AuditLog(inst.db, max_queued=5, full_timeout=0.2, max_retry_delay=0.05)
        holder = _hold_write_lock(inst.db)
        for i in range(5):
            log.record(event(i))
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="server.audit"), pytest.raises(AuditOverflow):
            log.record(event(5, principal="carol"))
        assert time.monotonic() - started >= 0.2
        assert any("queue full" in r.getMessage() and "carol" in r.getMessage() for r in caplog.records)

        # A caller blocked on the full queue goes on once the database takes the batch.
        def release() -> None:
            holder.rollback()
            holder.close()

        released = threading.Timer(0.1, release)
        released.start()
        log.full_timeout = 10
        log.record(event(6))
        released.join()
        log.close()
        assert [r.node_id for r in rows(inst.db)] == [100, 101, 102, 103, 104, 106]
    finally:
        inst.close()


def test_record_after_close_is_written_at_once(db: Database) -> None:
    log = AuditLog(db)
    log.record(event(0))
    log.close()
    log.record(event(1))
    assert [r.node_id for r in rows(db)] == [100, 101]
    assert verify(db).ok


# -- pruning -----------------------------------------------------------------------


def test_prune_keeps_the_rest_verifiable(db: Database) -> None:
    append(db, [event(int(i * DAY)) for i in range(10)])  # one row a day
    deleted = prune(db, before=T0 + 4 * DAY, now=T0 + 20 * DAY)
    assert deleted == 4
    found = rows(db)
    assert [r.id for r in found] == list(range(5, 11))
    with db.read() as tx:
        anchor = tx.one(select(audit_anchor_t))
    assert (anchor.id, anchor.first_id, anchor.pruned_rows, anchor.pruned_at) == (1, 5, 4, T0 + 20 * DAY)
    report = verify(db)
    assert report.ok and report.pruned_rows == 4 and report.anchor_first_id == 5
    # Pruning again is cumulative, and appending goes on from the chain's head.
    assert prune(db, before=T0 + 6 * DAY) == 2
    append(db, [event(100)])
    report = verify(db)
    assert report.ok and report.pruned_rows == 6 and report.last_id == 11


def test_deleting_the_first_row_after_pruning_is_detected(db: Database) -> None:
    append(db, [event(int(i * DAY)) for i in range(10)])
    prune(db, before=T0 + 4 * DAY)
    tamper(db, delete(audit_t).where(audit_t.c.id == 5))
    report = verify(db)
    assert report.broken_id == 6
    assert report.reason is not None and "anchor" in report.reason


def test_prune_everything_then_append(db: Database) -> None:
    append(db, [event(i) for i in range(5)])
    assert prune(db, before=T0 + DAY) == 5
    assert rows(db) == []
    assert verify(db).ok
    append(db, [event(10)])
    (row,) = rows(db)
    assert row.id == 6
    assert verify(db).ok


def test_prune_never_opens_a_hole(db: Database) -> None:
    # Row 3 ended late: its time is before the cut, but a later one already is after.
    append(db, [event(0), event(10), event(5), event(20)])
    assert prune(db, before=T0 + 8) == 1
    assert [r.id for r in rows(db)] == [2, 3, 4]
    assert verify(db).ok


def test_prune_refuses_a_broken_part_and_deletes_nothing(db: Database, chain: list[Any]) -> None:
    tamper(db, update(audit_t).where(audit_t.c.id == 3).values(outcome="denied"))
    with pytest.raises(AuditChainBroken, match="row 3"):
        prune(db, before=T0 + 10)
    assert len(rows(db)) == 20


def test_prune_with_nothing_old_enough(db: Database, chain: list[Any]) -> None:
    assert prune(db, before=T0 - 1) == 0
    with db.read() as tx:
        assert tx.scalar(select(func.count()).select_from(audit_anchor_t)) == 0


# -- export ------------------------------------------------------------------------


@pytest.fixture
def mixed(db: Database) -> list[Any]:
    append(
        db,
        [
            event(0, org_id=1, node_id=7),
            event(10, org_id=2, node_id=8, detail="size=12"),
            event(20, org_id=1, node_id=None, action="auth.login", principal="=cmd|' /C calc'!A0"),
            event(30, org_id=None, user_id=None, node_id=9, outcome="denied", status=403),
        ],
    )
    return rows(db)


def test_export_jsonl_round_trips_the_rows(db: Database, mixed: list[Any]) -> None:
    out = io.StringIO()
    assert export(db, out, fmt="jsonl") == 4
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for row, line in zip(mixed, lines, strict=True):
        assert "node_name" not in line
        for name in FIELDS:
            expected = getattr(row, name)
            assert line[name] == (expected.hex() if isinstance(expected, bytes) else expected), name
        assert line["time"].endswith("Z")
        # A reviewer can recompute each row's hash from the export.
        values = [line[name] for name, _ in HASH_FIELDS]
        assert row_hash(bytes.fromhex(line["prev_hash"]), values).hex() == line["hash"]


def test_export_csv_round_trips_the_rows(db: Database, mixed: list[Any]) -> None:
    out = io.StringIO()
    assert export(db, out, fmt="csv") == 4
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(records) == 4
    for row, record in zip(mixed, records, strict=True):
        assert int(record["id"]) == row.id
        assert float(record["at"]) == row.at
        assert record["org_id"] == ("" if row.org_id is None else str(row.org_id))
        assert record["status"] == ("" if row.status is None else str(row.status))
        assert record["hash"] == row.hash.hex()
    assert records[1]["detail"] == "size=12"
    # What a spreadsheet would run as a formula is defused (the JSON lines export is exact).
    assert records[2]["principal"] == "'=cmd|' /C calc'!A0"
    assert records[0]["principal"] == "alice"


def test_export_filters_by_time_and_org(db: Database, mixed: list[Any]) -> None:
    def ids(**kw: Any) -> list[int]:
        out = io.StringIO()
        export(db, out, fmt="jsonl", **kw)
        return [json.loads(line)["id"] for line in out.getvalue().splitlines()]

    assert ids(since=T0 + 10, until=T0 + 30) == [2, 3]
    assert ids(since=T0 + 10) == [2, 3, 4]
    assert ids(until=T0 + 10) == [1]
    assert ids(since=T0 + 100) == []
    assert ids(org_id=1) == [1, 3]
    assert ids(org_id=1, since=T0 + 5) == [3]


def test_export_shows_names_only_when_given_a_resolver(db: Database, mixed: list[Any]) -> None:
    asked: list[int] = []

    def name_of(node_id: int) -> str | None:
        asked.append(node_id)
        return {7: "report.pdf", 8: "scan.png"}.get(node_id)

    out = io.StringIO()
    export(db, out, fmt="jsonl", name_of=name_of)
    names = [json.loads(line)["node_name"] for line in out.getvalue().splitlines()]
    assert names == ["report.pdf", "scan.png", None, None]
    assert sorted(asked) == [7, 8, 9]

    plain = io.StringIO()
    export(db, plain, fmt="csv")
    assert "node_name" not in plain.getvalue() and "report.pdf" not in plain.getvalue()
    named = io.StringIO()
    export(db, named, fmt="csv", name_of=name_of)
    assert next(csv.DictReader(io.StringIO(named.getvalue())))["node_name"] == "report.pdf"


def test_export_rejects_an_unknown_format(db: Database) -> None:
    with pytest.raises(ValueError, match="format"):
        export(db, io.StringIO(), fmt="xml")


# -- commands ----------------------------------------------------------------------


def run_cli(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="meddav")
    parser.add_argument("--config")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub, lambda args: open_instance(load_settings(args.config)))
    args = parser.parse_args(["--config", str(config), *argv])
    code: int = args.func(args)
    return code


def test_cli_verify(test_instance: TestInstance, capsys: pytest.CaptureFixture[str]) -> None:
    config = test_instance.config_path
    inst = open_instance(load_settings(config))
    try:
        append(inst.db, [event(i) for i in range(5)])
    finally:
        inst.close()
    assert run_cli(config, "audit", "verify") == 0
    out = capsys.readouterr().out
    assert "audit chain intact" in out
    head = next(line.split()[1] for line in out.splitlines() if line.startswith("head: "))
    assert run_cli(config, "audit", "verify", "--expect", head) == 0

    inst = open_instance(load_settings(config))
    try:
        tamper(inst.db, delete(audit_t).where(audit_t.c.id == 5))
    finally:
        inst.close()
    assert run_cli(config, "audit", "verify") == 0
    capsys.readouterr()
    assert run_cli(config, "audit", "verify", "--expect", head) == 1
    assert "BROKEN at row 5" in capsys.readouterr().out


def test_cli_export_and_its_own_audit_row(
    test_instance: TestInstance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = test_instance.config_path
    inst = open_instance(load_settings(config))
    try:
        since = parse_time("2026-11-01")
        append(inst.db, [event(0, at=since - 1), event(1, at=since), event(2, at=since + DAY)])
    finally:
        inst.close()
    target = tmp_path / "export.jsonl"
    code = run_cli(
        config,
        *("audit", "export", "--since", "2026-11-01", "--until", "2026-11-02T00:00:00Z"),
        *("--format", "jsonl", "--output", str(target)),
    )
    assert code == 0
    assert "exported 1 audit rows" in capsys.readouterr().out
    assert target.stat().st_mode & 0o077 == 0
    (line,) = target.read_text().splitlines()
    assert json.loads(line)["time"] == "2026-11-01T00:00:00.000000Z"

    assert run_cli(config, "audit", "export", "--format", "csv") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("id,time,at,") and "node_name" not in captured.out
    assert "exported 4 audit rows" in captured.err  # the 3 rows and the first export itself

    inst = open_instance(load_settings(config))
    try:
        last = rows(inst.db)[-1]
        assert (last.surface, last.action, last.address) == ("cli", "audit.export", "local")
        assert last.detail == "rows=4 format=csv names=no"
        assert verify(inst.db).ok
    finally:
        inst.close()


def test_cli_export_rejects_an_empty_period(test_instance: TestInstance, capsys: pytest.CaptureFixture[str]) -> None:
    config = test_instance.config_path
    assert run_cli(config, "audit", "export", "--since", "2026-11-02", "--until", "2026-11-01") == 2


def test_cli_prune_uses_the_retention(
    make_test_instance: Callable[..., TestInstance], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_test_instance({"audit": {"retention_days": 30}}).config_path
    now = time.time()
    inst = open_instance(load_settings(config))
    try:
        append(inst.db, [event(0, at=now - 40 * DAY), event(1, at=now - 31 * DAY), event(2, at=now - DAY)])
    finally:
        inst.close()
    assert run_cli(config, "audit", "prune") == 0
    assert "pruned 2 audit rows" in capsys.readouterr().out
    inst = open_instance(load_settings(config))
    try:
        found = rows(inst.db)
        assert [r.id for r in found] == [3, 4]
        assert (found[-1].action, found[-1].detail[:7]) == ("audit.prune", "rows=2 ")
        assert verify(inst.db).ok
    finally:
        inst.close()


def test_cli_prune_refuses_when_keeping_everything(
    make_test_instance: Callable[..., TestInstance], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_test_instance({"audit": {"retention_days": 0}}).config_path
    inst = open_instance(load_settings(config))
    try:
        append(inst.db, [event(0), event(1)])
    finally:
        inst.close()
    assert run_cli(config, "audit", "prune") == 2
    assert "retention_days = 0" in capsys.readouterr().err
    assert run_cli(config, "audit", "prune", "--before", "2030-01-01") == 0
    assert "pruned 2 audit rows" in capsys.readouterr().out


def test_cli_prune_of_a_broken_chain_fails(test_instance: TestInstance, capsys: pytest.CaptureFixture[str]) -> None:
    config = test_instance.config_path
    inst = open_instance(load_settings(config))
    try:
        append(inst.db, [event(0), event(1), event(2)])
        tamper(inst.db, update(audit_t).where(audit_t.c.id == 1).values(detail="x"))
    finally:
        inst.close()
    assert run_cli(config, "audit", "prune", "--before", "2030-01-01") == 1
    assert "row 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["verify", "export", "prune"])
def test_cli_help_explains(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tmp_path / "unused.toml", "audit", command, "--help")
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", 1_793_491_200.0),
        ("2026-11-01T01:00", 1_793_494_800.0),
        ("2026-11-01T01:00:00Z", 1_793_494_800.0),
        ("2026-11-01T02:00:00+01:00", 1_793_494_800.0),
    ],
)
def test_dates_are_utc_unless_they_say_otherwise(text: str, expected: float) -> None:
    assert parse_time(text) == expected


def test_bad_date_is_a_usage_error() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
        parse_time("yesterday")


def test_public_api_is_exactly_all() -> None:
    public = {name for name in dir(server.audit) if not name.startswith("_")} - {"annotations", "commands"}
    assert len(set(server.audit.__all__)) == len(server.audit.__all__)
    assert set(server.audit.__all__) == public


@given(
    row_id=st.integers(1, 2**62),
    org_id=st.one_of(st.none(), st.integers(0, 2**31)),
    principal=st.text(max_size=40),
    detail=st.one_of(st.none(), st.text(max_size=40)),
    status=st.one_of(st.none(), st.integers(100, 599)),
)
def test_the_writers_encoding_is_the_canonical_one(
    row_id: int, org_id: int | None, principal: str, detail: str | None, status: int | None
) -> None:
    from server.audit._chain import canonical, encode_event, event_values

    event = AuditEvent(
        org_id=org_id,
        principal=principal,
        surface="dav",
        action="file.read",
        outcome="ok",
        status=status,
        detail=detail,
    )
    assert encode_event(row_id, event) == canonical(event_values(row_id, event))
