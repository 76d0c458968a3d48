"""Small helpers shared by the integration tests."""

from __future__ import annotations

import base64
import datetime as dt
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

PROPFIND_ALL = b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def raw_request(url: str, head: str, body: bytes = b"", *, timeout: float = 10.0, close_after: bool = False) -> bytes:
    """Send exactly ``head`` (request line + headers, CRLF-separated, no final blank
    line) and ``body`` on a fresh socket; return what the server answered."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        if close_after:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
                if not close_after and b"\r\n\r\n" in b"".join(chunks):
                    answer = b"".join(chunks)
                    length = _content_length(answer)
                    if length is not None and len(answer.split(b"\r\n\r\n", 1)[1]) >= length:
                        break
        except TimeoutError:
            pass
    return b"".join(chunks)


def _content_length(answer: bytes) -> int | None:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip())
    return None


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def propfind(client: httpx.Client, path: str, *, depth: str = "1", body: bytes | None = None) -> httpx.Response:
    return client.request("PROPFIND", path, headers={"Depth": depth}, content=body or PROPFIND_ALL)


def listing(client: httpx.Client, path: str) -> dict[str, ET.Element]:
    """href -> <response> element of a Depth 1 PROPFIND."""
    response = propfind(client, path)
    assert response.status_code == 207, response.text
    root = ET.fromstring(response.content)
    return {r.findtext("{DAV:}href") or "": r for r in root.findall("{DAV:}response")}


def names_in(client: httpx.Client, path: str) -> set[str]:
    """The member names of a folder, decoded from the hrefs."""
    from urllib.parse import unquote

    base = urlsplit(str(client.base_url)).path.rstrip("/") + "/" + path.strip("/")
    out = set()
    for href in listing(client, path):
        name = unquote(href).rstrip("/")
        if name != base.rstrip("/"):
            out.add(name.rsplit("/", 1)[1])
    return out


def url_path(*names: str) -> str:
    return "/".join(quote(n, safe="") for n in names)


def self_signed(
    directory: Path,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    passphrase: bytes | None = None,
) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (its own CA), written as ``cert.pem`` and
    ``key.pem`` (mode 0600, encrypted with ``passphrase`` if given) in ``directory``; returns their paths.
    Valid from an hour ago for a day, unless told otherwise."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return cert_path, key_path


def meddav(*args: str, stdin: str | None = None, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``meddav`` command line (``--config config`` first when given) to its end, whatever
    ``MEDDAV_CONFIG`` the caller's environment holds."""
    prefix = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "server", *prefix, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "MEDDAV_CONFIG"},
    )
