"""``/ui/admin/jobs``: the instance's background jobs, their dead letters, and the periodic jobs.

- ``GET /ui/admin/jobs``: the number of jobs in each state; the dead jobs
  (id, kind, key, attempts, last error, when they died), the most recently
  dead first, at most :data:`DEAD_ROWS` of them, optionally of one kind
  (``?kind=``); the periodic jobs (name, kind, schedule, next and last run).
- ``POST /ui/admin/jobs/<id>/retry``: one dead job runs again (due now,
  attempts reset), as ``meddav jobs retry <id>``.  A job that is not dead
  is left as it is, and the page says so.
- ``POST /ui/admin/jobs/retry-dead``: every dead job (of the ``kind`` of the
  form, when given) runs again, as ``meddav jobs retry --all-dead``.

**Who may.**  The instance is the subject (:data:`server.policy.INSTANCE`):
every page and POST asks the policy whether the signed-in user may
``ADMINISTER`` it, which only instance admins may; anyone else gets 403,
audited as ``denied``.  Retries are audited (``admin.job.retry`` with the
job id as ``target_id``; ``admin.job.retry_dead`` with ``count=N``), in the
organisation of the admin who acted (the rows show on its audit page).

Payloads are never shown: they are sealed and may hold names.  Kinds, keys
and errors are stored in clear and hold ids only (``docs/jobs.md``).
"""

from __future__ import annotations

from babel import Locale
from babel.units import format_unit
from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from server import policy
from server.accounts import UserInfo
from server.jobs import DEAD, DONE, PENDING, RUNNING, STATES, JobInfo, JobQueue, PeriodicInfo
from server.policy import Action
from webui import i18n, sessions
from webui.context import instance
from webui.sessions import login_required
from webui.views.admin import audit_admin, principal_of

__all__ = ["DEAD_ROWS", "blueprint", "can_administer_instance", "count_name", "schedule_text", "state_name"]

blueprint = Blueprint("jobs", __name__, url_prefix="/ui/admin/jobs")

ResponseValue = str | tuple[str, int] | BaseResponse

#: Dead jobs shown at most (the newest); filter by kind to see others.
DEAD_ROWS = 200
_KIND_MAX = 100
_ID_MAX = 2**63 - 1  # a job id is a signed 64-bit integer: beyond, 404
_UNITS = ((86400, "duration-day"), (3600, "duration-hour"), (60, "duration-minute"), (1, "duration-second"))


def can_administer_instance() -> bool:
    """Whether the signed-in user administers the instance (its jobs): the admin menu's link."""
    session = sessions.current()
    if session is None:
        return False
    return policy.allows(principal_of(session.user), policy.INSTANCE, Action.ADMINISTER)


@blueprint.app_context_processor
def _template_globals() -> dict[str, object]:
    return {"can_administer_instance": can_administer_instance}


def _instance_admin(action: str, *, target_id: int | None = None) -> UserInfo:
    """The signed-in user, once the policy lets them administer the instance (else 403, audited)."""
    session = sessions.current()
    assert session is not None
    user = session.user
    if not policy.allows(principal_of(user), policy.INSTANCE, Action.ADMINISTER):
        audit_admin(action, user.org_id, outcome="denied", status=403, target_id=target_id)
        abort(403)
    return user


def _queue() -> JobQueue:
    return instance().jobs


def state_name(state: str) -> str:
    """A job's state in words of the page's language, as said of one job ("it is waiting")."""
    names = {
        PENDING: lambda: _("waiting"),
        RUNNING: lambda: _("running"),
        DONE: lambda: _("done"),
        DEAD: lambda: _("dead"),
    }
    return str(names[state]()) if state in names else state


def count_name(state: str) -> str:
    """The heading of the number of jobs in a state."""
    names = {
        PENDING: lambda: _("Waiting"),
        RUNNING: lambda: _("Running"),
        DONE: lambda: _("Done"),
        DEAD: lambda: _("Dead"),
    }
    return str(names[state]()) if state in names else state


def schedule_text(job: PeriodicInfo) -> str:
    """When a periodic job runs, in words: "Every 6 hours", "Every day at 03:30 UTC"."""
    if job.daily_at is not None:
        return str(_("Every day at %(time)s UTC", time=job.daily_at))
    seconds = job.interval_seconds or 0
    for size, unit in _UNITS:
        if seconds >= size and seconds % size == 0:
            interval = format_unit(seconds // size, unit, length="long", locale=Locale.parse(i18n.current()))
            return str(_("Every %(interval)s", interval=interval))
    return "—"


def _kind_arg(value: str | None) -> str:
    """A kind typed in the filter or a form: printable, at most 100 characters; "" when none or not one."""
    kind = (value or "").strip()
    return kind if kind and len(kind) <= _KIND_MAX and kind.isprintable() else ""


def _notice() -> str | None:
    notice = request.args.get("notice", "")
    if notice == "retried":
        job = request.args.get("job", "")
        return str(_("Job %(id)s will run again.", id=job)) if job.isdigit() else None
    if notice == "retried_all":
        count = request.args.get("count", "")
        if not count.isdigit():
            return None
        if int(count) == 0:
            return str(_("There was no dead job to retry."))
        if int(count) == 1:
            return str(_("One dead job will run again."))
        # No ngettext: both languages say 0 and 1 apart, and the catalogue test reads singular strings only.
        return str(_("%(count)s dead jobs will run again.", count=count))
    return None


def _dead_jobs(queue: JobQueue, kind: str) -> list[JobInfo]:
    """The dead jobs (of ``kind``), the most recently dead first."""
    jobs = queue.list(state=DEAD, kind=kind or None, limit=DEAD_ROWS)
    return sorted(jobs, key=lambda job: (job.updated_at, job.id), reverse=True)


def _page(status: int = 200, *, kind: str = "", error: str | None = None) -> tuple[str, int]:
    queue = _queue()
    counts = queue.counts()
    dead = _dead_jobs(queue, kind)
    # The kinds to choose from in the filter: those of the dead jobs (all of them, when one kind is shown).
    kinds = sorted({job.kind for job in (_dead_jobs(queue, "") if kind else dead)} | ({kind} if kind else set()))
    return (
        render_template(
            "admin/jobs.html",
            counts=[(state, count_name(state), counts[state]) for state in STATES],
            dead=dead,
            dead_rows=DEAD_ROWS,
            kind=kind,
            kinds=kinds,
            periodic=[(job, schedule_text(job)) for job in queue.periodic()],
            notice=None if error else _notice(),
            error=error,
        ),
        status,
    )


@blueprint.get("")
@login_required()
def page() -> ResponseValue:
    _instance_admin("admin.jobs.view")
    return _page(kind=_kind_arg(request.args.get("kind")))


@blueprint.post(f"/<int(max={_ID_MAX}):job_id>/retry")
@login_required()
def retry(job_id: int) -> ResponseValue:
    user = _instance_admin("admin.job.retry", target_id=job_id)
    kind = _kind_arg(request.form.get("kind"))
    queue = _queue()
    if queue.retry(job_id):
        audit_admin("admin.job.retry", user.org_id, target_id=job_id)
        return redirect(url_for("jobs.page", kind=kind or None, notice="retried", job=job_id), 303)
    job = queue.get(job_id)
    if job is None:
        audit_admin("admin.job.retry", user.org_id, outcome="failed", status=404, target_id=job_id)
        return _page(404, kind=kind, error=_("There is no job %(id)s: nothing was changed.", id=job_id))
    audit_admin("admin.job.retry", user.org_id, outcome="failed", status=409, target_id=job_id, detail=job.state)
    error = _(
        "Job %(id)s is not dead (it is %(state)s): only a dead job can be retried. Nothing was changed.",
        id=job_id,
        state=state_name(job.state),
    )
    return _page(409, kind=kind, error=error)


@blueprint.post("/retry-dead")
@login_required()
def retry_dead() -> ResponseValue:
    user = _instance_admin("admin.job.retry_dead")
    kind = _kind_arg(request.form.get("kind"))
    count = _queue().retry_dead(kind or None)
    audit_admin("admin.job.retry_dead", user.org_id, detail=f"count={count}" + (f" kind={kind}" if kind else ""))
    return redirect(url_for("jobs.page", kind=kind or None, notice="retried_all", count=count), 303)
