"""The example plugin (``docs/example_plugin``), installed by pip as a plugin author's package is.

It is found through its entry point (group ``meddav``), and its own tests
pass through MedDAV's pytest plugin (entry point ``pytest11``: the
``meddav_server`` fixture and the ``meddav`` marker), run in a child pytest
as its author runs them.  ``make test`` installs it; a test here fails, never
skips, when it is not installed, and says how to install it.

``meddav_hello`` is never imported in this process: the unit tests check that
an installed but not enabled plugin is not imported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from server.plugins import installed_plugins
from server.testing import make_instance

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "example_plugin"
#: The tests of docs/example_plugin/tests: update with them.
EXAMPLE_TESTS = 4
HOW_TO_INSTALL = f"run `{sys.executable} -m pip install -e docs/example_plugin` in {ROOT} (make test does this)"
INSTALL = f"the example plugin (meddav-hello) is not installed in this environment: {HOW_TO_INSTALL}"


def require_example_installed() -> importlib.metadata.Distribution:
    """The installed ``meddav-hello``, from this checkout, or a test failure saying how to install it."""
    dist: importlib.metadata.Distribution | None
    try:
        dist = importlib.metadata.distribution("meddav-hello")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is None:  # failed outside the except block: the message alone, no chained traceback
        pytest.fail(INSTALL, pytrace=False)
    spec = importlib.util.find_spec("meddav_hello")  # finds the module without importing it
    if spec is None or not spec.origin:
        pytest.fail(
            f"meddav-hello is installed but its module meddav_hello cannot be found: {HOW_TO_INSTALL}", pytrace=False
        )
    origin = Path(spec.origin).resolve()
    if not origin.is_relative_to(EXAMPLE):
        pytest.fail(
            f"meddav_hello comes from {origin}, not from this checkout's {EXAMPLE}: {HOW_TO_INSTALL}", pytrace=False
        )
    return dist


def run_pytest(*args: str, cwd: Path, basetemp: Path) -> subprocess.CompletedProcess[str]:
    """pytest in a child process, as a plugin author runs it in their project."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "MEDDAV_CONFIG"} | {"PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_the_example_plugin_is_found_through_its_entry_point(tmp_path: Path) -> None:
    dist = require_example_installed()
    found = {p.name: p for p in installed_plugins()}
    assert "hello" in found, INSTALL
    hello = found["hello"]
    assert (hello.distribution, hello.version) == ("meddav-hello", dist.version) == ("meddav-hello", "1.0")
    assert hello.entry_point.value == "meddav_hello"

    made = make_instance(
        tmp_path / "data", settings={"plugins": {"enabled": ["hello"], "hello": {"greeting": "Salut"}}}
    )
    listed = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(made.config_path), "plugins", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "MEDDAV_CONFIG"},
    )
    assert listed.returncode == 0, listed.stderr
    line = next((line for line in listed.stdout.splitlines() if line.split()[:1] == ["hello"]), None)
    assert line is not None, listed.stdout
    assert line.split()[1:3] == ["1.0", "enabled"], line
    assert line.split(None, 3)[3] == "meddav_config_schema, meddav_event, meddav_startup", line


def test_the_example_plugins_own_tests_pass_with_the_meddav_fixture(tmp_path: Path) -> None:
    require_example_installed()
    result = run_pytest(str(EXAMPLE / "tests"), cwd=EXAMPLE, basetemp=tmp_path / "pytest")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert re.match(rf"{EXAMPLE_TESTS} passed in ", summary), output


def test_the_fixture_reports_a_plugin_configuration_error(tmp_path: Path) -> None:
    require_example_installed()
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_bad_config.py").write_text(
        "import pytest\n\n\n"
        '@pytest.mark.meddav(plugins=["hello"], config={"plugins.hello": {"greeting": ""}})\n'
        "def test_never_runs(meddav_server):\n"
        '    raise AssertionError("the server must not start")\n'
    )
    result = run_pytest("test_bad_config.py", cwd=project, basetemp=tmp_path / "pytest")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "ConfigError" in output and '[plugins.hello] greeting = "": must be a non-empty string' in output, output
    assert re.search(r"^1 error in ", output.strip().splitlines()[-1]), output
    assert "the server must not start" not in output, output
