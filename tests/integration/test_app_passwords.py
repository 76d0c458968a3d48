"""WebDAV with app passwords: drives cannot type a second factor."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pyotp

from server.testing import LiveServer, TestInstance


def test_app_passwords_and_the_second_factor(live_server: LiveServer, instance_dir: TestInstance) -> None:
    instance = live_server.instance
    user = instance.accounts.get(instance_dir.user)
    _, app_password = instance.credentials.create_app_password(user.id, "Windows laptop")

    def status(password: str) -> int:
        with httpx.Client(base_url=live_server.dav_url, auth=(instance_dir.user, password)) as client:
            return client.request("PROPFIND", "", headers={"Depth": "0"}).status_code

    # Without a second factor, the account password and app passwords both work.
    assert status(instance_dir.password) == 207
    assert status(app_password) == 207
    # With one, only app passwords: at once, even though the account password was cached.
    enrolment = instance.credentials.start_totp(instance_dir.user)
    instance.credentials.confirm_totp(user.id, enrolment.secret, pyotp.TOTP(enrolment.secret).now())
    assert status(instance_dir.password) == 401
    assert status(app_password) == 207
    assert status(app_password.replace("-", "").upper()) == 207  # typed without dashes, in capitals
    # A revoked app password is refused at once, though it was just cached.
    app_id = instance.credentials.app_passwords(user.id)[0].id
    instance.credentials.revoke_app_password(user.id, app_id)
    assert status(app_password) == 401
    # An admin resets the lost second factor: the account password works on WebDAV again.
    instance.credentials.reset_second_factor(user.id)
    assert status(instance_dir.password) == 207


def test_app_password_commands(live_server: LiveServer, instance_dir: TestInstance) -> None:
    instance = live_server.instance
    user = instance.accounts.get(instance_dir.user)
    info, app_password = instance.credentials.create_app_password(user.id, "rclone on the NAS")
    with httpx.Client(base_url=live_server.dav_url, auth=(instance_dir.user, app_password)) as client:
        assert client.put("a.txt", content=b"x").status_code == 201

    def meddav(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server", "--config", str(instance_dir.config_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = meddav("app-password", "list", instance_dir.user)
    assert listed.returncode == 0 and "rclone on the NAS" in listed.stdout and "127.0.0.1" in listed.stdout
    assert app_password not in listed.stdout
    assert meddav("app-password", "revoke", instance_dir.user, str(info.id)).returncode == 0
    assert meddav("app-password", "revoke", instance_dir.user, str(info.id)).returncode == 1
    # Revoked from another process: refused within a second (the cache re-reads the account).
    time.sleep(1.1)
    with httpx.Client(base_url=live_server.dav_url, auth=(instance_dir.user, app_password)) as client:
        assert client.get("a.txt").status_code == 401
    reset = meddav("user", "reset-2fa", instance_dir.user)
    assert reset.returncode == 0 and "second factor" in reset.stdout


def test_an_organisation_can_require_a_second_factor(live_server: LiveServer, instance_dir: TestInstance) -> None:
    instance = live_server.instance
    accounts = instance.accounts
    org_id = accounts.default_organisation()
    member = accounts.create_user("bob", "bob's long passphrase", org_id=org_id)
    _, app_password = instance.credentials.create_app_password(member.id, "Mac")

    def status(password: str) -> int:
        with httpx.Client(base_url=live_server.dav_url, auth=("bob", password)) as client:
            return client.request("PROPFIND", "", headers={"Depth": "0"}).status_code

    assert status("bob's long passphrase") == 207
    accounts.set_second_factor_required(org_id, required=True)
    assert status("bob's long passphrase") == 401  # at once, though it was cached
    assert status(app_password) == 207
    accounts.set_second_factor_required(org_id, required=False)
    assert status("bob's long passphrase") == 207
