"""MedDAV against plain wsgidav, on loopback, in the same run (``make bench``).

Starts a fresh MedDAV instance (``meddav serve`` in a child process, default
production settings: Argon2 defaults, SQLite ``synchronous=full``, request
log on) and plain wsgidav (FilesystemProvider, same cheroot, Basic auth),
then runs each workload on both, interleaved, and prints the figures and the
MedDAV/wsgidav ratios.  See bench/README.md for the workloads and targets.

    .venv/bin/python bench/run.py [--big-mib 512] [--workloads big small propfind meta rss] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import workloads  # noqa: E402
from server.config import load_settings  # noqa: E402
from server.instance import Instance, open_instance  # noqa: E402
from server.testing import ServerProcess, make_instance  # noqa: E402

WORKLOADS = ("big", "small", "propfind", "meta", "latency", "rss")
#: (workload, figure, higher is better, target ratio)
TARGETS = (
    ("big", "put_mb_s", True, 0.8),
    ("big", "get_mb_s", True, 0.8),
    ("small", "put_req_s", True, 0.7),
    ("small", "get_req_s", True, 0.8),
    ("propfind", "median_ms", False, 0.7),
    ("meta", "ops_s", True, 1.0),
    # Latency growth from 1 to 8 clients, MedDAV's over wsgidav's: the audit chain must not add to it.
    ("latency", "growth", False, 1.2),
)


def run_workload(name: str, dav: workloads.Dav, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    base = workloads.fresh_collection(dav)
    try:
        if name == "big":
            return workloads.big(dav, base, pid, mib=args.big_mib)
        if name == "small":
            return workloads.small(
                dav, base, pid, count=args.small_count, size=args.small_size, concurrency=args.concurrency
            )
        if name == "propfind":
            return workloads.propfind(dav, base, pid, members=args.propfind_members, runs=args.propfind_runs)
        if name == "meta":
            return workloads.meta(dav, base, pid, rounds=args.meta_rounds)
        if name == "latency":
            return workloads.latency(dav, base, pid, requests=args.latency_requests, concurrency=args.concurrency)
        if name == "rss":
            small_peak = workloads.transfer_rss(dav, base, pid, mib=10)
            large_peak = workloads.transfer_rss(dav, base, pid, mib=args.rss_large_mib)
            return {
                "peak_rss_10mib": small_peak,
                f"peak_rss_{args.rss_large_mib}mib": large_peak,
                "growth_mib": round(large_peak - small_peak, 1),
            }
        raise ValueError(name)
    finally:
        workloads.remove_collection(dav, base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--big-mib", type=int, default=512)
    parser.add_argument("--small-count", type=int, default=2000)
    parser.add_argument("--small-size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--propfind-members", type=int, default=5000)
    parser.add_argument("--propfind-runs", type=int, default=5)
    parser.add_argument("--meta-rounds", type=int, default=500)
    parser.add_argument("--latency-requests", type=int, default=800)
    parser.add_argument("--rss-large-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are medians (RSS: maximum)")
    parser.add_argument(
        "--meddav-option",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a MedDAV setting for this run (TOML value), e.g. database.sqlite_synchronous='\"normal\"'",
    )
    parser.add_argument(
        "--ehr-bridge",
        action="store_true",
        help="enable the EHR bridge on MedDAV, feeding a FHIR server of the tests with every file written",
    )
    parser.add_argument(
        "--separate-worker",
        action="store_true",
        help="with --ehr-bridge: no job worker in meddav serve, `nice -n 10 meddav worker` beside it instead",
    )
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args()

    rounds: list[dict[str, dict[str, Any]]] = []
    with contextlib.ExitStack() as stack:
        tmp_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meddav-bench-")))
        settings = meddav_options(args.meddav_option)
        drain: Callable[[], float] | None = None
        if args.ehr_bridge:
            ehr = stack.enter_context(Child([sys.executable, "-m", "tests.fhir_server", "--token", EHR_TOKEN], nice=10))
            settings = {**settings, "plugins": bridge_settings(ehr.url, tmp_path / "ehr-token")}
            if args.separate_worker:
                settings.setdefault("jobs", {})["workers"] = 0
        inst = make_instance(tmp_path / "meddav" / "data", fast=False, settings=settings)
        if args.ehr_bridge:
            watched = open_instance(load_settings(inst.config_path))
            stack.callback(watched.close)
            drain = partial(wait_for_jobs, watched)
            if args.separate_worker:
                worker = [sys.executable, "-m", "server", "--config", str(inst.config_path), "worker", "--threads", "2"]
                stack.enter_context(Child(worker, nice=10, url=False))
        (tmp_path / "wsgidav").mkdir()
        meddav = ServerProcess(inst.config_path)
        stack.callback(meddav.stop)  # stopped with the stack, like every other child
        # With the bridge, MedDAV without any plugin runs beside it: the bridge's own cost, in the same run.
        unplugged: ServerProcess | None = None
        if args.ehr_bridge:
            bare = make_instance(
                tmp_path / "meddav-bare" / "data", fast=False, settings=meddav_options(args.meddav_option)
            )
            unplugged = ServerProcess(bare.config_path)
            stack.callback(unplugged.stop)
        plain_command = [sys.executable, str(HERE / "plain_wsgidav.py"), "--root", str(tmp_path / "wsgidav")]
        plain = stack.enter_context(Child([*plain_command, "--user", "bench", "--password", "bench"], quiet=False))
        time.sleep(0.2)
        servers = {
            "meddav": (workloads.Dav(meddav.dav_url, inst.user, inst.password), meddav.pid),
            "wsgidav": (workloads.Dav(plain.url, "bench", "bench"), plain.pid),
        }
        if unplugged is not None:
            servers[UNPLUGGED] = (workloads.Dav(unplugged.dav_url, bare.user, bare.password), unplugged.pid)
        for number in range(1, args.rounds + 1):
            current: dict[str, dict[str, Any]] = {server: {} for server in servers}
            for name in args.workloads:
                # Rotate which server goes first, so none always runs on a warmer machine.
                names = list(servers)
                shift = (number - 1) % len(names)
                order = names[shift:] + names[:shift]
                for server in order:
                    dav, pid = servers[server]
                    print(f"round {number} {name:9} {server:8} ...", end="", flush=True, file=sys.stderr)
                    current[server][name] = run_workload(name, dav, pid, args)
                    if server == "meddav" and drain is not None:
                        # Until every document written reached the EHR (the next workload starts clean).
                        current[server][name]["bridge_drain_s"] = round(drain(), 1)
                    print(f" {current[server][name]}", file=sys.stderr)
            rounds.append(current)
    results = combine(rounds)

    report = {
        "date": dt.date.today().isoformat(),
        "machine": (
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "rounds": rounds,
    }
    print(table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


EHR_TOKEN = "bench-ehr-token"
#: With --ehr-bridge: MedDAV without any plugin, measured in the same run.
UNPLUGGED = "meddav-no-plugin"


class Child:
    """A process the benchmark starts beside the servers: plain wsgidav, the EHR stand-in, a job worker.

    With ``url``, it prints ``URL=...`` first (bench/plain_wsgidav.py, tests/fhir_server.py).  The EHR
    would run on another machine; on this one it gets ``nice`` so that it takes the CPU the servers
    and the client leave.  ``quiet``: its log would interleave with the benchmark's progress."""

    def __init__(self, command: list[str], *, nice: int = 0, url: bool = True, quiet: bool = True) -> None:
        self.process = subprocess.Popen(
            ["nice", "-n", str(nice), *command] if nice else command,
            stdout=subprocess.PIPE if url else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if quiet else None,
            text=True,
            cwd=HERE.parent,
        )
        self.pid = self.process.pid  # nice execs the command: the same process
        self.url = ""
        if url:
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            if not line.startswith("URL="):
                raise RuntimeError(f"{command} did not start")
            self.url = line[4:].strip()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def wait_for_jobs(instance: Instance, timeout: float = 600) -> float:
    """Seconds until no job is pending or running (the bridge's backlog after a workload)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        counts = instance.jobs.counts()
        if counts["pending"] == 0 and counts["running"] == 0:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def bridge_settings(ehr_url: str, token_file: Path) -> dict[str, Any]:
    """``[plugins]`` with the EHR bridge feeding every file of the admin's drive to ``ehr_url``.

    Each workload's collection (``bench-<8 hex digits>/``) is a patient whose identifier is in its
    name, so every file a workload writes is sent: the event job, the send job and the EHR's
    request all run beside the workload, on the same two cores."""
    token_file.write_text(EHR_TOKEN)
    feed = {"folder": "admin", "patient_from": "name", "patient_pattern": r"^bench-(?P<id>[0-9a-f]{8})$"}
    return {
        "enabled": ["ehr_bridge"],
        "ehr_bridge": {
            "organisations": ["Default organisation"],
            "ehr": {"bench": {"url": ehr_url, "token_file": str(token_file), "feeds": [feed]}},
        },
    }


def meddav_options(specs: list[str]) -> dict[str, dict[str, Any]]:
    """``section.key=value`` strings (TOML values) as configuration sections."""
    options: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        section, _, key = name.partition(".")
        options.setdefault(section, {})[key] = tomllib.loads(f"v = {value}")["v"]
    return options


def combine(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median of each figure over the rounds (maximum for memory), plus its min-max spread."""
    out: dict[str, dict[str, Any]] = {}
    for server in rounds[0]:
        out[server] = {}
        for workload in rounds[0][server]:
            figures: dict[str, Any] = {}
            for figure in rounds[0][server][workload]:
                values = [r[server][workload][figure] for r in rounds]
                rss = "rss" in figure or figure == "growth_mib"
                figures[figure] = max(values) if rss else round(statistics.median(values), 1)
                figures[figure + "_spread"] = [min(values), max(values)]
            out[server][workload] = figures
    return out


def table(report: dict[str, Any]) -> str:
    res = report["results"]
    lines = [
        f"MedDAV vs plain wsgidav, {report['date']}, {report['machine']}, "
        f"median of {report['args']['rounds']} interleaved rounds (peak RSS: maximum)",
        "",
        "| workload | figure | MedDAV (min-max) | wsgidav (min-max) | ratio: median of rounds (min-max) "
        "| target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload, figure, higher, target in TARGETS:
        if workload not in res["meddav"]:
            continue
        mine, base = res["meddav"][workload][figure], res["wsgidav"][workload][figure]
        # Each round measures both servers minutes apart: the median of the per-round
        # ratios resists the machine's drift better than the ratio of medians.
        ratios = sorted(r["meddav"][workload][figure] / r["wsgidav"][workload][figure] for r in report["rounds"])
        ratio = statistics.median(ratios)
        met = ratio >= target if higher else ratio <= target
        sign = ">=" if higher else "<="
        (lo, hi), (base_lo, base_hi) = (res[s][workload][figure + "_spread"] for s in ("meddav", "wsgidav"))
        lines.append(
            f"| {workload} | {figure} | {mine} ({lo}-{hi}) | {base} ({base_lo}-{base_hi}) "
            f"| {ratio:.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) | {sign} {target} | {'yes' if met else 'NO'} |"
        )
    for workload in ("big", "small", "propfind", "meta"):
        if workload in res["meddav"]:
            lines.append(
                f"| {workload} | peak RSS MiB | {res['meddav'][workload].get('peak_rss_mib')} | "
                f"{res['wsgidav'][workload].get('peak_rss_mib')} | | | |"
            )
    if UNPLUGGED in res:
        lines += [
            "",
            "The EHR bridge's own cost: MedDAV with the bridge over MedDAV without any plugin, same run",
            "",
            "| workload | figure | with the bridge | without plugin | ratio: median of rounds (min-max) |",
            "|---|---|---|---|---|",
        ]
        for workload, figure, _, _ in TARGETS:
            if workload not in res["meddav"]:
                continue
            ratios = sorted(r["meddav"][workload][figure] / r[UNPLUGGED][workload][figure] for r in report["rounds"])
            lines.append(
                f"| {workload} | {figure} | {res['meddav'][workload][figure]} | {res[UNPLUGGED][workload][figure]} "
                f"| {statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) |"
            )
    if "rss" in res["meddav"]:
        growth = res["meddav"]["rss"]["growth_mib"]
        lines.append(
            f"| rss | RSS growth 10 MiB -> {report['args']['rss_large_mib']} MiB transfer, MiB | {growth} | "
            f"{res['wsgidav']['rss']['growth_mib']} | | < 64 MiB | {'yes' if growth < 64 else 'NO'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
