"""MedDAV's hazmat layer: the only module that imports ``cryptography``.

Thin, typed wrappers over the primitives the recipes of :mod:`server.crypto`
are built from.  Nothing outside ``server/crypto`` imports this module; the
recipes (``blobformat``, ``names``, ``keys``) give the rest of MedDAV
operations with a purpose ("seal this blob", "open this name") instead of
algorithms.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
from hashlib import sha256

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from server.errors import DecryptionFailed

KEY_BYTES = 32
GCM_NONCE_BYTES = 12
GCM_TAG_BYTES = 16
SIV_KEY_BYTES = 64  # AES-256-SIV takes two 256-bit keys


def random_bytes(n: int) -> bytes:
    """Return ``n`` bytes from the operating system's CSPRNG."""
    return os.urandom(n)


def hkdf(key: bytes, *, info: bytes, length: int = KEY_BYTES) -> bytes:
    """Derive a subkey for one purpose (HKDF-SHA256, no salt: ``key`` is uniformly random)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, sha256).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


class Gcm:
    """AES-256-GCM with a reusable key schedule."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes | bytearray | memoryview, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed() from None

    def seal_random_nonce(self, plaintext: bytes, aad: bytes) -> bytes:
        """Seal with a fresh random nonce; the output is ``nonce || ciphertext || tag``."""
        nonce = random_bytes(GCM_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open_random_nonce(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < GCM_NONCE_BYTES + GCM_TAG_BYTES:
            raise DecryptionFailed()
        return self.open(sealed[:GCM_NONCE_BYTES], sealed[GCM_NONCE_BYTES:], aad)


class Siv:
    """AES-256-SIV: deterministic authenticated encryption (RFC 5297)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != SIV_KEY_BYTES:
            raise ValueError("AES-256-SIV needs a 64-byte key")
        self._aead = AESSIV(key)

    def seal(self, plaintext: bytes, associated_data: list[bytes]) -> bytes:
        return self._aead.encrypt(plaintext, associated_data)

    def open(self, ciphertext: bytes, associated_data: list[bytes]) -> bytes:
        try:
            return self._aead.decrypt(ciphertext, associated_data)
        except InvalidTag:
            raise DecryptionFailed() from None


def certificate_validity(der: bytes) -> tuple[dt.datetime, dt.datetime]:
    """(not before, not after), in UTC, of a DER X.509 certificate; ValueError when it is not one."""
    certificate = x509.load_der_x509_certificate(der)
    return certificate.not_valid_before_utc, certificate.not_valid_after_utc
