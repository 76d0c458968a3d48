"""The periodic reconciliations send again what the EHR lacks, and the status page tells the admins."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator

import pytest

from plugins.ehr_bridge.bridge import NIGHTLY, RECENT
from server.testing import TEST_PASSWORD
from tests.ehr_bridge.conftest import Bridged
from tests.web.conftest import Web


def run_periodic(bridged: Bridged, kind: str, key: str) -> None:
    """One run of a periodic job now, as the scheduler would enqueue it."""
    bridged.server.instance.jobs.enqueue(None, kind, key, {"name": kind, "scheduled": 0})
    bridged.settle()


def test_the_plugin_declares_its_schedules(bridged: Bridged) -> None:
    schedules = {job.name: job for job in bridged.server.instance.jobs.periodic()}
    assert schedules[RECENT].interval_seconds == 1800
    assert schedules[NIGHTLY].daily_at == "01:00"


def test_the_nightly_run_sends_again_what_the_ehr_lost(bridged: Bridged) -> None:
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.patient("Martin Paul", "2750512345678")
    paths = ["Patients/Dupont Jeanne/a.txt", "Patients/Dupont Jeanne/sous-dossier/b.txt", "Patients/Martin Paul/c.txt"]
    assert bridged.dav.request("MKCOL", "Patients/Dupont Jeanne/sous-dossier/").status_code == 201
    for path in paths:
        bridged.put(path, path.encode())
    bridged.settle()
    assert len(bridged.ehr.documents) == 3

    bridged.ehr.reset()  # the EHR restored an old backup: it lost them
    bridged.put("Patients/Martin Paul/c.txt", b"c, version 2")  # and one changed meanwhile
    bridged.settle()
    run_periodic(bridged, NIGHTLY, "nightly@1")

    counts = bridged.ehr.count_by_identifier()
    assert sorted(counts) == sorted(bridged.identifier(path) for path in paths)
    assert set(counts.values()) == {1}
    record = bridged.server.instance.plugins.facades["ehr_bridge"].state_get("sync:nightly")
    assert record["scanned"] == 3 and record["resent"] == 2 and record["problems"] == []

    run_periodic(bridged, NIGHTLY, "nightly@2")  # nothing lacks any more: nothing is sent
    assert len(bridged.ehr.documents) == 3
    assert bridged.server.instance.plugins.facades["ehr_bridge"].state_get("sync:nightly")["resent"] == 0


def test_the_recent_run_looks_at_recent_changes_only(bridged: Bridged) -> None:
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.put("Patients/Dupont Jeanne/a.txt", b"a")
    bridged.settle()
    bridged.ehr.reset()
    run_periodic(bridged, RECENT, "recent@1")
    assert len(bridged.ehr.documents) == 1

    bridged.ehr.reset()
    bridged.advance(3 * 3600)  # three hours later, the file is not recent any more
    run_periodic(bridged, RECENT, "recent@2")
    assert bridged.ehr.documents == []
    assert bridged.server.instance.plugins.facades["ehr_bridge"].state_get("sync:recent")["scanned"] == 0


def test_a_reconciliation_with_the_ehr_down_is_retried_and_recorded(bridged: Bridged) -> None:
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.put("Patients/Dupont Jeanne/a.txt", b"a")
    bridged.settle()
    bridged.ehr.mode = "error500"
    bridged.server.instance.jobs.enqueue(None, NIGHTLY, "nightly@3", {"name": NIGHTLY, "scheduled": 0})
    assert bridged.server.instance.jobs.list(kind=NIGHTLY)  # it runs and fails: retried later
    counts = bridged.settle(timeout=30)
    assert counts["dead"] == 1  # three quick attempts in tests, then the dead letters
    record = bridged.server.instance.plugins.facades["ehr_bridge"].state_get("sync:nightly")
    assert record["problems"] == ["dpi: the EHR could not search documents for now (HTTP 500)"]


@pytest.fixture
def web(bridged: Bridged) -> Iterator[Callable[..., Web]]:
    """Web clients of the bridged server, signed in as ``name`` (None: anonymous), closed after the test."""
    clients: list[Web] = []

    def make(name: str | None, lang: str = "fr") -> Web:
        client = Web(base_url=bridged.server.url, timeout=30, headers={"Accept-Language": lang})
        clients.append(client)
        if name is not None:
            assert client.login(name, TEST_PASSWORD).status_code == 303
        return client

    yield make
    for client in clients:
        client.close()


def test_the_status_page_shows_the_admins_what_happens(bridged: Bridged, web: Callable[..., Web]) -> None:
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.put("Patients/Dupont Jeanne/a.txt", b"a")
    bridged.put("Patients/hors dossier.txt", b"b")
    bridged.settle()
    bridged.ehr.mode = "unauthorized"
    bridged.put("Patients/Dupont Jeanne/c.txt", b"c")
    assert bridged.server.wait_for_jobs(timeout=20)["dead"] in (0, 1)

    page = web("olga").get("/plugins/ehr_bridge/")
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert "Passerelle DPI : état de la synchronisation" in text
    assert "martin/Patients" in text and bridged.ehr.url.split("//")[1].split("/")[0] in text
    assert '<dd class="sent">1</dd>' in text
    assert "identifiants refusés" in text and "HTTP 401" in text
    outside = bridged.version_of("Patients/hors dossier.txt")[0]
    assert f"<td>{outside}</td>" in text and "rangez-le dans le dossier d'un patient" in text
    assert 'id="sync-recent"' in text and 'id="sync-nightly"' in text
    for secret in ("Dupont", "1850712345678", "hors dossier", "c.txt", "ehr-secret-token"):
        assert secret not in text, secret

    english = html.unescape(web("olga", "en").get("/plugins/ehr_bridge/", params={"lang": "en"}).text)
    assert "EHR bridge: synchronisation status" in english and "credentials refused" in english

    assert web("martin").get("/plugins/ehr_bridge/").status_code == 403
    anonymous = web(None).get("/plugins/ehr_bridge/")
    assert anonymous.status_code in (302, 303) and "/ui/login" in anonymous.headers["location"]
