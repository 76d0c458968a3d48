"""Configuration: every rule answered by its one-line message, all problems at once."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from server.config import load_settings, render_example, settings_from_dict
from server.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def problems(document: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(document, base_dir=tmp_path, source=tmp_path / "meddav.toml")
    return info.value.problems


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"shares": {}}, "[shares]: unknown section (did you mean sharing?)"),
        ({"sharing": {"time_zone": "Europe/Pariss"}}, "unknown time zone 'Europe/Pariss'"),
        ({"sharing": {"default_expiry_days": 30, "max_expiry_days": 14}}, "later than max_expiry_days (14)"),
        ({"srever": {}}, "(did you mean server?)"),
        ({"server": {"prot": 1}}, "[server] prot: unknown option (did you mean port?)"),
        ({"server": {"port": "8080"}}, '[server] port = "8080": must be a whole number between 1 and 65535'),
        (
            {"server": {"port": 99999}},
            "[server] port = 99999: out of range: must be between 1 and 65535; pick a free port",
        ),
        ({"server": {"port": True}}, "[server] port = true: must be a whole number"),
        ({"server": {"threads": 1}}, "[server] threads = 1: out of range"),
        ({"server": {"allow_plain_http": "yes"}}, '[server] allow_plain_http = "yes": must be true or false'),
        ({"server": {"host": "no such host!"}}, "[server] host"),
        ({"server": {"public_url": "files.example.org"}}, "must start with http:// or https://"),
        ({"server": "nope"}, 'server = "nope": must be a [server] table'),
        ({"storage": {"backend": "s3"}}, '[storage] backend = "s3": must be one of "local"'),
        ({"storage": {"default_quota_bytes": -1}}, "[storage] default_quota_bytes = -1: out of range"),
        ({"storage": {"data_dir": ""}}, "[storage] data_dir"),
        ({"database": {"sqlite_synchronous": "off"}}, '[database] sqlite_synchronous = "off": must be one of'),
        ({"database": {"url": "mysql://x"}}, "[database] url"),
        ({"dav": {"max_xml_body_bytes": 10}}, "[dav] max_xml_body_bytes = 10: out of range"),
        ({"log": {"level": "verbose"}}, '[log] level = "verbose": must be one of "debug", "info", "warning", "error"'),
        ({"auth": {"argon2_memory_kib": 8, "argon2_parallelism": 4}}, "Argon2 needs at least 8 KiB per lane"),
    ],
)
def test_each_rule_has_its_message(document: dict[str, Any], expected: str, tmp_path: Path) -> None:
    found = problems(document, tmp_path)
    assert len(found) == 1, found
    assert expected in found[0]


def test_a_problem_with_a_secret_option_never_shows_its_value(tmp_path: Path) -> None:
    (line,) = problems({"database": {"url": "mysql://admin:S3cret-pw@db.example/meddav"}}, tmp_path)
    assert '[database] url = "mysql:…": unsupported database' in line and "S3cret" not in line
    (line,) = problems({"mail": {"smtp_password": ["S3cret-pw"]}}, tmp_path)
    assert "[mail] smtp_password = (hidden)" in line and "S3cret" not in line


def test_non_loopback_without_tls_names_the_keys_to_set(tmp_path: Path) -> None:
    (line,) = problems({"server": {"host": "0.0.0.0"}}, tmp_path)
    for key in ("tls_cert", "tls_key", "allow_plain_http"):
        assert key in line


def test_allow_plain_http_permits_a_public_address(tmp_path: Path) -> None:
    settings = settings_from_dict({"server": {"host": "0.0.0.0", "allow_plain_http": True}}, base_dir=tmp_path)
    assert settings.server.host == "0.0.0.0"


def test_tls_needs_both_files(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    (line,) = problems({"server": {"tls_cert": "cert.pem"}}, tmp_path)
    assert "[server] tls_key: missing" in line


def test_tls_files_must_exist(tmp_path: Path) -> None:
    found = problems({"server": {"tls_cert": "c.pem", "tls_key": "k.pem"}}, tmp_path)
    assert [p.split(":")[0] for p in found] == ['[server] tls_cert = "c.pem"', '[server] tls_key = "k.pem"']


def test_key_file_inside_data_dir_is_refused(tmp_path: Path) -> None:
    (line,) = problems({"storage": {"data_dir": "data", "key_file": "data/master.key"}}, tmp_path)
    assert "inside data_dir" in line and "data.master.key" in line


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    found = problems({"server": {"port": 0, "threads": "many"}, "log": {"format": "xml"}, "bogus": {}}, tmp_path)
    assert len(found) == 4


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    settings = settings_from_dict({"storage": {"data_dir": "data"}}, base_dir=tmp_path)
    assert settings.storage.data_dir == (tmp_path / "data").resolve()
    assert settings.storage.key_file == (tmp_path / "data.master.key").resolve()
    assert settings.storage.blob_dir == (tmp_path / "data" / "blobs").resolve()
    assert settings.database.url == f"sqlite:///{(tmp_path / 'data' / 'meddav.sqlite3').resolve()}"


def test_defaults_are_safe() -> None:
    settings = settings_from_dict({}, base_dir=Path("/srv"))
    assert settings.server.host == "127.0.0.1"
    assert not settings.dav.allow_infinite_depth
    assert settings.database.sqlite_synchronous == "full"
    assert settings.dav.max_xml_body_bytes == 1024 * 1024


def test_syntax_error_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "meddav.toml"
    path.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert len(info.value.problems) == 1 and "not valid TOML" in info.value.problems[0]


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="meddav init"):
        load_settings(tmp_path / "absent.toml")


def test_no_file_given_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDDAV_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="MEDDAV_CONFIG"):
        load_settings()


def test_environment_variable_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[server]\nport = 9999\n")
    monkeypatch.setenv("MEDDAV_CONFIG", str(path))
    assert load_settings().server.port == 9999


def test_error_message_reads_like_a_checklist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"server": {"port": 0}, "x": {}}, base_dir=tmp_path, source=Path("var/meddav.toml"))
    lines = str(info.value).splitlines()
    assert lines[0] == "var/meddav.toml: 2 problems"
    assert all(line.startswith("  ") for line in lines[1:])


def test_example_file_is_in_step_with_the_schema() -> None:
    example = (ROOT / "conf" / "meddav.example.toml").read_text()
    assert example == render_example(), "run `make conf` to regenerate conf/meddav.example.toml"


def test_example_file_uncommented_is_a_valid_configuration(tmp_path: Path) -> None:
    # Every option line, uncommented, must parse and validate (the shown defaults are real).
    lines = []
    for line in render_example().splitlines():
        if line.startswith("#") and " = " in line and not line.startswith("# "):
            line = line[1:]
            if line.startswith("key_file"):
                continue  # shown as a placeholder computed at start
        lines.append(line)
    document = tomllib.loads("\n".join(lines))
    settings_from_dict(document, base_dir=tmp_path)
