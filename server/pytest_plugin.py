"""MedDAV's pytest plugin: a real MedDAV on loopback, for plugin authors' tests.

pytest loads it through the entry point ``pytest11`` wherever MedDAV is
installed; nothing to add to a ``conftest.py``.  It gives:

- the marker ``@pytest.mark.meddav(plugins=[...], config={...})``, which
  says what the server of the test runs;
- the fixture :func:`meddav_server`: a :class:`MedDAVServer` started for the
  test as the marker says, stopped after it;
- the fixture :func:`meddav_server_factory`: start several servers in one
  test, or servers with different configurations.

A plugin author's test::

    import pytest

    @pytest.mark.meddav(plugins=["hello"], config={"plugins.hello": {"greeting": "Salut"}})
    def test_counts_files(meddav_server):
        with meddav_server.client() as dav:
            assert dav.put("note.txt", content=b"RAS").status_code == 201
        counts = meddav_server.wait_for_jobs()  # the event reached the plugin
        assert counts["dead"] == 0

The server is the real one: ``meddav init`` into a fresh data directory
(pytest's ``tmp_path_factory``), the named plugins found through their
entry points (group ``meddav``: the plugin's package must be installed,
``pip install -e .``) and enabled with ``[plugins] enabled``, the HTTP
server on 127.0.0.1 in a thread of the test process, the plugins'
``meddav_startup`` hooks, and job workers in the server as ``meddav serve``
runs them.  The plugin's code runs in the test process, so a test may look
at the plugin module's state directly.

Only pytest is imported here: MedDAV itself is imported when a fixture is
used, so installing MedDAV does not slow down other projects' test start-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from server.instance import Instance
    from server.testing import LiveServer, TestInstance

__all__ = ["TEST_JOBS", "TEST_ORGANISATION", "MedDAVServer", "meddav_server", "meddav_server_factory", "settings_for"]

#: The organisation ``meddav init`` creates (the test account's), which each named plugin is granted
#: (``[plugins.<name>] organisations``) unless the test's ``config`` grants something else.
TEST_ORGANISATION = "Default organisation"

#: Job settings of test servers, unless ``config`` says otherwise: a failing
#: event delivery is retried after 1 s, and dead after 3 attempts (in
#: production: 10 s doubling, 8 attempts), so a test sees the end in seconds.
TEST_JOBS: dict[str, Any] = {"max_attempts": 3, "backoff_seconds": 1, "max_backoff_seconds": 1}

_MARKER_HELP = (
    "meddav(plugins=[...], config={...}): what the meddav_server fixture starts: the plugins to enable "
    '(by entry point name) and configuration tables by name ("plugins.<name>", "jobs", ...); see server.pytest_plugin'
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)


def settings_for(
    plugins: Iterable[str] = (), config: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The configuration (by section, as ``meddav init`` takes it) of a test server.

    ``config`` maps a table name to its keys: ``"jobs"`` is ``[jobs]``,
    ``"plugins.hello"`` is ``[plugins.hello]``.  ``plugins`` are added to
    ``[plugins] enabled`` and granted :data:`TEST_ORGANISATION` (read access)
    unless their table names ``organisations``.  :data:`TEST_JOBS` applies
    unless overridden.
    """
    settings: dict[str, dict[str, Any]] = {"jobs": dict(TEST_JOBS)}
    for name, values in (config or {}).items():
        if not isinstance(values, Mapping):
            raise TypeError(f"meddav config[{name!r}]: a table is a dict of keys, not {type(values).__name__}")
        section, _, table = name.partition(".")
        if table:
            settings.setdefault(section, {}).setdefault(table, {}).update(values)
        else:
            settings.setdefault(section, {}).update(values)
    if isinstance(plugins, str):
        raise TypeError(f"meddav plugins={plugins!r}: a list of plugin names, e.g. [{plugins!r}]")
    names = list(plugins)
    if names:
        plugin_settings = settings.setdefault("plugins", {})
        plugin_settings["enabled"] = list(dict.fromkeys([*names, *plugin_settings.get("enabled", [])]))
        for name in names:  # granted the test account's organisation unless the test says otherwise
            plugin_settings.setdefault(name, {}).setdefault("organisations", [TEST_ORGANISATION])
    return settings


class MedDAVServer:
    """A MedDAV serving an instance of its own on 127.0.0.1, in threads of the test process.

    Attributes: ``url`` (``http://127.0.0.1:PORT``), ``dav_url`` (the WebDAV
    root, ``url + "/dav/"``), ``port``, ``user`` and ``password`` (the
    instance admin that ``meddav init`` created), ``org_id`` (that account's
    organisation, the ``org_id`` of the events its changes cause),
    ``instance`` (the opened :class:`server.instance.Instance`: its
    ``plugins``, ``jobs``, ``accounts``...), ``settings``, ``config_path``
    and ``data_dir``.

    Started as ``meddav serve`` starts (:class:`server.testing.LiveServer`
    with ``plugins=True``): every enabled plugin gets its facade and
    ``meddav_startup``, job workers run in the server (``[jobs] workers``),
    then the HTTP server; :meth:`stop` stops them and calls ``meddav_shutdown``.
    """

    def __init__(self, made: TestInstance) -> None:
        from server.testing import LiveServer

        self.config_path: Path = made.config_path
        self.data_dir: Path = made.data_dir
        self.user: str = made.user
        self.password: str = made.password
        self._clients: list[httpx.Client] = []
        self._live: LiveServer = LiveServer(made.config_path, plugins=True)
        self.instance: Instance = self._live.instance
        self.settings = self._live.settings
        self.url: str = self._live.url
        self.dav_url: str = self._live.dav_url
        self.port: int = self._live.port
        self._stopped = False
        try:
            self._serve_lock = self.instance.hold_serve_lock()  # as meddav serve: fsck sees a served instance
        except BaseException:
            self._live.stop()
            raise

    @property
    def org_id(self) -> int:
        """The organisation of the test account (``user``)."""
        return self.instance.accounts.get(self.user).org_id

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` signed in as ``user``, based at the WebDAV root (``dav.put("a.txt", ...)``).

        ``kwargs`` go to ``httpx.Client`` (``base_url=meddav_server.url`` for
        the web pages, ``auth=(other_user, password)``...).  Use it in a
        ``with`` block; the ones left open are closed when the server stops.
        """
        import httpx

        options: dict[str, Any] = {"base_url": self.dav_url, "auth": (self.user, self.password), "timeout": 30}
        options.update(kwargs)
        client = httpx.Client(**options)
        self._clients.append(client)
        return client

    def wait_for_jobs(self, timeout: float = 10) -> dict[str, int]:
        """Wait until no job is pending or running, and return the number of jobs in each state.

        A change's events are delivered to plugins by jobs enqueued with the
        change (the outbox): once this returns, every plugin has been given
        the events of the requests that got their response before the call.
        A delivery that raises is retried (:data:`TEST_JOBS`) until it is
        done or ``dead``: check ``counts["dead"]``.  Raises TimeoutError, with
        the jobs still waiting and their last errors, after ``timeout`` seconds.
        """
        from server.jobs import PENDING, RUNNING

        if self._live.workers is None:
            raise RuntimeError(
                "this server runs no job worker ([jobs] workers = 0): nothing would run the jobs; "
                "leave [jobs] workers at its default in the marker's config"
            )
        deadline = time.monotonic() + timeout
        while True:
            counts = self.instance.jobs.counts()
            if counts[PENDING] == 0 and counts[RUNNING] == 0:
                return counts
            if time.monotonic() >= deadline:
                waiting = self.instance.jobs.list(PENDING, limit=20) + self.instance.jobs.list(RUNNING, limit=20)
                details = "; ".join(
                    f"{job.kind} {job.key} ({job.state}, attempt {job.attempts}/{job.max_attempts}"
                    + (f", last error: {job.last_error}" if job.last_error else "")
                    + ")"
                    for job in waiting
                )
                raise TimeoutError(f"jobs still pending or running after {timeout} s: {counts}: {details}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the workers, call the plugins' ``meddav_shutdown``, stop serving and close the instance."""
        if self._stopped:
            return
        self._stopped = True
        for client in self._clients:
            client.close()
        try:
            self._live.stop()
        finally:
            self._serve_lock.close()

    def __enter__(self) -> MedDAVServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<MedDAVServer {self.url} plugins={self.instance.plugins.names}>"


@pytest.fixture
def meddav_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MedDAVServer]]:
    """Start MedDAV servers: ``meddav_server_factory(plugins=["hello"], config={...}) -> MedDAVServer``.

    Same arguments as the ``meddav`` marker; each server has its own data
    directory and port; all are stopped at the end of the test.  Use it to
    run several servers in one test, or to check that a configuration is
    refused (the plugin's ``ConfigError`` is raised by the call).
    """
    from server.testing import make_instance

    servers: list[MedDAVServer] = []

    def start(plugins: Iterable[str] = (), config: Mapping[str, Mapping[str, Any]] | None = None) -> MedDAVServer:
        settings = settings_for(plugins, config)
        made = make_instance(tmp_path_factory.mktemp("meddav") / "data", settings=settings)
        server = MedDAVServer(made)
        servers.append(server)
        return server

    yield start
    errors: list[BaseException] = []
    for server in reversed(servers):
        try:
            server.stop()
        except Exception as exc:  # stop the others, then report
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def meddav_server(request: pytest.FixtureRequest, meddav_server_factory: Callable[..., MedDAVServer]) -> MedDAVServer:
    """A running MedDAV for the test, as its ``@pytest.mark.meddav(plugins=..., config=...)`` says.

    Without the marker: a MedDAV without plugins.  See :class:`MedDAVServer`
    for what the test can reach (``url``, ``dav_url``, ``user``,
    ``password``, ``client()``, ``wait_for_jobs()``, ``instance``...).
    """
    marker = request.node.get_closest_marker("meddav")
    kwargs: dict[str, Any] = {}
    if marker is not None:
        unknown = set(marker.kwargs) - {"plugins", "config"}
        if marker.args or unknown:
            pytest.fail(
                "@pytest.mark.meddav takes the keywords plugins=[...] and config={...} only"
                + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""),
                pytrace=False,
            )
        kwargs = dict(marker.kwargs)
    return meddav_server_factory(**kwargs)
