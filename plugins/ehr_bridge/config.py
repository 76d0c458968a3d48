"""The bridge's configuration: the EHR endpoints, and the feeds that say which folders go where.

::

    [plugins.ehr_bridge]
    organisations = ["Cabinet Martin"]        # the core's grant: where the bridge may read
    identifier_system = "urn:meddav:cabinet-martin:document"

    [plugins.ehr_bridge.ehr.dpi]             # one table per EHR, named freely
    url = "https://dpi.example.org/fhir"      # the FHIR R4 base
    token_file = "/etc/meddav/dpi-token"      # bearer token (or client_cert + client_key)

    [[plugins.ehr_bridge.ehr.dpi.feeds]]      # one per folder that feeds this EHR
    folder = "dr.martin/Patients"             # a user's drive, then the path as the drive shows it
    patient_from = "property"                 # or "name"

Each value is checked at start; a problem names the key and the fix, as the
core's configuration does.  Paths to secrets are absolute: the bridge runs in
the server and in ``meddav worker``, which may not share a working directory.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from server.hooks import ConfigOption

__all__ = ["DEFAULT_PATIENT_SYSTEM", "DEFAULT_PATTERN", "DEFAULT_PROPERTY", "Endpoint", "Feed", "options"]

#: The dead property a practitioner sets on a patient's folder (WebDAV PROPPATCH) to name the patient.
DEFAULT_PROPERTY = "{urn:meddav:ehr}patient-id"
#: The naming rule by default: the identifier in brackets at the end of the folder's name, "Dupont Jeanne [123456]".
DEFAULT_PATTERN = r"\[(?P<id>[^\[\]]+)\]\s*$"
#: INS, the French national health identifier (NIR-based): the patient identifier system by default.
DEFAULT_PATIENT_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class Endpoint:
    """One EHR: its FHIR base and how MedDAV authenticates to it."""

    name: str
    url: str
    token_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_file: Path | None = None
    timeout_seconds: float = 30.0
    feeds: tuple[Feed, ...] = ()

    def token(self) -> str | None:
        """The bearer token, read from its file at each use (a renewed token needs no restart)."""
        if self.token_file is None:
            return None
        return self.token_file.read_text(encoding="utf-8").strip()

    def tls_context(self) -> ssl.SSLContext:
        """The TLS settings of the connections: the system's CAs or ``ca_file``, and the client certificate.

        Built at start too (by the validation), so that a certificate that does not match its key, an
        unreadable file or an encrypted key stops the start with the key named instead of failing later."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.client_cert is not None and self.client_key is not None:
            # An empty password: an encrypted key fails here instead of OpenSSL prompting on a terminal.
            context.load_cert_chain(str(self.client_cert), str(self.client_key), password=b"")
        return context


@dataclass(frozen=True)
class Feed:
    """A folder whose documents go to an EHR; each sub-folder is one patient."""

    ehr: str
    index: int
    username: str
    path: str
    patient_from: str  # "property" or "name"
    patient_property: str
    patient_pattern: re.Pattern[str]
    patient_system: str

    @property
    def label(self) -> str:
        """How the status page and the logs name the feed: its number, never its path (a path may name someone)."""
        return f"{self.ehr} #{self.index + 1}"


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} is a table ([{key}] with keys), not {type(value).__name__}")
    return value


def _absolute_file(value: Any, key: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: give the absolute path of a file")
    path = Path(value)
    if not path.is_absolute():
        raise ValueError(f"{key} = {value!r}: give an absolute path (the server and workers may run elsewhere)")
    if not path.is_file():
        raise ValueError(f"{key} = {value!r}: no such file; create it or fix the path")
    return path


def _endpoint(name: str, raw: Any) -> Endpoint:
    table = dict(_table(raw, f"ehr.{name}"))
    if not _NAME.fullmatch(name):
        raise ValueError(f"ehr.{name}: a name of lowercase letters, digits, - and _ (e.g. ehr.dpi)")
    url = table.pop("url", None)
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"ehr.{name}.url: the FHIR base, e.g. https://dpi.example.org/fhir")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"ehr.{name}.url: no credentials, query or fragment in the URL (use token_file)")
    files = {
        key: _absolute_file(table.pop(key), f"ehr.{name}.{key}")
        for key in ("token_file", "client_cert", "client_key", "ca_file")
        if key in table
    }
    if "token_file" in files and not files["token_file"].read_text(encoding="utf-8").strip():
        raise ValueError(f"ehr.{name}.token_file: the file is empty; write the EHR's access token in it")
    if ("client_cert" in files) != ("client_key" in files):
        raise ValueError(f"ehr.{name}: give both client_cert and client_key, or neither")
    if "token_file" not in files and "client_cert" not in files:
        raise ValueError(f"ehr.{name}: give token_file (bearer token) or client_cert and client_key")
    feeds = tuple(_feeds(name, table.pop("feeds", None)))
    timeout = table.pop("timeout_seconds", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 600:
        raise ValueError(f"ehr.{name}.timeout_seconds: a number of seconds from 1 to 600")
    if table:
        known = "url, token_file, client_cert, client_key, ca_file, timeout_seconds, feeds"
        raise ValueError(f"ehr.{name}: unknown key {', '.join(sorted(table))} (known: {known})")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"ehr.{name}.url: use https (plain http is accepted on loopback only)")
    endpoint = Endpoint(name, url.rstrip("/"), timeout_seconds=float(timeout), feeds=feeds, **files)
    try:
        endpoint.tls_context()
    except (ssl.SSLError, OSError) as error:
        why = getattr(error, "reason", None) or error.strerror or type(error).__name__
        raise ValueError(
            f"ehr.{name}: the TLS files cannot be used ({why}); "
            "check ca_file, and that client_cert matches client_key, which must not be encrypted"
        ) from None
    return endpoint


def _endpoints(value: Any) -> dict[str, Endpoint]:
    table = _table(value, "ehr")
    if not table:
        raise ValueError("no EHR: add a table [plugins.ehr_bridge.ehr.<name>] with its url")
    endpoints = {name: _endpoint(name, raw) for name, raw in table.items()}
    _refuse_overlaps([feed for endpoint in endpoints.values() for feed in endpoint.feeds])
    return endpoints


def _refuse_overlaps(feeds: list[Feed]) -> None:
    """A folder feeds one EHR once: the same folder twice, or one inside another (whose folders would be
    taken for patients), is refused.  Folders are compared as written, per user (a group folder reached
    through two users' drives cannot be told apart before the server runs: don't)."""
    for i, first in enumerate(feeds):
        for second in feeds[i + 1 :]:
            if first.username != second.username:
                continue
            a, b = first.path.split("/") if first.path else [], second.path.split("/") if second.path else []
            if a[: len(b)] == b or b[: len(a)] == a:
                raise ValueError(
                    f"the feeds {first.label} and {second.label} overlap ({first.username}/{first.path} and "
                    f"{second.username}/{second.path}): a folder may feed one EHR, once"
                )


def _feed(ehr: str, index: int, raw: Any) -> Feed:
    key = f"ehr.{ehr}.feeds[{index + 1}]"
    table = dict(_table(raw, key))
    folder = table.pop("folder", None)
    if not isinstance(folder, str) or not folder.strip("/"):
        raise ValueError(f'{key}.folder: a user name then a path in their drive, e.g. "dr.martin/Patients"')
    username, _, path = folder.strip("/").partition("/")
    patient_from = table.pop("patient_from", "property")
    if patient_from not in ("property", "name"):
        raise ValueError(f'{key}.patient_from: "property" (a property of the patient\'s folder) or "name"')
    prop = table.pop("patient_property", DEFAULT_PROPERTY)
    if not isinstance(prop, str) or not re.fullmatch(r"\{[^{}]*\}[^{}\s]+", prop):
        raise ValueError(
            f"{key}.patient_property: a WebDAV property name as {{namespace}}name, e.g. {DEFAULT_PROPERTY}"
        )
    pattern_text = table.pop("patient_pattern", DEFAULT_PATTERN)
    try:
        pattern = re.compile(pattern_text) if isinstance(pattern_text, str) else None
    except re.error as error:
        raise ValueError(f"{key}.patient_pattern: not a regular expression ({error})") from None
    if pattern is None or "id" not in pattern.groupindex:
        raise ValueError(f"{key}.patient_pattern: a regular expression with a group named id, e.g. {DEFAULT_PATTERN}")
    system = table.pop("patient_system", DEFAULT_PATIENT_SYSTEM)
    if not isinstance(system, str) or not re.fullmatch(r"(urn:|https?://)\S+", system):
        raise ValueError(f"{key}.patient_system: a URI naming the identifier system, e.g. {DEFAULT_PATIENT_SYSTEM}")
    if table:
        known = "folder, patient_from, patient_property, patient_pattern, patient_system"
        raise ValueError(f"{key}: unknown key {', '.join(sorted(table))} (known: {known})")
    return Feed(ehr, index, username, path.strip("/"), patient_from, prop, pattern, system)


def _feeds(ehr: str, value: Any) -> list[Feed]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"ehr.{ehr}: no feed; add at least one [[plugins.ehr_bridge.ehr.{ehr}.feeds]] with its folder")
    return [_feed(ehr, index, raw) for index, raw in enumerate(value)]


def _identifier_system(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"(urn:|https?://)[^\s|,$\\]+", value):
        raise ValueError("a URI without spaces, |, comma, $ or backslash, e.g. urn:meddav:cabinet-martin:document")
    return value


def _max_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
        raise ValueError("a whole number of MiB from 1 to 1024")
    return value


def _alert_to(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(a, str) and re.fullmatch(r"[^@\s]+@[^@\s]+", a) for a in value
    ):
        raise ValueError(
            'a list of e-mail addresses, e.g. ["it@cabinet-martin.fr"] (empty: the organisation\'s admins)'
        )
    return list(value)


def options() -> list[ConfigOption]:
    """The schema of ``[plugins.ehr_bridge]`` (the core adds ``organisations`` and ``access``)."""
    return [
        ConfigOption(
            "ehr",
            {},
            "The EHRs, one table each: url, token_file or client_cert and client_key, ca_file, timeout_seconds, "
            'and the folders that feed it, [[...feeds]]: folder ("user/path"), patient_from ("property" or "name"), '
            "patient_property, patient_pattern, patient_system.",
            _endpoints,
        ),
        ConfigOption(
            "identifier_system",
            "urn:meddav:document",
            "The system of the identifiers MedDAV gives the "
            "documents it sends (node.version); make it unique to this installation.",
            _identifier_system,
        ),
        ConfigOption(
            "max_size_mib",
            64,
            "Documents larger than this are not sent (FHIR carries them inline, in "
            "base64) and are listed on the status page.",
            _max_size,
        ),
        ConfigOption(
            "alert_to",
            [],
            "Who is e-mailed about configuration errors; empty: the admins of the feed's organisation.",
            _alert_to,
        ),
    ]
