"""``/ui/admin/<org>/audit``: an organisation's audit log, newest first, filtered, and its CSV export.

Rows are those of ``audit_log`` whose ``org_id`` is the organisation's
(requests and actions of its members, and admin actions on it).  Filters,
all optional and combined: a date range (whole days, Paris time), a member,
the beginning of the action ("admin.", "file."), the outcome.  Pages hold
:data:`PAGE_ROWS` rows and are found by id (keyset: ``?before=<id>`` for
older rows, ``?after=<id>`` for newer ones), so a page costs the same deep in
the log as at its top, and rows appended meanwhile do not shift it.

Nothing shown is health data: node ids, never file names (the log holds
none, and the page resolves none), as in ``meddav audit export`` without
``--names``.  ``/ui/admin/<org>/audit.csv`` exports the filtered rows, in
chain order, with the columns of that command (hashes included, so each
row can be checked); the export itself is audited (``audit.export``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from babel.dates import get_timezone
from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _  # type: ignore[import-untyped]
from sqlalchemy import ColumnElement, select

from server.audit import OUTCOMES, export_columns
from server.db import Database
from server.db.models import audit_t
from webui import i18n
from webui.context import instance
from webui.sessions import login_required
from webui.views.admin import administered_organisation, audit_admin

__all__ = ["PAGE_ROWS", "AuditFilter", "blueprint"]

blueprint = Blueprint("audit", __name__, url_prefix="/ui/admin")

#: Rows on a page.
PAGE_ROWS = 50
_EXPORT_BATCH = 1000
_ACTION_PREFIX = re.compile(r"^[a-z0-9._-]{1,40}$")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_COLUMNS = (
    audit_t.c.id,
    audit_t.c.at,
    audit_t.c.org_id,
    audit_t.c.user_id,
    audit_t.c.principal,
    audit_t.c.address,
    audit_t.c.surface,
    audit_t.c.action,
    audit_t.c.node_id,
    audit_t.c.target_id,
    audit_t.c.outcome,
    audit_t.c.status,
    audit_t.c.detail,
    audit_t.c.prev_hash,
    audit_t.c.hash,
)


def _day_start(day: dt.date) -> float:
    """Midnight of ``day`` in Paris, as a POSIX time."""
    return dt.datetime.combine(day, dt.time(), tzinfo=get_timezone(i18n.TIMEZONE)).timestamp()


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the form asks for; each field None (or empty) when not given."""

    day_from: dt.date | None = None
    day_to: dt.date | None = None
    user_id: int | None = None
    action: str = ""
    outcome: str = ""

    @classmethod
    def from_args(cls, args: Any) -> tuple[AuditFilter, list[str]]:
        """The filter of a query string, and what in it could not be understood (ignored)."""
        errors: list[str] = []

        def day(key: str) -> dt.date | None:
            value = str(args.get(key, "")).strip()
            if not value:
                return None
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                errors.append(_("A date is written as year-month-day, e.g. 2026-11-26."))
                return None

        user = str(args.get("user", "")).strip()
        action = str(args.get("action", "")).strip().lower()
        if action and not _ACTION_PREFIX.match(action):
            errors.append(_("An action is written with letters, digits and dots, e.g. admin. or file.read."))
            action = ""
        outcome = str(args.get("outcome", ""))
        return (
            cls(
                day_from=day("from"),
                day_to=day("to"),
                user_id=int(user) if user.isdigit() else None,
                action=action,
                outcome=outcome if outcome in OUTCOMES else "",
            ),
            errors,
        )

    def conditions(self, org_id: int) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [audit_t.c.org_id == org_id]
        if self.day_from is not None:
            where.append(audit_t.c.at >= _day_start(self.day_from))
        if self.day_to is not None:
            where.append(audit_t.c.at < _day_start(self.day_to + dt.timedelta(days=1)))
        if self.user_id is not None:
            where.append(audit_t.c.user_id == self.user_id)
        if self.action:
            where.append(audit_t.c.action.startswith(self.action, autoescape=True))
        if self.outcome:
            where.append(audit_t.c.outcome == self.outcome)
        return where

    def args(self) -> dict[str, str]:
        """The query string of this filter (for the links of the page and the export)."""
        values = {
            "from": self.day_from.isoformat() if self.day_from else "",
            "to": self.day_to.isoformat() if self.day_to else "",
            "user": str(self.user_id) if self.user_id is not None else "",
            "action": self.action,
            "outcome": self.outcome,
        }
        return {key: value for key, value in values.items() if value}

    def describe(self) -> str:
        """The filter as a short technical note for the audit log (no names: ids and codes only)."""
        return " ".join(f"{key}={value}" for key, value in self.args().items()) or "all"


def _page_rows(db: Database, where: list[ColumnElement[bool]], *, before: int | None, after: int | None) -> Any:
    """One more row than a page, newest first, older than ``before`` or newer than ``after``."""
    query = select(*_COLUMNS).where(*where)
    if after is not None:
        with db.read() as c:
            rows = c.all(query.where(audit_t.c.id > after).order_by(audit_t.c.id.asc()).limit(PAGE_ROWS + 1))
        return list(reversed(rows))
    if before is not None:
        query = query.where(audit_t.c.id < before)
    with db.read() as c:
        return c.all(query.order_by(audit_t.c.id.desc()).limit(PAGE_ROWS + 1))


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else None


@blueprint.get("/<int:org_id>/audit")
@login_required()
def page(org_id: int) -> str:
    org = administered_organisation(org_id)
    inst = instance()
    inst.audit.flush(timeout=2)  # the actions just done are on the page
    chosen, errors = AuditFilter.from_args(request.args)
    before, after = _int_arg("before"), _int_arg("after")
    rows = _page_rows(inst.db, chosen.conditions(org.id), before=before, after=after)
    if after is not None:
        newer = len(rows) > PAGE_ROWS
        rows = rows[-PAGE_ROWS:] if newer else rows
        older = bool(rows)
    else:
        older = len(rows) > PAGE_ROWS
        rows = rows[:PAGE_ROWS]
        newer = before is not None
    return render_template(
        "admin/audit.html",
        org=org,
        rows=rows,
        members=inst.accounts.list(org.id),
        filter=chosen,
        filter_args=chosen.args(),
        outcomes=sorted(OUTCOMES),
        older_than=rows[-1].id if older and rows else None,
        newer_than=rows[0].id if newer and rows else None,
        error=" ".join(errors) or None,
    )


def _cell(value: Any) -> Any:
    """A CSV cell: empty for NULL; text a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and value != "-":
        return "'" + value
    return value


def _csv_lines(db: Database, where: list[ColumnElement[bool]]) -> Iterator[str]:
    """The header, then the rows in chain order, read in batches (each its own short read)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(export_columns(names=False))
    last = 0
    while True:
        with db.read() as c:
            rows = c.all(
                select(*_COLUMNS).where(*where, audit_t.c.id > last).order_by(audit_t.c.id).limit(_EXPORT_BATCH)
            )
        for row in rows:
            iso = dt.datetime.fromtimestamp(row.at, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            values = (row.id, iso, *tuple(row)[1:])
            writer.writerow([_cell(value) for value in values])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(rows) < _EXPORT_BATCH:
            return
        last = rows[-1].id


@blueprint.get("/<int:org_id>/audit.csv")
@login_required()
def export(org_id: int) -> Response:
    org = administered_organisation(org_id)
    inst = instance()
    inst.audit.flush(timeout=2)
    chosen, _errors = AuditFilter.from_args(request.args)
    audit_admin("audit.export", org.id, status=200, detail=chosen.describe())
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Response(
        _csv_lines(inst.db, chosen.conditions(org.id)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="meddav-audit-org{org.id}-{stamp}.csv"'},
    )
