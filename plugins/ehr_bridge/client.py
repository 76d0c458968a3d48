"""Talking to one EHR over HTTP (httpx): conditional create, search by identifier, and what a failure means.

Every failure becomes a :class:`Failure` of one kind:

- ``transient`` (time-out, connection refused or cut, 408, 425, 429, 5xx):
  retried by the job queue with back-off; nobody is told;
- a configuration problem, which retrying cannot fix and a person must:
  ``auth`` (401, 403), ``host`` (the name does not resolve), ``tls`` (the
  certificate or the handshake fails), ``rejected`` (another 4xx: the EHR
  refuses the request itself).  The organisation's admins are e-mailed.

Messages are short, in English (they are stored as the job's last error and
shown to admins), and carry no health data: statuses and reasons, never a
name, an identifier of a patient or an EHR's diagnostics text.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx

from plugins.ehr_bridge.config import Endpoint
from plugins.ehr_bridge.fhir import DocumentBody, identifier_query

__all__ = ["CONFIG_KINDS", "EhrClient", "Failure", "classify"]

FHIR_JSON = "application/fhir+json"
#: Kinds of failure that a person must fix (the others are transient).
CONFIG_KINDS = ("auth", "host", "tls", "rejected")
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_CREATED = frozenset({200, 201})


class Failure(Exception):
    """A send or a search that did not work, and of which kind (see the module's docstring)."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status

    @property
    def transient(self) -> bool:
        return self.kind == "transient"


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify(error: httpx.HTTPError) -> Failure:
    """The failure an httpx exception stands for."""
    causes = _causes(error)
    if isinstance(error, httpx.TimeoutException):
        return Failure("transient", f"no answer in time ({type(error).__name__})")
    if any(isinstance(cause, socket.gaierror) for cause in causes):
        return Failure("host", "the EHR's host name does not resolve (check url)")
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes):
        return Failure("tls", "the EHR's TLS certificate is not trusted (check url and ca_file)")
    if any(isinstance(cause, ssl.SSLError) for cause in causes):
        return Failure("tls", "the TLS handshake with the EHR failed (check the client certificate and ca_file)")
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return Failure("transient", "the EHR refused the connection (is it down?)")
    return Failure("transient", f"the connection to the EHR failed ({type(error).__name__})")


def status_failure(status: int, what: str) -> Failure:
    """The failure an HTTP error status stands for."""
    if status in (401, 403):
        return Failure("auth", f"the EHR refused MedDAV's credentials to {what} (HTTP {status})", status)
    if status in _TRANSIENT_STATUSES or status >= 500:
        return Failure("transient", f"the EHR could not {what} for now (HTTP {status})", status)
    if status == 412:
        return Failure(
            "rejected", f"the EHR already holds several documents with this identifier (HTTP {status})", status
        )
    return Failure("rejected", f"the EHR refused to {what} (HTTP {status})", status)


class EhrClient:
    """One EHR's FHIR endpoint, with a connection pool of its own; thread-safe (httpx.Client is)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._client = httpx.Client(
            base_url=endpoint.url + "/",
            verify=endpoint.tls_context(),
            timeout=httpx.Timeout(endpoint.timeout_seconds),
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc credentials from the environment: the EHR is named in the config
        )

    def close(self) -> None:
        self._client.close()

    def _headers(self, **extra: str) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON, **extra}
        try:
            token = self.endpoint.token()
        except (OSError, UnicodeDecodeError):
            raise Failure("auth", "the token file cannot be read (check token_file and its permissions)") from None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def create(self, body: DocumentBody, system: str, value: str) -> int:
        """Conditional create of a DocumentReference; 201 (created) or 200 (it was there already)."""
        headers = self._headers(
            **{
                "Content-Type": f"{FHIR_JSON}; charset=utf-8",
                "Content-Length": str(body.length),
                "If-None-Exist": identifier_query(system, [value]),
            }
        )
        try:
            response = self._client.post("DocumentReference", content=iter(body), headers=headers)
        except httpx.HTTPError as error:
            raise classify(error) from None
        if response.status_code not in _CREATED:
            raise status_failure(response.status_code, "store the document")
        return response.status_code

    def present(self, system: str, values: list[str]) -> set[str]:
        """Which of these identifier values (of ``system``) the EHR holds: one search, comma = OR."""
        if not values:
            return set()
        found: set[str] = set()
        url: str | None = f"DocumentReference?{identifier_query(system, values)}&_count={2 * len(values)}"
        pages = 0
        while url is not None:
            pages += 1
            if pages > 20:
                raise Failure("rejected", "the EHR's search answer has too many pages")
            try:
                response = self._client.get(url, headers=self._headers())
            except httpx.HTTPError as error:
                raise classify(error) from None
            if response.status_code != 200:
                raise status_failure(response.status_code, "search documents")
            try:
                bundle = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise Failure("rejected", "the EHR's search answer is not JSON", 200) from None
            found |= _identifiers(bundle, system)
            url = self._next_page(bundle)
        return found & set(values)

    def _next_page(self, bundle: Any) -> str | None:
        """The bundle's ``next`` link, when it stays under the EHR's own base URL (the token goes with it)."""
        links = bundle.get("link", []) if isinstance(bundle, dict) else []
        for link in links if isinstance(links, list) else []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                if not _under(link["url"], self.endpoint.url):
                    raise Failure("rejected", "the EHR's search answer links outside its base URL")
                return str(link["url"])
        return None


def _under(url: str, base: str) -> bool:
    """Whether ``url`` is on ``base``'s scheme, host and port, below its path (names compared as URLs do)."""
    try:
        target, root = urlsplit(url), urlsplit(base)
        ports = (target.port or _DEFAULT_PORTS.get(target.scheme), root.port or _DEFAULT_PORTS.get(root.scheme))
    except ValueError:  # a port that is not a number
        return False
    same_origin = target.scheme == root.scheme and target.hostname == root.hostname and ports[0] == ports[1]
    return same_origin and (target.path + "/").startswith(root.path.rstrip("/") + "/")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _identifiers(bundle: Any, system: str) -> set[str]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise Failure("rejected", "the EHR's search answer is not a Bundle", 200)
    values: set[str] = set()
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "DocumentReference":
            continue
        for identifier in resource.get("identifier", []) or []:
            if isinstance(identifier, dict) and identifier.get("system") == system:
                value = identifier.get("value")
                if isinstance(value, str):
                    values.add(value)
    return values
