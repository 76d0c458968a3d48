"""Finding, configuring and calling plugins (pluggy; the contract is :mod:`server.hooks`).

Plugins are discovered through the entry point group ``meddav``, bundled ones
(``plugins/``) included, and loaded only when named in ``[plugins] enabled``.
Each loaded plugin's table ``[plugins.<name>]`` is validated by the options it
declares (``meddav_config_schema``) at start, with the core configuration's
rules: every problem one line, naming the key, the value and the fix.  Two
keys of every table belong to the core: ``organisations`` (the organisations
whose files and accounts the plugin may reach; none by default) and
``access`` (``"read"`` or ``"read-write"``).

A failing hook never fails the caller: :meth:`Plugins.call_each` runs each
plugin's implementation on its own, logs, counts and audits what raises, and
goes on.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from server import hooks
from server.config import Settings, toml_value
from server.errors import ConfigError
from server.jobs import JobFailed, describe_exception
from server.plugins._facade import PluginFacade
from server.policy import PLUGIN_ACCESS

__all__ = ["CORE_KEYS", "InstalledPlugin", "Plugins", "installed_plugins", "load_plugins"]

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


class Plugins:
    """The loaded plugins of an instance and the safe way to call them."""

    def __init__(self, manager: pluggy.PluginManager, facades: dict[str, PluginFacade]) -> None:
        self.manager = manager
        self.facades = facades
        #: Failures per (plugin, hook) since start, for the status pages and tests.
        self.failures: Counter[tuple[str, str]] = Counter()
        #: Told of each failure (plugin, hook): the instance audits them.
        self.on_failure: Callable[[str, str], None] | None = None
        self._channels: dict[str, Callable[[str, str, Any], None]] | None = None

    def _failed(self, name: str, hook: str) -> None:
        self.failures[(name, hook)] += 1
        if self.on_failure is not None:
            try:
                self.on_failure(name, hook)
            except Exception:
                logger.exception("could not record the failure of plugin %s in %s", name, hook)

    def blueprints(self) -> list[tuple[str, Any]]:
        """(plugin, Flask blueprint) of every plugin that adds web pages."""
        return [(name, bp) for name, bp in self.call_each("meddav_web_blueprint") if bp is not None]

    def notification_channels(self) -> dict[str, Callable[[str, str, Any], None]]:
        """Every plugin's notification channels, by name (a name taken twice: the first plugin keeps it).

        Asked of the plugins once: every notification checks its channel here."""
        if self._channels is None:
            self._channels = self._collect_channels()
        return self._channels

    def _collect_channels(self) -> dict[str, Callable[[str, str, Any], None]]:
        channels: dict[str, Callable[[str, str, Any], None]] = {}
        for name, result in self.call_each("meddav_notification_channels"):
            for channel, send in (result or {}).items():
                if channel == "email" or channel in channels:
                    logger.error("plugin %s declares channel %s, which is taken: ignored", name, channel)
                    continue
                channels[channel] = send
        return channels

    def periodic_jobs(self) -> list[hooks.PeriodicJob]:
        """Every plugin's periodic jobs (names and kinds prefixed by their plugin)."""
        jobs: list[hooks.PeriodicJob] = []
        for name, result in self.call_each("meddav_periodic_jobs"):
            for job in result or ():
                if not (job.kind.startswith(f"{name}.") and job.name.startswith(f"{name}.")):
                    logger.error(
                        "plugin %s declares periodic job %s: names and kinds must start with %s.", name, job.name, name
                    )
                    continue
                jobs.append(job)
        return jobs

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
            except Exception as exc:
                self._failed(name, hook)
                _log_failure(f"plugin {name} failed in {hook}; the request it followed is not affected", exc)
        return results

    def listeners(self) -> list[str]:
        """Plugins implementing ``meddav_event`` (each gets its own delivery job per event)."""
        return sorted(
            self.manager.get_name(impl.plugin) or "?" for impl in self.manager.hook.meddav_event.get_hookimpls()
        )

    def deliver(self, name: str, event: Any) -> None:
        """Give ``event`` to one plugin; raise what it raises (its job is then retried).

        An event of an organisation the plugin is not granted is dropped (the outbox does not make
        such jobs; this is the second check, for jobs made before the grant was narrowed)."""
        facade = self.facades.get(name)
        principal = facade.principal if facade is not None else None
        if principal is not None and getattr(event, "org_id", None) not in principal.org_ids:
            logger.info("event of an organisation plugin %s is not granted: not delivered", name)
            return
        for impl in self.manager.hook.meddav_event.get_hookimpls():
            if self.manager.get_name(impl.plugin) != name:
                continue
            args: dict[str, Any] = {"event": event}
            if "plugin" in impl.argnames:
                args["plugin"] = self.facades.get(name, PluginFacade(name))
            try:
                impl.function(**{k: v for k, v in args.items() if k in impl.argnames})
            except Exception:
                self._failed(name, "meddav_event")
                raise
            return

    def job_handlers(self) -> dict[str, Callable[[Any], None]]:
        """Every plugin's job handlers (``meddav_job_handlers``), kinds prefixed by their plugin,
        each :meth:`guarded`: an unexpected exception or an overrun counts as the plugin's failure."""
        handlers: dict[str, Callable[[Any], None]] = {}
        for name, result in self.call_each("meddav_job_handlers"):
            for kind, handler in (result or {}).items():
                if not kind.startswith(f"{name}."):
                    logger.error("plugin %s declares job kind %s: kinds must start with %s.", name, kind, name)
                    continue
                handlers[kind] = self.guarded(name, f"job {kind}", handler)
        return handlers

    def guarded(
        self, name: str, hook: str, handler: Callable[[Any], None], *, count_errors: bool = True
    ) -> Callable[[Any], None]:
        """``handler`` (a job handler of plugin ``name``) as a job handler that reports its plugin's failures.

        Python threads cannot be interrupted, so a time-out is noticed, not
        enforced: when the handler still runs at the end of its job's lease
        (``ctx.remaining()``), the overrun is logged, counted and audited at
        that moment (hook ``"<hook> (time-out)"``) and the job is claimed
        again by another worker.  An exception other than ``JobFailed`` (the
        plugin's own "try again later") is counted as a failure too, unless
        ``count_errors`` is false (the caller counts them itself).
        """

        def run(ctx: Any) -> None:
            timer = threading.Timer(max(ctx.remaining(), 0.0), self._failed, args=(name, f"{hook} (time-out)"))
            timer.daemon = True
            timer.start()
            try:
                handler(ctx)
            except JobFailed:
                raise
            except Exception as exc:
                if count_errors:
                    self._failed(name, hook)
                    _log_failure(f"plugin {name} failed in {hook}; its job will be retried", exc)
                raise
            finally:
                timer.cancel()

        return run


_PLUGIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,59}")


def _log_failure(what: str, exc: BaseException) -> None:
    """A plugin's exception in the log: its type and place only, never its message or traceback, which
    may quote a file name or a patient (as a validation error quotes its input)."""
    logger.error("%s: %s", what, describe_exception(exc))


#: Keys of every ``[plugins.<name>]`` table that the core reads itself (the plugin's grant).
CORE_KEYS = ("organisations", "access")


def _grant(name: str, raw: dict[str, Any], problems: list[str]) -> tuple[tuple[str, ...], str]:
    organisations = raw.pop("organisations", [])
    access = raw.pop("access", "read")
    if not (isinstance(organisations, list) and all(isinstance(o, str) and o.strip() for o in organisations)):
        problems.append(
            f"[plugins.{name}] organisations = {toml_value(organisations)}: "
            'a list of organisation names, e.g. ["Cabinet Martin"]'
        )
        organisations = []
    if access not in PLUGIN_ACCESS:
        problems.append(f"[plugins.{name}] access = {toml_value(access)}: use one of {', '.join(PLUGIN_ACCESS)}")
        access = "read"
    return tuple(o.strip() for o in organisations), str(access)


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
        if option.name in raw:
            continue
        # A missing key takes its default through the same validation: an option without a valid default
        # (an EHR's address...) is thereby required, and its validator's message says what to add.
        try:
            values[option.name] = option.validate(option.default)
        except ValueError as exc:
            problems.append(f"[plugins.{name}] {option.name}: missing; {exc}")
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
        if not _PLUGIN_NAME.fullmatch(name):
            problems.append(
                f"[plugins] enabled: {name!r}: a plugin name is 1 to 60 letters, digits, _ or - "
                "(it prefixes the plugin's job kinds and keys)"
            )
            continue
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
        raw = dict(settings.plugins.sections.get(name, {}))
        organisations, access = _grant(name, raw, problems)
        config = _validate(name, options, raw, problems)
        facades[name] = PluginFacade(name, config, organisations=organisations, access=access)
    if problems:
        raise ConfigError(source, problems)
    return Plugins(manager, facades)
