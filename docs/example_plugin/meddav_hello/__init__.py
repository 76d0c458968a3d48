"""MedDAV's example plugin (docs/plugins.md): counts the files written, per organisation.

It shows the shape of a plugin: a configuration schema, start-up, one event
handler that ignores the events it does not know, and nothing that touches
the database or the blob store.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from server.events import Event, FileWritten
from server.hooks import ConfigOption, hookimpl

#: Files written per organisation since start (what a real plugin would send somewhere).
written: Counter[int] = Counter()


def _greeting(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError('must be a non-empty string, e.g. "Bonjour"')
    return value.strip()


@hookimpl
def meddav_config_schema() -> list[ConfigOption]:
    return [ConfigOption("greeting", "Bonjour", "What the plugin says at start.", _greeting)]


@hookimpl
def meddav_startup(plugin: Any) -> None:
    plugin.greeted = f"{plugin.config['greeting']}, MedDAV"


@hookimpl
def meddav_event(event: Event, plugin: Any) -> None:
    if isinstance(event, FileWritten):
        written[event.org_id] += 1
