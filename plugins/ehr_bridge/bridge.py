"""The bridge's work: which documents go where, sending one, reconciling, and what the status page shows.

Everything goes through the plugin's facade (``plugin``): the folders and
files it reads are checked by the core's policy with the bridge's own
principal and audited; it never touches the database or the blob store.

- :meth:`Bridge.on_event`: a file written in a feed's folder is sent within
  the event's own delivery job (the core's outbox: durable, retried with
  back-off, dead-lettered); other events are ignored.
- :meth:`Bridge.send_version`: finds the patient, reads the version, sends
  it by conditional create (:meth:`Bridge.send` is the job
  ``ehr_bridge.send`` that reconciliations make).  Superseded versions,
  deleted files and files moved out of the feeds are skipped; a document without a patient
  identifier is listed on the status page (it is sent by the next
  reconciliation once the identifier is set).
- :meth:`Bridge.reconcile` (periodic jobs ``ehr_bridge.recent`` every 30
  minutes, ``ehr_bridge.nightly`` every night): asks the EHR which of the
  feeds' documents it holds (all of them at night, the recently modified
  ones otherwise) and sends again what it lacks.

What the status page shows lives in the plugin's sealed state: per EHR,
counts, the last success, the open configuration problems and the last
errors; per reconciliation, its last run.  Nothing there names a patient or
a file: node ids and statuses only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as defused

from plugins.ehr_bridge.client import CONFIG_KINDS, EhrClient, Failure
from plugins.ehr_bridge.config import Endpoint, Feed
from plugins.ehr_bridge.fhir import Document, DocumentBody, document_identifier, sha1_of
from plugins.ehr_bridge.texts import alert_texts
from server.errors import Conflict, NotFound, PolicyDenied
from server.events import Event, FileWritten
from server.jobs import JobContext, JobFailed
from server.plugins import NodeInfo, PluginFacade

__all__ = ["NIGHTLY", "RECENT", "SEND", "Bridge"]

logger = logging.getLogger(__name__)

NAME = "ehr_bridge"
SEND, RECENT, NIGHTLY = f"{NAME}.send", f"{NAME}.recent", f"{NAME}.nightly"
#: How often the recent changes are reconciled, and how far back (a margin over the interval).
RECENT_EVERY, RECENT_WINDOW = 30 * 60, 2 * 60 * 60
#: When the full reconciliation runs (UTC: 02:00 in Paris in winter, 03:00 in summer).
NIGHTLY_AT = "01:00"
#: How many identifiers one search asks for.
SEARCH_BATCH = 50
#: At most one e-mail per kind of configuration problem and EHR in this many seconds.
ALERT_EVERY = 3600
_ERRORS_KEPT, _SKIPPED_KEPT = 20, 50
_FOLDER_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Located:
    """Where a file sits: its feed, and the patient's folder (None: directly in the feed's folder)."""

    feed: Feed
    patient_folder: NodeInfo | None
    file: NodeInfo


class Bridge:
    """One instance's bridge: its endpoints and their clients, bound to the plugin's facade."""

    def __init__(self, plugin: PluginFacade) -> None:
        self.plugin = plugin
        self.endpoints: dict[str, Endpoint] = plugin.config["ehr"]
        self.clients = {name: EhrClient(endpoint) for name, endpoint in self.endpoints.items()}
        self._folders: dict[tuple[str, int], tuple[float, NodeInfo]] = {}
        self._folders_lock = threading.Lock()

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    @property
    def feeds(self) -> list[Feed]:
        return [feed for endpoint in self.endpoints.values() for feed in endpoint.feeds]

    # -- where documents are --------------------------------------------------------------------------

    def feed_folder(self, feed: Feed) -> NodeInfo | None:
        """The feed's folder (looked up again after a minute: it may be renamed or created later)."""
        key = (feed.ehr, feed.index)
        now = time.monotonic()
        with self._folders_lock:
            cached = self._folders.get(key)
        if cached is not None and now - cached[0] < _FOLDER_CACHE_SECONDS:
            return cached[1]
        try:
            folder = self.plugin.resolve(feed.username, feed.path)
        except (NotFound, PolicyDenied):
            folder = None
        if folder is None or not folder.is_dir:
            return None  # not remembered: the folder may be created at any time
        with self._folders_lock:
            self._folders[key] = (now, folder)
        return folder

    def locate(self, chain: list[NodeInfo]) -> Located | None:
        """The feed a file (the last of ``chain``, its path from the top) is in, or None."""
        ids = [node.id for node in chain]
        for feed in self.feeds:
            folder = self.feed_folder(feed)
            if folder is None or folder.id not in ids[:-1]:
                continue
            depth = ids.index(folder.id)
            patient = chain[depth + 1] if depth + 2 < len(chain) else None
            return Located(feed, patient, chain[-1])
        return None

    def patient_id(self, feed: Feed, folder: NodeInfo) -> str | None:
        """The patient's identifier: a property of their folder, or a part of its name."""
        if feed.patient_from == "property":
            raw = self.plugin.properties(folder.id).get(feed.patient_property)
            text = _property_text(raw) if raw is not None else ""
        else:
            match = feed.patient_pattern.search(folder.name)
            text = match.group("id") if match else ""
        text = text.strip()
        return text if text and len(text) <= 64 and text.isprintable() and "|" not in text else None

    def why_not(self, located: Located, patient: str | None) -> str | None:
        """Why a located file is not to be sent ("outside", "no-patient", "too-large"), or None."""
        if located.patient_folder is None:
            return "outside"
        if patient is None:
            return "no-patient"
        if located.file.size > self.plugin.config["max_size_mib"] * 1024 * 1024:
            return "too-large"
        return None

    # -- events ---------------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """A file written in a feed: its version is sent, within the event's own delivery job (durable and
        retried like any job: a failure raises, and the delivery is tried again)."""
        if not isinstance(event, FileWritten):
            return
        principal = self.plugin.principal
        if principal is None or event.org_id not in principal.org_ids:
            return  # an organisation the bridge is not granted (the core does not even deliver those)
        self.send_version(event.node_id, event.version_id, hold_seconds=self.plugin.lease_seconds)

    # -- sending one document -------------------------------------------------------------------------

    def send(self, ctx: JobContext) -> None:
        """The job ``ehr_bridge.send`` (made by the reconciliations): one version of one file."""
        node_id, version_id = int(ctx.payload["node_id"]), int(ctx.payload["version_id"])
        self.send_version(node_id, version_id, hold_seconds=max(ctx.remaining(), 1.0))

    def send_version(self, node_id: int, version_id: int, *, hold_seconds: float) -> None:
        """Send one version of one file to its feed's EHR, exactly once; raise ``JobFailed`` to be retried.

        ``hold_seconds``: how long the document stays locked to this sender if it dies (its job's lease)."""
        try:
            chain = self.plugin.path(node_id)
        except NotFound:
            return  # deleted since: nothing to send
        except PolicyDenied as denied:
            raise JobFailed(f"the bridge may not read node {node_id}: check [plugins.ehr_bridge] organisations") from (
                denied
            )
        located = self.locate(chain)
        if located is None:
            return  # not in a feed, or moved out of the feeds since
        feed, file = located.feed, located.file
        if file.is_dir or file.version_id != version_id or file.version_tag is None:
            return  # superseded: the newer version has its own event
        patient = self.patient_id(feed, located.patient_folder) if located.patient_folder else None
        reason = self.why_not(located, patient)
        if reason is not None or patient is None:
            self._skipped(feed, node_id, reason or "no-patient")
            return
        identifier = document_identifier(node_id, version_id, file.version_tag)
        # One sender per document at a time: the EHR's conditional create is only as safe as its own
        # locking, and a send job and a reconciliation's may otherwise overlap.  Held as long as this job's
        # lease: a worker that dies holding it is replaced when its job may be claimed again, not later.
        with self.plugin.exclusive(f"send:{identifier}", hold_seconds) as held:
            if not held:
                raise JobFailed(f"{feed.ehr}: node {node_id} is being sent by another worker; retried later")
            try:
                with self.plugin.open_file(node_id, version_id=version_id) as reader:
                    sha1, size = sha1_of(reader)
                    document = Document(
                        identifier_system=self.plugin.config["identifier_system"],
                        identifier=identifier,
                        patient_system=feed.patient_system,
                        patient_id=patient,
                        title=file.name,
                        modified=file.mtime,
                        size=size,
                        sha1=sha1,
                    )
                    status = self.clients[feed.ehr].create(
                        DocumentBody(document, reader), document.identifier_system, document.identifier
                    )
            except Conflict:
                return  # written again while we were at it: the newer version has its own job
            except Failure as failure:
                self.failed(feed, failure, node_id=node_id)
                raise JobFailed(f"{feed.ehr}: {failure.message}") from None
        self._sent(feed, created=status == 201)

    # -- reconciliation -------------------------------------------------------------------------------

    def reconcile(self, ctx: JobContext, *, full: bool) -> None:
        """The periodic jobs: send again what the EHR lacks (everything at night, recent changes otherwise).

        Only documents that can be sent are asked about: those without a patient identifier, outside a
        patient folder or too large are listed on the status page instead of making a job each run."""
        since = None if full else self.plugin.now() - RECENT_WINDOW
        name = "nightly" if full else "recent"
        scanned = missing = 0
        problems: list[str] = []
        system = self.plugin.config["identifier_system"]
        for endpoint in self.endpoints.values():
            client = self.clients[endpoint.name]
            try:
                for feed in endpoint.feeds:
                    batch: list[NodeInfo] = []
                    for node in self._documents(feed, since):
                        scanned += 1
                        batch.append(node)
                        if len(batch) == SEARCH_BATCH:
                            missing += self._resend_missing(client, system, batch, ctx.key, feed)
                            batch = []
                    missing += self._resend_missing(client, system, batch, ctx.key, feed)
            except Failure as failure:  # this EHR is unreachable or refuses: the others are still reconciled
                problems.append(f"{endpoint.name}: {failure.message}")
        record = {"at": self.plugin.now(), "scanned": scanned, "resent": missing, "problems": problems}
        self.plugin.state_set(f"sync:{name}", record)
        logger.info("ehr_bridge %s reconciliation: %d documents, %d sent again", name, scanned, missing)
        if problems:
            raise JobFailed("; ".join(problems))

    def _documents(self, feed: Feed, since: float | None) -> Iterator[NodeInfo]:
        """The files of a feed that can be sent (modified since ``since``), walked through the facade;
        the others are recorded as not sent."""
        folder = self.feed_folder(feed)
        if folder is None:
            return
        for child in self.plugin.children(folder.id):
            if not child.is_dir:
                if since is None or child.mtime >= since:
                    self._skipped(feed, child.id, "outside")
                continue
            patient = self.patient_id(feed, child)
            stack = [child]
            while stack:
                for node in self.plugin.children(stack.pop().id):
                    if node.is_dir:
                        stack.append(node)
                        continue
                    if node.version_tag is None or (since is not None and node.mtime < since):
                        continue
                    reason = self.why_not(Located(feed, child, node), patient)
                    if reason is None:
                        yield node
                    else:
                        self._skipped(feed, node.id, reason)

    def _resend_missing(self, client: EhrClient, system: str, batch: list[NodeInfo], run: str, feed: Feed) -> int:
        if not batch:
            return 0
        wanted = {document_identifier(node.id, node.version_id or 0, node.version_tag or ""): node for node in batch}
        try:
            present = client.present(system, sorted(wanted))
        except Failure as failure:
            self.failed(feed, failure)
            raise
        lacking = [node for value, node in wanted.items() if value not in present]
        for node in lacking:
            key = f"{document_identifier(node.id, node.version_id or 0, node.version_tag or '')}@{run}"
            self.plugin.enqueue(SEND, key, {"node_id": node.id, "version_id": node.version_id})
        return len(lacking)

    # -- what the status page shows -------------------------------------------------------------------

    def _edit_status(self, ehr: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``edit`` to an EHR's status record (every field present), in one write transaction."""

        def change(value: Any) -> dict[str, Any]:
            status = _status(value)
            edit(status)
            return status

        # Counters and the last problems, shown to people: a power cut may cost their last second.
        self.plugin.state_update(f"status:{ehr}", change, {}, durable=False)

    def _sent(self, feed: Feed, *, created: bool) -> None:
        now = self.plugin.now()

        def edit(status: dict[str, Any]) -> None:
            status["sent" if created else "already"] += 1
            status["last_sent_at"] = now
            status["problems"] = {}  # the EHR took a document: whatever was wrong is fixed

        self._edit_status(feed.ehr, edit)

    def _skipped(self, feed: Feed, node_id: int, reason: str) -> None:
        entry = {"at": self.plugin.now(), "node_id": node_id, "reason": reason, "feed": feed.label}

        def edit(status: dict[str, Any]) -> None:
            others = [s for s in status["skipped"] if s["node_id"] != node_id]
            status["skipped"] = [entry, *others][:_SKIPPED_KEPT]

        self._edit_status(feed.ehr, edit)
        logger.warning("ehr_bridge: node %d not sent (%s, %s)", node_id, reason, feed.label)

    def failed(self, feed: Feed, failure: Failure, *, node_id: int | None = None) -> None:
        """Record a failure; a configuration problem also e-mails the admins (at most once an hour per kind)."""
        now = self.plugin.now()
        entry = {"at": now, "kind": failure.kind, "status": failure.status, "message": failure.message}
        entry |= {"feed": feed.label, "node_id": node_id}

        def edit(status: dict[str, Any]) -> None:
            status["errors"] = [entry, *status["errors"]][:_ERRORS_KEPT]
            status["failures"] += 1
            if failure.kind in CONFIG_KINDS:
                status["problems"][failure.kind] = {"at": now, "message": failure.message, "status": failure.status}

        self._edit_status(feed.ehr, edit)
        logger.warning("ehr_bridge: %s (%s, %s)", failure.message, failure.kind, feed.label)
        if failure.kind in CONFIG_KINDS:
            self._alert(feed, failure, now)

    def _alert(self, feed: Feed, failure: Failure, now: float) -> None:
        """E-mail ``alert_to``, or else the feed's organisation's admins (in their language), at most once an
        hour per EHR and kind of problem; an hour is used up only when someone was there to be told."""
        recipients: list[tuple[str, str]] = [(address, "fr") for address in self.plugin.config["alert_to"]]
        if not recipients:
            try:
                owner = self.plugin.user(feed.username)
                admins = self.plugin.organisation_admins(owner.org_id)
            except (NotFound, PolicyDenied):
                admins = []
            recipients = [(admin.email, admin.locale) for admin in admins if admin.email]
        if not recipients:
            logger.error("ehr_bridge: nobody to tell of %s: set alert_to or give the organisation an admin with an "
                         "e-mail address", failure.kind)  # fmt: skip
            return
        if not self.plugin.once_per(f"alert:{feed.ehr}:{failure.kind}", ALERT_EVERY):
            return
        status_url = f"{self.plugin.base_url}/plugins/{NAME}/"
        for address, locale in recipients:
            texts = alert_texts(failure.kind, feed.ehr, failure.status, locale)
            context: dict[str, Any] = {"plugin_name": texts.plugin_name, "problem": texts.problem}
            context |= {"advice": texts.advice, "noticed_at": now, "status_url": status_url}
            self.plugin.notify(address, "plugin_alert", context, locale=locale)

    def status(self) -> dict[str, dict[str, Any]]:
        """What the status page shows of each EHR (the reconciliations' runs are under ``sync:<name>``)."""
        return {name: _status(self.plugin.state_get(f"status:{name}", {})) for name in self.endpoints}


def _status(value: Any) -> dict[str, Any]:
    """A status record with every field present (older or empty records included)."""
    status = dict(value) if isinstance(value, dict) else {}
    for name, empty in (("sent", 0), ("already", 0), ("failures", 0), ("last_sent_at", None)):
        status.setdefault(name, empty)
    for name in ("errors", "skipped"):
        status.setdefault(name, [])
    status.setdefault("problems", {})
    return status


def _property_text(raw: bytes) -> str:
    """A dead property's text: wsgidav stores the XML element; keep its text content."""
    try:
        element = defused.fromstring(raw)
    except (defused.ParseError, DefusedXmlException):
        return ""
    return "".join(element.itertext())
