"""Every hook a MedDAV plugin may implement: this module is the plugin contract.

A plugin is a Python package registered under the entry point group
``meddav`` (``[project.entry-points.meddav] my_plugin = "my_package.plugin"``);
the module named there implements some of the hooks below with
``@hookimpl``.  Plugins are loaded only when named in ``[plugins] enabled``.
``docs/plugins.md`` is the author's guide; its hook list is these docstrings.

Rules that keep plugins from hurting users, enforced by the core:

- a hook that raises is logged, audited and counted; it never fails the
  user's request, and never loses a user's file;
- events reach plugins after the change is committed, through a durable job
  (at least once, so handlers are idempotent: use the event's ids);
- work that does I/O (network, mail) runs as a job, never inside a request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from server.events import Event

__all__ = ["PROJECT", "ConfigOption", "PeriodicJob", "hookimpl", "hookspec"]

PROJECT = "meddav"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class ConfigOption:
    """One key of a plugin's section ``[plugins.<name>]``.

    ``validate`` takes the raw TOML value and returns the typed value, or
    raises ``ValueError`` with a message that says what is wrong and what to
    do (the same contract as the core's options).  A key left out takes
    ``default`` through ``validate`` too: an option whose default does not
    validate (an empty table for a required endpoint) is required.
    """

    name: str
    default: Any
    help: str
    validate: Callable[[Any], Any]


@dataclass(frozen=True)
class PeriodicJob:
    """Work that comes back: every ``every_seconds``, or daily at ``daily_at`` ("HH:MM", UTC)."""

    name: str
    kind: str
    every_seconds: int | None = None
    daily_at: str | None = None


@hookspec
def meddav_config_schema() -> Sequence[ConfigOption]:  # type: ignore[empty-body]
    """The options of the plugin's section ``[plugins.<name>]``.

    Validated at start with the core configuration: unknown keys and wrong
    values stop the start, each named with its fix.  The validated values
    reach the plugin in :func:`meddav_startup` (``plugin.config``).
    """


@hookspec
def meddav_startup(plugin: Any) -> None:
    """The server (or a worker) starts.  ``plugin`` is the plugin's facade
    (:class:`server.plugins.PluginFacade`): its validated config, and the
    core's operations it may use, each checked by the policy and audited."""


@hookspec
def meddav_shutdown(plugin: Any) -> None:
    """The server (or a worker) stops; release what :func:`meddav_startup` took."""


@hookspec
def meddav_event(event: Event, plugin: Any) -> None:
    """Something happened (a :mod:`server.events` class: a file written,
    deleted, moved; an account created...).

    Called by a background job after the change committed, at least once:
    make the handling idempotent (the event's ids are stable).  Ignore the
    event classes you do not handle; new ones will appear.  The call is a
    job of its own (one per event and plugin, never inside the user's
    request): it may do the I/O the event calls for, and raise to have the
    delivery retried with back-off; work of another shape (several pieces,
    another schedule) goes to jobs of your kind (``plugin.enqueue``).  Only
    events of the organisations the plugin is granted reach it.
    """


@hookspec
def meddav_job_handlers(plugin: Any) -> Mapping[str, Callable[[Any], None]]:  # type: ignore[empty-body]
    """The plugin's job kinds and their handlers (``"ehr_bridge.send": send``).

    A handler gets a job context (``key``, ``payload``, ``attempt``,
    ``deadline``) and raises to have the job retried with back-off
    (:class:`server.jobs.JobFailed` for an expected failure, with a short
    message and no health data: it is stored in clear as the job's last
    error); after the configured attempts the job goes to the dead letters
    (``meddav jobs list --dead``).  Kinds are prefixed with the plugin's
    name.  Handlers that need the core close over ``plugin``, the facade.
    """


@hookspec
def meddav_periodic_jobs(plugin: Any) -> Sequence[PeriodicJob]:  # type: ignore[empty-body]
    """Jobs to run on a schedule (their kinds handled by :func:`meddav_job_handlers`).

    Names and kinds start with the plugin's name.  The schedule is stored:
    it survives restarts, and a job missed while MedDAV was down runs once
    at the next start, not once per missed period."""


@hookspec
def meddav_web_blueprint(plugin: Any) -> Any:
    """A Flask blueprint of extra pages, mounted under ``/plugins/<name>/``
    and registered under the plugin's name (``url_for("<name>.view")``).

    Its views reach the signed-in user through :mod:`webui.sessions`
    (``login_required``, ``current()``) and must ask the policy like every
    page; its templates may extend the core's ``base.html``.  POST forms
    carry the core's CSRF token (``csrf_field``, ``csrf_token()``).
    """


@hookspec
def meddav_notification_channels(plugin: Any) -> Mapping[str, Callable[[str, str, Mapping[str, Any]], None]]:  # type: ignore[empty-body]
    """Extra ways to notify people (e-mail is built in): ``{"sms": send}`` with
    ``send(recipient, template, context)``; called from jobs, never from a request."""


def reference() -> str:
    """The hook reference of ``docs/plugins.md``, rendered from this module (a test keeps them in step)."""
    import inspect

    lines = ["<!-- generated from server/hooks.py by server.hooks.reference(); do not edit by hand -->", ""]
    for name, function in sorted(globals().items()):
        if not (name.startswith("meddav_") and callable(function)):
            continue
        signature = str(inspect.signature(function)).replace("'", "")
        lines += [f"### `{name}{signature}`", "", inspect.cleandoc(function.__doc__ or ""), ""]
    return "\n".join(lines)
