"""SIGKILL with EHR sends in flight: after a restart every document reaches the EHR exactly once.

``meddav serve`` runs in a child process with the EHR bridge.  The FHIR server
stands for a slow EHR: it stores each document, then takes seconds to answer,
so that the kill catches sends whose document the EHR already holds but whose
answer MedDAV never saw, sends not yet started, and events not yet delivered.
After the restart the workers claim the lost jobs again once their leases
expire; conditional create (``If-None-Exist``) makes the repeated sends no-ops.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from server.config import load_settings
from server.instance import open_instance
from server.testing import ServerProcess, make_instance
from tests.ehr_bridge.conftest import PATIENT_PROPERTY, TOKEN, bridge_settings, identifier_of, proppatch_body
from tests.fhir_server import FakeFhirServer

pytestmark = pytest.mark.slow

DOCUMENTS = 12


def identifiers(config: Path) -> set[str]:
    """The EHR identifiers of the documents MedDAV holds in Patients/ (read from the database on disk)."""
    instance = open_instance(load_settings(config))
    try:
        admin = instance.accounts.get("admin")
        [patients] = instance.tree.resolve_below(admin.root_id, admin.org_id, ["Patients"])
        [folder] = [entry for entry in instance.tree.children(patients) if entry.is_dir]
        return {identifier_of(entry) for entry in instance.tree.children(folder) if entry.version is not None}
    finally:
        instance.close()


def test_a_crash_with_sends_in_flight_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with FakeFhirServer(token=TOKEN) as ehr:
        ehr.slow_seconds = 2
        ehr.mode = "slow"
        table = bridge_settings(ehr.url, token_file, feed={"folder": "admin/Patients"})
        table["ehr"]["dpi"]["timeout_seconds"] = 30
        made = make_instance(
            tmp_path / "data",
            settings={
                "plugins": {"enabled": ["ehr_bridge"], "ehr_bridge": table},
                "jobs": {"workers": 2, "lease_seconds": 5, "max_attempts": 10, "backoff_seconds": 1,
                         "max_backoff_seconds": 2},
            },
        )  # fmt: skip
        auth = (made.user, made.password)
        server = ServerProcess(made.config_path)
        try:
            with httpx.Client(base_url=server.dav_url, auth=auth, timeout=30) as dav:
                assert dav.request("MKCOL", "Patients/").status_code == 201
                assert dav.request("MKCOL", "Patients/Dupont Jeanne/").status_code == 201
                patched = dav.request("PROPPATCH", "Patients/Dupont Jeanne/", content=proppatch_body("1850712345678"))
                assert patched.status_code == 207 and PATIENT_PROPERTY.split("}")[1] in patched.text
                for n in range(DOCUMENTS):
                    assert dav.put(f"Patients/Dupont Jeanne/doc-{n}.txt", content=f"document {n}".encode()).is_success
            deadline = time.monotonic() + 30
            while len(ehr.documents) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(ehr.documents) >= 2, "no send started"
        finally:
            server.kill()
        stored_at_kill = len(ehr.documents)
        assert stored_at_kill < DOCUMENTS, "every send finished before the kill: the test proves nothing"

        ehr.mode = "ok"
        restarted = ServerProcess(made.config_path)
        try:
            expected = identifiers(made.config_path)
            assert len(expected) == DOCUMENTS
            deadline = time.monotonic() + 90
            while set(ehr.count_by_identifier()) != expected and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(7)  # past a lease: a job claimed again would have sent a duplicate by now
        finally:
            restarted.stop()
        counts = ehr.count_by_identifier()
        assert set(counts) == expected, f"lost: {expected - set(counts)}"
        assert all(count == 1 for count in counts.values()), counts
        assert len(ehr.documents) == DOCUMENTS
        posts = [request for request in ehr.requests if request[0] == "POST"]
        assert len(posts) > DOCUMENTS, "no send was repeated: the kill caught none in flight"
        instance = open_instance(load_settings(made.config_path))
        try:
            counts = instance.jobs.counts(kind_prefix="ehr_bridge.")
        finally:
            instance.close()
        assert counts["dead"] == 0 and counts["pending"] == 0, counts  # delivered, not given up
