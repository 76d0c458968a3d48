"""A MedDAV with the EHR bridge enabled, a real FHIR server standing for the EHR, and a real SMTP server.

The MedDAV is started by MedDAV's own pytest plugin (``meddav_server_factory``,
as a plugin author would), in this process, with job workers.  The feed:
``martin/Patients`` goes to the EHR ``dpi``; each patient is a folder of it
whose property ``{urn:meddav:ehr}patient-id`` (set by PROPPATCH) names the
patient.  ``olga`` administers the organisation and receives the alerts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugins.ehr_bridge.bridge import SEND
from server.instance import EVENT_JOB
from server.jobs import JobInfo
from server.plugins import NodeInfo
from server.policy import ROLE_ORG_ADMIN
from server.pytest_plugin import MedDAVServer
from server.testing import TEST_PASSWORD
from server.tree import Entry
from tests.fhir_server import FakeFhirServer
from tests.web.conftest import Mailbox, mailbox, smtp_settings  # noqa: F401 - the mailbox fixture, used here

TOKEN = "ehr-secret-token-for-tests"
SYSTEM = "urn:meddav:test:document"
PATIENT_PROPERTY = "{urn:meddav:ehr}patient-id"
ORGANISATION = "Default organisation"
#: How the key of a file event's delivery to the bridge starts.
EVENT_KEY = "ehr_bridge:FileWritten:"


def identifier_of(entry: Entry) -> str:
    """The identifier the bridge gives the current version of a file (node, version, version tag)."""
    info = NodeInfo.of(entry)
    return f"{SYSTEM}|{info.id}.{info.version_id}.{info.version_tag}"


def proppatch_body(value: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:propertyupdate xmlns:D="DAV:" xmlns:E="urn:meddav:ehr">'
        f"<D:set><D:prop><E:patient-id>{value}</E:patient-id></D:prop></D:set>"
        "</D:propertyupdate>"
    ).encode()


def bridge_settings(
    ehr_url: str, token_file: Path, *, feed: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """The ``[plugins.ehr_bridge]`` table of the tests (``feed`` updates the feed, ``extra`` top-level keys)."""
    feed = {"folder": "martin/Patients", "patient_from": "property", **(feed or {})}
    table: dict[str, Any] = {
        "organisations": [ORGANISATION],
        "identifier_system": SYSTEM,
        "ehr": {"dpi": {"url": ehr_url, "token_file": str(token_file), "timeout_seconds": 3, "feeds": [feed]}},
    }
    table.update(extra)
    return table


class Clock:
    """The job queue's clock in the tests: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Bridged:
    """One test's world: the MedDAV, the EHR, the mailbox, and a WebDAV client signed in as martin."""

    server: MedDAVServer
    ehr: FakeFhirServer
    mail: Mailbox
    dav: httpx.Client
    clock: Clock

    def advance(self, seconds: float) -> None:
        """Move the job queue's clock (back-off delays, alert periods, schedules) and wake the workers."""
        self.clock.offset += seconds
        self.server.instance.jobs.notify()

    def patient(self, folder: str, patient_id: str | None) -> None:
        """A patient's folder under Patients/, with its identifier property (None: without)."""
        assert self.dav.request("MKCOL", f"Patients/{folder}/").status_code == 201
        if patient_id is not None:
            answer = self.dav.request("PROPPATCH", f"Patients/{folder}/", content=proppatch_body(patient_id))
            assert answer.status_code == 207, answer.text

    def put(self, path: str, content: bytes) -> tuple[int, int]:
        """PUT a file; return its (node id, version id), which make the EHR's identifier."""
        answer = self.dav.put(path, content=content)
        assert answer.status_code in (201, 204), answer.status_code
        return self.version_of(path)

    def version_of(self, path: str) -> tuple[int, int]:
        node = self.server.instance.tree.resolve_below(
            self.root_id, self.org_id, [part for part in path.split("/") if part]
        )[-1]
        assert node.version is not None
        return node.id, node.version.id

    @property
    def org_id(self) -> int:
        return self.server.instance.accounts.get("martin").org_id

    @property
    def root_id(self) -> int:
        return self.server.instance.accounts.get("martin").root_id

    def identifier(self, path: str) -> str:
        """``SYSTEM|node.version.tag`` of the file's current version, as the EHR is told it."""
        return identifier_of(self.server.instance.tree.get(self.version_of(path)[0]))

    def settle(self, timeout: float = 20) -> dict[str, int]:
        """Wait until no job is pending or running."""
        return self.server.wait_for_jobs(timeout=timeout)

    def send_jobs(self, state: str | None = None) -> list[JobInfo]:
        """The jobs that send documents: the bridge's event deliveries, and ``ehr_bridge.send`` jobs."""
        jobs = self.server.instance.jobs
        events = [job for job in jobs.list(state=state, kind=EVENT_JOB, limit=500) if job.key.startswith(EVENT_KEY)]
        return events + jobs.list(state=state, kind=SEND, limit=500)

    def status(self) -> dict[str, Any]:
        from plugins.ehr_bridge import bridge_of

        return bridge_of(self.server.instance.plugins.facades["ehr_bridge"]).status()["dpi"]


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "ehr-token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def ehr() -> Iterator[FakeFhirServer]:
    with FakeFhirServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def start_bridged(
    meddav_server_factory: Callable[..., MedDAVServer],
    ehr: FakeFhirServer,
    mailbox: Mailbox,  # noqa: F811 - the fixture imported above
    token_file: Path,
) -> Iterator[Callable[..., Bridged]]:
    """Start the world; ``jobs`` updates ``[jobs]``, ``feed`` the feed, other keywords ``[plugins.ehr_bridge]``."""
    clients: list[httpx.Client] = []

    def start(jobs: dict[str, Any] | None = None, feed: dict[str, Any] | None = None, **bridge: Any) -> Bridged:
        config: dict[str, Any] = {"plugins.ehr_bridge": bridge_settings(ehr.url, token_file, feed=feed, **bridge)}
        config |= smtp_settings(mailbox)
        config["web"] = {"admins_need_second_factor": False}  # the status page's tests sign olga in with a password
        if jobs:
            config["jobs"] = jobs
        server = meddav_server_factory(plugins=["ehr_bridge"], config=config)
        accounts = server.instance.accounts
        org = accounts.default_organisation()
        accounts.create_user("martin", TEST_PASSWORD, org_id=org)
        accounts.create_user("olga", TEST_PASSWORD, org_id=org, role=ROLE_ORG_ADMIN, email="olga@cabinet.test")
        dav = server.client(auth=("martin", TEST_PASSWORD))
        clients.append(dav)
        assert dav.request("MKCOL", "Patients/").status_code == 201
        clock = Clock()
        server.instance.jobs.clock = clock
        return Bridged(server, ehr, mailbox, dav, clock)

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def bridged(start_bridged: Callable[..., Bridged]) -> Bridged:
    return start_bridged()
