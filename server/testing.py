"""A real MedDAV on loopback, for tests and benchmarks (ours and plugin authors').

Two ways to run one:

- :class:`LiveServer` serves in a thread of the current process: fast to
  start, and the test can reach the instance's services directly.
- :class:`ServerProcess` runs ``meddav serve`` in a child process: what
  crash tests kill with SIGKILL, and what benchmarks measure the memory of.

Both bind 127.0.0.1 on a free port and wait until the server answers; neither
sleeps a fixed time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.config import load_settings
from server.httpd import bound_port, build_server, start_workers
from server.instance import InitResult, Instance, init_instance, open_instance
from server.jobs import WorkerPool

__all__ = ["FAST_ARGON2", "TEST_PASSWORD", "LiveServer", "ServerProcess", "TestInstance", "make_instance"]

TEST_PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - the tests' own account

#: Argon2 parameters that make tests fast.  Never use them in production.
FAST_ARGON2: dict[str, Any] = {"argon2_time_cost": 1, "argon2_memory_kib": 64, "argon2_parallelism": 1}


@dataclass(frozen=True)
class TestInstance:
    """An initialised instance on disk, with its admin account."""

    __test__ = False  # not a pytest test class

    data_dir: Path
    config_path: Path
    key_file: Path
    user: str
    password: str


def make_instance(
    data_dir: Path, *, settings: dict[str, dict[str, Any]] | None = None, fast: bool = True
) -> TestInstance:
    """``meddav init`` into ``data_dir`` (key file beside it) with a known admin password."""
    merged: dict[str, dict[str, Any]] = {"auth": dict(FAST_ARGON2)} if fast else {}
    merged.setdefault("log", {})["request_log"] = True
    for section, values in (settings or {}).items():
        merged.setdefault(section, {}).update(values)
    result: InitResult = init_instance(data_dir, admin_password=TEST_PASSWORD, options=merged)
    return TestInstance(data_dir.resolve(), result.config_path, result.key_file, result.admin_name, TEST_PASSWORD)


def _wait_until_answering(url: str, *, timeout: float = 20.0, process: subprocess.Popen[str] | None = None) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310 - loopback test URL
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"server at {url} did not answer within {timeout} s")
        time.sleep(0.02)


class LiveServer:
    """Serve an instance in a background thread of this process.

    With ``plugins=True`` it starts like ``meddav serve``: the enabled plugins
    get their facade and ``meddav_startup``, and job workers run in the
    process (``[jobs] workers``), delivering events to the plugins.
    """

    def __init__(self, config_path: Path, *, plugins: bool = False) -> None:
        self.settings = load_settings(config_path)
        self.instance: Instance = open_instance(self.settings)
        self.workers: WorkerPool | None = None
        self._plugins = plugins
        try:
            if plugins:
                self.instance.start_plugins()
                self.workers = start_workers(self.instance)
            self._server = build_server(self.instance, host="127.0.0.1", port=0)
        except BaseException:
            if self.workers is not None:
                self.workers.stop(timeout=10)
            self.instance.close()
            raise
        self.port = bound_port(self._server)
        scheme = "https" if self.settings.server.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.dav_url = self.url + "/dav/"
        self._thread = threading.Thread(target=self._server.serve, name="meddav-live-server", daemon=True)
        self._thread.start()
        if not self.settings.server.tls:
            _wait_until_answering(self.url)

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(timeout=10)
        if self.workers is not None:
            self.workers.stop(timeout=10)
        if self._plugins:
            self.instance.plugins.call_each("meddav_shutdown")
        self.instance.close()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """Run ``meddav serve`` in a child process (killable, measurable)."""

    _BANNER = re.compile(r"serving WebDAV at (\S+)/dav/")

    def __init__(self, config_path: Path, *, port: int = 0, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.log_path = config_path.parent / "serve.log"
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--config", str(config_path), "serve", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.pid = self.process.pid
        self.url = self._read_url()
        self.dav_url = self.url + "/dav/"
        _wait_until_answering(self.url, process=self.process)

    def _read_url(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited before announcing its URL; see {self.log_path}")
            match = self._BANNER.search(line)
            if match:
                threading.Thread(target=self._drain, daemon=True).start()
                return match.group(1)
        raise TimeoutError("server did not announce its URL")

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            pass

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> int:
        """SIGTERM and wait: a clean shutdown. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
