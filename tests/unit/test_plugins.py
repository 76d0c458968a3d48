"""Plugins: found through a real entry point, configured by their own schema, never failing the caller.

The example plugin of ``docs/example_plugin`` is made installed for the test
the way pip would: a ``.dist-info`` directory with its ``entry_points.txt``
on ``sys.path`` (importlib.metadata then lists it like any distribution).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.config import settings_from_dict
from server.errors import ConfigError
from server.events import AccountCreated, FileWritten, from_payload
from server.hooks import hookimpl
from server.plugins import installed_plugins, load_plugins

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "example_plugin"


@pytest.fixture
def example_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    dist = site / "meddav_hello-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: meddav-hello\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[meddav]\nhello = meddav_hello\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    importlib.invalidate_caches()
    yield site
    sys.modules.pop("meddav_hello", None)


def settings(tmp_path: Path, plugins: dict[str, object]) -> object:
    (tmp_path / "data").mkdir(exist_ok=True)
    return settings_from_dict({"storage": {"data_dir": "data"}, "plugins": plugins}, base_dir=tmp_path)


def test_the_example_plugin_is_found_through_its_entry_point(example_installed: Path) -> None:
    found = {p.name: p for p in installed_plugins()}
    assert "hello" in found
    assert found["hello"].distribution == "meddav-hello" and found["hello"].version == "1.0"


def test_enabled_plugin_gets_its_validated_configuration(example_installed: Path, tmp_path: Path) -> None:
    plugins = load_plugins(settings(tmp_path, {"enabled": ["hello"], "hello": {"greeting": "  Salut "}}))  # type: ignore[arg-type]
    assert plugins.names == ["hello"]
    assert plugins.facades["hello"].config == {"greeting": "Salut"}
    assert "meddav_event" in plugins.hooks_of("hello")
    plugins.call_each("meddav_startup")
    assert plugins.facades["hello"].greeted == "Salut, MedDAV"  # type: ignore[attr-defined]
    import meddav_hello

    plugins.call_each("meddav_event", event=FileWritten(org_id=3, node_id=1, version_id=1, parent_id=1, size=5))
    plugins.call_each("meddav_event", event=AccountCreated(org_id=3, created_user_id=9, role="member"))
    assert meddav_hello.written[3] == 1


def test_plugin_configuration_errors_are_listed_like_the_cores(example_installed: Path, tmp_path: Path) -> None:
    bad = {"enabled": ["hello", "missing"], "hello": {"greeting": "", "colour": "blue"}, "other": {"x": 1}}
    with pytest.raises(ConfigError) as info:
        load_plugins(settings(tmp_path, bad))  # type: ignore[arg-type]
    lines = info.value.problems
    assert any(line.startswith("[plugins] enabled: 'missing' is not installed") for line in lines)
    assert any(line.startswith('[plugins.hello] greeting = "": must be a non-empty string') for line in lines)
    assert any(line.startswith("[plugins.hello] colour: unknown option (known: greeting)") for line in lines)
    assert any(line.startswith("[plugins.other]: the plugin is not enabled") for line in lines)


def test_installed_but_not_enabled_is_not_loaded(example_installed: Path, tmp_path: Path) -> None:
    plugins = load_plugins(settings(tmp_path, {}))  # type: ignore[arg-type]
    assert plugins.names == []
    assert "meddav_hello" not in sys.modules


class Broken:
    @hookimpl
    def meddav_event(self, event: object, plugin: object) -> None:
        raise RuntimeError("boom")


class Counting:
    seen = 0

    @hookimpl
    def meddav_event(self, event: object) -> None:
        Counting.seen += 1


def test_a_failing_plugin_does_not_stop_the_others(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plugins = load_plugins(
        settings(tmp_path, {"enabled": ["broken", "counting"]}),  # type: ignore[arg-type]
        extra={"broken": Broken(), "counting": Counting()},
    )
    results = plugins.call_each("meddav_event", event=AccountCreated(org_id=1, created_user_id=2, role="member"))
    assert [name for name, _ in results] == ["counting"]
    assert Counting.seen == 1
    assert plugins.failures[("broken", "meddav_event")] == 1
    assert "plugin broken failed in meddav_event" in caplog.text


def test_events_round_trip_through_job_payloads() -> None:
    event = FileWritten(org_id=1, user_id=2, node_id=3, version_id=4, parent_id=5, size=6, created=True)
    assert from_payload(event.to_payload()) == event
    with pytest.raises(ValueError):
        from_payload({"kind": "Nope"})
    with pytest.raises(TypeError):
        from_payload({**event.to_payload(), "file_name": "secret.pdf"})


def test_plugins_list_command(example_installed: Path) -> None:
    env_path = f"{example_installed}:{EXAMPLE}"
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = {env_path.split(':')!r}; "
         "from server.cli import main; sys.exit(main(['plugins', 'list']))"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("hello"))
    assert "1.0" in line and "disabled" in line and "meddav_event" in line


def test_the_guide_lists_every_hook_from_the_contract() -> None:
    from server.hooks import reference

    guide = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    assert guide.endswith(reference() + "\n"), "regenerate docs/plugins.md from server.hooks.reference()"
