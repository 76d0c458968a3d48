"""Fixtures shared by every test: a fresh instance, a live server, clients.

Each test gets its own data directory (under pytest's tmp_path) with the key
file beside it, fast Argon2 parameters (test-only) and an admin account whose
password is :data:`server.testing.TEST_PASSWORD`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.testing import TEST_PASSWORD, LiveServer, TestInstance, make_instance
from tests import log_secrets

#: Debian package that provides each client the tests drive.
CLIENT_PACKAGES = {
    "litmus": "litmus",
    "rclone": "rclone",
    "cadaver": "cadaver",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}


def require_client(name: str) -> str:
    """The path of a client program, or a test failure saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed; install it with `sudo apt-get install -y {CLIENT_PACKAGES.get(name, name)}` "
            "(make test does this)",
            pytrace=False,
        )
    return path


# -- no secret in any log line of the whole suite (tests/log_secrets.py) ---------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    path = Path(tempfile.mkstemp(prefix="meddav-suite-", suffix=".log")[1])
    config.stash[_SUITE_LOG] = (path, log_secrets.start(path))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path, handler = session.config.stash[_SUITE_LOG]
    logging.getLogger().removeHandler(handler)
    handler.close()
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    modules = {item.module for item in session.items if isinstance(item, pytest.Function) and item.module}
    passwords = log_secrets.passwords_of(modules) | {TEST_PASSWORD}
    names, opened = log_secrets.instance_names(base)
    leaks, lines = log_secrets.scan(log_secrets.log_files(path, base), passwords, names)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    summary = (
        f"log secrets: {lines} log lines read, {len(passwords)} passwords, {len(names)} file names of "
        f"{opened} instances looked for: {len(leaks)} found"
    )
    if reporter is not None:
        reporter.write_line(summary)
        for leak in leaks[:50]:
            reporter.write_line(f"  {leak}")
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        path.unlink()


_SUITE_LOG = pytest.StashKey[tuple[Path, logging.Handler]]()


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test's own file, never from the caller's environment."""
    monkeypatch.delenv("MEDDAV_CONFIG", raising=False)


@pytest.fixture
def make_test_instance(tmp_path: Path) -> Callable[..., TestInstance]:
    counter = iter(range(1000))

    def make(settings: dict[str, dict[str, Any]] | None = None) -> TestInstance:
        return make_instance(tmp_path / f"instance{next(counter)}" / "data", settings=settings)

    return make


@pytest.fixture
def instance_dir(make_test_instance: Callable[..., TestInstance]) -> TestInstance:
    return make_test_instance()


@pytest.fixture
def start_server() -> Iterator[Callable[[TestInstance], LiveServer]]:
    servers: list[LiveServer] = []

    def start(inst: TestInstance) -> LiveServer:
        server = LiveServer(inst.config_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(instance_dir: TestInstance, start_server: Callable[[TestInstance], LiveServer]) -> LiveServer:
    return start_server(instance_dir)


@pytest.fixture
def dav(live_server: LiveServer, instance_dir: TestInstance) -> Iterator[httpx.Client]:
    """An HTTP client logged in as the admin, based at the WebDAV root."""
    with httpx.Client(
        base_url=live_server.dav_url, auth=(instance_dir.user, instance_dir.password), timeout=60
    ) as client:
        yield client
