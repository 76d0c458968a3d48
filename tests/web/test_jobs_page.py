"""The background jobs page (``/ui/admin/jobs``) through httpx against a live server.

Dead jobs are made through the instance's own :class:`~server.jobs.JobQueue`
(enqueued with ``max_attempts=1``, claimed, failed), of kinds no worker of
the server has a handler for, so a retried job stays pending where the test
can see it.  The default organisation has the instance admin, olga (org
admin) and alice (member).
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from babel.dates import format_datetime, get_timezone

from server.jobs import DEAD, PENDING, JobQueue, schedule_builtins
from server.policy import ROLE_ORG_ADMIN
from server.testing import TEST_PASSWORD, LiveServer, TestInstance
from tests.web.conftest import LENIENT_THROTTLE, Web, csrf_of

PAGE = "/ui/admin/jobs"
#: What the payloads hold: never on the page.
PATIENT = "Dupont-Jeanne-IRM-cerebrale"
EHR, MAIL = "ehr.push", "mail.notify"


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


@dataclass
class Jobs:
    server: LiveServer
    admin: str
    org: int
    web_client: Callable[..., Web]
    ehr: int  # a dead ehr.push job
    mail: int  # a dead mail.notify job
    pending: int  # a pending ehr.push job

    @property
    def queue(self) -> JobQueue:
        return self.server.instance.jobs

    def web(self, name: str, *, lang: str = "fr") -> Web:
        client = self.web_client(self.server, headers={"Accept-Language": lang})
        assert client.login(name, TEST_PASSWORD).status_code == 303
        return client

    def state(self, job_id: int) -> str:
        job = self.queue.get(job_id)
        assert job is not None
        return job.state

    def audit(self, web: Web) -> list[tuple[str, str, str, str, str]]:
        """The ``admin.job*`` rows of the organisation's audit log (its CSV export, in chain order)."""
        assert self.server.instance.flush_audit()
        export = web.get(f"/ui/admin/{self.org}/audit.csv", params={"action": "admin.job"})
        assert export.status_code == 200
        return [
            (row["action"], row["outcome"], row["principal"], row["target_id"], row["detail"])
            for row in csv.DictReader(io.StringIO(export.text))
        ]


def dead_job(queue: JobQueue, kind: str, key: str, error: str) -> int:
    job_id = queue.enqueue(None, kind, key, {"patient": PATIENT, "note": "confidentiel"}, max_attempts=1)
    claimed = queue.claim("test-worker", kinds=[kind])
    assert claimed is not None and claimed.id == job_id
    assert queue.fail(claimed, "test-worker", error)
    return job_id


@pytest.fixture
def jobs(
    make_test_instance: Callable[..., TestInstance],
    start_server: Callable[[TestInstance], LiveServer],
    web_client: Callable[..., Web],
) -> Jobs:
    inst = make_test_instance({"web": {"admins_need_second_factor": False}, **LENIENT_THROTTLE})
    server = start_server(inst)
    accounts = server.instance.accounts
    org = accounts.default_organisation()
    accounts.create_user("olga", TEST_PASSWORD, org_id=org, role=ROLE_ORG_ADMIN)
    accounts.create_user("alice", TEST_PASSWORD, org_id=org)
    queue = server.instance.jobs
    schedule_builtins(queue)
    queue.schedule("test.tick", "test.tick", every_seconds=5400)
    ehr = dead_job(queue, EHR, "message:41", "EHR answered 503")
    mail = dead_job(queue, MAIL, "notification:7", "SMTP refused: 550 mailbox unavailable")
    pending = queue.enqueue(None, EHR, "message:42", {"patient": PATIENT}, run_after=4_000_000_000.0)
    assert queue.get(ehr) is not None and queue.counts()[DEAD] == 2
    return Jobs(server, inst.user, org, web_client, ehr, mail, pending)


def retry_token(web: Web) -> str:
    return csrf_of(web.get("/ui").text)


# -- what the page shows -----------------------------------------------------------------------------


def test_an_instance_admin_sees_the_dead_jobs_but_never_their_payload(jobs: Jobs) -> None:
    web = jobs.web(jobs.admin, lang="en")
    assert 'id="nav-jobs"' in web.get(f"/ui/admin/{jobs.org}").text
    page = web.get(PAGE)
    assert page.status_code == 200
    text = text_of(page)
    assert "Background jobs" in text and "Dead jobs" in text and "Periodic jobs" in text
    assert re.search(r'id="count-dead">2<', text) and re.search(r'id="count-pending">1<', text)
    for expected in (EHR, MAIL, "message:41", "notification:7", "EHR answered 503", "SMTP refused: 550", "1/1"):
        assert expected in text, expected
    assert f'id="retry-{jobs.ehr}"' in text and f'id="retry-{jobs.mail}"' in text and 'id="retry-all"' in text
    assert f'id="retry-{jobs.pending}"' not in text and "message:42" not in text  # dead jobs only
    # The most recently dead first.
    assert re.findall(r'<tr id="job-(\d+)"', text) == [str(jobs.mail), str(jobs.ehr)]
    # When it died, in Paris time, as the audit page writes it.
    died = jobs.queue.get(jobs.mail)
    assert died is not None
    moment = dt.datetime.fromtimestamp(died.updated_at, dt.UTC)
    assert format_datetime(moment, "medium", tzinfo=get_timezone("Europe/Paris"), locale="en") in text
    # The periodic jobs, with their schedules.
    for expected in ("audit.prune", "jobs.purge", "Every day at 03:30 UTC", "test.tick", "Every 90 minutes"):
        assert expected in text, expected
    for fragment in (PATIENT, "Dupont", "confidentiel", "payload"):
        assert fragment not in text, fragment


def test_the_dead_jobs_can_be_filtered_by_kind(jobs: Jobs) -> None:
    web = jobs.web(jobs.admin, lang="en")
    text = text_of(web.get(PAGE, params={"kind": MAIL}))
    assert re.findall(r'<tr id="job-(\d+)"', text) == [str(jobs.mail)]
    assert "Retry every dead job of this kind" in text
    assert 'id="no-dead"' in web.get(PAGE, params={"kind": "nothing.here"}).text


# -- who may -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["olga", "alice"])
def test_an_org_admin_and_a_member_get_403_and_are_audited(jobs: Jobs, name: str) -> None:
    web = jobs.web(name)
    assert 'id="nav-jobs"' not in web.get("/ui").text
    if name == "olga":
        assert 'id="nav-jobs"' not in web.get(f"/ui/admin/{jobs.org}").text
    refused = web.get(PAGE)
    assert refused.status_code == 403 and "Accès refusé" in text_of(refused)
    assert EHR not in refused.text and "EHR answered" not in refused.text
    token = retry_token(web)
    assert web.post(f"{PAGE}/{jobs.ehr}/retry", data={"csrf_token": token}).status_code == 403
    assert web.post(f"{PAGE}/retry-dead", data={"csrf_token": token}).status_code == 403
    assert jobs.state(jobs.ehr) == DEAD and jobs.state(jobs.mail) == DEAD
    assert jobs.audit(jobs.web(jobs.admin)) == [
        ("admin.jobs.view", "denied", name, "", ""),
        ("admin.job.retry", "denied", name, str(jobs.ehr), ""),
        ("admin.job.retry_dead", "denied", name, "", ""),
    ]


# -- retrying --------------------------------------------------------------------------------------------


def test_retrying_one_dead_job_makes_it_pending_and_is_audited(jobs: Jobs) -> None:
    web = jobs.web(jobs.admin, lang="en")
    token = csrf_of(web.get(PAGE).text)
    answer = web.post(f"{PAGE}/{jobs.ehr}/retry", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"].startswith(PAGE)
    job = jobs.queue.get(jobs.ehr)
    assert job is not None and job.state == PENDING and job.attempts == 0
    assert jobs.state(jobs.mail) == DEAD
    after = text_of(web.get(answer.headers["location"]))
    assert f"Job {jobs.ehr} will run again." in after
    assert re.findall(r'<tr id="job-(\d+)"', after) == [str(jobs.mail)]

    # A job that is not dead (any more): said so, nothing changes.
    again = web.post(f"{PAGE}/{jobs.ehr}/retry", data={"csrf_token": token})
    assert again.status_code == 409
    assert f"Job {jobs.ehr} is not dead (it is waiting)" in text_of(again)
    pending = web.post(f"{PAGE}/{jobs.pending}/retry", data={"csrf_token": token})
    assert pending.status_code == 409
    absent = web.post(f"{PAGE}/999999/retry", data={"csrf_token": token})
    assert absent.status_code == 404 and "There is no job 999999" in text_of(absent)
    assert web.post(f"{PAGE}/{2**63}/retry", data={"csrf_token": token}).status_code == 404
    still = jobs.queue.get(jobs.pending)
    assert still is not None and still.state == PENDING and still.run_after == 4_000_000_000.0
    assert jobs.state(jobs.ehr) == PENDING and jobs.state(jobs.mail) == DEAD

    rows = jobs.audit(web)
    assert rows == [
        ("admin.job.retry", "ok", jobs.admin, str(jobs.ehr), ""),
        ("admin.job.retry", "failed", jobs.admin, str(jobs.ehr), PENDING),
        ("admin.job.retry", "failed", jobs.admin, str(jobs.pending), PENDING),
        ("admin.job.retry", "failed", jobs.admin, "999999", ""),
    ]


def test_retry_all_dead_jobs_of_a_kind_then_all(jobs: Jobs) -> None:
    third = dead_job(jobs.queue, EHR, "message:43", "EHR answered 502")
    web = jobs.web(jobs.admin, lang="en")
    token = csrf_of(web.get(PAGE).text)
    by_kind = web.post(f"{PAGE}/retry-dead", data={"csrf_token": token, "kind": EHR})
    assert by_kind.status_code == 303
    assert [jobs.state(j) for j in (jobs.ehr, third, jobs.mail)] == [PENDING, PENDING, DEAD]
    assert "2 dead jobs will run again." in text_of(web.get(by_kind.headers["location"]))

    everything = web.post(f"{PAGE}/retry-dead", data={"csrf_token": token})
    assert everything.status_code == 303
    assert jobs.state(jobs.mail) == PENDING and jobs.queue.counts()[DEAD] == 0
    after = text_of(web.get(everything.headers["location"]))
    assert "One dead job will run again." in after and 'id="no-dead"' in after
    nothing = web.post(f"{PAGE}/retry-dead", data={"csrf_token": token})
    assert "There was no dead job to retry." in text_of(web.get(nothing.headers["location"]))

    assert jobs.audit(web) == [
        ("admin.job.retry_dead", "ok", jobs.admin, "", f"count=2 kind={EHR}"),
        ("admin.job.retry_dead", "ok", jobs.admin, "", "count=1"),
        ("admin.job.retry_dead", "ok", jobs.admin, "", "count=0"),
    ]


def test_every_post_needs_a_csrf_token(jobs: Jobs) -> None:
    web = jobs.web(jobs.admin)
    foreign = retry_token(jobs.web("olga"))
    for action in (f"{PAGE}/{jobs.ehr}/retry", f"{PAGE}/retry-dead"):
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": foreign}):
            assert web.post(action, data=data).status_code == 400, (action, data)
    assert jobs.queue.counts()[DEAD] == 2
    assert jobs.audit(web) == []


# -- languages ------------------------------------------------------------------------------------------


def test_the_page_speaks_french(jobs: Jobs) -> None:
    web = jobs.web(jobs.admin, lang="fr")
    text = text_of(web.get(PAGE))
    assert 'lang="fr"' in text
    for expected in (
        "Tâches d'arrière-plan",
        "Tâches abandonnées",
        "Réessayer",
        "Réessayer toutes les tâches abandonnées",
        "Tâches périodiques",
        "Chaque jour à 03:30 UTC",
        "Intervalle : 90 minutes",
    ):
        assert expected in text, expected
    died = jobs.queue.get(jobs.ehr)
    assert died is not None
    moment = dt.datetime.fromtimestamp(died.updated_at, dt.UTC)
    assert format_datetime(moment, "medium", tzinfo=get_timezone("Europe/Paris"), locale="fr") in text
    answer = web.post(f"{PAGE}/{jobs.ehr}/retry", data={"csrf_token": csrf_of(text)})
    assert f"La tâche {jobs.ehr} sera exécutée à nouveau." in text_of(web.get(answer.headers["location"]))
    refused = web.post(f"{PAGE}/{jobs.ehr}/retry", data={"csrf_token": csrf_of(text)})
    assert refused.status_code == 409 and "n'est pas abandonnée" in text_of(refused)
