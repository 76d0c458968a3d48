"""When the EHR fails: transient errors are retried until the document arrives, configuration errors
e-mail the organisation's admins (at most once an hour per kind) and show on the status page, and a job
that exhausts its attempts waits in the dead letters until ``meddav jobs retry``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from server.jobs import DEAD, JobInfo
from tests.ehr_bridge.conftest import Bridged, wait_until
from tests.helpers import self_signed

#: Retries 30 to 90 s apart (jitter) on the injected clock: nothing is retried unless the test moves the clock.
SLOW_RETRIES = {"max_attempts": 8, "backoff_seconds": 60, "max_backoff_seconds": 60}


def send_jobs(bridged: Bridged, state: str | None = None) -> list[JobInfo]:
    return bridged.send_jobs(state)


def attempted(bridged: Bridged, count: int) -> bool:
    """Whether every send job has had at least ``count`` attempts (and none is running)."""
    jobs = send_jobs(bridged)
    return bool(jobs) and all(job.attempts >= count and job.state != "running" for job in jobs)


@pytest.mark.parametrize("mode", ["error500", "down"])
def test_a_transient_failure_is_retried_until_the_document_arrives(
    start_bridged: Callable[..., Bridged], mode: str
) -> None:
    bridged = start_bridged(jobs=SLOW_RETRIES)
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.ehr.mode = mode  # type: ignore[assignment]
    bridged.put("Patients/Dupont Jeanne/CR.txt", b"compte rendu")
    assert wait_until(lambda: attempted(bridged, 1))
    bridged.advance(91)
    assert wait_until(lambda: attempted(bridged, 2))
    assert bridged.ehr.documents == []

    bridged.ehr.mode = "ok"
    bridged.advance(91)
    assert bridged.settle()["dead"] == 0
    assert bridged.ehr.count_by_identifier()[bridged.identifier("Patients/Dupont Jeanne/CR.txt")] == 1
    status = bridged.status()
    assert status["problems"] == {} and status["failures"] == 2 and status["sent"] == 1
    assert {error["kind"] for error in status["errors"]} == {"transient"}
    assert bridged.mail.messages == []  # nobody is woken for what fixes itself


def test_a_lost_answer_is_retried_without_a_duplicate(start_bridged: Callable[..., Bridged]) -> None:
    bridged = start_bridged(jobs=SLOW_RETRIES)  # the EHR stores it, then answers after the bridge gave up
    bridged.ehr.slow_seconds = 5
    bridged.ehr.mode = "slow"
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.put("Patients/Dupont Jeanne/CR.txt", b"compte rendu")
    assert wait_until(lambda: attempted(bridged, 1), timeout=30)
    bridged.ehr.mode = "ok"
    bridged.advance(91)
    assert bridged.settle()["dead"] == 0
    assert bridged.ehr.count_by_identifier()[bridged.identifier("Patients/Dupont Jeanne/CR.txt")] == 1
    assert len(bridged.ehr.documents) == 1 and bridged.status()["already"] == 1


def test_refused_credentials_mail_the_admin_once_an_hour_and_show_on_the_status(
    start_bridged: Callable[..., Bridged],
) -> None:
    bridged = start_bridged(jobs=SLOW_RETRIES)
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.ehr.mode = "unauthorized"
    bridged.put("Patients/Dupont Jeanne/a.txt", b"a")
    bridged.put("Patients/Dupont Jeanne/b.txt", b"b")
    assert wait_until(lambda: attempted(bridged, 1) and len(send_jobs(bridged)) == 2)
    assert wait_until(lambda: len(bridged.mail.messages) >= 1)
    bridged.advance(91)  # both retried, still refused: still one mail
    assert wait_until(lambda: attempted(bridged, 2))
    [alert] = bridged.mail.messages
    assert alert["To"] == "olga@cabinet.test"
    assert alert["Subject"] == "MedDAV : passerelle vers le dossier patient (DPI) a besoin de votre intervention"
    body = alert.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "refuse les identifiants de MedDAV (HTTP 401)" in body and "token_file" in body
    assert "/plugins/ehr_bridge/" in body
    for secret in ("Dupont", "1850712345678", "a.txt", "ehr-secret-token"):
        assert secret not in alert.as_string(), secret
    status = bridged.status()
    assert set(status["problems"]) == {"auth"} and status["problems"]["auth"]["status"] == 401

    bridged.advance(3600)  # an hour later, still refused: one more mail
    assert wait_until(lambda: len(bridged.mail.messages) == 2)

    bridged.ehr.mode = "ok"  # the token is renewed on the EHR's side
    bridged.advance(91)
    assert bridged.settle()["dead"] == 0
    assert len(bridged.ehr.documents) == 2
    assert bridged.status()["problems"] == {}  # a success clears what was wrong
    assert len(bridged.mail.messages) == 2


def test_an_exhausted_job_is_dead_lettered_then_delivered_by_meddav_jobs_retry(
    start_bridged: Callable[..., Bridged],
) -> None:
    bridged = start_bridged(jobs={"max_attempts": 2, "backoff_seconds": 1, "max_backoff_seconds": 1})
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.ehr.mode = "down"
    bridged.put("Patients/Dupont Jeanne/CR.txt", b"compte rendu")
    assert wait_until(lambda: [job.state for job in send_jobs(bridged)] == [DEAD])
    listed = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(bridged.server.config_path), "jobs", "list", "--dead"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "plugins.event" in listed.stdout and "dpi: the EHR refused the connection" in listed.stdout
    assert "Dupont" not in listed.stdout
    assert bridged.ehr.documents == []

    bridged.ehr.mode = "ok"
    retried = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(bridged.server.config_path), "jobs", "retry", "--all-dead"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert retried.returncode == 0, retried.stderr
    bridged.server.instance.jobs.notify()
    assert bridged.settle()["dead"] == 0
    assert bridged.ehr.count_by_identifier()[bridged.identifier("Patients/Dupont Jeanne/CR.txt")] == 1


def test_an_unknown_host_is_a_configuration_error(start_bridged: Callable[..., Bridged], token_file: Path) -> None:
    bridged = start_bridged(
        jobs=SLOW_RETRIES,
        ehr={
            "dpi": {
                "url": "https://ehr.invalid/fhir",
                "token_file": str(token_file),
                "timeout_seconds": 3,
                "feeds": [{"folder": "martin/Patients"}],
            }
        },
    )
    bridged.patient("Dupont Jeanne", "1850712345678")
    bridged.put("Patients/Dupont Jeanne/CR.txt", b"compte rendu")
    assert wait_until(lambda: attempted(bridged, 1))
    assert set(bridged.status()["problems"]) == {"host"}
    assert wait_until(lambda: len(bridged.mail.messages) == 1)
    assert "introuvable" in bridged.mail.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_tls_untrusted_certificate_then_client_certificates(
    start_bridged: Callable[..., Bridged], token_file: Path, tmp_path: Path
) -> None:
    from tests.fhir_server import FakeFhirServer

    (tmp_path / "server").mkdir()
    (tmp_path / "client").mkdir()
    server_cert, server_key = self_signed(tmp_path / "server")
    client_cert, client_key = self_signed(tmp_path / "client")
    with FakeFhirServer(tls=(server_cert, server_key), client_ca=client_cert) as ehr:
        untrusted = {"url": ehr.url, "token_file": str(token_file), "feeds": [{"folder": "martin/Patients"}]}
        bridged = start_bridged(jobs=SLOW_RETRIES, ehr={"dpi": untrusted})
        bridged.patient("Dupont Jeanne", "1850712345678")
        bridged.put("Patients/Dupont Jeanne/CR.txt", b"compte rendu")
        assert wait_until(lambda: attempted(bridged, 1))
        assert set(bridged.status()["problems"]) == {"tls"}
        assert ehr.documents == []

        trusted = {
            "url": ehr.url,
            "ca_file": str(server_cert),
            "client_cert": str(client_cert),
            "client_key": str(client_key),
            "feeds": [{"folder": "martin/Patients"}],
        }
        other = start_bridged(ehr={"dpi": trusted})
        other.patient("Dupont Jeanne", "1850712345678")
        other.put("Patients/Dupont Jeanne/CR.txt", b"compte rendu")
        assert other.settle()["dead"] == 0
        assert len(ehr.documents) == 1
