"""``/plugins/ehr_bridge/``: the synchronisation status page, for the admins of the feeding organisations.

It shows, for each EHR, the feeds of the organisations the signed-in user
administers (every feed, for an instance admin): the folders sent, the
counts, the last successful send, the open configuration problems, the
errors and the documents not sent of those feeds, and why (by document
number, never by name).  The reconciliations' runs and the job queue span
every organisation: instance admins only.  Anyone who administers none of
the feeds' organisations gets 403, audited as ``denied``.  The page reads the bridge's state and the job queue;
it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, render_template

from plugins.ehr_bridge.bridge import NIGHTLY, RECENT, Bridge
from plugins.ehr_bridge.config import Feed
from plugins.ehr_bridge.texts import page_texts, reason_text
from server import policy
from server.errors import NotFound, PolicyDenied
from server.policy import Action, Organisation
from webui import i18n, sessions
from webui.sessions import login_required
from webui.views.admin import audit_admin, principal_of

__all__ = ["status_blueprint"]


def status_blueprint(bridge_of: Callable[[], Bridge]) -> Blueprint:
    """The status page's blueprint (a new one per app: each instance's pages reach their own bridge)."""
    blueprint = Blueprint("ehr_bridge", __name__, template_folder="templates")

    @blueprint.get("/")
    @login_required()
    def status() -> tuple[str, int]:
        session = sessions.current()
        assert session is not None
        user = session.user
        principal = principal_of(user)
        bridge = bridge_of()
        everything = policy.allows(principal, policy.INSTANCE, Action.ADMINISTER)
        administered: dict[int | None, bool] = {}

        def visible(feed: Feed) -> bool:
            """An instance admin sees every feed; an org admin, those of the organisations they administer."""
            if everything:
                return True
            org = _organisation(bridge, feed)
            if org not in administered:
                administered[org] = org is not None and policy.allows(principal, Organisation(org), Action.ADMINISTER)
            return administered[org]

        shown = [
            (endpoint, [feed for feed in endpoint.feeds if visible(feed)]) for endpoint in bridge.endpoints.values()
        ]
        shown = [(endpoint, feeds) for endpoint, feeds in shown if feeds]
        if not shown:
            audit_admin("plugin.ehr_bridge.view", user.org_id, outcome="denied", status=403)
            abort(403)
        statuses = bridge.status()
        locale = i18n.current()
        endpoints: list[dict[str, Any]] = []
        for endpoint, feeds in shown:
            status = statuses[endpoint.name]
            labels = {feed.label for feed in feeds}
            # What another organisation's feeds did stays with its admins: their errors and documents.
            errors = [error for error in status["errors"] if everything or error.get("feed") in labels]
            skipped = [entry for entry in status["skipped"] if everything or entry.get("feed") in labels]
            endpoints.append(
                {
                    "endpoint": endpoint,
                    "host": urlsplit(endpoint.url).netloc,
                    "feeds": [(feed, bridge.feed_folder(feed) is not None) for feed in feeds],
                    "status": status,
                    "errors": errors,
                    "skipped": [(entry, reason_text(entry["reason"], locale)) for entry in skipped],
                }
            )
        # When the reconciliations ran and will run, for all; what they found, and the job queue, span every
        # EHR and organisation: for instance admins only.
        periodic = {job.name: job for job in bridge.plugin.periodic()}
        syncs = [
            (name, periodic.get(job), bridge.plugin.state_get(f"sync:{name}"))
            for name, job in (("recent", RECENT), ("nightly", NIGHTLY))
        ]
        return (
            render_template(
                "ehr_bridge/status.html",
                t=page_texts(locale),
                endpoints=endpoints,
                syncs=syncs,
                everything=everything,
                jobs=bridge.plugin.job_counts() if everything else None,
            ),
            200,
        )

    return blueprint


def _organisation(bridge: Bridge, feed: Feed) -> int | None:
    """The organisation a feed belongs to: its folder's, else its user's."""
    folder = bridge.feed_folder(feed)
    if folder is not None:
        return folder.org_id
    try:
        return bridge.plugin.user(feed.username).org_id
    except (NotFound, PolicyDenied):
        return None
