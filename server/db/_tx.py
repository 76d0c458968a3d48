"""Short transactions on pooled DBAPI connections, running SQLAlchemy statements.

Statements are written with SQLAlchemy (portable, checked against the
models), compiled for the engine's dialect, then executed directly on the
DBAPI cursor.  Statements on the path of every request are wrapped once in
:func:`prepared`, so they are compiled once per process; the others compile
at each call.

Why not ``Connection.execute``: measured here, a transaction through a Core
``Connection`` costs ~54 µs and a prebuilt statement ~40 µs, against ~12 µs
and ~5 µs this way.  A small GET runs two transactions and four statements,
and SQLAlchemy's execution machinery had become its largest cost.

Limits of the approach, by design: parameters and results are plain DBAPI
values (integers, floats, strings, bytes; SQLite gives booleans back as 0/1),
no ORM objects, no type processors.  Administrative code that wants the ORM
uses ``Database.session()``.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, exc
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Select

__all__ = ["Prepared", "Tx", "prepared"]


class _Compiled:
    """One statement compiled for one dialect."""

    __slots__ = ("defaults", "names", "row", "sql")

    def __init__(self, stmt: ClauseElement, dialect: Dialect, *, render_lists: bool = False) -> None:
        kwargs = {"render_postcompile": True} if render_lists else {}
        compiled: SQLCompiler = stmt.compile(dialect=dialect, compile_kwargs=kwargs)  # type: ignore[assignment]
        self.sql = str(compiled)
        # Values bound inside the statement itself (``column == 5``, ``LIMIT 1``,
        # ``.values(x=None)``); placeholders made with bindparam() are required
        # and come from the caller.
        self.defaults: dict[str, Any] = {
            k: v for k, v in compiled.params.items() if k not in compiled.binds or not compiled.binds[k].required
        }
        # Positional paramstyles (SQLite's "?") need the parameters in order.
        self.names: tuple[str, ...] | None = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.row: Any = None
        if isinstance(stmt, Select):
            keys = [c.key or f"col{i}" for i, c in enumerate(stmt.selected_columns)]
            self.row = namedtuple("Row", keys, rename=True)  # type: ignore[misc]

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...] | Mapping[str, Any]:
        merged = {**self.defaults, **values} if self.defaults else values
        if self.names is None:
            return merged
        return tuple(merged[name] for name in self.names)


class Prepared:
    """A statement compiled once per dialect (wrap module-level statements in it)."""

    __slots__ = ("_compiled", "_lock", "stmt")

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = _Compiled(self.stmt, dialect)
            with self._lock:
                self._compiled[dialect.name] = found
        return found


def prepared(stmt: ClauseElement) -> Prepared:
    return Prepared(stmt)


Statement = Prepared | ClauseElement


class Tx:
    """One transaction: run statements, get named-tuple rows back.

    Obtained from ``Database.read()``, ``write()`` or ``grouped()``, which
    begin it and end it (commit or roll back).
    """

    __slots__ = ("_after", "_conn", "_dialect", "durable")

    def __init__(self, dbapi_connection: Any, dialect: Dialect, *, commits: bool = True) -> None:
        self._conn = dbapi_connection
        self._dialect = dialect
        self.durable = False
        # Run once the transaction committed; None: its commit is not ours to see (an ORM session's).
        self._after: list[Callable[[], None]] | None = [] if commits else None

    def after_commit(self, action: Callable[[], None]) -> None:
        """Call ``action`` once this transaction has committed (never if it rolls back); at once when the
        transaction is not one whose commit this object sees."""
        if self._after is None:
            action()
        else:
            self._after.append(action)

    def pending_actions(self) -> int:
        return len(self._after or ())

    def forget_actions(self, mark: int) -> None:
        """Drop what was registered after ``mark`` (a savepoint rolled back)."""
        if self._after is not None:
            del self._after[mark:]

    def committed(self) -> None:
        """Run what waited for the commit (the unit of work calls it)."""
        actions, self._after = self._after or [], []
        for action in actions:
            action()

    def require_durable(self) -> None:
        """This transaction must be on disk when it is acknowledged (see ``Database.grouped``)."""
        self.durable = True

    def _execute(self, stmt: Statement, params: Mapping[str, Any]) -> tuple[Any, _Compiled]:
        if isinstance(stmt, Prepared):
            compiled = stmt.compiled(self._dialect)
        else:
            # Built at call time (e.g. an IN list): compiled for this execution only.
            compiled = _Compiled(stmt, self._dialect, render_lists=True)
        values = compiled.params(params)
        cursor = self._conn.cursor()
        try:
            cursor.execute(compiled.sql, values)
        except BaseException as error:
            cursor.close()
            driver = self._dialect.loaded_dbapi
            if isinstance(error, driver.IntegrityError):
                # The driver's own class (sqlite3, psycopg) as SQLAlchemy's, as ORM code sees it: callers
                # catch one portable IntegrityError ("inserted meanwhile by another process"), whose message
                # leaves out the parameters: they may be keys, addresses or sealed values.
                raise exc.IntegrityError(compiled.sql, values, error, hide_parameters=True) from error
            raise
        return cursor, compiled

    def one(self, stmt: Statement, **params: Any) -> Any:
        """The first row (a named tuple), or None."""
        cursor, compiled = self._execute(stmt, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else compiled.row._make(row)

    def all(self, stmt: Statement, **params: Any) -> list[Any]:
        cursor, compiled = self._execute(stmt, params)
        try:
            make = compiled.row._make
            return [make(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def scalar(self, stmt: Statement, **params: Any) -> Any:
        cursor, _ = self._execute(stmt, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else row[0]

    def run_many(self, stmt: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute one prepared INSERT or UPDATE for many parameter sets (one driver call)."""
        compiled = stmt.compiled(self._dialect)
        cursor = self._conn.cursor()
        try:
            cursor.executemany(compiled.sql, [compiled.params(row) for row in rows])
        finally:
            cursor.close()

    def run(self, stmt: Statement, **params: Any) -> int:
        """Execute an INSERT, UPDATE or DELETE; return the number of rows touched."""
        cursor, _ = self._execute(stmt, params)
        try:
            count: int = cursor.rowcount
        finally:
            cursor.close()
        return count

    def insert(self, stmt: Statement, **params: Any) -> int:
        """Execute an ``INSERT ... RETURNING id``; return the new id."""
        new_id = self.scalar(stmt, **params)
        assert new_id is not None
        return int(new_id)
