"""Random secrets that are stored as keyed digests and found by a public prefix.

A secret handed to a person or a device (an app password, a recovery code, a
session cookie, a link token) is ``lookup + key``: ``lookup`` is a short
random id stored in clear and indexed, ``key`` the secret part (at least 128
bits).  The database keeps ``HMAC-SHA256(digest key, purpose, whole secret)``
only, so a stolen database does not give working secrets, and a secret is
checked with one indexed query and one constant-time comparison, never by
trying every stored hash (Argon2 is for secrets people choose, see
``server.auth``).  The digest key is derived from the master key, which is
never in the database.

Secrets are written in lower-case base32 (no 0/1/8/9 to confuse with O/I/B/g)
and shown in groups of four separated by dashes; dashes, spaces and case are
ignored when one is typed back.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from server.crypto import constant_time_equal, hmac_sha256

__all__ = ["Secret", "SecretDigester", "new_secret", "normalise"]

LOOKUP_CHARS = 8  # 40 bits: collisions are retried, never confused (the digest decides)


@dataclass(frozen=True, slots=True)
class Secret:
    lookup: str
    value: str  # lookup + secret part, normalised

    @property
    def display(self) -> str:
        """Grouped by four for reading aloud or typing: ``abcd-efgh-...``."""
        return "-".join(self.value[i : i + 4] for i in range(0, len(self.value), 4))


def new_secret(secret_bytes: int = 20) -> Secret:
    """A fresh secret: 8 characters of lookup and ``secret_bytes`` random bytes (default 160 bits)."""
    if secret_bytes < 16:
        raise ValueError("a secret needs at least 128 bits")
    lookup = base64.b32encode(secrets.token_bytes(5)).decode().lower()
    body = base64.b32encode(secrets.token_bytes(secret_bytes)).decode().rstrip("=").lower()
    return Secret(lookup, lookup + body)


def normalise(presented: str) -> str:
    """A typed secret as stored: no dashes or spaces, lower case."""
    return "".join(presented.split()).replace("-", "").lower()


class SecretDigester:
    """Keyed digests of secrets, per purpose (an app password is not a session cookie)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def digest(self, purpose: str, value: str) -> bytes:
        return hmac_sha256(self._key, purpose.encode() + b"\0" + value.encode())

    def matches(self, purpose: str, value: str, stored: bytes) -> bool:
        return constant_time_equal(self.digest(purpose, value), stored)

    @staticmethod
    def lookup_of(value: str) -> str | None:
        """The lookup part of a normalised secret, or None when it cannot be one."""
        if len(value) < LOOKUP_CHARS + 26 or len(value) > 128:
            return None
        return value[:LOOKUP_CHARS]
