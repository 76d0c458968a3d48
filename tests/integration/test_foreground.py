"""Job workers inside the server give way to users' requests: they pause between jobs while requests are
in flight (``[jobs] yield_ms``), and catch up as soon as the server is idle."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from server.app import RequestLog
from server.jobs import Foreground, JobContext, WorkerPool
from server.testing import LiveServer, TestInstance


def test_a_request_in_flight_is_counted_until_its_answer_is_closed(
    instance_dir: TestInstance, start_server: Callable[[TestInstance], LiveServer]
) -> None:
    server = start_server(instance_dir)
    auth = (instance_dir.user, instance_dir.password)
    assert httpx.put(server.dav_url + "big.bin", content=b"x" * (32 * 1024 * 1024), auth=auth).status_code == 201
    # The server closes an answer just after the client has read it (CI once looked in between).
    assert server.instance.foreground.wait_idle(10)
    with httpx.stream("GET", server.dav_url + "big.bin", auth=auth, timeout=30) as response:
        assert response.status_code == 200
        next(response.iter_bytes(65536))  # the answer is still being sent
        assert server.instance.foreground.busy()
    assert server.instance.foreground.wait_idle(10)
    # A request the application refuses (401, 404) is counted and released too.
    assert httpx.get(server.dav_url + "missing.bin", auth=auth).status_code == 404
    assert httpx.get(server.dav_url, auth=("nobody", "wrong")).status_code == 401
    assert server.instance.foreground.wait_idle(10)


def test_a_request_leaves_the_count_only_once_its_audit_event_is_queued() -> None:
    """So that ``Instance.flush_audit`` (wait for requests in flight, then for the audit writer) sees every
    request a client has had its answer to."""
    foreground = Foreground()
    seen: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("201 Created", [])
        return [b""]

    def audit(environ: dict[str, Any], status: int) -> None:
        seen.append(foreground.busy())

    logged = RequestLog(app, enabled=False, hsts=False, audit=audit, foreground=foreground)
    body = logged({"REQUEST_METHOD": "PUT", "SCRIPT_NAME": "/dav"}, lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b""
    assert not foreground.wait_idle(0.05)  # the client has its answer; the server has not closed it yet
    body.close()  # type: ignore[attr-defined]
    assert seen == [True]  # recorded while still counted
    assert foreground.wait_idle(0)


def test_workers_pause_between_jobs_while_requests_are_in_flight(live_server: LiveServer) -> None:
    queue = live_server.instance.jobs
    done: list[float] = []

    def handler(ctx: JobContext) -> None:
        done.append(time.monotonic())

    foreground = Foreground()
    pool = WorkerPool(
        queue, {"test.tick": handler}, threads=1, scheduler=False, yield_to=foreground.busy, yield_seconds=0.2
    )
    for i in range(20):
        queue.enqueue(None, "test.tick", f"tick:{i}", {})
    foreground.begin()  # a request is in flight
    with pool:
        time.sleep(0.7)
        paused = len(done)
        foreground.end()  # idle: the rest at once
        deadline = time.monotonic() + 10
        while len(done) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert 2 <= paused <= 5, paused  # one job, then a 0.2 s pause, and so on
    assert len(done) == 20
    assert done[-1] - done[paused] < 0.5  # no pause once idle


def test_a_pause_is_cut_short_by_stop(live_server: LiveServer) -> None:
    queue = live_server.instance.jobs
    foreground = Foreground()
    foreground.begin()
    pool = WorkerPool(queue, {"test.tick": lambda ctx: None}, threads=1, scheduler=False,
                      yield_to=foreground.busy, yield_seconds=30)  # fmt: skip
    queue.enqueue(None, "test.tick", "tick:only", {})
    pool.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert pool.stop(timeout=5)
    assert time.monotonic() - started < 2
