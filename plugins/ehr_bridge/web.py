"""``/plugins/ehr_bridge/``: the synchronisation status page, for the admins of the feeding organisations.

It shows, for each EHR whose feeds belong to an organisation the signed-in
user administers (every EHR, for an instance admin): the folders sent, the
counts, the last successful send, the open configuration problems, the last
errors, the documents not sent and why (by document number, never by name),
and the last and next runs of the reconciliations.  Anyone else gets 403,
audited as ``denied``.  The page reads the bridge's state and the job queue;
it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, render_template

from plugins.ehr_bridge.bridge import NIGHTLY, RECENT, Bridge
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
        shown = [
            endpoint
            for endpoint in bridge.endpoints.values()
            if everything
            or any(
                (org := _organisation(bridge, feed)) is not None
                and policy.allows(principal, Organisation(org), Action.ADMINISTER)
                for feed in endpoint.feeds
            )
        ]
        if not shown:
            audit_admin("plugin.ehr_bridge.view", user.org_id, outcome="denied", status=403)
            abort(403)
        statuses = bridge.status()
        periodic = {job.name: job for job in bridge.plugin.periodic()}
        syncs = [
            (name, periodic.get(job), bridge.plugin.state_get(f"sync:{name}"))
            for name, job in (("recent", RECENT), ("nightly", NIGHTLY))
        ]
        locale = i18n.current()
        endpoints: list[dict[str, Any]] = []
        for endpoint in shown:
            status = statuses[endpoint.name]
            endpoints.append(
                {
                    "endpoint": endpoint,
                    "host": urlsplit(endpoint.url).netloc,
                    "feeds": [(feed, bridge.feed_folder(feed) is not None) for feed in endpoint.feeds],
                    "status": status,
                    "skipped": [(entry, reason_text(entry["reason"], locale)) for entry in status["skipped"]],
                }
            )
        return (
            render_template(
                "ehr_bridge/status.html",
                t=page_texts(locale),
                endpoints=endpoints,
                syncs=syncs,
                jobs=bridge.plugin.job_counts(),
            ),
            200,
        )

    return blueprint


def _organisation(bridge: Bridge, feed: Any) -> int | None:
    """The organisation a feed belongs to: its folder's, else its user's."""
    folder = bridge.feed_folder(feed)
    if folder is not None:
        return folder.org_id
    try:
        return bridge.plugin.user(feed.username).org_id
    except (NotFound, PolicyDenied):
        return None
