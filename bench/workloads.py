"""The benchmark workloads, runnable against any WebDAV server (stdlib + httpx).

Each workload works inside a fresh collection under the server's root and
returns a dict of figures.  Memory is sampled from /proc while it runs
(:class:`RssSampler`): the resident set of the server process and its
children, every 50 ms, plus the process's high-water mark, reset before each
workload through /proc/PID/clear_refs.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

MiB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")

PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/>"
    b"<D:getcontenttype/><D:displayname/><D:creationdate/>"
    b"</D:prop></D:propfind>"
)


class RssSampler:
    """Peak resident memory (MiB) of a process and its children while active."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[int]:
        pids = [self.pid]
        try:
            for task in os.listdir(f"/proc/{self.pid}/task"):
                with open(f"/proc/{self.pid}/task/{task}/children") as f:
                    pids.extend(int(p) for p in f.read().split())
        except OSError:
            pass
        return pids

    def _rss_kib(self) -> int:
        total = 0
        for pid in self._tree():
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * PAGE // 1024
            except OSError:
                pass
        return total

    def _hwm_kib(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self._rss_kib())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
        except OSError:
            pass
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self._hwm_kib(), self._rss_kib())

    @property
    def peak_mib(self) -> float:
        return round(self.peak_kib / 1024, 1)


class Dav:
    """A tiny WebDAV client over httpx (one per thread: httpx clients are not shared)."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url.rstrip("/") + "/"
        self.auth = (user, password)

    def client(self) -> httpx.Client:
        return httpx.Client(auth=self.auth, timeout=600, limits=httpx.Limits(max_keepalive_connections=1))

    @staticmethod
    def check(response: httpx.Response, *ok: int) -> httpx.Response:
        if response.status_code not in ok:
            raise RuntimeError(f"{response.request.method} {response.request.url} -> {response.status_code}")
        return response


def _pattern(size: int, seed: int) -> Iterator[bytes]:
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    sent = 0
    while sent < size:
        chunk = block[: min(len(block), size - sent)]
        sent += len(chunk)
        yield chunk


def big(dav: Dav, base: str, pid: int | None, *, mib: int) -> dict[str, Any]:
    size = mib * MiB
    url = base + "big.bin"
    expected = hashlib.sha256()
    for chunk in _pattern(size, 1):
        expected.update(chunk)
    out: dict[str, Any] = {}
    with dav.client() as c:
        sampler = RssSampler(pid) if pid else None
        if sampler:
            sampler.__enter__()
        started = time.perf_counter()
        Dav.check(c.put(url, content=_pattern(size, 1), headers={"Content-Length": str(size)}), 201, 204)
        out["put_mb_s"] = round(size / 1e6 / (time.perf_counter() - started), 1)
        digest = hashlib.sha256()
        started = time.perf_counter()
        with c.stream("GET", url) as response:
            Dav.check(response, 200)
            for chunk in response.iter_bytes(1024 * 1024):
                digest.update(chunk)
        out["get_mb_s"] = round(size / 1e6 / (time.perf_counter() - started), 1)
        if sampler:
            sampler.__exit__()
            out["peak_rss_mib"] = sampler.peak_mib
        if digest.digest() != expected.digest():
            raise RuntimeError("big GET returned different bytes")
        Dav.check(c.delete(url), 204)
    return out


def _parallel(dav: Dav, jobs: list[Any], work: Callable[[httpx.Client, Any], None], concurrency: int) -> list[float]:
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()
    latencies: list[float] = []

    def run(job: Any) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = dav.client()
            with lock:
                clients.append(client)
        started = time.perf_counter()
        work(client, job)
        with lock:
            latencies.append(time.perf_counter() - started)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run, jobs))
    for client in clients:
        client.close()
    return latencies


def small(dav: Dav, base: str, pid: int | None, *, count: int, size: int, concurrency: int) -> dict[str, Any]:
    folder = base + "small/"
    with dav.client() as c:
        Dav.check(c.request("MKCOL", folder), 201)
    bodies = {i: hashlib.sha256(str(i).encode()).digest() * (size // 32) for i in range(count)}

    def put(client: httpx.Client, i: int) -> None:
        Dav.check(client.put(f"{folder}f{i}.bin", content=bodies[i]), 201, 204)

    def get(client: httpx.Client, i: int) -> None:
        response = Dav.check(client.get(f"{folder}f{i}.bin"), 200)
        if response.content != bodies[i]:
            raise RuntimeError("small GET returned different bytes")

    out: dict[str, Any] = {}
    sampler = RssSampler(pid) if pid else None
    if sampler:
        sampler.__enter__()
    for name, work in (("put", put), ("get", get)):
        started = time.perf_counter()
        latencies = _parallel(dav, list(range(count)), work, concurrency)
        elapsed = time.perf_counter() - started
        latencies.sort()
        out[f"{name}_req_s"] = round(count / elapsed, 1)
        out[f"{name}_p50_ms"] = round(latencies[len(latencies) // 2] * 1000, 2)
        out[f"{name}_p99_ms"] = round(latencies[int(len(latencies) * 0.99)] * 1000, 2)
    if sampler:
        sampler.__exit__()
        out["peak_rss_mib"] = sampler.peak_mib
    return out


def latency(dav: Dav, base: str, pid: int | None, *, requests: int, concurrency: int) -> dict[str, Any]:
    """Median GET latency of one small file with one client, then with ``concurrency`` clients.

    Every MedDAV request appends an audit row to one hash chain; this shows
    whether that makes latency grow with concurrency more than plain wsgidav's.
    """
    url = base + "one.bin"
    body = b"x" * 4096
    with dav.client() as c:
        Dav.check(c.put(url, content=body), 201, 204)

    def get(client: httpx.Client, _: int) -> None:
        Dav.check(client.get(url), 200)

    out: dict[str, Any] = {}
    for clients in (1, concurrency):
        _parallel(dav, list(range(50)), get, clients)  # warm up connections
        latencies = sorted(_parallel(dav, list(range(requests)), get, clients))
        out[f"p50_c{clients}_ms"] = round(latencies[len(latencies) // 2] * 1000, 2)
    out["growth"] = round(out[f"p50_c{concurrency}_ms"] / out["p50_c1_ms"], 2)
    return out


def propfind(dav: Dav, base: str, pid: int | None, *, members: int, runs: int) -> dict[str, Any]:
    folder = base + "many/"
    with dav.client() as c:
        Dav.check(c.request("MKCOL", folder), 201)

    def put(client: httpx.Client, i: int) -> None:
        Dav.check(client.put(f"{folder}m{i:05d}.txt", content=b"x" * 64), 201, 204)

    _parallel(dav, list(range(members)), put, 8)
    times: list[float] = []
    out: dict[str, Any] = {}
    sampler = RssSampler(pid) if pid else None
    with dav.client() as c:
        if sampler:
            sampler.__enter__()
        for run in range(runs + 1):
            started = time.perf_counter()
            response = Dav.check(
                c.request(
                    "PROPFIND", folder, content=PROPFIND_BODY, headers={"Depth": "1", "Content-Type": "application/xml"}
                ),
                207,
            )
            elapsed = time.perf_counter() - started
            found = len(ET.fromstring(response.content).findall("{DAV:}response"))
            if found != members + 1:
                raise RuntimeError(f"PROPFIND listed {found} responses, expected {members + 1}")
            if run:  # the first run warms caches
                times.append(elapsed)
        if sampler:
            sampler.__exit__()
            out["peak_rss_mib"] = sampler.peak_mib
    out["median_ms"] = round(statistics.median(times) * 1000, 1)
    return out


def meta(dav: Dav, base: str, pid: int | None, *, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sampler = RssSampler(pid) if pid else None
    with dav.client() as c:
        if sampler:
            sampler.__enter__()
        started = time.perf_counter()
        for _ in range(rounds):
            Dav.check(c.request("MKCOL", base + "c/"), 201)
            Dav.check(c.request("MOVE", base + "c/", headers={"Destination": base + "r/", "Overwrite": "F"}), 201, 204)
            Dav.check(c.request("DELETE", base + "r/"), 204)
        out["ops_s"] = round(3 * rounds / (time.perf_counter() - started), 1)
        if sampler:
            sampler.__exit__()
            out["peak_rss_mib"] = sampler.peak_mib
    return out


def transfer_rss(dav: Dav, base: str, pid: int, *, mib: int) -> float:
    """Peak server RSS (MiB) while one file of ``mib`` MiB is PUT then GET."""
    with RssSampler(pid) as sampler, dav.client() as c:
        url = base + f"rss{mib}.bin"
        Dav.check(c.put(url, content=_pattern(mib * MiB, 2), headers={"Content-Length": str(mib * MiB)}), 201, 204)
        with c.stream("GET", url) as response:
            for _ in response.iter_bytes(1024 * 1024):
                pass
        Dav.check(c.delete(url), 204)
    return sampler.peak_mib


def fresh_collection(dav: Dav) -> str:
    base = dav.url + f"bench-{uuid.uuid4().hex[:8]}/"
    with dav.client() as c:
        Dav.check(c.request("MKCOL", base), 201)
    return base


def remove_collection(dav: Dav, base: str) -> None:
    with dav.client() as c:
        c.request("DELETE", base)
