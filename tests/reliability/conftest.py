"""What the reliability tests share: the command line run after a fault, and the state as a client sees it.

:func:`after_crash` runs ``meddav fsck`` and ``meddav audit verify`` (the
commands an operator runs after a crash, in child processes, as
``test_crash.py`` does) and fails unless nothing is missing and the audit chain
holds.  :func:`snapshot` reads a user's whole tree back over WebDAV, and the
shares through the JSON API, into a flat :data:`State`, so that two states
compare with ``==`` and a difference reads as a list of paths.

An :class:`Op` is one request together with what it does to such a state once
it has taken effect (``put``, ``mkcol``, ``copy``, ``move``, ``delete``,
``proppatch``, ``lock``, ``share``), so a test computes the state a request
must leave (:func:`states_along`) and compares it with the one it finds.
:func:`run` sends requests one after the other, as a client thread, and
records what was answered.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import httpx
from lxml import etree

#: A user's tree, flat.  Keys: ``/a/`` a folder, ``/a/f.txt`` a file (value: SHA-256 of its content),
#: ``/a/f.txt#name`` a dead property of the test namespace (value: its text), ``/a/f.txt!lock`` an active
#: lock on it, ``share:<recipient>`` a share (value: ``mode:state``).
State = dict[str, str]

DIR = "dir"
LOCKED = "!lock"
#: The namespace of the dead properties the tests set.
TEST_NS = "urn:meddav-test"
EMPTY = hashlib.sha256(b"").hexdigest()

_ALLPROP = b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def meddav(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``meddav --config CONFIG ARGS...`` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "server", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def after_crash(config: Path) -> Iterator[str]:
    """Run ``meddav fsck`` (which removes orphans and unfinished uploads), with ``meddav audit verify`` beside
    it until the block ends (the server may restart meanwhile: verify reads a snapshot).

    Yields fsck's report; fails unless fsck finds no file whose blob is missing and the audit chain verifies.
    """
    command = [sys.executable, "-m", "server", "--config", str(config)]
    verify = subprocess.Popen(
        [*command, "audit", "verify"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        fsck = subprocess.run([*command, "fsck"], capture_output=True, text=True, timeout=120)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        assert "files whose blob is missing: 0" in fsck.stdout, fsck.stdout
        yield fsck.stdout
    finally:
        verified, _ = verify.communicate(timeout=120)
    assert verify.returncode == 0 and "audit chain intact" in verified, verified


def blob_files(blob_dir: Path) -> tuple[list[str], list[str]]:
    """(committed blobs, unfinished uploads) of a local blob store, by file name."""
    blobs: list[str] = []
    uploads: list[str] = []
    for _, _, files in os.walk(blob_dir):
        for name in files:
            (uploads if name.startswith(".upload-") else blobs).append(name)
    return blobs, uploads


def stored_files(state: State) -> int:
    """How many blobs the files of ``state`` hold: one per file with content (an empty file made by a LOCK
    has no version, hence no blob)."""
    return sum(1 for key, value in state.items() if _is_file(key) and value != EMPTY)


def _is_file(key: str) -> bool:
    return key.startswith("/") and not key.endswith("/") and "#" not in key and LOCKED not in key


def snapshot(client: httpx.Client, *, shares: bool = False) -> State:
    """The whole tree of ``client``'s user (folders, file contents, test properties, locks), read over
    WebDAV with PROPFIND Depth 1 folder by folder; with ``shares``, the user's shares from ``/api/v1``.

    ``client`` is based at the server's root (``ServerProcess.url``) and authenticated.
    """
    state: State = {}
    pending = ["/"]
    while pending:
        folder = pending.pop()
        answer = client.request("PROPFIND", "/dav" + folder, headers={"Depth": "1"}, content=_ALLPROP)
        assert answer.status_code == 207, (folder, answer.status_code, answer.text[:500])
        for response in etree.fromstring(answer.content).iter("{DAV:}response"):
            path = unquote(response.findtext("{DAV:}href") or "").removeprefix("/dav")
            if path == folder:
                continue
            found = [
                prop
                for propstat in response.iter("{DAV:}propstat")
                if " 200 " in (propstat.findtext("{DAV:}status") or "")
                for prop in propstat.iter("{DAV:}prop")
            ]
            props = {child.tag: child for prop in found for child in prop}
            kind = props.get("{DAV:}resourcetype")
            if kind is not None and kind.find("{DAV:}collection") is not None:
                state[path] = DIR
                pending.append(path)
            else:
                state[path] = _content_hash(client, path)
            for tag, element in props.items():
                if tag.startswith("{" + TEST_NS + "}"):
                    state[f"{path}#{tag.split('}')[1]}"] = element.text or ""
            discovery = props.get("{DAV:}lockdiscovery")
            if discovery is not None and discovery.find("{DAV:}activelock") is not None:
                state[path + LOCKED] = "locked"
    if shares:
        listed = client.get("/api/v1/shares")
        assert listed.status_code == 200, listed.text
        for share in listed.json()["shares"]:
            state[f"share:{share['recipient']}"] = f"{share['mode']}:{share['state']}"
    return state


def _content_hash(client: httpx.Client, path: str) -> str:
    digest = hashlib.sha256()
    with client.stream("GET", "/dav" + path) as response:
        assert response.status_code == 200, (path, response.status_code)
        for chunk in response.iter_bytes(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def differences(found: State, expected: State, *, limit: int = 12) -> str:
    """What ``found`` has that ``expected`` has not, and the reverse, one path a line."""
    lines = []
    for key in sorted(set(found) | set(expected)):
        if found.get(key) != expected.get(key):
            lines.append(f"  {key}: found {found.get(key, '-')[:16]}, expected {expected.get(key, '-')[:16]}")
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


# -- requests and what they do to the model ----------------------------------------------------------


def _success(response: httpx.Response) -> bool:
    return response.is_success


def _all_properties_set(response: httpx.Response) -> bool:
    statuses = re.findall(r"<D:status>HTTP/1.1 (\d+)", response.text)
    return response.status_code == 207 and bool(statuses) and set(statuses) == {"200"}


@dataclass(frozen=True)
class Op:
    """One request of a stream, and what it does to the model once it has taken effect."""

    label: str
    send: Callable[[httpx.Client], httpx.Response]
    effect: Callable[[State], None]
    accepted: Callable[[httpx.Response], bool] = _success


def _within(key: str, path: str) -> bool:
    """Whether ``key`` of a state belongs to the item at ``path`` (a folder: everything below it)."""
    if path.endswith("/"):
        return key.startswith(path)
    return key == path or key.startswith((path + "#", path + "!"))


def _remove(state: State, path: str) -> None:
    for key in [k for k in state if _within(k, path)]:
        del state[key]


def _destination(client: httpx.Client, path: str) -> dict[str, str]:
    return {"Destination": str(client.base_url).rstrip("/") + "/dav" + path, "Overwrite": "T"}


def put(path: str, data: bytes) -> Op:
    digest = sha(data)

    def effect(state: State) -> None:
        state[path] = digest  # a new version keeps the file's properties

    return Op(f"PUT {path} ({len(data)} B)", lambda c: c.put("/dav" + path, content=data), effect)


def mkcol(path: str) -> Op:
    def effect(state: State) -> None:
        state[path] = DIR

    return Op(f"MKCOL {path}", lambda c: c.request("MKCOL", "/dav" + path), effect)


def delete(path: str, *, headers: dict[str, str] | None = None) -> Op:
    def send(client: httpx.Client) -> httpx.Response:
        return client.request("DELETE", "/dav" + path, headers=headers)

    return Op(f"DELETE {path}", send, lambda state: _remove(state, path))


def copy(source: str, target: str) -> Op:
    def send(client: httpx.Client) -> httpx.Response:
        return client.request("COPY", "/dav" + source, headers={**_destination(client, target), "Depth": "infinity"})

    def effect(state: State) -> None:
        copied = {target + k[len(source) :]: v for k, v in state.items() if _within(k, source) and LOCKED not in k}
        _remove(state, target)
        state.update(copied)

    return Op(f"COPY {source} {target}", send, effect)


def move(source: str, target: str, *, headers: dict[str, str] | None = None) -> Op:
    def effect(state: State) -> None:
        moved = {target + k[len(source) :]: v for k, v in state.items() if _within(k, source) and LOCKED not in k}
        _remove(state, target)
        _remove(state, source)
        state.update(moved)

    def send(client: httpx.Client) -> httpx.Response:
        return client.request("MOVE", "/dav" + source, headers={**_destination(client, target), **(headers or {})})

    return Op(f"MOVE {source} {target}", send, effect)


def proppatch(path: str, values: dict[str, str]) -> Op:
    props = "".join(f"<T:{name}>{value}</T:{name}>" for name, value in values.items())
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:T="{TEST_NS}">'
        f"<D:set><D:prop>{props}</D:prop></D:set></D:propertyupdate>"
    ).encode()

    def effect(state: State) -> None:
        state.update({f"{path}#{name}": value for name, value in values.items()})

    def send(client: httpx.Client) -> httpx.Response:
        return client.request("PROPPATCH", "/dav" + path, content=body)

    return Op(f"PROPPATCH {path} ({len(values)} properties)", send, effect, _all_properties_set)


_LOCKINFO = (
    b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>fault test</D:owner></D:lockinfo>"
)


def lock(path: str) -> Op:
    def send(client: httpx.Client) -> httpx.Response:
        return client.request(
            "LOCK", "/dav" + path, content=_LOCKINFO, headers={"Timeout": "Second-3600", "Depth": "0"}
        )

    def effect(state: State) -> None:
        state.setdefault(path, EMPTY)  # locking an unmapped URL makes an empty file (RFC 4918 §7.3)
        state[path + LOCKED] = "locked"

    return Op(f"LOCK {path}", send, effect)


def share(path: str, email: str, mode: str) -> Op:
    def send(client: httpx.Client) -> httpx.Response:
        return client.post("/api/v1/shares", json={"path": path, "email": email, "mode": mode, "password_by": "owner"})

    def effect(state: State) -> None:
        state[f"share:{email}"] = f"{mode}:active"

    return Op(f"share {path} with {email}", send, effect)


# -- sending requests ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the client of a stream saw: the answers it received, and how the stream ended."""

    began: float = 0.0  # time.monotonic() as the first request was sent
    answers: list[httpx.Response] = field(default_factory=list)
    refused: str | None = None  # an answer the request should not get
    error: Exception | None = None  # the connection failed (the server was killed)

    @property
    def acked(self) -> int:
        return len(self.answers)


def run(base_url: str, auth: tuple[str, str], ops: list[Op], outcome: Outcome) -> None:
    """Send ``ops`` one after the other; stop at the first failure."""
    with httpx.Client(base_url=base_url, auth=auth, timeout=60) as client:
        outcome.began = time.monotonic()
        for op in ops:
            try:
                response = op.send(client)
            except httpx.TransportError as exc:
                outcome.error = exc
                return
            if not op.accepted(response):
                outcome.refused = f"{op.label}: {response.status_code} {response.text[:500]}"
                return
            outcome.answers.append(response)


def states_along(start: State, ops: list[Op]) -> list[State]:
    """The model before ``ops`` and after each of them."""
    states = [dict(start)]
    for op in ops:
        state = dict(states[-1])
        op.effect(state)
        states.append(state)
    return states
