"""Fixtures shared by every test: a fresh instance, a live server, clients.

Each test gets its own data directory (under pytest's tmp_path) with the key
file beside it, fast Argon2 parameters (test-only) and an admin account whose
password is :data:`server.testing.TEST_PASSWORD`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.testing import LiveServer, TestInstance, make_instance

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
