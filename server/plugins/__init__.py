"""Plugins: finding and configuring them (:mod:`._loader`), and what they may do (:mod:`._facade`).

The contract a plugin implements is :mod:`server.hooks`; the events it
receives are :mod:`server.events`.  ``docs/plugins.md`` is the author's guide.
"""

from __future__ import annotations

from server.plugins._facade import NOTIFY_JOB, NodeInfo, PluginFacade, UserRef, mail_context
from server.plugins._loader import CORE_KEYS, InstalledPlugin, Plugins, installed_plugins, load_plugins

__all__ = [
    "CORE_KEYS",
    "NOTIFY_JOB",
    "InstalledPlugin",
    "NodeInfo",
    "PluginFacade",
    "Plugins",
    "UserRef",
    "installed_plugins",
    "load_plugins",
    "mail_context",
]
