"""Login throttling (per account and per address, clock passed in) and the client address behind proxies."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path
from typing import Any

import pytest

from server.auth import MemoryThrottleStore, Throttle, Throttled, client_address
from server.auth.throttle import Failures, address_key
from server.config import ThrottleSettings, settings_from_dict
from server.errors import AuthenticationFailed

T0 = 1_700_000_000.0
ALICE_AT_HOME = ("alice", "203.0.113.7")


def throttle(tmp_path: Path, store: MemoryThrottleStore | None = None, **options: Any) -> Throttle:
    settings = settings_from_dict({"throttle": options}, base_dir=tmp_path).throttle
    return Throttle(settings, store)


def fail(t: Throttle, n: int, account: str | None = "alice", address: str = "203.0.113.7", *, at: float = T0) -> None:
    for _ in range(n):
        t.failed(account, address, at)


# -- delays and the window --------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    assert settings_from_dict({}, base_dir=tmp_path).throttle == ThrottleSettings(
        delay_after=3, max_delay_seconds=60, max_failures=10, window_seconds=600
    )


def test_first_failures_cost_no_delay(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    assert t.check(*ALICE_AT_HOME, T0) is None
    fail(t, 2)
    assert t.check(*ALICE_AT_HOME, T0) is None


def test_delay_doubles_after_delay_after_failures(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    now = T0
    expected = {3: 1, 4: 2, 5: 4, 6: 8, 7: 16, 8: 32, 9: 60}  # capped at max_delay_seconds
    for n in range(1, 10):
        t.failed(*ALICE_AT_HOME, now)
        if n in expected:
            assert t.check(*ALICE_AT_HOME, now) == expected[n]
            assert t.check(*ALICE_AT_HOME, now + expected[n] - 0.5) == pytest.approx(0.5)
            now += expected[n]
            assert t.check(*ALICE_AT_HOME, now) is None
        else:
            assert t.check(*ALICE_AT_HOME, now) is None


def test_from_the_tenth_failure_in_the_window_refused_until_the_oldest_leaves(tmp_path: Path) -> None:
    t = throttle(tmp_path, max_delay_seconds=1)
    for i in range(10):
        t.failed(*ALICE_AT_HOME, T0 + i)  # one a second, each delay (1 s) respected
    assert t.check(*ALICE_AT_HOME, T0 + 9) == 600 - 9
    assert t.check(*ALICE_AT_HOME, T0 + 300) == 300
    assert t.check(*ALICE_AT_HOME, T0 + 599.5) == pytest.approx(0.5)
    # The oldest left: nine remain, so the (short) delay since the last failure applies again.
    assert t.check(*ALICE_AT_HOME, T0 + 600) is None


def test_failures_older_than_the_window_are_forgotten(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    fail(t, 5)
    assert t.check(*ALICE_AT_HOME, T0 + 1) is not None
    assert t.check(*ALICE_AT_HOME, T0 + 600) is None
    t.failed(*ALICE_AT_HOME, T0 + 601)
    assert t.check(*ALICE_AT_HOME, T0 + 601) is None  # one failure in the window: no delay


def test_numbers_are_configurable(tmp_path: Path) -> None:
    t = throttle(tmp_path, delay_after=1, max_delay_seconds=5, max_failures=3, window_seconds=30)
    t.failed(*ALICE_AT_HOME, T0)
    assert t.check(*ALICE_AT_HOME, T0) == 1
    t.failed(*ALICE_AT_HOME, T0 + 1)
    assert t.check(*ALICE_AT_HOME, T0 + 1) == 2
    t.failed(*ALICE_AT_HOME, T0 + 3)
    assert t.check(*ALICE_AT_HOME, T0 + 3) == 27  # third failure: wait until T0 + 30


def test_concurrent_failures_beyond_the_limit_still_end_with_the_window(tmp_path: Path) -> None:
    """Requests checked together may all fail; the wait is until enough have left the window."""
    t = throttle(tmp_path, max_failures=3, delay_after=10)
    for i in range(6):
        t.failed(*ALICE_AT_HOME, T0 + i)
    assert t.check(*ALICE_AT_HOME, T0 + 6) == pytest.approx(600 + 3 - 6)  # the 3 newest count


# -- keys ------------------------------------------------------------------------------


def test_success_resets_the_account_but_not_the_address(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    fail(t, 5)
    t.succeeded(*ALICE_AT_HOME)
    assert t.check("alice", "198.51.100.1", T0) is None  # the account is clear
    assert t.check("bob", "203.0.113.7", T0) == 4  # the address still has its 5 failures


def test_spraying_many_accounts_from_one_address_is_throttled(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    for i in range(10):
        t.failed(f"user{i}", "203.0.113.7", T0)
    assert t.check("someone-else", "203.0.113.7", T0) == 600
    assert t.check(None, "203.0.113.7", T0) == 600
    assert t.check("someone-else", "198.51.100.1", T0) is None


def test_one_account_from_many_addresses_is_throttled(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    for i in range(10):
        t.failed("alice", f"198.51.100.{i}", T0)
    assert t.check("alice", "192.0.2.200", T0) == 600
    assert t.check("bob", "192.0.2.200", T0) is None


def test_account_names_are_normalised(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    fail(t, 10, account="Élise ", address="198.51.100.1")
    assert t.check("e\u0301lise", "192.0.2.1", T0) == 600  # NFC, trimmed, lower case


def test_unknown_and_malformed_names_are_throttled_like_known_ones(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    fail(t, 10, account="no such user: " + "x" * 10_000, address="198.51.100.1")
    assert t.check("no such user: " + "x" * 10_000, "192.0.2.1", T0) == 600


def test_store_keys_hold_no_names_and_are_bounded() -> None:
    key = Throttle.account_key("marie.curie@chu-lyon.fr")
    assert "marie" not in key
    assert len(Throttle.account_key("x" * 100_000)) == len(key)


def test_ipv6_addresses_are_grouped_by_64_prefix(tmp_path: Path) -> None:
    t = throttle(tmp_path)
    for i in range(10):
        t.failed(f"user{i}", f"2001:db8:1:2::{i:x}", T0)
    assert t.check(None, "2001:db8:1:2:ffff:ffff:ffff:ffff", T0) == 600
    assert t.check(None, "2001:db8:1:3::1", T0) is None
    assert address_key("2001:DB8:1:2:a::1") == address_key("2001:db8:1:2::b") == "addr:2001:db8:1:2::/64"


def test_ipv4_addresses_are_kept_whole() -> None:
    assert address_key("192.0.2.1") != address_key("192.0.2.2")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1")
    assert address_key("not an address") != address_key("also not")


def test_throttled_is_an_authentication_failure_with_whole_seconds() -> None:
    exc = Throttled(0.2)
    assert isinstance(exc, AuthenticationFailed)
    assert exc.retry_after == 1
    assert Throttled(59.01).retry_after == 60


# -- the memory store ------------------------------------------------------------------------


def test_memory_store_drops_the_least_recently_failed_keys_beyond_its_cap() -> None:
    store = MemoryThrottleStore(max_keys=100)
    for i in range(250):
        store.record_failure(f"k{i}", T0 + i, window_seconds=600, keep=10)
    assert len(store) == 100
    assert store.failures("k149", T0 + 250, window_seconds=600) == Failures(0)
    assert store.failures("k150", T0 + 250, window_seconds=600).count == 1


def test_memory_store_expires_keys_out_of_the_window() -> None:
    store = MemoryThrottleStore()
    for i in range(50):
        store.record_failure(f"k{i}", T0, window_seconds=600, keep=10)
    store.record_failure("late", T0 + 601, window_seconds=600, keep=10)
    assert len(store) == 1


def test_memory_store_keeps_at_most_keep_times_per_key() -> None:
    store = MemoryThrottleStore()
    for i in range(100):
        count = store.record_failure("k", T0 + i, window_seconds=600, keep=10)
    assert count == 10
    assert store.failures("k", T0 + 100, window_seconds=600) == Failures(10, last=T0 + 99, oldest=T0 + 90)
    store.reset("k")
    assert store.failures("k", T0 + 100, window_seconds=600) == Failures(0)


def test_memory_store_is_thread_safe(tmp_path: Path) -> None:
    store = MemoryThrottleStore(max_keys=1000)
    t = throttle(tmp_path, store, max_failures=10_000, window_seconds=86_400)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(500):
                t.failed("shared", f"10.0.{n}.{i % 250}", T0 + i)
                t.check("shared", f"10.0.{n}.1", T0 + i)
                t.failed(f"own{n}-{i}", "10.9.9.9", T0 + i)
                if i % 50 == 0:
                    t.succeeded(f"own{n}-{i}", "10.9.9.9")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store) <= 1000
    shared = store.failures(Throttle.account_key("shared"), T0 + 500, window_seconds=86_400)
    assert shared.count == 8 * 500  # no failure lost
    assert store.failures(address_key("10.9.9.9"), T0 + 500, window_seconds=86_400).count == 8 * 500


# -- the client address --------------------------------------------------------------------------

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"))


def environ(remote: str, forwarded: str | None = None) -> dict[str, str]:
    env = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        env["HTTP_X_FORWARDED_FOR"] = forwarded
    return env


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address(environ("203.0.113.7", "198.51.100.1"), ()) == "203.0.113.7"


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address(environ("203.0.113.7", "198.51.100.1"), PROXIES) == "203.0.113.7"


def test_trusted_proxy_gives_the_rightmost_untrusted_address() -> None:
    assert client_address(environ("10.0.0.1", "198.51.100.1"), PROXIES) == "198.51.100.1"
    # The client wrote "1.2.3.4" itself; the proxies appended the rest.
    assert client_address(environ("10.0.0.1", "1.2.3.4, 198.51.100.1, 10.0.0.2"), PROXIES) == "198.51.100.1"


def test_trusted_proxy_without_header_is_the_client() -> None:
    assert client_address(environ("10.0.0.1"), PROXIES) == "10.0.0.1"


def test_malformed_forwarded_entries_are_not_believed() -> None:
    assert client_address(environ("10.0.0.1", "garbage"), PROXIES) == "10.0.0.1"
    assert client_address(environ("10.0.0.1", "198.51.100.1, garbage, 10.0.0.2"), PROXIES) == "10.0.0.2"
    assert client_address(environ("10.0.0.1", "garbage, 198.51.100.1"), PROXIES) == "198.51.100.1"
    assert client_address(environ("10.0.0.1", ""), PROXIES) == "10.0.0.1"
    assert client_address(environ("10.0.0.1", "198.51.100.1" + ", 1.1.1.1" * 1000), PROXIES) == "10.0.0.1"


def test_forwarded_addresses_with_ports_and_ipv6() -> None:
    assert client_address(environ("10.0.0.1", "198.51.100.1:4711"), PROXIES) == "198.51.100.1"
    assert client_address(environ("10.0.0.1", "[2001:db8::7]:443"), PROXIES) == "2001:db8::7"
    assert client_address(environ("2001:db8:ffff::1", "2001:DB8:0::7"), PROXIES) == "2001:db8::7"


def test_ipv4_mapped_addresses_are_ipv4() -> None:
    assert client_address(environ("::ffff:203.0.113.7"), ()) == "203.0.113.7"
    assert client_address(environ("::ffff:10.0.0.1", "198.51.100.1"), PROXIES) == "198.51.100.1"


def test_unparseable_or_missing_peer_is_returned_as_given() -> None:
    assert client_address({"REMOTE_ADDR": "unix-socket"}, PROXIES) == "unix-socket"
    assert client_address({}, PROXIES) == ""
