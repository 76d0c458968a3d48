"""Encryption recipes for MedDAV: keys, blob contents, names, small values.

Public API; the primitives behind it live in ``_primitives`` and no other
package imports ``cryptography``.  See ``docs/encryption.md`` for the key
hierarchy and the byte formats.
"""

from __future__ import annotations

from server.crypto._primitives import certificate_validity, constant_time_equal, hmac_sha256
from server.crypto.blobformat import HEADER_SIZE, SEGMENT_SIZE, BlobReader, BlobWriter, ciphertext_size
from server.crypto.keys import KeyRing, MasterKey, OrgKey, WrappedKey, new_key_id
from server.crypto.names import lookup_form, open_name, seal_given_name, seal_lookup_name
from server.crypto.values import (
    CredentialSealer,
    JobSealer,
    LockSealer,
    ShareNoteSealer,
    StateSealer,
    open_property,
    seal_property,
)

__all__ = [
    "HEADER_SIZE",
    "SEGMENT_SIZE",
    "BlobReader",
    "BlobWriter",
    "CredentialSealer",
    "JobSealer",
    "KeyRing",
    "LockSealer",
    "MasterKey",
    "OrgKey",
    "ShareNoteSealer",
    "StateSealer",
    "WrappedKey",
    "certificate_validity",
    "ciphertext_size",
    "constant_time_equal",
    "hmac_sha256",
    "lookup_form",
    "new_key_id",
    "open_name",
    "open_property",
    "seal_given_name",
    "seal_lookup_name",
    "seal_property",
]
