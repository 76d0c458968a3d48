"""The EHR bridge: documents written in mapped folders reach the clinic's EHR (FHIR R4), exactly once.

Enable it with ``[plugins] enabled = ["ehr_bridge"]`` and a
``[plugins.ehr_bridge]`` table (:mod:`.config`; ``docs/ehr_bridge.md`` is
the operator's guide).  The hooks below only wire the plugin to the core;
the work is in :mod:`.bridge`, the FHIR resource in :mod:`.fhir`, the HTTP
side in :mod:`.client`, the status page in :mod:`.web`.

The path of a document: the user's PUT commits the file and, in the same
transaction, an event job (the core's outbox); that job gives the event to
:meth:`.Bridge.on_event`, which sends the version by conditional create when
the file is in a feed, and raises to have the delivery retried when the EHR
fails.  Nothing of this happens inside the user's request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plugins.ehr_bridge.bridge import NIGHTLY, NIGHTLY_AT, RECENT, RECENT_EVERY, SEND, Bridge
from plugins.ehr_bridge.config import options
from server.events import Event
from server.hooks import ConfigOption, PeriodicJob, hookimpl
from server.jobs import JobContext
from server.plugins import PluginFacade

__all__ = ["bridge_of"]

#: The bridge of each started facade (one per instance opened in this process).
_bridges: dict[int, Bridge] = {}


def bridge_of(plugin: PluginFacade) -> Bridge:
    """The bridge started for this facade (by :func:`meddav_startup`)."""
    bridge = _bridges.get(id(plugin))
    if bridge is None or bridge.plugin is not plugin:
        raise RuntimeError("the EHR bridge is used before meddav_startup")
    return bridge


@hookimpl
def meddav_config_schema() -> Sequence[ConfigOption]:
    return options()


@hookimpl
def meddav_startup(plugin: PluginFacade) -> None:
    _bridges[id(plugin)] = Bridge(plugin)


@hookimpl
def meddav_shutdown(plugin: PluginFacade) -> None:
    bridge = _bridges.pop(id(plugin), None)
    if bridge is not None:
        bridge.close()


@hookimpl
def meddav_event(event: Event, plugin: PluginFacade) -> None:
    bridge_of(plugin).on_event(event)


@hookimpl
def meddav_job_handlers(plugin: PluginFacade) -> Mapping[str, Callable[[JobContext], None]]:
    return {
        SEND: lambda ctx: bridge_of(plugin).send(ctx),
        RECENT: lambda ctx: bridge_of(plugin).reconcile(ctx, full=False),
        NIGHTLY: lambda ctx: bridge_of(plugin).reconcile(ctx, full=True),
    }


@hookimpl
def meddav_periodic_jobs(plugin: PluginFacade) -> Sequence[PeriodicJob]:
    return [
        PeriodicJob(RECENT, RECENT, every_seconds=RECENT_EVERY),
        PeriodicJob(NIGHTLY, NIGHTLY, daily_at=NIGHTLY_AT),
    ]


@hookimpl
def meddav_web_blueprint(plugin: PluginFacade) -> Any:
    from plugins.ehr_bridge.web import status_blueprint

    return status_blueprint(lambda: bridge_of(plugin))
