"""A full blob store: uploads get 507 and leave nothing behind, reads go on, and space freed is used at once.

The blob store of an instance is ``<data_dir>/blobs`` unless ``[storage]
blob_dir`` says otherwise; here a tmpfs of 8 MiB is mounted there (the
database stays on the data directory's own file system), which takes root or
CAP_SYS_ADMIN: without it the test fails and says so.  The local store
writes each upload to a temporary ``.upload-*`` file and turns ENOSPC into
``StorageFull``, which WebDAV answers with 507 Insufficient Storage
(``server.dav.errors``).

An upload bigger than the free space, over WebDAV (new file, overwrite, COPY)
and through a recipient's page (``/s/<token>``, a read-write link), must get
507, store nothing and leave no temporary file; the overwritten file keeps
its old content; the server goes on answering GET and PROPFIND.  Once a file
is deleted, the same uploads succeed without a restart.  Finally fsck finds
nothing to remove and the audit chain verifies.
"""

from __future__ import annotations

import base64
import http.client
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from server.testing import ServerProcess, TestInstance
from tests.reliability.conftest import blob_files, meddav, share, snapshot
from tests.web.conftest import Web, csrf_of

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
STORE_SIZE = 8 * MiB


@pytest.fixture
def small_store(instance_dir: TestInstance) -> Iterator[Path]:
    """A tmpfs of 8 MiB mounted as the instance's blob store, unmounted whatever happens."""
    blob_dir = instance_dir.data_dir / "blobs"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={STORE_SIZE},mode=0700", "tmpfs", str(blob_dir)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"this test mounts a tmpfs as the blob store, which needs root or CAP_SYS_ADMIN: {mounted.stderr.strip()}",
            pytrace=False,
        )
    try:
        yield blob_dir
    finally:
        if subprocess.run(["umount", str(blob_dir)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(blob_dir)], check=True)


def send(url: str, method: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """Send a request while reading its answer (status, body text).

    A server that refuses an upload half-way answers before it has read the
    body, and may close the connection: a client that waits to have sent
    everything (httpx) would see a broken pipe instead of the answer.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
        head += ["Connection: close", *(f"{name}: {value}" for name, value in headers.items())]

        def upload() -> None:
            try:
                sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
                view = memoryview(body)
                for start in range(0, len(body), 256 * 1024):
                    sock.sendall(view[start : start + 256 * 1024])
            except OSError:
                pass  # the server answered and closed: the answer is what counts

        sender = threading.Thread(target=upload)
        sender.start()
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        text = response.read().decode(errors="replace")
        sender.join(timeout=60)
        return response.status, text


def basic(auth: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()}


def test_a_full_blob_store_refuses_uploads_with_507_and_recovers_when_space_is_freed(
    instance_dir: TestInstance, small_store: Path
) -> None:
    auth = (instance_dir.user, instance_dir.password)
    big, small, upload = b"B" * (5 * MiB), b"kept while full\n", b"U" * (4 * MiB)
    server = ServerProcess(instance_dir.config_path)
    try:
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as dav:
            assert dav.put("/dav/big.bin", content=big).status_code == 201
            assert dav.put("/dav/small.txt", content=small).status_code == 201
            assert dav.request("MKCOL", "/dav/inbox/").status_code == 201
            made = share("/inbox", "patient@example.org", "write").send(dav)
            assert made.status_code == 201, made.text
            token, password = made.json()["link"].rsplit("/", 1)[1], made.json()["password"]
            before = snapshot(dav)
        free = shutil.disk_usage(small_store).free
        assert free < len(upload) < STORE_SIZE - len(big) + free, (free, "the store is not as full as planned")
        stored, _ = blob_files(small_store)

        with Web(base_url=server.url, timeout=60) as web:
            page = web.get(f"/s/{token}")
            opened = web.post(f"/s/{token}", data={"password": password, "csrf_token": csrf_of(page.text)})
            assert opened.status_code == 303, opened.status_code
            recipient = {
                "X-CSRF-Token": csrf_of(web.get(f"/s/{token}").text),
                "Content-Type": "application/octet-stream",
                "Cookie": "; ".join(f"{cookie.name}={cookie.value}" for cookie in web.cookies.jar),
            }

            refused = {
                "PUT of a new file": send(server.url + "/dav/new.bin", "PUT", basic(auth), upload),
                "PUT over a file": send(server.url + "/dav/big.bin", "PUT", basic(auth), big[: 4 * MiB]),
                "recipient's upload": send(server.url + f"/s/{token}/put/?name=scan.bin", "PUT", recipient, upload),
            }
            with httpx.Client(base_url=server.url, auth=auth, timeout=60) as dav:
                copied = dav.request("COPY", "/dav/big.bin", headers={"Destination": server.url + "/dav/copy.bin"})
                refused["COPY of a file"] = (copied.status_code, copied.text)
                statuses = {name: status for name, (status, _) in refused.items()}
                # While full: nothing stored, nothing half-written, and reads go on.
                assert snapshot(dav) == before, "a refused upload left something behind"
                assert blob_files(small_store) == (stored, []), "a refused upload left a blob or a temporary file"
                assert dav.get("/dav/big.bin").content == big and dav.get("/dav/small.txt").content == small
                assert dav.request("PROPFIND", "/dav/", headers={"Depth": "1"}).status_code == 207

                # Space freed: the same uploads work, without a restart.
                assert dav.request("DELETE", "/dav/big.bin").status_code == 204
                assert dav.put("/dav/new.bin", content=upload).status_code == 201
                assert dav.get("/dav/new.bin").content == upload
            status, text = send(server.url + f"/s/{token}/put/?name=scan.bin", "PUT", recipient, b"S" * MiB)
            assert status == 201, text
    finally:
        server.stop()

    fsck = meddav(instance_dir.config_path, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    for line in ("orphan blobs removed: 0", "unfinished uploads removed: 0", "files whose blob is missing: 0"):
        assert line in fsck.stdout, fsck.stdout
    verified = meddav(instance_dir.config_path, "audit", "verify")
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout, verified.stdout + verified.stderr
    assert statuses == dict.fromkeys(refused, 507), f"uploads into a full blob store answered: {statuses}"
