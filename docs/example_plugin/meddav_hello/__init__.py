"""MedDAV's example plugin (docs/plugins.md): counts the files written, per organisation.

It shows the shape of a plugin: a configuration schema, start-up, one event
handler that ignores the events it does not know and is idempotent (an
event may come twice), and nothing that touches the database or the blob
store.  Its tests (``tests/test_hello.py``) run it in a real MedDAV.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from server.events import Event, FileWritten
from server.hooks import ConfigOption, hookimpl

logger = logging.getLogger(__name__)

#: Files written per organisation since start (what a real plugin would send somewhere).
written: Counter[int] = Counter()
#: The versions already counted: events are delivered at least once.
_counted: set[int] = set()


def _greeting(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError('must be a non-empty string, e.g. "Bonjour"')
    return value.strip()


@hookimpl
def meddav_config_schema() -> list[ConfigOption]:
    return [ConfigOption("greeting", "Bonjour", "What the plugin says at start.", _greeting)]


@hookimpl
def meddav_startup(plugin: Any) -> None:
    written.clear()
    _counted.clear()
    plugin.greeted = f"{plugin.config['greeting']}, MedDAV"
    logger.info(plugin.greeted)


@hookimpl
def meddav_event(event: Event, plugin: Any) -> None:
    if isinstance(event, FileWritten) and event.version_id not in _counted:
        _counted.add(event.version_id)
        written[event.org_id] += 1
        # Ids and counts only: never a file name (events carry none) nor any content.
        logger.info("organisation %d: %d files written", event.org_id, written[event.org_id])
