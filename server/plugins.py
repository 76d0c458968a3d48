"""Finding, configuring and calling plugins (pluggy; the contract is :mod:`server.hooks`).

Plugins are discovered through the entry point group ``meddav``, bundled ones
(``plugins/``) included, and loaded only when named in ``[plugins] enabled``.
Each loaded plugin's table ``[plugins.<name>]`` is validated by the options it
declares (``meddav_config_schema``) at start, with the core configuration's
rules: every problem one line, naming the key, the value and the fix.

A failing hook never fails the caller: :meth:`Plugins.call_each` runs each
plugin's implementation on its own, logs and counts what raises, and goes on.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from server import hooks
from server.config import Settings, toml_value
from server.errors import ConfigError

__all__ = ["InstalledPlugin", "PluginFacade", "Plugins", "installed_plugins", "load_plugins"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstalledPlugin:
    """A plugin found through the entry points, loaded or not."""

    name: str
    distribution: str
    version: str
    entry_point: importlib.metadata.EntryPoint


def installed_plugins() -> list[InstalledPlugin]:
    """Every plugin installed in this Python environment (entry point group ``meddav``)."""
    found: dict[str, InstalledPlugin] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == hooks.PROJECT and ep.name not in found:
                found[ep.name] = InstalledPlugin(ep.name, dist.metadata["Name"] or "?", dist.version or "?", ep)
    return sorted(found.values(), key=lambda p: p.name)


@dataclass
class PluginFacade:
    """What a plugin receives: its name and validated configuration.

    The core's operations a plugin may use (read or write a file, enqueue a
    job, notify, look up a user), each checked by the policy with the
    plugin's own principal and audited, are added here as the features that
    need them land; a plugin never gets the database or the blob store.
    """

    name: str
    config: dict[str, Any] = field(default_factory=dict)


class Plugins:
    """The loaded plugins of an instance and the safe way to call them."""

    def __init__(self, manager: pluggy.PluginManager, facades: dict[str, PluginFacade]) -> None:
        self.manager = manager
        self.facades = facades
        #: Failures per (plugin, hook) since start, for the status pages and tests.
        self.failures: Counter[tuple[str, str]] = Counter()

    @property
    def names(self) -> list[str]:
        return sorted(self.facades)

    def hooks_of(self, name: str) -> list[str]:
        plugin = self.manager.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or ())

    def call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call ``hook`` on every plugin implementing it, each on its own: an exception
        is logged and counted, the others still run.  Returns (plugin, result) pairs;
        ``plugin=`` is filled with each plugin's facade when the hook takes it."""
        results: list[tuple[str, Any]] = []
        caller = getattr(self.manager.hook, hook)
        for impl in caller.get_hookimpls():
            name = self.manager.get_name(impl.plugin) or "?"
            args = {k: v for k, v in kwargs.items() if k in impl.argnames}
            if "plugin" in impl.argnames:
                args["plugin"] = self.facades.get(name, PluginFacade(name))
            try:
                results.append((name, impl.function(**args)))
            except Exception:
                self.failures[(name, hook)] += 1
                logger.exception("plugin %s failed in %s; the request it followed is not affected", name, hook)
        return results

    def listeners(self) -> list[str]:
        """Plugins implementing ``meddav_event`` (each gets its own delivery job per event)."""
        return sorted(
            self.manager.get_name(impl.plugin) or "?" for impl in self.manager.hook.meddav_event.get_hookimpls()
        )

    def deliver(self, name: str, event: Any) -> None:
        """Give ``event`` to one plugin; raise what it raises (its job is then retried)."""
        for impl in self.manager.hook.meddav_event.get_hookimpls():
            if self.manager.get_name(impl.plugin) != name:
                continue
            args: dict[str, Any] = {"event": event}
            if "plugin" in impl.argnames:
                args["plugin"] = self.facades.get(name, PluginFacade(name))
            try:
                impl.function(**{k: v for k, v in args.items() if k in impl.argnames})
            except Exception:
                self.failures[(name, "meddav_event")] += 1
                raise
            return

    def job_handlers(self) -> dict[str, Callable[[Any], None]]:
        """Every plugin's job handlers (``meddav_job_handlers``), kinds prefixed by their plugin."""
        handlers: dict[str, Callable[[Any], None]] = {}
        for name, result in self.call_each("meddav_job_handlers"):
            for kind, handler in (result or {}).items():
                if not kind.startswith(f"{name}."):
                    logger.error("plugin %s declares job kind %s: kinds must start with %s.", name, kind, name)
                    continue
                handlers[kind] = handler
        return handlers


def _validate(
    name: str, options: Iterable[hooks.ConfigOption], raw: dict[str, Any], problems: list[str]
) -> dict[str, Any]:
    known = {o.name: o for o in options}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        option = known.get(key)
        if option is None:
            problems.append(f"[plugins.{name}] {key}: unknown option (known: {', '.join(known) or 'none'})")
            continue
        try:
            values[key] = option.validate(value)
        except ValueError as exc:
            problems.append(f"[plugins.{name}] {key} = {toml_value(value)}: {exc}")
    for option in known.values():
        values.setdefault(option.name, option.default)
    return values


def load_plugins(settings: Settings, *, extra: dict[str, ModuleType | object] | None = None) -> Plugins:
    """Load the enabled plugins and validate their configuration; raise ConfigError listing every problem.

    ``extra``: plugins given in code (tests), by name, as if installed.
    """
    manager = pluggy.PluginManager(hooks.PROJECT)
    manager.add_hookspecs(hooks)
    available: dict[str, Callable[[], object]] = {p.name: p.entry_point.load for p in installed_plugins()}
    for name, module in (extra or {}).items():
        available[name] = lambda module=module: module  # type: ignore[misc]
    source = str(settings.source or "configuration")
    problems: list[str] = []
    for name in settings.plugins.enabled:
        if name not in available:
            problems.append(
                f"[plugins] enabled: {name!r} is not installed (installed: {', '.join(sorted(available)) or 'none'}); "
                "install its package or remove the name"
            )
            continue
        manager.register(available[name](), name=name)
    for name in settings.plugins.sections:
        if name not in settings.plugins.enabled:
            problems.append(
                f"[plugins.{name}]: the plugin is not enabled; add it to [plugins] enabled or remove the table"
            )
    facades: dict[str, PluginFacade] = {}
    for name in settings.plugins.enabled:
        plugin = manager.get_plugin(name)
        if plugin is None:
            continue
        schema = getattr(plugin, "meddav_config_schema", None)
        options = list(schema()) if callable(schema) else []
        raw = settings.plugins.sections.get(name, {})
        facades[name] = PluginFacade(name, _validate(name, options, raw, problems))
    if problems:
        raise ConfigError(source, problems)
    return Plugins(manager, facades)
