"""The master key file and the key hierarchy."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from server.crypto import KeyRing, MasterKey
from server.errors import DecryptionFailed, KeyFileError


def test_key_file_is_created_private_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "instance.master.key"
    created = MasterKey.create_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = MasterKey.load_file(path)
    assert loaded.key_check(b"x" * 16) == created.key_check(b"x" * 16)
    assert loaded.file_is_private()


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    MasterKey.create_file(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="refusing to replace"):
        MasterKey.create_file(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    ["", "# only a comment\n", "MEDDAV-MASTER-KEY-1 not-base64!!\n", "MEDDAV-MASTER-KEY-1 c2hvcnQ=\n", "OTHER abc\n"],
)
def test_malformed_key_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(content)
    with pytest.raises(KeyFileError, match="not a MedDAV master key file"):
        MasterKey.load_file(path)


def test_missing_key_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="key_file"):
        MasterKey.load_file(tmp_path / "absent.key")


def test_open_key_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    key = MasterKey.create_file(path)
    path.chmod(0o644)
    assert not key.file_is_private()


def test_org_key_opens_only_with_its_master(tmp_path: Path) -> None:
    master = MasterKey.create_file(tmp_path / "a.key")
    other = MasterKey.create_file(tmp_path / "b.key")
    org_key, wrapped = master.new_org_key()
    assert KeyRing(master).org_key(wrapped).key_id == org_key.key_id
    with pytest.raises(DecryptionFailed):
        other.unwrap_org_key(wrapped)
    with pytest.raises(KeyFileError):
        KeyRing(other).org_key(wrapped)


def test_data_key_is_bound_to_its_blob(tmp_path: Path) -> None:
    org_key, _ = MasterKey.create_file(tmp_path / "a.key").new_org_key()
    key, sealed = org_key.new_data_key(b"1" * 16)
    assert org_key.open_data_key(b"1" * 16, sealed) == key
    with pytest.raises(DecryptionFailed):
        org_key.open_data_key(b"2" * 16, sealed)


def test_key_check_distinguishes_instances(tmp_path: Path) -> None:
    master = MasterKey.create_file(tmp_path / "a.key")
    check = master.key_check(b"i" * 16)
    assert master.matches(b"i" * 16, check)
    assert not master.matches(b"j" * 16, check)
    assert not MasterKey.create_file(tmp_path / "b.key").matches(b"i" * 16, check)
