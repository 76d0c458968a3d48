"""The memory of a link share's web pages: a large upload from the browser and a large folder zip.

Starts ``meddav serve`` in a child process (production settings), makes a read-write link on a
folder, opens it with its password as a browser would, then sends a file of ``--mib`` MiB as the raw
body of a PUT (what ``static/share.js`` does) and downloads the folder as a zip, sampling the
server's RSS every 50 ms.  Reports the peak growth over the server's RSS at rest, for the upload and
the zip, beside a small file of 1 MiB: growth that does not follow the size is what "constant memory"
means.  Throughput is reported too (MiB/s, client and server on the same two cores).

    .venv/bin/python bench/share_pages.py [--mib 1024] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.workloads import RssSampler  # noqa: E402 - after the path is set
from server.config import load_settings  # noqa: E402
from server.instance import open_instance  # noqa: E402
from server.testing import TEST_PASSWORD, ServerProcess, make_instance  # noqa: E402

PASSWORD = "Tulipe ocre 2026!"
CHUNK = 1024 * 1024


def body(mib: int) -> Iterator[bytes]:
    block = bytes(range(256)) * (CHUNK // 256)
    for _ in range(mib):
        yield block


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="size of the large file (MiB)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="meddav-share-bench-") as tmp:
        made = make_instance(Path(tmp) / "data", fast=False)
        instance = open_instance(load_settings(made.config_path))
        try:
            alice = instance.accounts.create_user("alice", TEST_PASSWORD)
            folder = instance.tree.mkdir(instance.tree.get(alice.root_id), "Examens")
            token = instance.shares.create(alice.principal(), folder, email="p@example.org", mode="write",
                                           password=PASSWORD).token  # fmt: skip
        finally:
            instance.close()
        server = ServerProcess(made.config_path)
        figures: dict[str, dict[str, float]] = {}
        try:
            with httpx.Client(base_url=server.url, timeout=600) as web:
                page = web.get(f"/s/{token}").text
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
                assert csrf is not None
                web.post(f"/s/{token}", data={"password": PASSWORD, "csrf_token": csrf.group(1)})
                page = web.get(f"/s/{token}").text
                csrf = re.search(r'data-csrf="([^"]+)"', page)
                assert csrf is not None
                headers = {"X-CSRF-Token": csrf.group(1), "Content-Type": "application/octet-stream"}
                time.sleep(1)
                rest = rss_kib(server.pid)
                for label, mib in (("upload_1mib", 1), (f"upload_{args.mib}mib", args.mib)):
                    with RssSampler(server.pid) as sampler:
                        started = time.perf_counter()
                        sent = web.put(f"/s/{token}/put/", params={"name": f"{label}.bin"}, content=body(mib),
                                       headers={**headers, "Content-Length": str(mib * CHUNK)})  # fmt: skip
                        elapsed = time.perf_counter() - started
                    assert sent.status_code == 201, sent.text
                    figures[label] = {"growth_mib": round((sampler.peak_kib - rest) / 1024, 1),
                                      "mib_per_s": round(mib / elapsed, 1)}  # fmt: skip
                with RssSampler(server.pid) as sampler:
                    started, received = time.perf_counter(), 0
                    with web.stream("GET", f"/s/{token}/zip/") as answer:
                        assert answer.status_code == 200
                        for chunk in answer.iter_bytes(CHUNK):
                            received += len(chunk)
                    elapsed = time.perf_counter() - started
                figures[f"zip_{args.mib + 1}mib"] = {"growth_mib": round((sampler.peak_kib - rest) / 1024, 1),
                                                     "mib_per_s": round(received / CHUNK / elapsed, 1)}  # fmt: skip
                figures["rest"] = {"rss_mib": round(rest / 1024, 1)}
        finally:
            server.stop()
    for label, values in figures.items():
        print(f"{label:>20}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "mib": args.mib, **figures}, indent=2))


if __name__ == "__main__":
    main()
