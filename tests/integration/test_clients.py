"""Real WebDAV clients against the real server: rclone and cadaver."""

from __future__ import annotations

import hashlib
import os
import subprocess
import unicodedata
from pathlib import Path

import httpx
import pytest

from server.testing import LiveServer, TestInstance
from tests.conftest import require_client
from tests.helpers import names_in

pytestmark = pytest.mark.client

NFC = unicodedata.normalize("NFC", "résumé échographie.txt")
NFD = unicodedata.normalize("NFD", NFC)


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path (exact bytes of the names) -> SHA-256 of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[os.fsencode(path.relative_to(root)).hex()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def make_source_tree(root: Path) -> None:
    (root / "dossier patient" / "sous dossier").mkdir(parents=True)
    (root / "dossier patient" / "compte rendu.txt").write_bytes(b"compte rendu\n" * 500)
    (root / "nfc").mkdir()
    (root / "nfc" / NFC).write_bytes(b"written with an NFC name")
    (root / "nfd").mkdir()
    (root / "nfd" / NFD).write_bytes(b"written with an NFD name")
    (root / "emoji 🩺.txt").write_bytes(b"stethoscope")
    (root / "hash#name.txt").write_bytes(b"hash")
    (root / "100% sure.txt").write_bytes(b"percent")
    (root / "empty.txt").write_bytes(b"")
    with open(root / "dossier patient" / "sous dossier" / "imaging.bin", "wb") as f:
        for _ in range(50):
            f.write(os.urandom(1024 * 1024))  # 50 MiB


def rclone(args: list[str], server: LiveServer, inst: TestInstance) -> subprocess.CompletedProcess[str]:
    binary = require_client("rclone")
    obscured = subprocess.run([binary, "obscure", inst.password], capture_output=True, text=True, check=True).stdout
    env = {
        **os.environ,
        "RCLONE_CONFIG_MEDDAV_TYPE": "webdav",
        "RCLONE_CONFIG_MEDDAV_URL": server.dav_url,
        "RCLONE_CONFIG_MEDDAV_VENDOR": "other",
        "RCLONE_CONFIG_MEDDAV_USER": inst.user,
        "RCLONE_CONFIG_MEDDAV_PASS": obscured.strip(),
    }
    result = subprocess.run(
        [binary, "--config", "/dev/null", "--retries", "1", "--low-level-retries", "2", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_rclone_sync_up_down_modify_delete(live_server: LiveServer, instance_dir: TestInstance, tmp_path: Path) -> None:
    source, back = tmp_path / "source", tmp_path / "back"
    make_source_tree(source)

    rclone(["sync", str(source), "meddav:cabinet"], live_server, instance_dir)
    rclone(["sync", "meddav:cabinet", str(back)], live_server, instance_dir)
    assert tree_digest(back) == tree_digest(source)
    assert os.listdir(back / "nfd") == [NFD]  # the name as written, byte for byte

    # Change some files, delete others, add one; sync both ways again.
    (source / "hash#name.txt").write_bytes(b"changed content, longer")
    (source / "emoji 🩺.txt").unlink()
    (source / "nfc" / NFC).unlink()
    (source / "dossier patient" / "nouveau.txt").write_bytes(b"new")
    rclone(["sync", str(source), "meddav:cabinet"], live_server, instance_dir)
    rclone(["sync", "meddav:cabinet", str(back)], live_server, instance_dir)
    assert tree_digest(back) == tree_digest(source)
    check = rclone(["check", str(source), "meddav:cabinet"], live_server, instance_dir)
    assert "0 differences found" in check.stderr


def test_cadaver_session(live_server: LiveServer, instance_dir: TestInstance, tmp_path: Path) -> None:
    cadaver = require_client("cadaver")
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin {instance_dir.user}\npassword {instance_dir.password}\n")
    netrc.chmod(0o600)
    work = tmp_path / "work"
    work.mkdir()
    (work / "local.txt").write_bytes(b"lettre de liaison\n")
    script = "\n".join(
        [
            "mkcol dossier",
            "cd dossier",
            "put local.txt lettre.txt",
            "get lettre.txt back.txt",
            "move lettre.txt archive.txt",
            "ls",
            "delete archive.txt",
            "ls",
            "quit",
            "",
        ]
    )
    result = subprocess.run(
        [cadaver, live_server.dav_url],
        input=script,
        capture_output=True,
        text=True,
        cwd=work,
        env={**os.environ, "HOME": str(home)},
        timeout=60,
    )
    output = result.stdout + result.stderr
    for step in (
        "Creating `dossier': succeeded",
        "Uploading local.txt",
        "Downloading",
        "Moving",
        "Deleting `archive.txt': succeeded",
    ):
        assert step in output, output
    assert "archive.txt" in output and "collection is empty" in output
    assert (work / "back.txt").read_bytes() == b"lettre de liaison\n"
    with httpx.Client(base_url=live_server.dav_url, auth=(instance_dir.user, instance_dir.password)) as client:
        assert names_in(client, "dossier/") == set()
