"""Small encrypted values: dead property values and WebDAV lock records.

Dead properties (PROPPATCH) may carry anything a client chooses, so their
values are sealed with the organisation's property key, bound to the node and
the property name.  Lock records hold a path, and paths are names: the root
path and the owner element of a lock are sealed under a subkey of the master
key, bound to the lock token.
"""

from __future__ import annotations

import struct

from server.crypto._primitives import Gcm
from server.crypto.keys import OrgKey

__all__ = ["CredentialSealer", "JobSealer", "LockSealer", "StateSealer", "open_property", "seal_property"]

_NODE = struct.Struct(">q")


def _property_aad(node_id: int, name: str) -> bytes:
    return b"meddav/v1/property:" + _NODE.pack(node_id) + name.encode()


def seal_property(key: OrgKey, node_id: int, name: str, value: bytes) -> bytes:
    return key.property_cipher.seal_random_nonce(value, _property_aad(node_id, name))


def open_property(key: OrgKey, node_id: int, name: str, sealed: bytes) -> bytes:
    return key.property_cipher.open_random_nonce(sealed, _property_aad(node_id, name))


class CredentialSealer:
    """Seals credentials kept readable, such as TOTP secrets, bound to their user."""

    __slots__ = ("_gcm",)

    def __init__(self, credentials_key: bytes) -> None:
        self._gcm = Gcm(credentials_key)

    def seal(self, kind: str, user_id: int, value: bytes) -> bytes:
        return self._gcm.seal_random_nonce(value, f"meddav/v1/credential:{kind}:{user_id}".encode())

    def open(self, kind: str, user_id: int, sealed: bytes) -> bytes:
        return self._gcm.open_random_nonce(sealed, f"meddav/v1/credential:{kind}:{user_id}".encode())


class JobSealer:
    """Seals job payloads (AES-256-GCM, random nonce), bound to the job's kind and key.

    Built from a 32-byte key derived from the master key (the instance wires it).
    A payload moved to another job's row does not open.
    """

    __slots__ = ("_gcm",)

    def __init__(self, key: bytes) -> None:
        self._gcm = Gcm(key)

    @staticmethod
    def _aad(kind: str, key: str) -> bytes:
        return b"meddav/v1/job:" + kind.encode() + b"\0" + key.encode()

    def seal(self, kind: str, key: str, payload: bytes) -> bytes:
        return self._gcm.seal_random_nonce(payload, self._aad(kind, key))

    def open(self, kind: str, key: str, sealed: bytes) -> bytes:
        return self._gcm.open_random_nonce(sealed, self._aad(kind, key))


class StateSealer:
    """Seals plugins' records (``plugin_state``), bound to the plugin and the record's key."""

    __slots__ = ("_gcm",)

    def __init__(self, key: bytes) -> None:
        self._gcm = Gcm(key)

    @staticmethod
    def _aad(plugin: str, key: str) -> bytes:
        return b"meddav/v1/plugin-state:" + plugin.encode() + b"\0" + key.encode()

    def seal(self, plugin: str, key: str, value: bytes) -> bytes:
        return self._gcm.seal_random_nonce(value, self._aad(plugin, key))

    def open(self, plugin: str, key: str, sealed: bytes) -> bytes:
        return self._gcm.open_random_nonce(sealed, self._aad(plugin, key))


class ShareNoteSealer:
    """Seals the note of a share, bound to the share's id."""

    __slots__ = ("_gcm",)

    def __init__(self, key: bytes) -> None:
        self._gcm = Gcm(key)

    def seal(self, share_id: int, note: str) -> bytes:
        return self._gcm.seal_random_nonce(note.encode(), b"meddav/v1/share-note:%d" % share_id)

    def open(self, share_id: int, sealed: bytes) -> str:
        return self._gcm.open_random_nonce(sealed, b"meddav/v1/share-note:%d" % share_id).decode()


class LockSealer:
    """Seals the root paths and owners of WebDAV lock records."""

    __slots__ = ("_gcm",)

    def __init__(self, lock_key: bytes) -> None:
        self._gcm = Gcm(lock_key)

    def seal(self, token: str, field: str, value: bytes) -> bytes:
        return self._gcm.seal_random_nonce(value, f"meddav/v1/lock:{field}:{token}".encode())

    def open(self, token: str, field: str, sealed: bytes) -> bytes:
        return self._gcm.open_random_nonce(sealed, f"meddav/v1/lock:{field}:{token}".encode())
