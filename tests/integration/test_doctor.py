"""``meddav doctor``, run as operators run it (a child process), on instances made by ``meddav init``.

A fresh instance is what ``meddav init`` makes: loopback, plain HTTP, mails to the log.  Its
doctor finds no problem and exactly two warnings, both about what a loopback trial legitimately
lacks (TLS, a mail server).  Every other test breaks one thing in a copy of that instance and
checks that the doctor names it with its fix and exits 1, and that no secret is ever printed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.config import load_settings, toml_value
from server.crypto import MasterKey
from server.instance import open_instance
from server.testing import FAST_ARGON2
from tests.helpers import meddav, self_signed

ADMIN_PASSWORD = "the admin's long pass phrase"
SMTP_PASSWORD = "Sup3r-Secret-SMTP-Pa55"  # must never be printed
DATABASE_PASSWORD = "Db-Pa55-never-shown"  # must never be printed


@dataclass(frozen=True)
class Inst:
    """An instance on disk: ``<root>/data`` and its key ``<root>/data.master.key``, as ``meddav init`` lays out."""

    root: Path
    #: The master key, as written in the key file: it must never be printed.
    key_value: str

    @classmethod
    def at(cls, root: Path) -> Inst:
        text = (root / "data.master.key").read_text()
        return cls(root, next(line.split()[1] for line in text.splitlines() if line.startswith("MEDDAV-MASTER-KEY")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.data / "meddav.toml"

    @property
    def key(self) -> Path:
        return self.root / "data.master.key"

    def secrets(self) -> list[str]:
        """What must never appear in the doctor's output."""
        return [self.key_value, ADMIN_PASSWORD, SMTP_PASSWORD, DATABASE_PASSWORD]

    def configure(self, **sections: dict[str, Any]) -> None:
        """Merge options into the configuration file (its mode is kept)."""
        document = tomllib.loads(self.config.read_text())
        for name, values in sections.items():
            document.setdefault(name, {}).update(values)
        lines = []
        for name, values in document.items():
            lines.append(f"[{name}]")
            lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
        self.config.write_text("\n".join(lines) + "\n")

    def doctor(self, *args: str) -> Doctor:
        result = meddav("doctor", *args, config=self.config)
        output = result.stdout + result.stderr
        for secret in self.secrets():
            assert secret not in output
        assert "Traceback" not in output
        return Doctor(result)


@dataclass(frozen=True)
class Doctor:
    """One run's exit status and findings, as (severity, check, rest of the line)."""

    result: subprocess.CompletedProcess[str]

    @property
    def status(self) -> int:
        return self.result.returncode

    @property
    def findings(self) -> list[tuple[str, str, str]]:
        lines = self.result.stdout.strip().splitlines()[:-1]  # the last one is the summary
        return [(severity, check, rest) for severity, check, rest in (line.split(None, 2) for line in lines)]

    def lines(self, severity: str, check: str | None = None) -> list[str]:
        return [rest for s, c, rest in self.findings if s == severity and check in (None, c)]

    def problem(self, check: str, *parts: str) -> str:
        """The one problem line of ``check`` holding every part; fails with the whole output otherwise."""
        matching = [line for line in self.lines("problem", check) if all(part in line for part in parts)]
        assert len(matching) == 1, self.result.stdout
        return matching[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template")
    made = meddav("init", "--data-dir", str(root / "data"), "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    return root


@pytest.fixture
def inst(template: Path, tmp_path: Path) -> Inst:
    """A copy of a freshly initialised instance (modes kept), for one test to break."""
    shutil.copytree(template, tmp_path / "instance", symlinks=True)
    return Inst.at(tmp_path / "instance")


NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


# -- a fresh instance ---------------------------------------------------------------------


def test_a_fresh_instance_has_no_problem_only_what_loopback_lacks(inst: Inst) -> None:
    # What `meddav init` makes: the key file owner-only beside the data directory, which is closed.
    assert stat.S_IMODE(inst.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(inst.data.stat().st_mode) == 0o700
    found = inst.doctor()
    assert found.status == 0, found.result.stdout
    assert not found.lines("problem")
    assert sorted(check for severity, check, _ in found.findings if severity == "warning") == ["mail", "tls"]
    assert "plain HTTP on loopback" in found.lines("warning", "tls")[0]
    assert 'backend = "console"' in found.lines("warning", "mail")[0]
    checks = {check for _, check, _ in found.findings}
    assert {"config", "tls", "master-key", "data-dir", "debug", "mail", "argon2", "policy"} <= checks
    assert f"[storage] key_file {inst.key}: mode 0600, owner" in found.lines("ok", "master-key")[0]
    assert "this instance's" in found.lines("ok", "master-key")[0]
    assert f"[storage] data_dir {inst.data}: mode 0700" in found.lines("ok", "data-dir")[0]
    summary = found.result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{inst.config}: 0 problems, 2 warnings (checked as user ")


def test_the_command_explains_itself() -> None:
    listing = meddav("--help")
    assert listing.returncode == 0 and "doctor" in listing.stdout and "security settings" in listing.stdout
    own = meddav("doctor", "--help")
    assert own.returncode == 0 and own.stdout.startswith("usage: meddav doctor")
    assert "Exit status: 0 no problem" in own.stdout and "docs/doctor.md" in own.stdout and "--format" in own.stdout


def test_json_output_counts_what_the_text_shows(inst: Inst) -> None:
    inst.key.chmod(0o640)
    inst.configure(log={"level": "debug"})
    text, machine = inst.doctor(), inst.doctor("--format", "json")
    assert text.status == machine.status == 1
    document = json.loads(machine.result.stdout)
    assert document["config"] == str(inst.config)
    severities = [f["severity"] for f in document["findings"]]
    assert document["problems"] == severities.count("problem") == len(text.lines("problem")) == 2
    assert document["warnings"] == severities.count("warning") == len(text.lines("warning"))
    key_problem = next(f for f in document["findings"] if f["check"] == "master-key")
    assert key_problem == {
        "severity": "problem",
        "check": "master-key",
        "message": f"[storage] key_file {inst.key}: mode 0640 lets group read",
        "fix": f"chmod 600 {inst.key}",
    }
    assert all(f["fix"] for f in document["findings"] if f["severity"] != "ok")


# -- the master key -------------------------------------------------------------------------


def test_a_key_file_others_can_read_is_a_problem_until_chmod_600(inst: Inst) -> None:
    inst.key.chmod(0o644)
    found = inst.doctor()
    assert found.status == 1
    line = found.problem("master-key", f"[storage] key_file {inst.key}", "mode 0644", "group read, others read")
    assert line.endswith(f"fix: chmod 600 {inst.key}")
    inst.key.chmod(0o600)  # the fix, as printed
    assert inst.doctor().status == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
def test_a_key_file_of_another_user_is_a_problem(inst: Inst) -> None:
    os.chown(inst.key, 4242, -1)
    found = inst.doctor()
    assert found.status == 1
    found.problem("master-key", f"{inst.key}: owned by uid 4242, not by root", "fix: chown root")


def test_a_key_inside_the_data_directory_is_a_problem(inst: Inst) -> None:
    inside = inst.data / "master.key"
    inst.key.rename(inside)
    inst.configure(storage={"key_file": "master.key"})
    found = inst.doctor()
    assert found.status == 1
    line = found.problem("config", "[storage] key_file", "inside data_dir")
    assert "move it beside the data directory" in line and "fix: correct it in" in line


def test_a_copy_of_the_key_left_in_the_data_directory_is_a_problem(inst: Inst) -> None:
    (inst.data / "old").mkdir()
    copy = inst.data / "old" / "key.bak"
    shutil.copy(inst.key, copy)
    link = inst.data / "key-link"
    link.symlink_to(inst.key)
    found = inst.doctor()
    assert found.status == 1
    assert found.problem("master-key", f"{copy}: a master key inside").endswith(f"shred -u {copy}")
    found.problem("master-key", f"{link}: a master key inside")
    copy.unlink()
    link.unlink()
    assert inst.doctor().status == 0


def test_another_instances_key_is_a_problem(inst: Inst) -> None:
    MasterKey.create_file(inst.root / "other.key")
    inst.configure(storage={"key_file": "../other.key"})
    found = inst.doctor()
    assert found.status == 1
    found.problem("master-key", "not the one this database was created with")


# -- the data directory -----------------------------------------------------------------------


def test_an_open_data_directory_is_a_problem_until_chmod_700(inst: Inst) -> None:
    inst.data.chmod(0o777)
    found = inst.doctor()
    assert found.status == 1
    line = found.problem("data-dir", f"[storage] data_dir {inst.data}: mode 0777", "others read/write/execute")
    assert line.endswith(f"fix: chmod 700 {inst.data}")
    inst.data.chmod(0o700)
    assert inst.doctor().status == 0


def test_open_files_inside_a_closed_data_directory_are_a_warning(inst: Inst) -> None:
    (inst.data / "meddav.sqlite3").chmod(0o644)
    found = inst.doctor()
    assert found.status == 0
    (line,) = found.lines("warning", "data-dir")
    assert "meddav.sqlite3" in line and line.endswith(f"fix: chmod -R go-rwx {inst.data}")


def test_init_closes_an_existing_open_directory_and_the_doctor_sees_one_opened_later(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(mode=0o755)
    (tmp_path / "data").chmod(0o755)
    made = meddav("init", "--data-dir", str(tmp_path / "data"), "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert Inst.at(tmp_path).doctor().status == 0
    (tmp_path / "data").chmod(0o755)
    found = Inst.at(tmp_path).doctor()
    assert found.status == 1
    found.problem("data-dir", "mode 0755", f"fix: chmod 700 {tmp_path / 'data'}")


# -- TLS ------------------------------------------------------------------------------------


def test_an_expired_certificate_is_a_problem(inst: Inst) -> None:
    cert, key = self_signed(inst.root, not_before=NOW - dt.timedelta(days=90), not_after=NOW - dt.timedelta(days=2))
    inst.configure(server={"tls_cert": str(cert), "tls_key": str(key)})
    found = inst.doctor()
    assert found.status == 1
    expired = (NOW - dt.timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    line = found.problem("tls", f"[server] tls_cert {cert}: expired on {expired} UTC")
    assert "fix: renew the certificate" in line


def test_a_valid_certificate_with_a_private_key_is_ok(inst: Inst) -> None:
    # 2051: past 2049, X.509 writes dates as GeneralizedTime instead of UTCTime.
    until = dt.datetime(2051, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    cert, key = self_signed(inst.root, not_before=NOW - dt.timedelta(days=1), not_after=until)
    inst.configure(server={"tls_cert": str(cert), "tls_key": str(key)})
    found = inst.doctor()
    assert found.status == 0, found.result.stdout
    (line,) = found.lines("ok", "tls")
    assert line.startswith(f"[server] tls_cert {cert}: valid until 2051-03-04 UTC") and "matches tls_key" in line
    assert [check for severity, check, _ in found.findings if severity == "warning"] == ["mail"]


def test_a_certificate_expiring_soon_is_a_warning(inst: Inst) -> None:
    until = NOW + dt.timedelta(days=10, hours=1)
    cert, key = self_signed(inst.root, not_before=NOW - dt.timedelta(days=80), not_after=until)
    inst.configure(server={"tls_cert": str(cert), "tls_key": str(key)})
    found = inst.doctor()
    assert found.status == 0
    (line,) = found.lines("warning", "tls")
    assert f"expires on {until:%Y-%m-%d} UTC, in 10 days" in line and "automatic renewal" in line


def test_a_tls_key_others_can_read_is_a_problem(inst: Inst) -> None:
    cert, key = self_signed(inst.root, not_before=NOW, not_after=NOW + dt.timedelta(days=90))
    key.chmod(0o644)
    inst.configure(server={"tls_cert": str(cert), "tls_key": str(key)})
    found = inst.doctor()
    assert found.status == 1
    assert found.problem("tls", f"[server] tls_key {key}: mode 0644").endswith(f"fix: chmod 600 {key}")


def test_a_key_that_is_not_the_certificates_or_needs_a_passphrase_is_a_problem(inst: Inst) -> None:
    (inst.root / "a").mkdir()
    (inst.root / "b").mkdir()
    cert, _ = self_signed(inst.root / "a", not_before=NOW, not_after=NOW + dt.timedelta(days=90))
    _, other_key = self_signed(inst.root / "b", not_before=NOW, not_after=NOW + dt.timedelta(days=90))
    inst.configure(server={"tls_cert": str(cert), "tls_key": str(other_key)})
    found = inst.doctor()
    assert found.status == 1
    found.problem("tls", "cannot be used together", "KEY_VALUES_MISMATCH")

    cert, key = self_signed(
        inst.root, not_before=NOW, not_after=NOW + dt.timedelta(days=90), passphrase=b"a passphrase"
    )
    inst.configure(server={"tls_cert": str(cert), "tls_key": str(key)})
    found = inst.doctor()
    assert found.status == 1
    found.problem("tls", f"[server] tls_key {key}: encrypted with a passphrase")


def test_plain_http_on_a_network_address_is_a_problem(inst: Inst) -> None:
    inst.configure(server={"host": "0.0.0.0", "allow_plain_http": True})
    found = inst.doctor()
    assert found.status == 1
    found.problem("tls", "[server] host = 0.0.0.0", "in clear", "fix: set [server] tls_cert and tls_key")
    assert "public_url is empty" in found.lines("warning", "public-url")[0]


def test_behind_a_tls_proxy_the_doctor_asks_for_trusted_proxies(inst: Inst) -> None:
    inst.configure(
        server={"public_url": "https://files.example.org"},
        mail={"backend": "smtp", "smtp_host": "smtp.example.org", "from_address": "MedDAV <no-reply@example.org>"},
    )
    found = inst.doctor()
    assert found.status == 0, found.result.stdout
    assert "behind the TLS proxy" in found.lines("ok", "tls")[0]
    proxy = found.lines("warning", "proxy")
    assert len(proxy) == 1 and "trusted_proxies is empty" in proxy[0]  # cookies and HSTS follow public_url

    inst.configure(server={"trusted_proxies": ["0.0.0.0/0"]})
    found = inst.doctor()
    assert found.status == 1
    found.problem("proxy", "[server] trusted_proxies holds 0.0.0.0/0")


def test_a_public_url_over_http_is_a_problem(inst: Inst) -> None:
    inst.configure(server={"public_url": "http://files.example.org"})
    found = inst.doctor()
    assert found.status == 1
    found.problem("public-url", "[server] public_url = http://files.example.org", 'public_url = "https://')


# -- debug, mail, policies --------------------------------------------------------------------


def test_debug_logging_is_a_problem(inst: Inst) -> None:
    inst.configure(log={"level": "debug"})
    found = inst.doctor()
    assert found.status == 1
    found.problem("debug", '[log] level = "debug"', 'fix: set [log] level = "info"')


def test_console_mail_with_an_open_share_link_is_a_problem(inst: Inst) -> None:
    instance = open_instance(load_settings(inst.config))
    try:
        admin = instance.accounts.get("admin")
        instance.tree.mkdir(instance.tree.get(admin.root_id), "Dossier")
    finally:
        instance.close()
    made = meddav(
        "share", "create", "--owner", "admin", "--path", "/Dossier", "--email", "patient@example.org",
        config=inst.config,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    found = inst.doctor()
    assert found.status == 1
    found.problem("mail", 'backend = "console" with 1 share link not ended', "fix: configure [mail]", '"smtp"')
    token = made.stdout.split("/s/")[1].split()[0]
    assert token not in found.result.stdout

    assert meddav("share", "revoke", made.stdout.split()[0], config=inst.config).returncode == 0
    found = inst.doctor()
    assert found.status == 0 and "loopback instance" in found.lines("warning", "mail")[0]


def test_console_mail_on_an_instance_other_machines_reach_is_a_problem(inst: Inst) -> None:
    inst.configure(server={"public_url": "https://files.example.org", "trusted_proxies": ["127.0.0.1"]})
    found = inst.doctor()
    assert found.status == 1
    found.problem("mail", 'backend = "console" on an instance other machines reach')
    inst.configure(
        mail={"backend": "smtp", "smtp_host": "smtp.example.org", "from_address": "MedDAV <no-reply@example.org>"}
    )
    found = inst.doctor()
    assert found.status == 0, found.result.stdout
    assert found.lines("ok", "mail") == ['[mail] backend = "smtp" via smtp.example.org:587 (starttls)']


def test_mail_in_clear_and_a_readable_password_are_problems_and_the_password_is_not_shown(inst: Inst) -> None:
    inst.configure(
        mail={
            "backend": "smtp",
            "smtp_host": "smtp.example.org",
            "smtp_port": 25,
            "smtp_security": "none",
            "smtp_password": SMTP_PASSWORD,
        }
    )
    inst.config.chmod(0o644)
    found = inst.doctor()  # also checks that SMTP_PASSWORD is printed nowhere
    assert found.status == 1
    found.problem("mail", 'smtp_security = "none" to smtp.example.org:25', "in clear", '"starttls"')
    line = found.problem("config", f"{inst.config}: holds [mail] smtp_password", "mode 0644")
    assert line.endswith(f"fix: chmod 600 {inst.config}")
    inst.config.chmod(0o600)
    assert not inst.doctor().lines("problem", "config")


def test_a_database_over_the_network_in_clear_is_a_problem_and_its_url_is_not_shown(inst: Inst) -> None:
    # hostaddr: were a PostgreSQL driver installed, it would be refused at once on loopback, with no DNS query.
    url = f"postgresql://meddav:{DATABASE_PASSWORD}@db.example.org:1/meddav?sslmode=disable&hostaddr=127.0.0.1"
    inst.configure(database={"url": url})
    found = inst.doctor()  # also checks that the password is printed nowhere
    assert found.status == 1
    found.problem("database", "PostgreSQL at db.example.org, sslmode=disable", "in clear", "sslmode=verify-full")
    assert url not in found.result.stdout
    # The doctor cannot read this database (no server there): said, and what was therefore not checked.
    assert "whether the key file is this instance's" in found.lines("warning", "database")[0]


def test_weak_password_hashing_is_a_problem_and_weaker_policies_are_warnings(inst: Inst) -> None:
    inst.configure(auth=dict(FAST_ARGON2))
    found = inst.doctor()
    assert found.status == 1
    found.problem("argon2", "argon2_time_cost = 1, argon2_memory_kib = 64", "below the OWASP minimum")

    inst.configure(
        auth={"argon2_time_cost": 3, "argon2_memory_kib": 32768},
        web={"session_idle_minutes": 120, "session_lifetime_hours": 48, "admins_need_second_factor": False},
        passwords={"min_length": 8},
        audit={"retention_days": 0},  # keeps everything: stricter, not weaker
    )
    found = inst.doctor()
    assert found.status == 0, found.result.stdout
    assert "weaker than the defaults" in found.lines("warning", "argon2")[0]
    policy = found.lines("warning", "policy")
    assert len(policy) == 3
    assert any(line.startswith("[web] session_idle_minutes = 120: weaker than the default 15") for line in policy)
    assert any("fix: set [web] session_lifetime_hours = 12" in line for line in policy)
    assert any(line.startswith("[passwords] min_length = 8") for line in policy)
    assert "admins_need_second_factor = false" in found.lines("warning", "second-factor")[0]


# -- configuration files -----------------------------------------------------------------------


def test_a_configuration_that_does_not_load_is_reported_without_its_secrets(inst: Inst, tmp_path: Path) -> None:
    inst.configure(server={"port": 0}, mail={"smtp_password": 12345678901})
    found = inst.doctor()
    assert found.status == 1
    assert {check for _, check, _ in found.findings} == {"config"}
    found.problem("config", "[server] port = 0", "out of range")
    found.problem("config", "[mail] smtp_password: the value is not valid (not shown")
    assert "12345678901" not in found.result.stdout

    missing = meddav("doctor", config=tmp_path / "nowhere.toml")
    assert missing.returncode == 2 and "file not found" in missing.stderr
    unnamed = meddav("doctor")
    assert unnamed.returncode == 2 and "MEDDAV_CONFIG" in unnamed.stderr
