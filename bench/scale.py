"""Latency as the tree grows: 1k, 10k and 100k files, folders and shares scaled alike (``make bench-scale``).

For each scale a fresh instance is populated through the project's own Python API (accounts,
``Tree.mkdir``, ``Tree.upload``, which encrypts each file into the blob store as a PUT does, and
``Shares.create``), then served by ``meddav serve`` in a child process with production settings, and
the same requests are timed at every scale, on items of the same shape:

- every 1,000 files are one owner's: ``Cabinet/Dossiers/<year>/<patient>/doc-NN.pdf`` (10 years x 10
  patient folders x 10 files of 2 KiB; 112 folders), whose 100 patient folders are each shared once,
  alternately with the owner's colleague (read) and by a link (read, password);
- so 1k files = 1 owner (100 leaf folders, 100 shares), 10k = 10 owners, 100k = 100 owners (10,000
  leaf folders, 10,000 shares); what one owner, colleague or link holds stays the same.

Timed (sequential, one keep-alive client per identity, the kinds interleaved): PROPFIND Depth 1 of a
patient folder (10 files) at depth 4; GET of a file at depth 5; PROPFIND and GET through a colleague
share, and the colleague's drive root (50 shared folders); PROPFIND and GET through ``/public/<token>/``;
the recipient's page of a link (``/s/<token>``, listing) and a download from it; the owner's share
overview (``/ui/shares``) and the API listing (``/api/v1/shares``), 100 shares each.

Then the statements of one request of each kind are captured (an in-process server on the same data,
with SQLite's statement trace: the request path runs prepared statements on the raw DBAPI cursor,
which SQLAlchemy's ``before_cursor_execute`` never sees) and each is explained with ``EXPLAIN QUERY
PLAN`` through SQLAlchemy: a ``SCAN`` of a table of more than ``--big-table`` rows is reported.

    .venv/bin/python bench/scale.py [--scales 1000 10000 100000] [--requests 200] [--json out.json]

Exit status: 0; 1 when a request failed, or a statement of a request scans a big table or does work that
grows with the tables (its SQLite VM steps, from the smallest scale to the largest).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import event

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.workloads import PROPFIND_BODY  # noqa: E402 - after the path is set
from server.config import Settings, load_settings  # noqa: E402
from server.httpd import bound_port, build_server  # noqa: E402
from server.instance import Instance, open_instance  # noqa: E402
from server.jobs import WorkerPool  # noqa: E402
from server.jobs.commands import instance_handlers  # noqa: E402
from server.testing import FAST_ARGON2, ServerProcess, make_instance  # noqa: E402
from server.tree import Entry  # noqa: E402

PASSWORD = "Bench owner password 2026!"
YEARS = tuple(range(2016, 2026))  # 10 year folders per owner
PATIENTS_PER_YEAR = 10  # 10 patient folders in each: 100 leaf folders, one share each
FILES_PER_FOLDER = 10
FILE_SIZE = 2048
FILES_PER_OWNER = len(YEARS) * PATIENTS_PER_YEAR * FILES_PER_FOLDER
FOLDERS_PER_OWNER = 2 + len(YEARS) + len(YEARS) * PATIENTS_PER_YEAR
#: The patient folders (0-99) the requests use: an even one is shared with the colleague, an odd one by a link.
COLLEAGUE_LEAF, LINK_LEAF, QUIET_LINK_LEAF, DEEP_LEAF = 44, 45, 47, 44
DEEP_FILE = "doc-05.pdf"
KINDS = (
    "propfind_d1_owner",
    "get_depth5_owner",
    "propfind_d1_colleague_share",
    "get_colleague_share",
    "propfind_colleague_root",
    "propfind_d1_public_link",
    "get_public_link",
    "recipient_page",
    "recipient_download",
    "ui_shares_overview",
    "ui_share_detail",
    "api_shares_list",
)
#: Not requests: what the server's background jobs run over the same tables (statements and plans only).
BACKGROUND = ("job_claim_idle", "job_shares_sweep", "job_shares_digest")
WHAT = {
    "propfind_d1_owner": "PROPFIND Depth 1, own folder of 10 files at depth 4",
    "get_depth5_owner": "GET 2 KiB file at depth 5 (path resolution)",
    "propfind_d1_colleague_share": "PROPFIND Depth 1 of a folder a colleague shared",
    "get_colleague_share": "GET a file through a colleague share",
    "propfind_colleague_root": "PROPFIND Depth 1 of the colleague's root (50 shared folders)",
    "propfind_d1_public_link": "PROPFIND Depth 1 /public/<token>/ (10 files)",
    "get_public_link": "GET /public/<token>/<file>",
    "recipient_page": "GET /s/<token> listing page (session open)",
    "recipient_download": "GET /s/<token>/get/<file>",
    "ui_shares_overview": "GET /ui/shares, owner's overview (100 shares)",
    "ui_share_detail": "GET /ui/shares/<id>, a link's page (its visits from the audit log: none)",
    "api_shares_list": "GET /api/v1/shares, owner's list (100 shares)",
}


def leaf_name(leaf: int) -> str:
    return f"Patient {leaf + 1:04d}"


def leaf_path(leaf: int) -> list[str]:
    return ["Cabinet", "Dossiers", str(YEARS[leaf // PATIENTS_PER_YEAR]), leaf_name(leaf)]


def content(owner: int, leaf: int, index: int) -> bytes:
    seed = hashlib.sha256(f"{owner}/{leaf}/{index}".encode()).hexdigest().encode()
    return (b"%PDF-1.4\n%bench " + seed * (FILE_SIZE // len(seed) + 1))[:FILE_SIZE]


def owner_name(owner: int) -> str:
    return f"dr-{owner:04d}"


def colleague_name(owner: int) -> str:
    return f"colleague-{owner:04d}"


# -- populating ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Subjects:
    """What the requests are made on: the measured owner, their colleague, one link."""

    owner: str
    colleague: str
    owner_index: int
    link_token: str = ""
    link_password: str = ""
    quiet_link_share_id: int = 0  # a link nobody opened: its page looks for visits that are not there


class Progress:
    """A line on stderr every ``every`` seconds: done/total, rate, time left."""

    def __init__(self, label: str, total: int, every: float = 5.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.done = 0
        self.started = self._last = time.monotonic()
        self._lock = threading.Lock()

    def step(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._last < self.every and self.done < self.total:
                return
            self._last = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed else 0.0
        left = (self.total - self.done) / rate if rate else 0.0
        print(f"  {self.label}: {self.done:,}/{self.total:,} ({rate:,.0f}/s, {left:,.0f} s left)", file=sys.stderr)


def populate(inst: Instance, owners: int, measured: int, *, threads: int) -> tuple[Subjects, dict[str, float]]:
    """``owners`` owners of 1,000 files each, their colleagues, and 100 shares per owner.

    Returns the measured owner's subjects and the time of each step (seconds)."""
    timings: dict[str, float] = {}
    subjects = Subjects(owner_name(measured), colleague_name(measured), measured)
    pool = ThreadPoolExecutor(threads)
    try:
        started = time.perf_counter()
        people = []
        for owner in range(owners):
            doctor = inst.accounts.create_user(owner_name(owner), PASSWORD, email=f"{owner_name(owner)}@example.org")
            colleague = inst.accounts.create_user(colleague_name(owner), PASSWORD)
            people.append((doctor, colleague))
        timings["users_s"] = time.perf_counter() - started

        started = time.perf_counter()
        folders = Progress("folders", owners * FOLDERS_PER_OWNER)

        def make_folders(owner: int) -> list[Entry]:
            tree = inst.tree
            cabinet = tree.mkdir(tree.get(people[owner][0].root_id), "Cabinet")
            records = tree.mkdir(cabinet, "Dossiers")
            leaves = []
            for year in YEARS:
                year_folder = tree.mkdir(records, str(year))
                leaves.extend(tree.mkdir(year_folder, leaf_name(len(leaves))) for _ in range(PATIENTS_PER_YEAR))
            folders.step(FOLDERS_PER_OWNER)
            return leaves

        leaves = list(pool.map(make_folders, range(owners)))
        timings["folders_s"] = time.perf_counter() - started

        started = time.perf_counter()
        files = Progress("files", owners * FILES_PER_OWNER)

        def put(job: tuple[int, int, int]) -> None:
            owner, leaf, index = job
            body = content(owner, leaf, index)
            upload = inst.tree.upload(leaves[owner][leaf], f"doc-{index:02d}.pdf", expected_size=len(body))
            upload.write(body)
            upload.finish()
            files.step()

        jobs = [(o, leaf, i) for o in range(owners) for leaf in range(len(leaves[o])) for i in range(FILES_PER_FOLDER)]
        list(pool.map(put, jobs))
        timings["files_s"] = time.perf_counter() - started

        started = time.perf_counter()
        made = Progress("shares", owners * len(leaves[0]))

        def share(job: tuple[int, int]) -> None:
            owner, leaf = job
            doctor, colleague = people[owner]
            node = leaves[owner][leaf]
            if leaf % 2 == 0:
                inst.shares.create(doctor.principal(), node, colleague=colleague.id, mode="read")
            else:
                # The owner gives the password (a generated one, returned once): one mail job, the link's.
                new = inst.shares.create(doctor.principal(), node, email=f"patient-{owner}-{leaf}@example.org",
                                         mode="read", second_channel="owner")  # fmt: skip
                if owner == measured and leaf == LINK_LEAF:
                    assert new.token is not None and new.password is not None
                    subjects.link_token, subjects.link_password = new.token, new.password
                if owner == measured and leaf == QUIET_LINK_LEAF:
                    subjects.quiet_link_share_id = new.info.id
            made.step()

        list(pool.map(share, [(o, leaf) for o in range(owners) for leaf in range(len(leaves[o]))]))
        timings["shares_s"] = time.perf_counter() - started
    finally:
        pool.shutdown()

    # The links' mails (console mailer) are sent now, so that the server does not send them while timed.
    started = time.perf_counter()
    workers = WorkerPool(inst.jobs, instance_handlers(inst), threads=0, scheduler=False)
    mails = Progress("mails", inst.jobs.counts()["pending"])
    while workers.run_one("bench-scale"):
        mails.step()
    timings["mail_jobs_s"] = time.perf_counter() - started
    return subjects, {k: round(v, 1) for k, v in timings.items()}


# -- requests ------------------------------------------------------------------------------------------------


def dav_path(names: list[str], *, folder: bool = False) -> str:
    return "/dav/" + "/".join(quote(n) for n in names) + ("/" if folder and names else "")


class Failed(Exception):
    pass


def check(response: httpx.Response, *ok: int) -> httpx.Response:
    if response.status_code not in ok:
        raise Failed(f"{response.request.method} {response.request.url.path} -> {response.status_code}")
    return response


def responses(response: httpx.Response) -> int:
    return len(ET.fromstring(response.content).findall("{DAV:}response"))


def propfind(client: httpx.Client, path: str, members: int) -> None:
    answer = check(client.request("PROPFIND", path, content=PROPFIND_BODY, headers={"Depth": "1"}), 207)
    if responses(answer) != members + 1:
        raise Failed(f"PROPFIND {path}: {responses(answer)} responses, expected {members + 1}")


def expect(answer: httpx.Response, body: bytes) -> None:
    if answer.content != body:
        raise Failed(f"GET {answer.request.url.path}: other bytes than stored")


class Clients:
    """One keep-alive client per identity, signed in as a browser or a drive would be."""

    def __init__(self, url: str, s: Subjects) -> None:
        def client(**kwargs: Any) -> httpx.Client:
            return httpx.Client(base_url=url, timeout=120, **kwargs)

        self.owner = client(auth=(s.owner, PASSWORD))
        self.colleague = client(auth=(s.colleague, PASSWORD))
        self.public = client(auth=("anyone", s.link_password))
        self.recipient = client()
        self.web = client()
        self.all = [self.owner, self.colleague, self.public, self.recipient, self.web]
        token = s.link_token
        page = check(self.recipient.get(f"/s/{token}"), 200).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None, "no password form on the link's page"
        data = {"password": s.link_password, "csrf_token": csrf.group(1)}
        check(self.recipient.post(f"/s/{token}", data=data), 303)
        page = check(self.web.get("/ui/login"), 200).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None, "no login form"
        data = {"username": s.owner, "password": PASSWORD, "csrf_token": csrf.group(1)}
        check(self.web.post("/ui/login", data=data), 302, 303)

    def close(self) -> None:
        for c in self.all:
            c.close()


def requests_of(c: Clients, s: Subjects) -> dict[str, Callable[[], None]]:
    """One callable per kind: makes the request and checks its answer."""
    leaves = len(YEARS) * PATIENTS_PER_YEAR
    deep = leaf_path(DEEP_LEAF)
    deep_body = content(s.owner_index, DEEP_LEAF, 5)
    shared = [leaf_name(COLLEAGUE_LEAF)]  # at the colleague's root
    shared_body = content(s.owner_index, COLLEAGUE_LEAF, 3)
    link_body = content(s.owner_index, LINK_LEAF, 4)
    token = s.link_token

    def recipient_page() -> None:
        page = check(c.recipient.get(f"/s/{token}"), 200).text
        if page.count("doc-0") < FILES_PER_FOLDER:
            raise Failed("recipient page: the files are not listed")

    def ui_overview() -> None:
        page = check(c.web.get("/ui/shares"), 200).text
        if leaf_name(leaves - 1) not in page:
            raise Failed("/ui/shares: the last share is not listed")

    def api_list() -> None:
        listed = check(c.owner.get("/api/v1/shares"), 200).json()
        if len(listed["shares"]) != leaves:
            raise Failed(f"/api/v1/shares: {len(listed['shares'])} shares, expected {leaves}")

    return {
        "propfind_d1_owner": lambda: propfind(c.owner, dav_path(deep, folder=True), FILES_PER_FOLDER),
        "get_depth5_owner": lambda: expect(check(c.owner.get(dav_path([*deep, DEEP_FILE])), 200), deep_body),
        "propfind_d1_colleague_share": lambda: propfind(c.colleague, dav_path(shared, folder=True), FILES_PER_FOLDER),
        "get_colleague_share": lambda: expect(
            check(c.colleague.get(dav_path([*shared, "doc-03.pdf"])), 200), shared_body
        ),
        "propfind_colleague_root": lambda: propfind(c.colleague, "/dav/", leaves // 2),
        "propfind_d1_public_link": lambda: propfind(c.public, f"/public/{token}/", FILES_PER_FOLDER),
        "get_public_link": lambda: expect(check(c.public.get(f"/public/{token}/doc-04.pdf"), 200), link_body),
        "recipient_page": recipient_page,
        "recipient_download": lambda: expect(check(c.recipient.get(f"/s/{token}/get/doc-04.pdf"), 200), link_body),
        "ui_shares_overview": ui_overview,
        "ui_share_detail": lambda: no_answer(check(c.web.get(f"/ui/shares/{s.quiet_link_share_id}"), 200)),
        "api_shares_list": api_list,
    }


def no_answer(_: object) -> None:
    return None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def time_requests(url: str, s: Subjects, *, warmup: int, count: int) -> tuple[dict[str, Any], list[str]]:
    """Median, p95 and mean (ms) of each kind; the kinds interleaved, so that the machine's drift hits all."""
    clients = Clients(url, s)
    errors: list[str] = []
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    try:
        calls = requests_of(clients, s)
        for round_ in range(warmup + count):
            for kind in KINDS:
                started = time.perf_counter()
                try:
                    calls[kind]()
                except (Failed, httpx.HTTPError, ET.ParseError) as error:
                    errors.append(f"{kind}: {error}")
                    continue
                if round_ >= warmup:
                    times[kind].append((time.perf_counter() - started) * 1000)
    finally:
        clients.close()
    figures = {
        kind: {
            "median_ms": round(statistics.median(v), 2),
            "p95_ms": round(percentile(v, 0.95), 2),
            "mean_ms": round(statistics.fmean(v), 2),
            "n": len(v),
        }
        for kind, v in times.items()
        if v
    }
    return figures, errors


# -- statements and query plans ------------------------------------------------------------------------------


class Tracer:
    """Every SQL statement run on the instance's connections while ``active`` (SQLite's trace: the
    statement as executed, parameters inlined), with the thread that ran it."""

    def __init__(self) -> None:
        self.active = False
        self.statements: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def attach(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(self._seen)

    def _seen(self, sql: str) -> None:
        if self.active:
            with self._lock:
                self.statements.append((threading.current_thread().name, sql))

    @contextmanager
    def capture(self) -> Iterator[list[tuple[str, str]]]:
        with self._lock:
            self.statements = []
        self.active = True
        found: list[tuple[str, str]] = []
        try:
            yield found
        finally:
            time.sleep(0.3)  # the audit writer thread appends the request's row just after it
            self.active = False
            with self._lock:
                found.extend(self.statements)


_QUERY = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_LITERALS = (
    (re.compile(r"[xX]'[0-9a-fA-F]*'"), "?"),
    (re.compile(r"'(?:[^']|'')*'"), "?"),
    (re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b"), "?"),
    (re.compile(r"\?(?:\s*,\s*\?)+"), "?, ..."),
)


def shape_of(sql: str) -> str:
    """A statement with its values taken out: the same statement with other values has the same shape."""
    for pattern, replacement in _LITERALS:
        sql = pattern.sub(replacement, sql)
    return " ".join(sql.split())


def trace_statements(config: Path, s: Subjects) -> tuple[dict[str, list[str]], Instance, Any, threading.Thread]:
    """The statements of one request of each kind (after two warm-up requests), on an in-process server."""
    settings = load_settings(config)
    inst = open_instance(settings)
    tracer = Tracer()
    event.listen(inst.db.engine, "connect", tracer.attach)  # the request threads connect after this
    server = build_server(inst, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve, name="bench-scale-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{bound_port(server)}"
    for _ in range(100):
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    clients = Clients(url, s)
    found: dict[str, list[str]] = {}
    try:
        calls = requests_of(clients, s)
        for kind in KINDS:
            calls[kind]()
            calls[kind]()
            time.sleep(0.5)  # the warm-ups' audit rows are written before the capture starts
            with tracer.capture() as statements:
                calls[kind]()
            found[kind] = [sql for _, sql in statements if _QUERY.match(sql)]
        background: dict[str, Callable[[], object]] = {
            "job_claim_idle": lambda: inst.jobs.claim("bench-scale", sorted(instance_handlers(inst))),
            "job_shares_sweep": inst.shares.sweep,
            "job_shares_digest": inst.shares.digest,
        }
        for kind, call in background.items():
            # In a thread of its own: a new connection, traced (this thread's was opened before the tracer).
            worker = threading.Thread(target=call, name="bench-background")
            with tracer.capture() as statements:
                worker.start()
                worker.join()
            found[kind] = [sql for name, sql in statements if _QUERY.match(sql) and name == worker.name]
    finally:
        clients.close()
    return found, inst, server, thread


def vm_steps(conn: Any, sql: str) -> int | None:
    """SQLite virtual machine instructions one run of a query takes: the work it does, whatever the machine."""
    dbapi = conn.connection.dbapi_connection
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    dbapi.set_progress_handler(count, 1)
    try:
        conn.exec_driver_sql(sql).all()
    except Exception:
        return None
    finally:
        dbapi.set_progress_handler(None, 1)
    return steps[0]


def bounded_scan(line: str, statement: str, plan: list[str]) -> bool:
    """A SCAN in primary-key order that stops after its LIMIT (``ORDER BY t.id DESC LIMIT 1``): it reads
    LIMIT rows, whatever the table's size."""
    match = re.match(r"SCAN (\w+)", line)
    if match is None or any("TEMP B-TREE" in p for p in plan):
        return False
    return re.search(rf"ORDER BY {match.group(1)}\.id( DESC| ASC)? LIMIT", statement) is not None


def explain(inst: Instance, statements: dict[str, list[str]], big_table: int) -> dict[str, Any]:
    """EXPLAIN QUERY PLAN of each distinct statement shape, the VM steps of each query, the scans of big
    tables (apart from bounded scans in primary-key order)."""
    shapes: dict[str, dict[str, Any]] = {}
    for kind, sqls in statements.items():
        for sql in sqls:
            shape = shape_of(sql)
            entry = shapes.setdefault(shape, {"sql": sql, "kinds": {}})
            entry["kinds"][kind] = entry["kinds"].get(kind, 0) + 1
    rows: dict[str, int] = {}
    with inst.db.engine.connect() as conn:
        tables = [r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            rows[table] = int(conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar() or 0)
        plans = []
        for shape, entry in shapes.items():
            sql = entry["sql"]
            try:
                plan = [str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
            except Exception as error:  # e.g. a statement SQLite cannot explain alone
                plan = [f"(not explained: {type(error).__name__}: {error})"]
            scans = []
            for line in plan:
                match = re.match(r"SCAN (\w+)", line)
                if match and rows.get(match.group(1), 0) > big_table and not bounded_scan(line, shape, plan):
                    scans.append(f"{line} ({rows[match.group(1)]:,} rows)")
            steps = vm_steps(conn, sql) if re.match(r"\s*(SELECT|WITH)\b", sql, re.IGNORECASE) else None
            path = "request" if set(entry["kinds"]) & set(KINDS) else "background"
            plans.append({"statement": shape, "requests": entry["kinds"], "path": path, "plan": plan,
                          "vm_steps": steps, "big_scans": scans})  # fmt: skip
    return {"table_rows": rows, "statements": plans}


# -- one scale -----------------------------------------------------------------------------------------------


def tree_bytes(path: Path) -> int:
    total = 0
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            total += tree_bytes(Path(entry.path))
        else:
            total += entry.stat(follow_symlinks=False).st_size
    return total


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def fast_hashing(settings: Settings) -> Settings:
    return dataclasses.replace(settings, auth=dataclasses.replace(settings.auth, **FAST_ARGON2))


def run_scale(files: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    owners = files // FILES_PER_OWNER
    measured = owners // 2
    made = make_instance(workdir / "data", fast=False)  # the server runs with production settings
    settings = load_settings(made.config_path)
    print(f"scale {files:,}: {owners} owners, populating ...", file=sys.stderr)
    started = time.perf_counter()
    inst = open_instance(settings if args.production_hashes else fast_hashing(settings))
    try:
        subjects, timings = populate(inst, owners, measured, threads=args.threads)
    finally:
        inst.close()
    timings["total_s"] = round(time.perf_counter() - started, 1)
    counts = {
        "owners": owners,
        "users": 2 * owners + 1,
        "files": owners * FILES_PER_OWNER,
        "folders": owners * FOLDERS_PER_OWNER,
        "leaf_folders": owners * len(YEARS) * PATIENTS_PER_YEAR,
        "shares": owners * len(YEARS) * PATIENTS_PER_YEAR,
    }
    data_dir = made.data_dir
    sizes = {
        "database_mib": round(sum(p.stat().st_size for p in data_dir.glob("meddav.sqlite3*")) / 2**20, 1),
        "blobs_mib": round(tree_bytes(data_dir / "blobs") / 2**20, 1) if (data_dir / "blobs").is_dir() else None,
    }
    print(f"  populated in {timings['total_s']} s: {timings}", file=sys.stderr)

    print(f"scale {files:,}: timing {args.requests} requests of each kind ...", file=sys.stderr)
    server = ServerProcess(made.config_path)
    try:
        rest = rss_mib(server.pid)
        latency, errors = time_requests(server.url, subjects, warmup=args.warmup, count=args.requests)
        after = rss_mib(server.pid)
    finally:
        server.stop()
    out: dict[str, Any] = {
        "counts": counts,
        "population": timings,
        "files_per_s": round(counts["files"] / timings["files_s"], 1) if timings["files_s"] else None,
        "sizes": sizes,
        "server_rss_mib": {"at_rest": rest, "after_requests": after},
        "latency": latency,
        "errors": errors,
    }
    if not args.no_plans:
        print(f"scale {files:,}: statements and query plans ...", file=sys.stderr)
        statements, traced, http, thread = trace_statements(made.config_path, subjects)
        try:
            out["statements_per_request"] = {kind: len(sqls) for kind, sqls in statements.items() if kind in KINDS}
            out["statements_background"] = {k: len(sqls) for k, sqls in statements.items() if k in BACKGROUND}
            out["plans"] = explain(traced, statements, args.big_table)
        finally:
            http.stop()
            thread.join(timeout=10)
            traced.close()
    return out


# -- report --------------------------------------------------------------------------------------------------


def label(files: int) -> str:
    return f"{files // 1000}k"


def growing(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements whose work (VM steps) at the largest scale is more than ``--work-growth`` times the
    smallest scale's: an index that is missing or not chosen, whatever the plan says."""
    scales = report["scales"]
    names = list(scales)
    if len(names) < 2:
        return []
    first = {e["statement"]: e for e in scales[names[0]].get("plans", {}).get("statements", [])}
    found = []
    for entry in scales[names[-1]].get("plans", {}).get("statements", []):
        before = first.get(entry["statement"])
        if before is None or not before["vm_steps"] or not entry["vm_steps"]:
            continue
        ratio = entry["vm_steps"] / before["vm_steps"]
        if ratio > report["args"]["work_growth"] and entry["vm_steps"] - before["vm_steps"] > 100:
            found.append(
                {
                    "statement": entry["statement"],
                    "path": entry["path"],
                    "plan": entry["plan"],
                    "vm_steps": [before["vm_steps"], entry["vm_steps"]],
                    "requests": entry["requests"],
                }
            )
    return found


def big_scans(report: dict[str, Any], path: str) -> list[str]:
    return [
        f"{name}: {scan} in `{entry['statement'][:100]}...`"
        for name, scale in report["scales"].items()
        for entry in scale.get("plans", {}).get("statements", [])
        if entry["path"] == path
        for scan in entry["big_scans"]
    ]


def table(report: dict[str, Any]) -> str:
    scales = report["scales"]
    names = list(scales)
    first, last = names[0], names[-1]
    args = report["args"]
    lines = [
        f"MedDAV as the tree grows, {report['date']}, {report['machine']}",
        "",
        "| scale | owners | users | folders | files | shares | populate s (users/folders/files/shares/mails) "
        "| files/s | database MiB | blobs MiB | server RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        s = scales[name]
        c, p = s["counts"], s["population"]
        lines.append(
            f"| {name} | {c['owners']} | {c['users']} | {c['folders']:,} | {c['files']:,} | {c['shares']:,} "
            f"| {p['total_s']} ({p['users_s']}/{p['folders_s']}/{p['files_s']}/{p['shares_s']}/{p['mail_jobs_s']}) "
            f"| {s['files_per_s']} | {s['sizes']['database_mib']} | {s['sizes']['blobs_mib']} "
            f"| {s['server_rss_mib']['after_requests']} |"
        )
    lines += [
        "",
        f"Latency, ms: median (p95) of {args['requests']} sequential requests of each kind, "
        f"after {args['warmup']} warm-up; statements: SQL statements one request runs",
        "",
        "| request | " + " | ".join(names) + f" | {last}/{first} median | flat (<= {args['flat_tolerance']}) "
        "| statements |",
        "|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for kind in KINDS:
        cells = []
        for name in names:
            fig = scales[name]["latency"].get(kind)
            cells.append(f"{fig['median_ms']} ({fig['p95_ms']})" if fig else "failed")
        a, b = scales[first]["latency"].get(kind), scales[last]["latency"].get(kind)
        ratio = b["median_ms"] / a["median_ms"] if a and b else float("nan")
        flat = "yes" if ratio <= args["flat_tolerance"] else "NO"
        counts = [str(scales[n].get("statements_per_request", {}).get(kind, "-")) for n in names]
        lines.append(f"| {WHAT[kind]} | " + " | ".join(cells) + f" | {ratio:.2f} | {flat} | {' / '.join(counts)} |")
    plans = scales[last].get("plans")
    grown = growing(report)
    if plans:
        steps = {
            n: {e["statement"]: e["vm_steps"] for e in scales[n].get("plans", {}).get("statements", [])} for n in names
        }
        lines += [
            "",
            f"Query plans at {last}: EXPLAIN QUERY PLAN of each distinct statement of one request of each kind "
            "(and of the background jobs' over the same tables), with the SQLite VM steps one run takes at each scale",
            "",
            "| statement | run by (times per request) | plan | VM steps " + " / ".join(names) + " |",
            "|---|---|---|---|",
        ]
        grown_statements = {g["statement"] for g in grown}
        for entry in plans["statements"]:
            statement = re.sub(r"^SELECT (.{60,}?) FROM ", "SELECT ... FROM ", entry["statement"])
            statement = statement if len(statement) <= 220 else statement[:217] + "..."
            runs = ", ".join(f"{k} x{n}" for k, n in entry["requests"].items())
            plan = "; ".join(entry["plan"]) or "(none)"
            if entry["big_scans"]:
                plan += " **SCAN OF A BIG TABLE**"
            work = " / ".join(str(steps[n].get(entry["statement"], "-")) for n in names)
            if entry["statement"] in grown_statements:
                work += " **GROWS**"
            lines.append(f"| `{statement}` | {runs} | {plan} | {work} |")
        rows = ", ".join(f"{t} {n:,}" for t, n in sorted(plans["table_rows"].items()) if n)
        lines += ["", f"Rows at {last}: {rows}"]
    big = args["big_table"]
    for path in ("request", "background"):
        lines.append(f"Scans of tables over {big:,} rows, {path} path: {'; '.join(big_scans(report, path)) or 'none'}")
    growth = "; ".join(
        f"{g['vm_steps'][0]} -> {g['vm_steps'][1]} VM steps ({g['path']} path) `{g['statement'][:100]}...`"
        for g in grown
    )
    lines.append(f"Statements whose work grows over {args['work_growth']}x from {first} to {last}: {growth or 'none'}")
    for name in names:
        if scales[name]["errors"]:
            lines.append(f"Failed requests at {name}: {len(scales[name]['errors'])}: {scales[name]['errors'][:5]}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scales",
        type=int,
        nargs="+",
        default=[1000, 10_000, 100_000],
        help="numbers of files, multiples of 1000: one owner per 1000 files (default: 1000 10000 100000)",
    )
    parser.add_argument("--requests", type=int, default=200, help="timed requests of each kind per scale (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests of each kind first (20)")
    parser.add_argument("--threads", type=int, default=8, help="threads populating: their uploads commit together (8)")
    parser.add_argument(
        "--production-hashes",
        action="store_true",
        help="hash the accounts' and links' passwords with the configured Argon2 parameters while populating "
        "(default: the tests' fast ones, else 5,000 link passwords take ~15 min of Argon2; the server runs "
        "with the production parameters either way, and caches a verified password)",
    )
    parser.add_argument("--no-plans", action="store_true", help="skip the statement capture and EXPLAIN QUERY PLAN")
    parser.add_argument(
        "--big-table",
        type=int,
        default=1000,
        help="a SCAN of a table with more rows than this is reported: a missing index (1000)",
    )
    parser.add_argument(
        "--work-growth",
        type=float,
        default=2.0,
        help="a statement whose VM steps grow more than this many times from the smallest to the largest "
        "scale is reported: an index missing or not chosen (2.0)",
    )
    parser.add_argument(
        "--flat-tolerance",
        type=float,
        default=1.5,
        help="a median latency at the largest scale more than this many times the smallest scale's is "
        "marked not flat (1.5; shown, not failed: latency on a shared machine is noisy)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="populate here and keep the instances (default: a temporary directory, deleted at the end)",
    )
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args()
    if any(n < FILES_PER_OWNER or n % FILES_PER_OWNER for n in args.scales):
        parser.error(f"--scales: multiples of {FILES_PER_OWNER}")

    base = args.workdir or Path(tempfile.mkdtemp(prefix="meddav-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scales: dict[str, Any] = {}
    try:
        for files in args.scales:
            scales[label(files)] = run_scale(files, base / label(files), args)
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    report = {
        "date": dt.date.today().isoformat(),
        "machine": (
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "shape": {
            "per_owner": {
                "folders": FOLDERS_PER_OWNER,
                "leaf_folders": len(YEARS) * PATIENTS_PER_YEAR,
                "files": FILES_PER_OWNER,
                "file_bytes": FILE_SIZE,
                "shares": len(YEARS) * PATIENTS_PER_YEAR,
                "colleague_shares": len(YEARS) * PATIENTS_PER_YEAR // 2,
            },
            "deep_folder": "/".join(leaf_path(DEEP_LEAF)),
            "population_hashes": "configured Argon2" if args.production_hashes else "tests' fast Argon2",
        },
        "run_s": round(time.perf_counter() - started, 1),
        "scales": scales,
    }
    report["findings"] = {
        "failed_requests": sum(len(s["errors"]) for s in scales.values()),
        "big_scans_request_path": big_scans(report, "request"),
        "big_scans_background": big_scans(report, "background"),
        "work_grows": growing(report),
    }
    print(table(report))
    print(f"\nrun time {report['run_s']} s", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    findings = report["findings"]
    worse = [g for g in findings["work_grows"] if g["path"] == "request"]
    return 1 if findings["failed_requests"] or findings["big_scans_request_path"] or worse else 0


if __name__ == "__main__":
    sys.exit(main())
