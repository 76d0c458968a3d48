"""The periodic reconciliations send again what the EHR lacks, and the status page tells the admins."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from plugins.ehr_bridge.bridge import NIGHTLY, RECENT
from server.config import load_settings
from server.instance import open_instance
from server.policy import ROLE_ORG_ADMIN
from server.pytest_plugin import TEST_JOBS
from server.testing import TEST_PASSWORD, LiveServer, make_instance
from tests.ehr_bridge.conftest import ORGANISATION, Bridged, bridge_settings, wait_until
from tests.fhir_server import FakeFhirServer
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


def test_each_organisations_admin_sees_only_its_own_feeds(
    ehr: FakeFhirServer, token_file: Path, tmp_path: Path
) -> None:
    """One EHR fed by two organisations: an admin of one sees neither the other's folders nor its documents."""
    feeds = [{"folder": f"{user}/Patients", "patient_from": "name"} for user in ("martin", "bruno")]
    table = bridge_settings(ehr.url, token_file, organisations=[ORGANISATION, "Clinique B"])
    table["ehr"]["dpi"]["feeds"] = feeds
    made = make_instance(
        tmp_path / "data",
        settings={
            "plugins": {"enabled": ["ehr_bridge"], "ehr_bridge": table},
            "jobs": dict(TEST_JOBS),
            "web": {"admins_need_second_factor": False},
        },
    )
    setup = open_instance(load_settings(made.config_path))
    try:
        accounts = setup.accounts
        default, other = accounts.default_organisation(), accounts.create_organisation("Clinique B")
        accounts.create_user("martin", TEST_PASSWORD, org_id=default)
        accounts.create_user("olga", TEST_PASSWORD, org_id=default, role=ROLE_ORG_ADMIN)
        accounts.create_user("bruno", TEST_PASSWORD, org_id=other)
        accounts.create_user("berthe", TEST_PASSWORD, org_id=other, role=ROLE_ORG_ADMIN)
    finally:
        setup.close()
    ehr.mode = "unauthorized"
    with LiveServer(made.config_path, plugins=True) as server:
        nodes = {}
        for user in ("martin", "bruno"):
            with httpx.Client(base_url=server.dav_url, auth=(user, TEST_PASSWORD), timeout=30) as dav:
                for folder in ("Patients/", f"Patients/Patient {user} [1{len(user)}]/"):
                    assert dav.request("MKCOL", folder).status_code == 201
                assert dav.put(f"Patients/Patient {user} [1{len(user)}]/doc.txt", content=b"x").status_code == 201
                assert dav.put("Patients/loose.txt", content=b"y").status_code == 201
            root = server.instance.accounts.get(user)
            [patients] = server.instance.tree.resolve_below(root.root_id, root.org_id, ["Patients"])
            nodes[user] = {entry.id for entry in server.instance.tree.children(patients)}
        assert wait_until(lambda: server.instance.jobs.counts()["pending"] == 0, timeout=30)

        def page(name: str) -> str:
            with Web(base_url=server.url, timeout=30) as web:
                assert web.login(name, TEST_PASSWORD).status_code == 303
                answer = web.get("/plugins/ehr_bridge/", params={"lang": "en"})
                assert answer.status_code == 200
                return html.unescape(answer.text)

        olga, berthe, admin = page("olga"), page("berthe"), page(made.user)
        assert "martin/Patients" in olga and "bruno/Patients" not in olga
        assert "bruno/Patients" in berthe and "martin/Patients" not in berthe
        assert "martin/Patients" in admin and "bruno/Patients" in admin
        for text, theirs in ((olga, "bruno"), (berthe, "martin")):
            assert all(f"<td>{node}</td>" not in text for node in nodes[theirs]), "another organisation's documents"
            assert 'id="jobs-waiting"' not in text  # the queue spans every organisation
            assert "credentials refused" in text  # the EHR's own problem concerns every feed
        assert 'id="jobs-waiting"' in admin
        for user in ("martin", "bruno"):  # what the others may not see is there to be seen
            assert any(f"<td>{node}</td>" in admin for node in nodes[user])
