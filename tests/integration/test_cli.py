"""The meddav command, run as operators run it (a child process)."""

from __future__ import annotations

import signal
import ssl
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server.auth import RECHECK_SECONDS
from server.config import load_settings, render_example, settings_from_dict
from server.httpd import insecure_settings
from server.testing import LiveServer, ServerProcess, TestInstance
from tests.helpers import meddav, self_signed

# -- init --------------------------------------------------------------------------------


def test_init_creates_a_complete_instance_with_the_key_outside(tmp_path: Path) -> None:
    result = meddav("init", "--data-dir", str(tmp_path / "var"))
    assert result.returncode == 0, result.stderr
    data, key = tmp_path / "var", tmp_path / "var.master.key"
    assert (data / "meddav.toml").is_file() and (data / "meddav.sqlite3").is_file() and (data / "blobs").is_dir()
    assert key.is_file() and not list(data.glob("*.key"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "meddav.sqlite3").stat().st_mode) == 0o600
    assert str(key) in result.stdout and "APART from the data directory" in result.stdout
    password = next(line.split()[1] for line in result.stdout.splitlines() if line.strip().startswith("password"))
    assert len(password) >= 20
    settings = load_settings(data / "meddav.toml")
    assert settings.storage.key_file == key


def test_init_refuses_an_existing_instance_and_a_key_inside(tmp_path: Path) -> None:
    assert meddav("init", "--data-dir", str(tmp_path / "var")).returncode == 0
    again = meddav("init", "--data-dir", str(tmp_path / "var"))
    assert again.returncode == 2 and "already holds an instance" in again.stderr
    inside = meddav("init", "--data-dir", str(tmp_path / "other"), "--key-file", str(tmp_path / "other" / "k.key"))
    assert inside.returncode == 2 and "inside the data directory" in inside.stderr
    assert "Traceback" not in again.stderr + inside.stderr


def test_scriptable_init_and_user_commands(tmp_path: Path) -> None:
    assert (
        meddav(
            "init", "--data-dir", str(tmp_path / "d"), "--password-stdin", stdin="the admin pass phrase\n"
        ).returncode
        == 0
    )
    config = tmp_path / "d" / "meddav.toml"
    added = meddav(
        "user", "add", "Bob", "--password-stdin", "--quota", "1000000", stdin="bob's long passphrase\n", config=config
    )
    assert added.returncode == 0 and "created user bob" in added.stdout
    generated = meddav("user", "add", "carol", config=config)
    assert generated.returncode == 0 and "password:" in generated.stdout
    taken = meddav("user", "add", "BOB", "--password-stdin", stdin="another long one!!\n", config=config)
    assert taken.returncode == 1 and "taken" in taken.stderr
    short = meddav("user", "add", "dave", "--password-stdin", stdin="short\n", config=config)
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    listed = meddav("user", "list", config=config)
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["admin", "bob", "carol"]
    assert "1000000" in listed.stdout
    assert meddav("user", "quota", "bob", "5000", config=config).stdout.strip() == "quota of bob: 5000 bytes"
    assert "5000" in meddav("user", "list", config=config).stdout
    assert "the default (unlimited)" in meddav("user", "quota", "bob", "default", config=config).stdout
    assert meddav("user", "quota", "bob", "lots", config=config).returncode == 1
    assert meddav("user", "disable", "bob", config=config).returncode == 0
    assert "disabled" in meddav("user", "list", config=config).stdout
    assert meddav("user", "passwd", "nobody", config=config).returncode == 1


def test_organisations_roles_and_group_folders(tmp_path: Path) -> None:
    assert (
        meddav(
            "init", "--data-dir", str(tmp_path / "d"), "--password-stdin", stdin="the admin pass phrase\n"
        ).returncode
        == 0
    )
    config = tmp_path / "d" / "meddav.toml"
    assert "created organisation Clinique B (id 2)" in meddav("org", "add", "Clinique B", config=config).stdout
    assert meddav("org", "add", "Clinique B", config=config).returncode == 1  # names are unique
    added = meddav(
        "user", "add", "olga", "--org", "Clinique B", "--role", "org_admin", "--email", "olga@clinique-b.fr",
        "--lang", "fr", "--password-stdin", stdin="olga's long passphrase\n", config=config,
    )  # fmt: skip
    assert added.returncode == 0 and "organisation 2, role org_admin" in added.stdout
    assert meddav("user", "add", "x", "--email", "not-an-address", config=config).returncode == 1
    assert meddav("user", "add", "y", "--org", "Nowhere", config=config).returncode == 1
    orgs = meddav("org", "list", config=config).stdout
    assert "Clinique B" in orgs and "1" in orgs.splitlines()[-1]
    users = meddav("user", "list", config=config).stdout
    assert "instance_admin" in users and "org_admin" in users
    # Group folders.
    made = meddav("group", "add", "Dossiers partagés", "--org", "2", config=config)
    assert made.returncode == 0 and "members read and write" in made.stdout, made.stderr
    assert meddav("group", "add", "Dossiers partagés", "--org", "2", config=config).returncode == 1
    orphan = meddav("group", "add", "Sans admin", "--org", "1", config=config)
    assert orphan.returncode == 0  # the instance admin of organisation 1 is recorded as creator
    listed = meddav("group", "list", config=config).stdout
    assert "Dossiers partagés" in listed and "Sans admin" in listed
    changed = meddav("group", "set", "Dossiers partagés", "--org", "Clinique B", "--access", "ro", config=config)
    assert changed.returncode == 0 and "members ro" in changed.stdout
    assert meddav("group", "remove", "Dossiers partagés", "--org", "2", config=config).returncode == 1  # no --yes
    assert meddav("group", "remove", "Dossiers partagés", "--org", "2", "--yes", config=config).returncode == 0
    assert "Dossiers partagés" not in meddav("group", "list", config=config).stdout
    assert meddav("user", "role", "olga", "member", config=config).returncode == 0
    assert "member" in meddav("user", "list", config=config).stdout


def test_every_command_explains_itself() -> None:
    commands = [[], ["init"], ["serve"], ["user"], ["user", "add"], ["user", "list"], ["user", "passwd"],
                ["user", "quota"], ["user", "disable"], ["user", "enable"], ["fsck"], ["db"], ["db", "upgrade"],
                ["config"], ["config", "check"], ["config", "example"], ["version"], ["user", "role"],
                ["org"], ["org", "add"], ["org", "list"], ["group"], ["group", "add"], ["group", "list"],
                ["group", "set"], ["group", "remove"], ["org", "set"], ["app-password"],
                ["app-password", "list"], ["app-password", "revoke"], ["user", "reset-2fa"], ["audit"],
                ["audit", "verify"], ["audit", "export"], ["audit", "prune"], ["plugins"], ["plugins", "list"],
                ["jobs"], ["jobs", "list"], ["jobs", "retry"], ["worker"], ["doctor"]]  # fmt: skip
    for command in commands:
        result = meddav(*command, "--help")
        assert result.returncode == 0, command
        assert "usage: meddav" in result.stdout and len(result.stdout.splitlines()) > 3, command


def test_version() -> None:
    assert meddav("version").stdout.startswith("meddav ")


# -- configuration errors ------------------------------------------------------------------


def test_bad_configuration_stops_with_one_line_per_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nport = 0\nhost = "0.0.0.0"\n[storage]\nbackend = "tape"\n[shares]\n')
    result = meddav("serve", config=config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{config}: 4 problems"
    assert any("[server] port = 0" in line for line in lines)
    assert any("tls_cert" in line and "allow_plain_http" in line for line in lines)
    assert any('[storage] backend = "tape"' in line for line in lines)
    assert any("[shares]: unknown section (did you mean sharing?)" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_missing_configuration_says_what_to_do(tmp_path: Path) -> None:
    result = meddav("serve")
    assert result.returncode == 2 and "MEDDAV_CONFIG" in result.stderr


def test_another_instances_key_is_refused(tmp_path: Path) -> None:
    assert meddav("init", "--data-dir", str(tmp_path / "a")).returncode == 0
    assert meddav("init", "--data-dir", str(tmp_path / "b")).returncode == 0
    config = tmp_path / "a" / "meddav.toml"
    config.write_text(config.read_text().replace("a.master.key", "b.master.key"))
    result = meddav("user", "list", config=config)
    assert result.returncode == 2 and "not the master key of this instance" in result.stderr


def test_config_check_and_example(tmp_path: Path) -> None:
    assert meddav("init", "--data-dir", str(tmp_path / "v")).returncode == 0
    check = meddav("config", "check", config=tmp_path / "v" / "meddav.toml")
    assert check.returncode == 0 and "OK" in check.stdout and "plain HTTP" in check.stdout
    assert meddav("config", "example").stdout == render_example()


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    assert meddav("init", "--data-dir", str(tmp_path / "v")).returncode == 0
    result = meddav("db", "upgrade", config=tmp_path / "v" / "meddav.toml")
    assert result.returncode == 0 and "already at" in result.stdout


def test_plain_http_behind_a_proxy_is_warned_about(tmp_path: Path) -> None:
    settings = settings_from_dict({"server": {"host": "0.0.0.0", "allow_plain_http": True}}, base_dir=tmp_path)
    assert any("plain HTTP" in w for w in insecure_settings(settings, "0.0.0.0"))
    assert not any("plain HTTP" in w for w in insecure_settings(settings, "127.0.0.1"))


# -- serving -------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_the_url_and_stops_cleanly(instance_dir: TestInstance, sig: signal.Signals) -> None:
    server = ServerProcess(instance_dir.config_path)
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    server.process.send_signal(sig)
    assert server.process.wait(timeout=20) == 0
    server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log and "msg=stopped" in log


def test_tls_is_served_when_configured(make_test_instance: Callable[..., TestInstance], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    inst = make_test_instance({"server": {"tls_cert": str(cert), "tls_key": str(key)}})
    with LiveServer(inst.config_path) as server:
        assert server.url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=server.dav_url, auth=(inst.user, inst.password), verify=trust) as c:
            deadline = time.monotonic() + 10
            while True:
                try:
                    response = c.put("over-tls.txt", content=b"secret")
                    break
                except httpx.ConnectError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            assert response.status_code == 201
            assert c.get("over-tls.txt").content == b"secret"
            assert "max-age" in c.get("over-tls.txt").headers["Strict-Transport-Security"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url.replace("https://", "http://") + "/healthz", timeout=5)


def test_password_change_from_another_process_ends_cached_logins(instance_dir: TestInstance) -> None:
    with ServerProcess(instance_dir.config_path) as server:
        old = (instance_dir.user, instance_dir.password)
        assert httpx.request("PROPFIND", server.dav_url, auth=old, headers={"Depth": "0"}).status_code == 207
        result = meddav(
            "user",
            "passwd",
            instance_dir.user,
            "--password-stdin",
            stdin="the brand new phrase\n",
            config=instance_dir.config_path,
        )
        assert result.returncode == 0
        time.sleep(RECHECK_SECONDS + 0.2)
        assert httpx.request("PROPFIND", server.dav_url, auth=old, headers={"Depth": "0"}).status_code == 401
        new = (instance_dir.user, "the brand new phrase")
        assert httpx.request("PROPFIND", server.dav_url, auth=new, headers={"Depth": "0"}).status_code == 207


def test_disabled_user_is_refused_at_once_in_process(live_server: LiveServer, instance_dir: TestInstance) -> None:
    auth = (instance_dir.user, instance_dir.password)
    assert httpx.get(live_server.url + "/dav/", auth=auth).status_code == 403  # logged in (no HTML listing)
    live_server.instance.accounts.set_disabled(instance_dir.user, disabled=True)
    assert httpx.get(live_server.url + "/dav/", auth=auth).status_code == 401


# -- fsck ----------------------------------------------------------------------------------


def test_fsck_removes_orphans_and_reports_missing_blobs(instance_dir: TestInstance) -> None:
    auth = (instance_dir.user, instance_dir.password)
    with LiveServer(instance_dir.config_path) as server, httpx.Client(base_url=server.dav_url, auth=auth) as c:
        c.put("kept.txt", content=b"kept")
        c.put("lost.txt", content=b"lost")
        blob_dir = server.settings.storage.blob_dir
        lost_node = server.instance.tree.resolve(server.instance.accounts.get("admin").root_id, ["lost.txt"])
    assert lost_node is not None and lost_node.version is not None
    lost_blob = lost_node.version.blob_id
    (blob_dir / lost_blob[:2] / lost_blob).unlink()
    orphan = uuid.uuid4().hex
    (blob_dir / orphan[:2] / orphan).write_bytes(b"orphan ciphertext")
    stale = blob_dir / orphan[:2] / f".upload-{uuid.uuid4().hex}-0000"
    stale.write_bytes(b"half an upload")

    dry = meddav("fsck", "--dry-run", config=instance_dir.config_path)
    assert dry.returncode == 1
    assert "orphan blobs found: 1" in dry.stdout and f"node {lost_node.id}: blob {lost_blob} missing" in dry.stdout
    assert (blob_dir / orphan[:2] / orphan).exists()

    fixed = meddav("fsck", config=instance_dir.config_path)
    assert fixed.returncode == 1  # the missing blob is still reported: data loss needs a restore
    assert "orphan blobs removed: 1" in fixed.stdout and "unfinished uploads removed: 1" in fixed.stdout
    assert not (blob_dir / orphan[:2] / orphan).exists() and not stale.exists()
    again = meddav("fsck", config=instance_dir.config_path)
    assert "orphan blobs removed: 0" in again.stdout
