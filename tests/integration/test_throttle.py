"""Failed WebDAV logins against the real server: refused early with 429, never by sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from server.auth import PasswordHasher
from server.testing import LiveServer, TestInstance

Start = Callable[[dict[str, dict[str, Any]] | None], tuple[LiveServer, TestInstance]]
#: Small numbers so that tests wait a second at most.
QUICK = {"delay_after": 1, "max_delay_seconds": 1, "max_failures": 5, "window_seconds": 10}
FAST_ENOUGH = 0.5  # seconds: a refusal is immediate, no worker sleeps


@pytest.fixture
def start(make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]) -> Start:
    def run(settings: dict[str, dict[str, Any]] | None = None) -> tuple[LiveServer, TestInstance]:
        inst = make_test_instance(settings)
        return start_server(inst), inst

    return run


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts password verifications (Argon2 runs) in this process, where the live server runs."""
    calls = [0]
    original = PasswordHasher.verify

    def counting(self: PasswordHasher, password: str, stored: str) -> tuple[bool, str | None]:
        calls[0] += 1
        return original(self, password, stored)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    yield calls


def login(server: LiveServer, user: str, password: str, **headers: str) -> tuple[httpx.Response, float]:
    with httpx.Client(timeout=10) as client:  # built before the clock starts: only the request is timed
        started = time.monotonic()
        response = client.request("PROPFIND", server.dav_url, auth=(user, password), headers={"Depth": "0", **headers})
        return response, time.monotonic() - started


def comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k.lower(), v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, headers, response.content


def test_repeated_wrong_passwords_get_429_then_the_right_one_works_after_the_delay(
    start: Start, verifications: list[int]
) -> None:
    server, inst = start({"throttle": QUICK})
    assert login(server, inst.user, "wrong password")[0].status_code == 401

    refused, elapsed = login(server, inst.user, "wrong again")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.text == ("Too many failed logins, retry in 1 s / Trop d'échecs de connexion, réessayez dans 1 s\n")
    assert "WWW-Authenticate" not in refused.headers
    assert elapsed < FAST_ENOUGH

    before = verifications[0]
    right, elapsed = login(server, inst.user, inst.password)
    assert right.status_code == 429, "the right password during the delay is refused too, unverified"
    assert elapsed < FAST_ENOUGH
    assert verifications[0] == before

    time.sleep(int(refused.headers["Retry-After"]) + 0.1)
    assert login(server, inst.user, inst.password)[0].status_code == 207
    assert verifications[0] == before + 1


def test_max_failures_within_the_window_refuse_until_it_passes(start: Start) -> None:
    server, inst = start({"throttle": {**QUICK, "max_failures": 2}})
    assert login(server, inst.user, "wrong password")[0].status_code == 401
    time.sleep(1.1)  # the one-second delay after the first failure
    assert login(server, inst.user, "wrong again")[0].status_code == 401
    right, elapsed = login(server, inst.user, inst.password)
    assert right.status_code == 429
    assert 7 <= int(right.headers["Retry-After"]) <= 9  # until the first failure is 10 s old
    assert elapsed < FAST_ENOUGH


def test_unknown_user_and_wrong_password_get_the_same_answers(start: Start, verifications: list[int]) -> None:
    server, inst = start(None)  # default numbers: delays from the 3rd failure of the address
    before = verifications[0]
    wrong, unknown = login(server, inst.user, "wrong password")[0], login(server, "nobody", "wrong password")[0]
    assert wrong.status_code == 401
    assert comparable(wrong) == comparable(unknown)
    assert verifications[0] == before + 2, "an unknown user costs a (decoy) verification too"

    assert login(server, inst.user, "wrong password")[0].status_code == 401  # the address's 3rd failure
    wrong, unknown = login(server, inst.user, "wrong password")[0], login(server, "nobody", "wrong password")[0]
    assert wrong.status_code == 429
    assert comparable(wrong) == comparable(unknown)


def test_many_requests_during_a_delay_are_all_answered_at_once(start: Start) -> None:
    server, inst = start({"throttle": {**QUICK, "max_delay_seconds": 60, "max_failures": 100, "window_seconds": 600}})
    for _ in range(5):  # recorded directly: over HTTP each would first have to wait out the last delay
        server.instance.authenticator.throttle.failed(inst.user, "127.0.0.1")
    started = time.monotonic()
    with httpx.Client(auth=(inst.user, inst.password), timeout=10) as client:
        answers = [client.request("PROPFIND", server.dav_url, headers={"Depth": "0"}) for _ in range(20)]
    assert {a.status_code for a in answers} == {429}
    assert {a.headers["Retry-After"] for a in answers} <= {"15", "16"}  # 2 ** (5 - 1) s after the last failure
    assert time.monotonic() - started < 2.0


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(start: Start) -> None:
    spoofed, _ = start({"throttle": QUICK})
    login(spoofed, "alice", "wrong", **{"X-Forwarded-For": "198.51.100.1"})
    response, _ = login(spoofed, "bob", "wrong", **{"X-Forwarded-For": "198.51.100.2"})
    assert response.status_code == 429, "a client cannot escape the address key with a made-up header"

    proxied, _ = start({"throttle": QUICK, "server": {"trusted_proxies": ["127.0.0.1/32"]}})
    login(proxied, "alice", "wrong", **{"X-Forwarded-For": "198.51.100.1"})
    response, _ = login(proxied, "bob", "wrong", **{"X-Forwarded-For": "198.51.100.2"})
    assert response.status_code == 401, "behind a trusted proxy, each client has its own address"
    response, _ = login(proxied, "carol", "wrong", **{"X-Forwarded-For": "198.51.100.1"})
    assert response.status_code == 429


def test_a_burst_of_concurrent_guesses_gets_no_more_tries_than_a_sequence(
    make_test_instance: Callable[..., TestInstance], start_server: Callable[[TestInstance], LiveServer]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    made = make_test_instance({"throttle": {"delay_after": 3, "max_failures": 10, "window_seconds": 600}})
    server = start_server(made)

    def guess(i: int) -> int:
        with httpx.Client(base_url=server.dav_url, auth=(made.user, f"wrong guess {i}"), timeout=30) as client:
            return client.request("PROPFIND", "", headers={"Depth": "0"}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(guess, range(40)))
    assert statuses.count(401) <= 3, statuses  # then each further guess must wait: 429
    assert statuses.count(401) + statuses.count(429) == 40
