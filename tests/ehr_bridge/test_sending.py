"""Documents written in a feed's folders reach the EHR as R4B DocumentReferences, once each."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from fhir.resources.R4B.documentreference import DocumentReference

from plugins.ehr_bridge.bridge import SEND
from tests.ehr_bridge.conftest import Bridged

INS = "urn:oid:1.2.250.1.213.1.4.8"


def test_a_document_reaches_the_ehr_with_its_content_and_patient(bridged: Bridged) -> None:
    bridged.patient("Dupont Jeanne", "1850712345678")
    content = b"%PDF-1.4 compte rendu " * 5000  # 110 kB: several base64 pieces
    bridged.put("Patients/Dupont Jeanne/CR IRM.pdf", content)

    assert bridged.settle()["dead"] == 0
    identifier = bridged.identifier("Patients/Dupont Jeanne/CR IRM.pdf")
    assert bridged.ehr.count_by_identifier()[identifier] == 1
    assert bridged.ehr.attachment_bytes(identifier) == content
    [stored] = bridged.ehr.documents
    document = DocumentReference.model_validate(stored)  # what the EHR holds is valid R4B
    assert document.status == "current"
    assert document.subject.identifier.system == INS and document.subject.identifier.value == "1850712345678"
    attachment = document.content[0].attachment
    assert attachment.contentType == "application/pdf" and attachment.title == "CR IRM.pdf"
    assert attachment.size == len(content)
    assert base64.b64decode(stored["content"][0]["attachment"]["hash"]) == hashlib.sha1(content).digest()
    status = bridged.status()
    assert status["sent"] == 1 and status["errors"] == [] and status["last_sent_at"] is not None


def test_each_version_is_one_document_and_a_repeated_send_creates_none(bridged: Bridged) -> None:
    bridged.patient("Martin Paul", "2750512345678")
    bridged.put("Patients/Martin Paul/ordonnance.txt", b"v1")
    first = bridged.identifier("Patients/Martin Paul/ordonnance.txt")
    bridged.settle()
    node_id, version_id = bridged.put("Patients/Martin Paul/ordonnance.txt", b"v2")
    second = bridged.identifier("Patients/Martin Paul/ordonnance.txt")
    bridged.settle()
    counts = bridged.ehr.count_by_identifier()
    assert first != second and counts[first] == 1 and counts[second] == 1
    assert len(bridged.ehr.documents) == 2

    # The same work again (a job delivered twice, a reconciliation's resend): the EHR keeps one document.
    facade = bridged.server.instance.plugins.facades["ehr_bridge"]
    facade.enqueue(SEND, f"{node_id}.{version_id}@again", {"node_id": node_id, "version_id": version_id})
    bridged.settle()
    assert bridged.ehr.count_by_identifier()[second] == 1
    assert len(bridged.ehr.documents) == 2
    assert bridged.status()["already"] == 1


def test_a_deleted_documents_successor_reaches_the_ehr_as_a_new_document(bridged: Bridged) -> None:
    """Delete the newest file and upload another at its path: SQLite used to give the second the first one's
    node and version ids (the highest + 1); since migration 0010 it never does.  The identifier's version tag
    keeps the two documents apart either way."""
    bridged.patient("Dupont Jeanne", "1850712345678")
    wrong = bridged.put("Patients/Dupont Jeanne/lettre.txt", b"the wrong letter")
    wrong_identifier = bridged.identifier("Patients/Dupont Jeanne/lettre.txt")
    bridged.settle()
    assert bridged.dav.delete("Patients/Dupont Jeanne/lettre.txt").status_code == 204
    right = bridged.put("Patients/Dupont Jeanne/lettre.txt", b"the right letter")
    right_identifier = bridged.identifier("Patients/Dupont Jeanne/lettre.txt")
    bridged.settle()

    assert right[0] != wrong[0] and right[1] != wrong[1]  # node and version ids are never given again
    assert right_identifier != wrong_identifier
    assert bridged.ehr.attachment_bytes(right_identifier) == b"the right letter"
    assert bridged.ehr.attachment_bytes(wrong_identifier) == b"the wrong letter"
    assert len(bridged.ehr.documents) == 2


def test_only_the_feeds_folders_are_sent(bridged: Bridged) -> None:
    assert bridged.dav.request("MKCOL", "Personnel/").status_code == 201
    bridged.put("Personnel/congés.txt", b"not for the EHR")
    bridged.put("Patients/sans dossier.txt", b"directly in the feed")
    bridged.patient("Sans Identifiant", None)
    bridged.put("Patients/Sans Identifiant/bilan.txt", b"no patient id")
    assert bridged.settle()["dead"] == 0

    assert bridged.ehr.documents == []
    outside = bridged.version_of("Patients/sans dossier.txt")[0]
    unnamed = bridged.version_of("Patients/Sans Identifiant/bilan.txt")[0]
    skipped = {(entry["node_id"], entry["reason"]) for entry in bridged.status()["skipped"]}
    assert skipped == {(outside, "outside"), (unnamed, "no-patient")}  # the other folder's file: not a word


def test_the_patient_can_come_from_the_folders_name(start_bridged: Callable[..., Bridged]) -> None:
    bridged = start_bridged(feed={"patient_from": "name"})  # default rule: "Name [identifier]"
    bridged.patient("Durand Léa [2990112345678]", None)
    bridged.patient("Durand Marc", None)
    bridged.put("Patients/Durand Léa [2990112345678]/echo.txt", b"echo")
    bridged.put("Patients/Durand Marc/echo.txt", b"no identifier in the name")
    bridged.settle()
    [stored] = bridged.ehr.documents
    assert stored["subject"]["identifier"]["value"] == "2990112345678"
    assert [entry["reason"] for entry in bridged.status()["skipped"]] == ["no-patient"]


def test_a_document_larger_than_the_limit_is_listed_not_sent(start_bridged: Callable[..., Bridged]) -> None:
    bridged = start_bridged(max_size_mib=1)
    bridged.patient("Grand Fichier", "1")
    bridged.put("Patients/Grand Fichier/scanner.bin", b"x" * (1024 * 1024 + 1))
    bridged.put("Patients/Grand Fichier/petit.txt", b"ok")
    bridged.settle()
    assert len(bridged.ehr.documents) == 1
    assert [entry["reason"] for entry in bridged.status()["skipped"]] == ["too-large"]
