"""The fake FHIR server the EHR bridge tests talk to: it must behave like a real one, faults included."""

from __future__ import annotations

import base64
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference

from tests.fhir_server import FHIR_JSON, FakeFhirServer
from tests.helpers import self_signed

SYSTEM = "urn:oid:1.2.250.1.999.1"
PATIENTS = "urn:oid:1.2.250.1.213.1.4.8"
CONTENT_TYPE = {"Content-Type": FHIR_JSON}


def document(value: str, data: bytes = b"%PDF-1.7 compte rendu", status: str = "current") -> dict[str, Any]:
    """An R4B DocumentReference as the EHR bridge sends it."""
    return {
        "resourceType": "DocumentReference",
        "identifier": [{"system": SYSTEM, "value": value}],
        "status": status,
        "subject": {"identifier": {"system": PATIENTS, "value": "1840575123456"}},
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(data).decode(),
                    "title": f"{value}.pdf",
                }
            }
        ],
    }


def post(client: httpx.Client, body: dict[str, Any], *, condition: str | None = None) -> httpx.Response:
    headers = dict(CONTENT_TYPE)
    if condition is not None:
        headers["If-None-Exist"] = condition
    return client.post("/DocumentReference", content=json.dumps(body).encode(), headers=headers)


def identifier_condition(value: str) -> str:
    return str(httpx.QueryParams({"identifier": f"{SYSTEM}|{value}"}))


@pytest.fixture
def ehr() -> Iterator[FakeFhirServer]:
    with FakeFhirServer() as server:
        yield server


@pytest.fixture
def client(ehr: FakeFhirServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ehr.url, timeout=5) as c:
        yield c


def test_conditional_create_twice_stores_one_resource(ehr: FakeFhirServer, client: httpx.Client) -> None:
    body = document("doc-1", b"intact \x00\xff bytes")
    first = post(client, body, condition=identifier_condition("doc-1"))
    assert first.status_code == 201, first.text
    created = DocumentReference.model_validate_json(first.content)
    assert created.id
    assert first.headers["Location"] == f"{ehr.url}/DocumentReference/{created.id}/_history/1"
    assert first.headers["Content-Type"].startswith(FHIR_JSON)

    second = post(client, body, condition=identifier_condition("doc-1"))
    assert second.status_code == 200, second.text
    assert second.json()["id"] == created.id
    assert ehr.count_by_identifier() == {f"{SYSTEM}|doc-1": 1}
    assert len(ehr.documents) == 1
    assert ehr.attachment_bytes(f"{SYSTEM}|doc-1") == b"intact \x00\xff bytes"
    assert [r[2] for r in ehr.requests] == [201, 200]


def test_create_without_condition_creates_each_time(ehr: FakeFhirServer, client: httpx.Client) -> None:
    assert post(client, document("doc-1")).status_code == 201
    assert post(client, document("doc-1")).status_code == 201
    assert ehr.count_by_identifier()[f"{SYSTEM}|doc-1"] == 2
    # Conditional create now meets two resources: a real server refuses.
    assert post(client, document("doc-1"), condition=identifier_condition("doc-1")).status_code == 412


def test_search_by_identifier_single_and_or(ehr: FakeFhirServer, client: httpx.Client) -> None:
    for value in ("a", "b", "c"):
        assert post(client, document(value)).status_code == 201

    one = client.get("/DocumentReference", params={"identifier": f"{SYSTEM}|b"})
    assert one.status_code == 200
    bundle = Bundle.model_validate_json(one.content)
    assert bundle.type == "searchset" and bundle.total == 1
    assert bundle.entry is not None and bundle.entry[0].resource is not None
    assert bundle.entry[0].resource.model_dump()["identifier"][0]["value"] == "b"

    either = client.get("/DocumentReference", params={"identifier": f"{SYSTEM}|a,{SYSTEM}|c,{SYSTEM}|zz"})
    found = either.json()
    assert found["total"] == 2
    assert sorted(e["resource"]["identifier"][0]["value"] for e in found["entry"]) == ["a", "c"]

    assert client.get("/DocumentReference", params={"identifier": "urn:other|a"}).json()["total"] == 0
    assert client.get("/DocumentReference", params={"identifier": "a"}).json()["total"] == 1  # any system
    assert client.get("/DocumentReference", params={"unknown": "x"}).status_code == 400


def test_read_version_read_and_metadata(ehr: FakeFhirServer, client: httpx.Client) -> None:
    created = post(client, document("doc-1"))
    resource_id = created.json()["id"]
    assert client.get(f"/DocumentReference/{resource_id}").json()["id"] == resource_id
    assert client.get(created.headers["Location"]).status_code == 200
    missing = client.get("/DocumentReference/nope")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    metadata = client.get("/metadata")
    assert metadata.status_code == 200
    assert CapabilityStatement.model_validate_json(metadata.content).fhirVersion == "4.3.0"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps({k: v for k, v in document("x").items() if k != "content"}).encode(),
        json.dumps({**document("x"), "resourceType": "Patient"}).encode(),
        json.dumps({**document("x"), "unexpected": 1}).encode(),
    ],
    ids=["not-json", "no-content", "wrong-type", "unknown-field"],
)
def test_invalid_body_is_400(ehr: FakeFhirServer, client: httpx.Client, body: bytes) -> None:
    answer = client.post("/DocumentReference", content=body, headers=CONTENT_TYPE)
    assert answer.status_code == 400
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert ehr.documents == []


def test_status_outside_the_value_set_is_400(ehr: FakeFhirServer, client: httpx.Client) -> None:
    answer = post(client, document("x", status="nonsense"))
    assert answer.status_code == 400
    assert "status" in answer.json()["issue"][0]["diagnostics"]
    assert post(client, document("x", status="superseded")).status_code == 201


def test_wrong_content_type_is_415(ehr: FakeFhirServer, client: httpx.Client) -> None:
    answer = client.post(
        "/DocumentReference", content=json.dumps(document("x")), headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 415


def test_bearer_token_is_required_when_set() -> None:
    with FakeFhirServer(token="s3cret") as ehr, httpx.Client(base_url=ehr.url, timeout=5) as client:
        refused = post(client, document("x"))
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.json()["resourceType"] == "OperationOutcome"
        client.headers["Authorization"] = "Bearer wrong"
        assert client.get("/metadata").status_code == 401
        client.headers["Authorization"] = "Bearer s3cret"
        assert client.get("/metadata").status_code == 200
        assert post(client, document("x")).status_code == 201
        assert len(ehr.documents) == 1


def test_mode_down_refuses_connections_then_comes_back_on_the_same_port(
    ehr: FakeFhirServer, client: httpx.Client
) -> None:
    url = ehr.url
    assert post(client, document("before")).status_code == 201  # leaves a keep-alive connection in the pool
    ehr.mode = "down"
    with pytest.raises(httpx.ConnectError):
        post(client, document("during"))
    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=url, timeout=5) as fresh:
        fresh.get("/metadata")
    ehr.mode = "ok"
    assert ehr.url == url
    assert post(client, document("after")).status_code == 201
    assert set(ehr.count_by_identifier()) == {f"{SYSTEM}|before", f"{SYSTEM}|after"}


def test_mode_error500_and_unauthorized(ehr: FakeFhirServer, client: httpx.Client) -> None:
    ehr.mode = "error500"
    assert post(client, document("x")).status_code == 500
    assert client.get("/metadata").status_code == 500
    ehr.mode = "unauthorized"
    assert post(client, document("x")).status_code == 401
    ehr.mode = "ok"
    assert ehr.documents == []
    assert post(client, document("x")).status_code == 201


def test_fail_next_fails_only_the_next_posts(ehr: FakeFhirServer, client: httpx.Client) -> None:
    ehr.fail_next(2, status=503)
    assert post(client, document("x")).status_code == 503
    assert client.get("/metadata").status_code == 200  # GETs do not use up a failure
    assert post(client, document("x")).status_code == 503
    assert post(client, document("x")).status_code == 201
    assert [status for _, _, status in ehr.requests] == [503, 200, 503, 201]
    assert len(ehr.documents) == 1


def test_slow_mode_times_the_client_out_after_the_write(ehr: FakeFhirServer, client: httpx.Client) -> None:
    ehr.slow_seconds = 3
    ehr.mode = "slow"
    with httpx.Client(base_url=ehr.url, timeout=httpx.Timeout(5, read=0.3)) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            post(impatient, document("x"), condition=identifier_condition("x"))
        with pytest.raises(httpx.ReadTimeout):
            impatient.get("/metadata")
    # The write happened, only the answer was lost: a conditional retry finds it.
    assert ehr.count_by_identifier()[f"{SYSTEM}|x"] == 1
    ehr.mode = "ok"
    assert post(client, document("x"), condition=identifier_condition("x")).status_code == 200
    assert ehr.count_by_identifier()[f"{SYSTEM}|x"] == 1


def test_large_body_arrives_intact_and_is_counted(ehr: FakeFhirServer, client: httpx.Client) -> None:
    data = os.urandom(12 * 1024 * 1024)
    body = json.dumps(document("big", data)).encode()
    assert client.post("/DocumentReference", content=body, headers=CONTENT_TYPE).status_code == 201
    assert ehr.received_bodies_bytes == len(body)
    assert ehr.attachment_bytes(f"{SYSTEM}|big") == data


def test_chunked_body_is_read(ehr: FakeFhirServer, client: httpx.Client) -> None:
    body = json.dumps(document("chunked", b"x" * 100_000)).encode()
    pieces = iter([body[:1000], body[1000:50_000], body[50_000:]])
    answer = client.post("/DocumentReference", content=pieces, headers=CONTENT_TYPE)
    assert answer.status_code == 201
    assert ehr.attachment_bytes(f"{SYSTEM}|chunked") == b"x" * 100_000


def test_tls_with_required_client_certificate(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "client").mkdir()
    server_cert, server_key = self_signed(tmp_path / "server")
    client_cert, client_key = self_signed(tmp_path / "client")
    with FakeFhirServer(tls=(server_cert, server_key), client_ca=client_cert) as ehr:
        assert ehr.url.startswith("https://127.0.0.1:")
        anonymous = ssl.create_default_context(cafile=str(server_cert))
        with pytest.raises(httpx.TransportError), httpx.Client(base_url=ehr.url, verify=anonymous, timeout=5) as c:
            c.get("/metadata")
        assert ehr.requests == []

        identified = ssl.create_default_context(cafile=str(server_cert))
        identified.load_cert_chain(str(client_cert), str(client_key))
        with httpx.Client(base_url=ehr.url, verify=identified, timeout=5) as c:
            assert post(c, document("tls")).status_code == 201
            assert c.get("/metadata").status_code == 200
        assert ehr.count_by_identifier() == {f"{SYSTEM}|tls": 1}
