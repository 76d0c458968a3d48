"""The EHR bridge's parts that need no server: its configuration, the streamed FHIR body, failure kinds."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.documentreference import DocumentReference

from plugins.ehr_bridge.client import status_failure
from plugins.ehr_bridge.config import DEFAULT_PATIENT_SYSTEM, Endpoint, options
from plugins.ehr_bridge.fhir import Document, DocumentBody, identifier_query, sha1_of
from server.errors import ConfigError
from server.testing import make_instance

PIECE = 48 * 1024


def document(content: bytes, title: str = "CR.pdf") -> Document:
    sha1, size = sha1_of(io.BytesIO(content))
    return Document("urn:meddav:test", "12.34", DEFAULT_PATIENT_SYSTEM, "1850712345678", title, 1.7e9, size, sha1)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 2])
def test_the_streamed_body_is_exactly_its_announced_length_and_valid_r4b(size: int) -> None:
    content = bytes(range(256)) * (size // 256) + bytes(size % 256)
    body = DocumentBody(document(content), io.BytesIO(content))
    sent = b"".join(body)
    assert len(sent) == body.length
    assert sent == b"".join(body)  # a second iteration (a retried request) starts again from the first byte
    resource = json.loads(sent)
    assert base64.b64decode(resource["content"][0]["attachment"]["data"], validate=True) == content
    parsed = DocumentReference.model_validate(resource)
    assert parsed.status == "current" and parsed.content[0].attachment.size == size
    assert base64.b64decode(resource["content"][0]["attachment"]["hash"]) == hashlib.sha1(content).digest()


def test_the_body_is_sent_in_pieces_never_whole() -> None:
    content = b"x" * (10 * PIECE)
    pieces = list(DocumentBody(document(content), io.BytesIO(content)))
    assert len(pieces) == 12 and max(len(piece) for piece in pieces) == 4 * PIECE // 3


def test_a_file_that_changed_size_is_never_sent_with_a_false_length() -> None:
    body = DocumentBody(document(b"abcdef"), io.BytesIO(b"abc"))
    with pytest.raises(OSError, match="3 bytes, 6 expected"):
        b"".join(body)


def test_titles_with_quotes_and_placeholders_stay_json() -> None:
    content = b"data"
    body = DocumentBody(document(content, title='compte "rendu" \\ é.txt'), io.BytesIO(content))
    resource = json.loads(b"".join(body))
    assert resource["content"][0]["attachment"]["title"] == 'compte "rendu" \\ é.txt'
    assert resource["content"][0]["attachment"]["contentType"] == "text/plain"


def test_identifier_query_is_url_encoded_token_search() -> None:
    assert (
        identifier_query("urn:meddav:doc", ["1.2", "3.4"])
        == "identifier=urn%3Ameddav%3Adoc%7C1.2%2Curn%3Ameddav%3Adoc%7C3.4"
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, "auth"), (403, "auth"), (400, "rejected"), (404, "rejected"), (412, "rejected"), (422, "rejected"),
     (408, "transient"), (429, "transient"), (500, "transient"), (502, "transient"), (503, "transient")],
)  # fmt: skip
def test_statuses_are_transient_or_need_a_person(status: int, kind: str) -> None:
    failure = status_failure(status, "store the document")
    assert failure.kind == kind and f"HTTP {status}" in failure.message


# -- configuration -------------------------------------------------------------------------------------------


def validate_ehr(value: Any) -> dict[str, Endpoint]:
    [option] = [o for o in options() if o.name == "ehr"]
    result: dict[str, Endpoint] = option.validate(value)
    return result


@pytest.fixture
def token(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text("secret\n")
    return str(path)


def test_a_valid_table(token: str) -> None:
    endpoints = validate_ehr(
        {"dpi": {"url": "https://dpi.example.org/fhir/", "token_file": token,
                 "feeds": [{"folder": "dr.martin/Patients/Suivi", "patient_from": "name"}]}}
    )  # fmt: skip
    dpi = endpoints["dpi"]
    assert dpi.url == "https://dpi.example.org/fhir" and dpi.token() == "secret"
    [feed] = dpi.feeds
    assert (feed.username, feed.path, feed.patient_from, feed.label) == (
        "dr.martin",
        "Patients/Suivi",
        "name",
        "dpi #1",
    )
    assert feed.patient_pattern.search("Dupont Jeanne [123]").group("id") == "123"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "no EHR"),
        ({"dpi": {"token_file": "TOKEN", "feeds": [{"folder": "a/b"}]}}, "ehr.dpi.url"),
        ({"dpi": {"url": "http://ehr.example.org/fhir", "token_file": "TOKEN", "feeds": [{"folder": "a/b"}]}},
         "use https"),
        ({"dpi": {"url": "https://u:p@ehr.example.org", "token_file": "TOKEN", "feeds": [{"folder": "a/b"}]}},
         "no credentials"),
        ({"dpi": {"url": "https://ehr.example.org", "feeds": [{"folder": "a/b"}]}}, "give token_file"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "relative/token", "feeds": [{"folder": "a/b"}]}},
         "absolute path"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "/nonexistent/token", "feeds": [{"folder": "a/b"}]}},
         "no such file"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN", "client_cert": "TOKEN",
                  "feeds": [{"folder": "a/b"}]}}, "both client_cert and client_key"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN"}}, "no feed"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN", "feeds": [{"folder": "/"}]}},
         "a user name then a path"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN",
                  "feeds": [{"folder": "a/b", "patient_from": "guess"}]}}, "patient_from"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN",
                  "feeds": [{"folder": "a/b", "patient_pattern": "(unclosed"}]}}, "not a regular expression"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN",
                  "feeds": [{"folder": "a/b", "patient_pattern": "[0-9]+"}]}}, "a group named id"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN",
                  "feeds": [{"folder": "a/b", "patient_property": "patient-id"}]}}, "{namespace}name"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN", "feeds": [{"folder": "a/b", "typo": 1}]}},
         "unknown key typo"),
        ({"dpi": {"url": "https://ehr.example.org", "token_file": "TOKEN", "timeout_seconds": 0,
                  "feeds": [{"folder": "a/b"}]}}, "timeout_seconds"),
        ({"DPI!": {"url": "https://ehr.example.org", "token_file": "TOKEN", "feeds": [{"folder": "a/b"}]}},
         "lowercase letters"),
    ],
)  # fmt: skip
def test_each_mistake_is_named_with_its_fix(token: str, table: dict[str, Any], message: str) -> None:
    text = json.dumps(table).replace('"TOKEN"', json.dumps(token))
    with pytest.raises(ValueError) as raised:
        validate_ehr(json.loads(text))
    assert message in str(raised.value)


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="the file is empty"):
        validate_ehr({"dpi": {"url": "https://e.example.org", "token_file": str(empty), "feeds": [{"folder": "a/b"}]}})


def test_the_server_refuses_to_start_with_a_bridge_that_names_no_ehr(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        make_instance(tmp_path / "data", settings={"plugins": {"enabled": ["ehr_bridge"]}})
    assert "[plugins.ehr_bridge] ehr: missing; no EHR: add a table [plugins.ehr_bridge.ehr.<name>]" in str(raised.value)


def test_other_options_are_checked(tmp_path: Path) -> None:
    by_name = {option.name: option for option in options()}
    with pytest.raises(ValueError, match="without spaces"):
        by_name["identifier_system"].validate("urn:meddav:a|b")
    with pytest.raises(ValueError, match="from 1 to 1024"):
        by_name["max_size_mib"].validate(0)
    with pytest.raises(ValueError, match="e-mail addresses"):
        by_name["alert_to"].validate(["not an address"])
    assert by_name["alert_to"].validate(["it@cabinet.test"]) == ["it@cabinet.test"]


def test_the_commented_example_configuration_is_valid(tmp_path: Path) -> None:
    import tomllib

    example = Path(__file__).parents[2] / "conf" / "ehr_bridge.example.toml"
    table = tomllib.loads(example.read_text(encoding="utf-8"))["plugins"]["ehr_bridge"]
    token = tmp_path / "dpi-token"
    token.write_text("secret")
    table["ehr"]["dpi"]["token_file"] = str(token)  # the example's path, /etc/meddav/..., is the operator's
    by_name = {option.name: option for option in options()}
    assert set(table) - set(by_name) == {"organisations", "access"}  # the core's grant, read by the core
    values = {name: by_name[name].validate(value) for name, value in table.items() if name in by_name}
    [feed] = values["ehr"]["dpi"].feeds
    assert feed.patient_property == "{urn:meddav:ehr}patient-id"


@pytest.mark.parametrize(
    ("url", "under"),
    [
        ("https://ehr.example.org/fhir/DocumentReference?page=2", True),
        ("https://EHR.example.org:443/fhir/DocumentReference?page=2", True),
        ("https://ehr.example.org/fhir", True),
        ("https://ehr.example.org/fhirish/x", False),
        ("https://ehr.example.org/other/x", False),
        ("http://ehr.example.org/fhir/x", False),
        ("https://ehr.example.org:8443/fhir/x", False),
        ("https://attacker.example/fhir/x", False),
        ("https://ehr.example.org:notaport/fhir", False),
    ],
)
def test_next_links_are_followed_only_under_the_base_url(url: str, under: bool) -> None:
    from plugins.ehr_bridge.client import _under

    assert _under(url, "https://ehr.example.org/fhir") is under


def test_overlapping_feeds_are_refused(token: str) -> None:
    feeds = [{"folder": "dr.martin/Patients"}, {"folder": "dr.martin/Patients/Cardio"}]
    with pytest.raises(ValueError, match="overlap"):
        validate_ehr({"dpi": {"url": "https://e.example.org", "token_file": token, "feeds": feeds}})
    with pytest.raises(ValueError, match="overlap"):
        validate_ehr(
            {
                "a": {"url": "https://a.example.org", "token_file": token, "feeds": [{"folder": "dr.martin"}]},
                "b": {"url": "https://b.example.org", "token_file": token, "feeds": [{"folder": "dr.martin/X"}]},
            }
        )
    apart = [{"folder": "dr.martin/Patients"}, {"folder": "dr.martin/Patients2"}, {"folder": "dr.durand/Patients"}]
    assert (
        len(validate_ehr({"dpi": {"url": "https://e.example.org", "token_file": token, "feeds": apart}})["dpi"].feeds)
        == 3
    )


def test_unusable_tls_files_are_a_configuration_error(token: str, tmp_path: Path) -> None:
    from tests.helpers import self_signed

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _ = self_signed(tmp_path / "a")
    _, other_key = self_signed(tmp_path / "b")
    table = {"url": "https://e.example.org", "client_cert": str(cert), "client_key": str(other_key)}
    with pytest.raises(ValueError, match="client_cert matches client_key"):
        validate_ehr({"dpi": table | {"feeds": [{"folder": "a/b"}]}})
    with pytest.raises(ValueError, match="TLS files cannot be used"):
        validate_ehr({"dpi": {"url": "https://e.example.org", "token_file": token, "ca_file": token,
                              "feeds": [{"folder": "a/b"}]}})  # fmt: skip
