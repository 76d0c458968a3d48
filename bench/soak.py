"""A bounded soak of ``meddav serve``: mixed clients for ``--minutes``, no error, flat memory and descriptors
(``make soak``).

Starts a fresh instance (production settings) in a child process, then, all at once until the time is up:

- **rclone** syncs a directory of ~40 files (1 KiB to 4 MiB, in sub-folders) up to the drive and back
  into another directory, again and again, changing, adding and deleting files between rounds; each
  round trip must give back exactly the bytes of the source;
- ``--clients`` **WebDAV clients** (httpx, one thread each, each in a folder of its own) PUT new files
  and new versions, GET them (content checked), PROPFIND Depth 1 (the count checked), LOCK + PUT with
  the lock token + UNLOCK, and DELETE, keeping 20 to 40 files in their folder (a steady state: the
  work of a request does not grow with time);
- **a link's recipient**, as a browser: a new session each time, the password page, the password, the
  folder's listing, one file downloaded (content checked), then a pause.

Every unexpected status (any 5xx included), client exception and failed check is an error, listed
with its time.  The server's resident memory (VmRSS), open file descriptors (``/proc/PID/fd``) and
threads are sampled every ``--sample-seconds``; from ``--settle-minutes`` on, each minute's min and
max are reported, with the least-squares slope per minute.  The run fails (exit status 1) on any error,
on a line of level error in the server's log, on a server that does not stop cleanly, or when the
fitted growth over the measured window exceeds ``--rss-tolerance-mib`` or ``--fd-tolerance``.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from server.config import load_settings  # noqa: E402 - after the path is set
from server.instance import open_instance  # noqa: E402
from server.testing import ServerProcess, make_instance  # noqa: E402

PASSWORD = "Soak owner password 2026!"
LINK_PASSWORD = "Ocre tulipe 2026 partage!"
OWNER = "dr-soak"
SHARED_FILES = {"compte rendu.pdf": 40_000, "irm-01.dcm": 300_000, "ordonnance.pdf": 8_000, "bilan.txt": 2_000}
KiB = 1024
MiB = 1024 * KiB
#: How many files a WebDAV client keeps in its folder: new files and deletions balance between the two.
FOLDER_MIN, FOLDER_MAX = 20, 40
#: Sizes a WebDAV client PUTs, with their weights: mostly small documents, now and then a scan.
PUT_SIZES = ((1 * KiB, 30), (16 * KiB, 30), (64 * KiB, 20), (256 * KiB, 15), (1 * MiB, 5))
LOCK_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner><D:href>soak</D:href></D:owner></D:lockinfo>"
)
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/>'
    b"<D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>"
)


#: Errors found on the server's side rather than by a client.
SERVER_SIDE = ("server_log", "server_exit")


class Unexpected(Exception):
    """A wrong status, or an answer that fails its check."""


def expect(response: httpx.Response, *ok: int) -> httpx.Response:
    if response.status_code not in ok:
        raise Unexpected(f"{response.request.method} -> {response.status_code} (expected {'/'.join(map(str, ok))})")
    return response


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Record:
    """Every operation's latency and every error, from all the threads."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def run(self, kind: str, action: Callable[[], object]) -> bool:
        began = time.monotonic()
        try:
            action()
        except (Unexpected, httpx.HTTPError, ET.ParseError, OSError, subprocess.SubprocessError) as error:
            self.error(kind, f"{type(error).__name__}: {error}")
            return False
        with self._lock:
            self.latencies.setdefault(kind, []).append(time.monotonic() - began)
        return True

    def error(self, kind: str, detail: str) -> None:
        at = round(time.monotonic() - self.started, 1)
        with self._lock:
            self.errors.append({"at_s": at, "kind": kind, "detail": detail[:8000]})
        print(f"  ERROR at {at} s, {kind}: {detail[-300:]}", file=sys.stderr)

    def figures(self) -> dict[str, dict[str, float]]:
        out = {}
        with self._lock:
            for kind, values in sorted(self.latencies.items()):
                ordered = sorted(values)
                out[kind] = {
                    "count": len(values),
                    "errors": sum(1 for e in self.errors if e["kind"] == kind),
                    "median_ms": round(statistics.median(ordered) * 1000, 1),
                    "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 1),
                    "max_ms": round(ordered[-1] * 1000, 1),
                }
            for kind in {e["kind"] for e in self.errors} - set(out):
                out[kind] = {"count": 0, "errors": sum(1 for e in self.errors if e["kind"] == kind)}
        return out


# -- the clients ---------------------------------------------------------------------------------------------


def dav_client(url: str, record: Record, number: int, deadline: float, pause: float) -> None:
    """PUT, GET, PROPFIND, LOCK + PUT + UNLOCK and DELETE in a folder of its own, checking every answer."""
    rng = random.Random(number)
    folder = f"/dav/soak-client-{number}/"
    files: dict[str, str] = {}  # name -> SHA-256 of what the server must hold
    made = 0
    sizes, weights = zip(*PUT_SIZES, strict=True)
    with httpx.Client(base_url=url, auth=(OWNER, PASSWORD), timeout=120) as client:
        if not record.run("dav_mkcol", lambda: expect(client.request("MKCOL", folder), 201)):
            return

        def put(name: str, *, new: bool, headers: dict[str, str] | None = None) -> None:
            body = rng.randbytes(rng.choices(sizes, weights)[0])
            expect(client.put(folder + quote(name), content=body, headers=headers), 201 if new else 204)
            files[name] = digest(body)

        def get(name: str) -> None:
            answer = expect(client.get(folder + quote(name)), 200)
            if digest(answer.content) != files[name]:
                raise Unexpected(f"GET {name}: other bytes than the last PUT")

        def propfind() -> None:
            answer = expect(client.request("PROPFIND", folder, content=PROPFIND_BODY, headers={"Depth": "1"}), 207)
            found = len(ET.fromstring(answer.content).findall("{DAV:}response"))
            if found != len(files) + 1:
                raise Unexpected(f"PROPFIND: {found} responses, expected {len(files) + 1}")

        def lock_put_unlock(name: str) -> None:
            url_ = folder + quote(name)
            locked = expect(client.request("LOCK", url_, content=LOCK_BODY, headers={"Timeout": "Second-60"}), 200)
            token = locked.headers.get("Lock-Token", "")
            if not token:
                raise Unexpected("LOCK: no Lock-Token")
            try:
                put(name, new=False, headers={"If": f"({token})"})
            finally:
                expect(client.request("UNLOCK", url_, headers={"Lock-Token": token}), 204)

        def delete(name: str) -> None:
            expect(client.delete(folder + quote(name)), 204)
            del files[name]

        while time.monotonic() < deadline:
            op = rng.choices(("new", "version", "get", "propfind", "lock", "delete"), (12, 16, 30, 20, 10, 12))[0]
            # As many new files as deleted ones: the folder stays between FOLDER_MIN and FOLDER_MAX files, so
            # the work of a request (a PROPFIND's size) is the same at minute 10 as at minute 2.
            if len(files) < FOLDER_MIN or (op == "delete" and len(files) <= FOLDER_MIN):
                op = "new"
            elif op == "new" and len(files) >= FOLDER_MAX:
                op = "delete"
            name = rng.choice(sorted(files)) if files else ""
            if op == "new":
                made += 1
                name = f"document {made:05d}.pdf"
                record.run("dav_put_new", lambda name=name: put(name, new=True))
            elif op == "version":
                record.run("dav_put_version", lambda name=name: put(name, new=False))
            elif op == "get":
                record.run("dav_get", lambda name=name: get(name))
            elif op == "propfind":
                record.run("dav_propfind", propfind)
            elif op == "lock":
                record.run("dav_lock_put_unlock", lambda name=name: lock_put_unlock(name))
            else:
                record.run("dav_delete", lambda name=name: delete(name))
            if pause:
                time.sleep(pause)


def recipient(url: str, token: str, record: Record, deadline: float, pause: float) -> None:
    """A link opened as a browser would, again and again: each time a new session (no cookie yet)."""
    rng = random.Random(99)
    expected = {name: digest(shared_content(name, size)) for name, size in SHARED_FILES.items()}

    def visit() -> None:
        with httpx.Client(base_url=url, timeout=120) as browser:
            page = expect(browser.get(f"/s/{token}"), 200).text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
            if csrf is None:
                raise Unexpected("no password form on the link's page")
            data = {"password": LINK_PASSWORD, "csrf_token": csrf.group(1)}
            expect(browser.post(f"/s/{token}", data=data), 303)
            listing = expect(browser.get(f"/s/{token}"), 200).text
            missing = [name for name in SHARED_FILES if name not in listing]
            if missing:
                raise Unexpected(f"the listing lacks {len(missing)} files")
            name = rng.choice(sorted(SHARED_FILES))
            got = expect(browser.get(f"/s/{token}/get/{quote(name)}"), 200)
            if digest(got.content) != expected[name]:
                raise Unexpected(f"download of {name}: other bytes")

    while time.monotonic() < deadline:
        record.run("recipient_visit", visit)
        time.sleep(pause)


def shared_content(name: str, size: int) -> bytes:
    block = hashlib.sha256(name.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


class Rclone:
    """A directory synced up to the drive and back down, with changes between the rounds."""

    def __init__(self, url: str, work: Path, record: Record) -> None:
        self.source, self.back = work / "source", work / "back"
        self.record = record
        self.rng = random.Random(7)
        self.made = 0
        obscured = subprocess.run(["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True)
        self.env = {
            **os.environ,
            "RCLONE_CONFIG_MEDDAV_TYPE": "webdav",
            "RCLONE_CONFIG_MEDDAV_URL": url + "/dav/",
            "RCLONE_CONFIG_MEDDAV_VENDOR": "other",
            "RCLONE_CONFIG_MEDDAV_USER": OWNER,
            "RCLONE_CONFIG_MEDDAV_PASS": obscured.stdout.strip(),
        }
        for folder in ("Courriers", "Imagerie", "Imagerie/2026", "Ordonnances"):
            (self.source / folder).mkdir(parents=True, exist_ok=True)
        for _ in range(40):
            self.add()
        (self.source / "Imagerie" / "2026" / "scanner.bin").write_bytes(self.rng.randbytes(4 * MiB))

    def files(self) -> list[Path]:
        return sorted(p for p in self.source.rglob("*") if p.is_file())

    def add(self) -> None:
        self.made += 1
        folder = self.rng.choice(["", "Courriers", "Imagerie", "Imagerie/2026", "Ordonnances"])
        size = self.rng.choice([1 * KiB, 3 * KiB, 20 * KiB, 100 * KiB, 512 * KiB])
        (self.source / folder / f"piece {self.made:04d}.pdf").write_bytes(self.rng.randbytes(size))

    def change(self) -> None:
        """Three files get new content (of a new size, so that a size-only check sees it), one goes, one comes."""
        files = self.files()
        for path in self.rng.sample(files, 3):
            path.write_bytes(self.rng.randbytes(self.rng.randint(1, 200 * KiB)))
        self.rng.choice([p for p in files if p.name != "scanner.bin"]).unlink()
        self.add()

    def sync(self, source: str, target: str) -> None:
        result = subprocess.run(
            ["rclone", "--config", "/dev/null", "--retries", "1", "--low-level-retries", "1", "sync", source, target],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise Unexpected(f"rclone sync {source} {target}: exit {result.returncode}: {result.stderr[-1500:]}")

    def round_trip(self) -> None:
        self.sync(str(self.source), "meddav:soak-rclone")
        self.sync("meddav:soak-rclone", str(self.back))
        mine, theirs = tree_digest(self.source), tree_digest(self.back)
        if mine != theirs:
            differ = sorted(set(mine.items()) ^ set(theirs.items()))
            raise Unexpected(f"rclone round trip: {len(differ)} differences, e.g. {differ[:3]}")

    def run(self, deadline: float) -> None:
        first = True
        while time.monotonic() < deadline:
            if not first:
                self.change()
            first = False
            self.record.run("rclone_round_trip", self.round_trip)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): digest(p.read_bytes()) for p in root.rglob("*") if p.is_file()}


# -- the server's resources ----------------------------------------------------------------------------------


class Sampler:
    """The server's VmRSS, open descriptors and threads every ``interval`` seconds."""

    def __init__(self, pid: int, started: float, interval: float) -> None:
        self.pid, self.started, self.interval = pid, started, interval
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.samples.append(
            {
                "t_s": round(time.monotonic() - self.started, 1),
                "rss_mib": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
                "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
                "threads": int(fields["Threads"]),
            }
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, KeyError):
                self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if not spread:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 60


def flatness(samples: list[dict[str, float]], settle_s: float) -> dict[str, Any]:
    """From ``settle_s`` on: each minute's min/max, the slope per minute and the fitted growth over the window."""
    window = [s for s in samples if s["t_s"] >= settle_s]
    if len(window) < 2:
        return {"samples": len(window)}
    length_min = (window[-1]["t_s"] - window[0]["t_s"]) / 60
    out: dict[str, Any] = {"from_s": window[0]["t_s"], "to_s": window[-1]["t_s"], "samples": len(window)}
    for key in ("rss_mib", "fds", "threads"):
        slope = slope_per_minute([(s["t_s"], s[key]) for s in window])
        minutes = []
        for minute in range(int(window[0]["t_s"] // 60), int(window[-1]["t_s"] // 60) + 1):
            values = [s[key] for s in window if minute * 60 <= s["t_s"] < (minute + 1) * 60]
            if values:
                minutes.append({"minute": minute, "min": min(values), "max": max(values)})
        out[key] = {
            "min": min(s[key] for s in window),
            "max": max(s[key] for s in window),
            "slope_per_min": round(slope, 3),
            "fitted_growth": round(slope * length_min, 2),
            "per_minute": minutes,
        }
    return out


def server_log_problems(log: Path) -> dict[str, Any]:
    """Lines of level error or critical in the server's log (each one an error of the run), and the warnings'
    messages counted."""
    errors, warnings = [], {}
    for line in log.read_text(errors="replace").splitlines():
        if "level=error" in line or "level=critical" in line or line.startswith("Traceback"):
            errors.append(line[:8000])
        elif "level=warning" in line:
            message = re.search(r'msg=("[^"]*"|\S+)', line)
            key = message.group(1) if message else line[:80]
            warnings[key] = warnings.get(key, 0) + 1
    return {"errors": errors, "warnings": warnings}


# -- the run -------------------------------------------------------------------------------------------------


def prepare(config: Path) -> str:
    """The owner, a shared folder of a few files, and its link (read, with a password); returns the token."""
    inst = open_instance(load_settings(config))
    try:
        owner = inst.accounts.create_user(OWNER, PASSWORD, email="dr-soak@example.org")
        folder = inst.tree.mkdir(inst.tree.get(owner.root_id), "Partage patient")
        for name, size in SHARED_FILES.items():
            upload = inst.tree.upload(folder, name, expected_size=size)
            upload.write(shared_content(name, size))
            upload.finish()
        new = inst.shares.create(
            owner.principal(),
            folder,
            email="patient@example.org",
            mode="read",
            password=LINK_PASSWORD,
            second_channel="owner",
        )
        assert new.token is not None
        return new.token
    finally:
        inst.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (10)")
    parser.add_argument(
        "--settle-minutes",
        type=float,
        default=2.0,
        help="memory and descriptors are judged from this minute on: the first minutes fill caches and pools (2)",
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent WebDAV clients (httpx threads) (4)")
    parser.add_argument(
        "--pause", type=float, default=0.02, help="seconds each WebDAV client waits between two operations (0.02)"
    )
    parser.add_argument(
        "--recipient-pause", type=float, default=1.0, help="seconds between two visits of the link's recipient (1)"
    )
    parser.add_argument(
        "--sample-seconds", type=float, default=5.0, help="how often RSS and descriptors are sampled (5)"
    )
    parser.add_argument(
        "--rss-tolerance-mib",
        type=float,
        default=32.0,
        help="largest growth of RSS over the judged window, from the least-squares line (32 MiB)",
    )
    parser.add_argument(
        "--fd-tolerance",
        type=float,
        default=8.0,
        help="largest growth of open descriptors over the judged window, from the least-squares line (8)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for meddav serve (repeatable), e.g. MALLOC_ARENA_MAX=2 to see how much of "
        "the RSS is malloc arenas",
    )
    parser.add_argument("--no-rclone", action="store_true", help="leave rclone out (it is needed otherwise)")
    parser.add_argument(
        "--keep", type=Path, help="run in this directory and keep it (default: a temporary one, deleted)"
    )
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args()
    if args.minutes <= args.settle_minutes:
        parser.error("--minutes must be more than --settle-minutes")
    if not args.no_rclone and shutil.which("rclone") is None:
        parser.error("rclone is not installed: apt-get install rclone (or --no-rclone)")

    work = args.keep or Path(tempfile.mkdtemp(prefix="meddav-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = soak(work, args)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(summary(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


def soak(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    made = make_instance(work / "data", fast=False)
    token = prepare(made.config_path)
    server = ServerProcess(made.config_path, env=dict(spec.split("=", 1) for spec in args.server_env))
    print(f"soak: meddav serve pid {server.pid} at {server.url}, {args.minutes} min ...", file=sys.stderr)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    record = Record(started)
    sampler = Sampler(server.pid, started, args.sample_seconds)
    threads = [
        threading.Thread(target=dav_client, args=(server.url, record, n, deadline, args.pause), name=f"dav-{n}")
        for n in range(args.clients)
    ]
    threads.append(
        threading.Thread(
            target=recipient, args=(server.url, token, record, deadline, args.recipient_pause), name="recipient"
        )
    )
    exit_status = None
    try:
        if not args.no_rclone:
            rclone = Rclone(server.url, work / "rclone", record)
            threads.append(threading.Thread(target=rclone.run, args=(deadline,), name="rclone"))
        sampler.start()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            time.sleep(min(60.0, max(1.0, deadline - time.monotonic())))
            if time.monotonic() < deadline:
                last = sampler.samples[-1]
                ops = sum(len(v) for v in record.latencies.values())
                print(
                    f"  {last['t_s'] / 60:4.1f} min: RSS {last['rss_mib']} MiB, {last['fds']} fds, "
                    f"{last['threads']} threads, {ops:,} operations, {len(record.errors)} errors",
                    file=sys.stderr,
                )
        for thread in threads:
            thread.join()
        ran_s = time.monotonic() - started
        sampler.stop()
        with contextlib.suppress(OSError, KeyError):
            sampler.sample()
    finally:
        sampler.stop()
        exit_status = server.stop()
    log = server_log_problems(server.log_path)
    for line in log["errors"]:
        record.error("server_log", line)
    if exit_status != 0:
        record.error("server_exit", f"meddav serve exited with status {exit_status} on SIGTERM")
    judged = flatness(sampler.samples, args.settle_minutes * 60)
    rss_ok = judged.get("rss_mib", {}).get("fitted_growth", 0) <= args.rss_tolerance_mib
    fds_ok = judged.get("fds", {}).get("fitted_growth", 0) <= args.fd_tolerance
    database = made.data_dir / "meddav.sqlite3"
    return {
        "date": dt.date.today().isoformat(),
        "machine": (
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "ran_s": round(ran_s, 1),
        "operations": record.figures(),
        "errors": record.errors,
        "server_log": log,
        "server_exit_status": exit_status,
        "database_mib": round(sum(p.stat().st_size for p in database.parent.glob("meddav.sqlite3*")) / MiB, 1),
        "flatness": judged,
        "tolerance": {"rss_mib": args.rss_tolerance_mib, "fds": args.fd_tolerance},
        "rss_ok": rss_ok,
        "fds_ok": fds_ok,
        "passed": not record.errors and rss_ok and fds_ok,
        "samples": sampler.samples,
    }


def summary(report: dict[str, Any]) -> str:
    args = report["args"]
    lines = [
        f"MedDAV soak, {report['date']}, {report['machine']}: {report['ran_s'] / 60:.1f} min, {args['clients']} WebDAV "
        f"clients, a link's recipient{'' if args['no_rclone'] else ', rclone sync up and down'}",
        "",
        "| operation | count | errors | median ms | p95 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for kind, fig in report["operations"].items():
        lines.append(
            f"| {kind} | {fig['count']:,} | {fig['errors']} | {fig.get('median_ms', '-')} "
            f"| {fig.get('p95_ms', '-')} | {fig.get('max_ms', '-')} |"
        )
    judged = report["flatness"]
    if "rss_mib" in judged:
        lines += [
            "",
            f"Server resources from {judged['from_s'] / 60:.1f} min to {judged['to_s'] / 60:.1f} min "
            f"({judged['samples']} samples, every {args['sample_seconds']} s)",
            "",
            "| resource | min | max | slope per minute | fitted growth over the window | tolerance | ok |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, name, tolerance, ok in (
            ("rss_mib", "RSS MiB", report["tolerance"]["rss_mib"], report["rss_ok"]),
            ("fds", "open fds", report["tolerance"]["fds"], report["fds_ok"]),
            ("threads", "threads", None, None),
        ):
            f = judged[key]
            lines.append(
                f"| {name} | {f['min']} | {f['max']} | {f['slope_per_min']:+.3f} | {f['fitted_growth']:+.2f} "
                f"| {'-' if tolerance is None else f'<= {tolerance}'} "
                f"| {'-' if ok is None else 'yes' if ok else 'NO'} |"
            )
        lines += ["", "| minute | RSS MiB min-max | fds min-max | threads min-max |", "|---|---|---|---|"]
        for rss, fds, threads in zip(
            judged["rss_mib"]["per_minute"], judged["fds"]["per_minute"], judged["threads"]["per_minute"], strict=True
        ):
            lines.append(
                f"| {rss['minute']}-{rss['minute'] + 1} | {rss['min']}-{rss['max']} | {fds['min']}-{fds['max']} "
                f"| {threads['min']}-{threads['max']} |"
            )
    lines += [
        "",
        f"Server log: {len(report['server_log']['errors'])} error lines, "
        f"warnings {report['server_log']['warnings'] or 'none'}; "
        f"exit status on SIGTERM {report['server_exit_status']}; database {report['database_mib']} MiB at the end",
        f"Errors: {len(report['errors'])} ({sum(e['kind'] not in SERVER_SIDE for e in report['errors'])} seen by the "
        f"clients, {sum(e['kind'] in SERVER_SIDE for e in report['errors'])} in the server's log or exit status: "
        "a request that failed with a 500 is usually in both)",
    ]
    lines += [f"  {e['at_s']} s {e['kind']}: {e['detail'][:300]}" for e in report["errors"][:50]]
    lines.append("PASSED" if report["passed"] else "FAILED")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
