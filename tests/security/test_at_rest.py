"""Nothing readable at rest, nothing sensitive in logs, damaged blobs never served.

A random marker is put in file names (NFC and NFD), folder names, contents,
dead property values, a lock owner and a user's password; then every byte
under the data directory (database, WAL, blobs) is searched for it in UTF-8
and UTF-16, while the server runs and after it stopped, and the server's log
too.
"""

from __future__ import annotations

import logging
import os
import secrets
import unicodedata
from pathlib import Path

import httpx
import pytest

from server.testing import LiveServer, ServerProcess, TestInstance

PROPPATCH = (
    '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:">'
    "<D:set><D:prop><Z:diagnosis>{}</Z:diagnosis></D:prop></D:set></D:propertyupdate>"
)
LOCKINFO = (
    '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    "<D:locktype><D:write/></D:locktype><D:owner>{}</D:owner></D:lockinfo>"
)


def encodings(text: str) -> list[bytes]:
    forms = {text, unicodedata.normalize("NFC", text), unicodedata.normalize("NFD", text)}
    return [form.encode(codec) for form in forms for codec in ("utf-8", "utf-16-le", "utf-16-be")]


def find_in_files(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            data = path.read_bytes()
            hits.extend(f"{path}: {needle!r}" for needle in needles if needle in data)
    return hits


def test_no_plaintext_reaches_the_disk_or_the_log(instance_dir: TestInstance) -> None:
    marker = "PATIENTMARKER" + secrets.token_hex(6)
    accented = f"Échographie {marker} née"
    password = f"{marker}-pass-phrase"
    needles = encodings(marker) + encodings(accented) + [password.encode()]

    with ServerProcess(instance_dir.config_path) as server:
        auth = (instance_dir.user, instance_dir.password)
        with httpx.Client(base_url=server.dav_url, auth=auth, timeout=60) as c:
            folder = f"Dossier {marker}/"
            assert c.request("MKCOL", folder).status_code == 201
            assert (
                c.put(
                    folder + unicodedata.normalize("NFD", accented) + ".txt", content=marker.encode() * 10
                ).status_code
                == 201
            )
            assert c.put(folder + f"{marker}.pdf", content=(marker.encode() + os.urandom(50)) * 5000).status_code == 201
            assert c.put(f"{marker}-empty", content=b"").status_code == 201
            assert (
                c.request("COPY", folder, headers={"Destination": server.dav_url + f"copie {marker}/"}).status_code
                == 201
            )
            assert (
                c.request(
                    "MOVE", f"{marker}-empty", headers={"Destination": server.dav_url + f"moved {marker}"}
                ).status_code
                == 201
            )
            assert c.request("PROPPATCH", folder, content=PROPPATCH.format(marker).encode()).status_code == 207
            lock = c.request("LOCK", f"moved {marker}", content=LOCKINFO.format(marker).encode())
            assert lock.status_code == 200
            token = lock.headers["Lock-Token"].strip("<>")
            # Failed and successful logins with secrets in them.
            assert httpx.get(server.dav_url, auth=("admin", password)).status_code == 401
        data_dir = instance_dir.data_dir
        assert list(data_dir.glob("*-wal")), "expected a WAL file while serving"
        assert find_in_files(data_dir, needles) == []
    assert find_in_files(data_dir, needles) == []
    log = server.log_path.read_bytes()
    assert b"method=PUT" in log  # the request log is there...
    for secret in [*needles, instance_dir.password.encode(), token.encode()]:
        assert secret not in log  # ...without names, contents, passwords or lock tokens


def test_password_is_stored_hashed(live_server: LiveServer) -> None:
    live_server.instance.accounts.create_user("carol", "a long pass phrase for carol")
    with live_server.instance.db.read() as c:
        from sqlalchemy import select

        from server.db.models import users_t

        stored = c.scalar(select(users_t.c.password_hash).where(users_t.c.username == "carol"))
    assert stored.startswith("$argon2id$")
    assert "a long pass phrase" not in stored


# -- damaged blobs ---------------------------------------------------------------------------


@pytest.fixture
def stored(dav: httpx.Client, live_server: LiveServer) -> tuple[bytes, Path]:
    data = os.urandom(5 * 65536 + 100)  # six segments
    assert dav.put("scan.bin", content=data).status_code == 201
    (blob,) = [Path(d) / f for d, _, files in os.walk(live_server.settings.storage.blob_dir) for f in files]
    return data, blob


SEGMENT = 65536 + 16
HEADER = 33


def _get(dav: httpx.Client, path: str, **kw: object) -> tuple[int, bytes]:
    """Status and body; a transfer cut short counts as what arrived."""
    received = b""
    try:
        with dav.stream("GET", path, **kw) as response:  # type: ignore[arg-type]
            status = response.status_code
            for chunk in response.iter_bytes():
                received += chunk
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return -1, received
    return status, received


def test_flipped_byte_in_first_segment_fails_the_get(
    dav: httpx.Client, stored: tuple[bytes, Path], caplog: pytest.LogCaptureFixture
) -> None:
    data, blob = stored
    raw = bytearray(blob.read_bytes())
    raw[HEADER + 10] ^= 0x01
    blob.write_bytes(bytes(raw))
    with caplog.at_level(logging.ERROR):
        status, body = _get(dav, "scan.bin")
    assert status == 500 and body != data and data[:100] not in body
    assert any("failed authentication" in r.getMessage() for r in caplog.records)
    assert all("scan.bin" not in r.getMessage() for r in caplog.records)


def test_damage_in_a_later_segment_cuts_the_transfer(dav: httpx.Client, stored: tuple[bytes, Path]) -> None:
    data, blob = stored
    raw = bytearray(blob.read_bytes())
    raw[HEADER + 5 * SEGMENT + 5] ^= 0x01  # the last segment, past the first 256 KiB block sent
    blob.write_bytes(bytes(raw))
    status, body = _get(dav, "scan.bin")
    assert status == -1  # headers promised the full length; the server dropped the connection
    assert data.startswith(body) and len(body) <= 5 * 65536  # only verified segments were sent
    # A range inside intact segments is still served: only touched segments are decrypted.
    status, part = _get(dav, "scan.bin", headers={"Range": "bytes=100-199"})
    assert (status, part) == (206, data[100:200])


def test_truncated_blob_fails_the_get(dav: httpx.Client, stored: tuple[bytes, Path]) -> None:
    data, blob = stored
    blob.write_bytes(blob.read_bytes()[:-SEGMENT])
    status, body = _get(dav, "scan.bin")
    assert status == 500 and body != data


def test_swapped_segments_fail_the_get(dav: httpx.Client, stored: tuple[bytes, Path]) -> None:
    data, blob = stored
    raw = bytearray(blob.read_bytes())
    one = raw[HEADER + SEGMENT : HEADER + 2 * SEGMENT]
    two = raw[HEADER + 2 * SEGMENT : HEADER + 3 * SEGMENT]
    raw[HEADER + SEGMENT : HEADER + 3 * SEGMENT] = two + one
    blob.write_bytes(bytes(raw))
    status, body = _get(dav, "scan.bin")
    assert status == 500 and body != data and data[65536:65636] not in body
