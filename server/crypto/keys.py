"""The key hierarchy: master key -> organisation keys -> data keys and name keys.

::

    master key            32 random bytes in a key file outside the data directory
      └── organisation key  32 random bytes per organisation, stored wrapped by the
           │                master key (AES-256-GCM, AAD binds it to its key id)
           ├── data key     32 random bytes per blob, stored wrapped by the
           │                organisation key (AAD binds it to the blob id)
           ├── name key     HKDF(organisation key, "names"): AES-256-SIV for names
           └── property key HKDF(organisation key, "properties"): AES-256-GCM for
                            dead property values

The master key also yields instance-wide subkeys by HKDF: the key-check value
that proves a key file belongs to an instance, and the key that seals lock
records (they hold paths).

Key file format (text, one line that matters)::

    # comments
    MEDDAV-MASTER-KEY-1 <32 bytes, URL-safe base64>
"""

from __future__ import annotations

import base64
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from server.crypto._primitives import (
    KEY_BYTES,
    SIV_KEY_BYTES,
    Gcm,
    Siv,
    constant_time_equal,
    hkdf,
    hmac_sha256,
    random_bytes,
)
from server.errors import DecryptionFailed, KeyFileError

__all__ = ["KeyRing", "MasterKey", "OrgKey", "WrappedKey", "new_key_id"]

_KEY_FILE_TAG: Final = "MEDDAV-MASTER-KEY-1"
_INFO_ORG_WRAP: Final = b"meddav/v1/org-key-wrap"
_INFO_KEY_CHECK: Final = b"meddav/v1/key-check"
_INFO_LOCKS: Final = b"meddav/v1/locks"
_INFO_SECRET_DIGESTS: Final = b"meddav/v1/secret-digests"
_INFO_CREDENTIALS: Final = b"meddav/v1/credentials"
_INFO_SHARE_NOTES: Final = b"meddav/v1/share-notes"
_INFO_JOBS: Final = b"meddav/v1/jobs"
_INFO_PLUGIN_STATE: Final = b"meddav/v1/plugin-state"
_INFO_NAMES: Final = b"meddav/v1/names"
_INFO_PROPS: Final = b"meddav/v1/properties"
_AAD_ORG_KEY: Final = b"meddav/v1/org-key:"
_AAD_DATA_KEY: Final = b"meddav/v1/data-key:"

_KEY_FILE_HEADER: Final = """\
# MedDAV master key.
# It unlocks every organisation key, hence every file of this instance.
# Keep a copy apart from the backups of the data directory (a safe, a password
# manager): a backup that carries its own key protects nothing, and without this
# file the data cannot be decrypted by anyone.
"""


def new_key_id() -> bytes:
    """A random 16-byte identifier for a key or a blob."""
    return random_bytes(16)


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A key sealed under another key, as stored in the database."""

    key_id: bytes
    sealed: bytes


class MasterKey:
    """The instance's root key, read from (or created as) the key file."""

    __slots__ = ("_gcm", "_key", "path")

    def __init__(self, key: bytes, *, path: Path | None = None) -> None:
        if len(key) != KEY_BYTES:
            raise KeyFileError("a master key is 32 bytes")
        self._key = key
        self._gcm = Gcm(hkdf(key, info=_INFO_ORG_WRAP))
        self.path = path

    # -- key file ------------------------------------------------------------

    @classmethod
    def create_file(cls, path: Path) -> MasterKey:
        """Generate a key and write it to ``path`` with mode 0600 (never overwrites)."""
        key = random_bytes(KEY_BYTES)
        text = f"{_KEY_FILE_HEADER}{_KEY_FILE_TAG} {base64.urlsafe_b64encode(key).decode()}\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(f"{path}: a key file already exists; refusing to replace it") from None
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(path.parent)
        return cls(key, path=path)

    @classmethod
    def load_file(cls, path: Path) -> MasterKey:
        """Read a key file; raise :class:`KeyFileError` naming the fix."""
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KeyFileError(
                f"{path}: master key file not found; restore it from your key backup, "
                "or set [storage] key_file to where it is"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"{path}: cannot read the master key file ({exc.__class__.__name__})") from None
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            tag, _, value = line.partition(" ")
            if tag != _KEY_FILE_TAG:
                break
            try:
                key = base64.urlsafe_b64decode(value.strip().encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                break
            if len(key) != KEY_BYTES:
                break
            return cls(key, path=path)
        raise KeyFileError(f"{path}: not a MedDAV master key file (expected a line '{_KEY_FILE_TAG} <key>')")

    def file_is_private(self) -> bool:
        """True when the key file is readable by its owner only."""
        if self.path is None:
            return True
        mode = self.path.stat().st_mode
        return not mode & (stat.S_IRWXG | stat.S_IRWXO)

    # -- derived values ------------------------------------------------------

    def key_check(self, instance_id: bytes) -> bytes:
        """A value stored in the database that proves a key file belongs to the instance."""
        return hmac_sha256(hkdf(self._key, info=_INFO_KEY_CHECK), instance_id)

    def matches(self, instance_id: bytes, stored_check: bytes) -> bool:
        return constant_time_equal(self.key_check(instance_id), stored_check)

    def lock_key(self) -> bytes:
        """Subkey sealing WebDAV lock records (AES-256-GCM)."""
        return hkdf(self._key, info=_INFO_LOCKS)

    def secret_digest_key(self) -> bytes:
        """Subkey of the HMAC-SHA256 digests of random secrets (app passwords, codes, tokens)."""
        return hkdf(self._key, info=_INFO_SECRET_DIGESTS)

    def jobs_key(self) -> bytes:
        """Subkey sealing job payloads (they may carry names or patient identifiers; AES-256-GCM)."""
        return hkdf(self._key, info=_INFO_JOBS)

    def plugin_state_key(self) -> bytes:
        """Subkey sealing plugins' own records (they may hold names or identifiers; AES-256-GCM)."""
        return hkdf(self._key, info=_INFO_PLUGIN_STATE)

    def credentials_key(self) -> bytes:
        """Subkey sealing stored credentials that must be read back (TOTP secrets; AES-256-GCM)."""
        return hkdf(self._key, info=_INFO_CREDENTIALS)

    def share_note_key(self) -> bytes:
        """Subkey sealing the notes of shares (an owner may write health data there; AES-256-GCM)."""
        return hkdf(self._key, info=_INFO_SHARE_NOTES)

    # -- organisation keys ---------------------------------------------------

    def new_org_key(self) -> tuple[OrgKey, WrappedKey]:
        """Generate an organisation key; return it and its wrapped form to store."""
        key_id = new_key_id()
        key = random_bytes(KEY_BYTES)
        sealed = self._gcm.seal_random_nonce(key, _AAD_ORG_KEY + key_id)
        return OrgKey(key_id, key), WrappedKey(key_id, sealed)

    def unwrap_org_key(self, wrapped: WrappedKey) -> OrgKey:
        key = self._gcm.open_random_nonce(wrapped.sealed, _AAD_ORG_KEY + wrapped.key_id)
        return OrgKey(wrapped.key_id, key)


class OrgKey:
    """One organisation key (KEK) and the subkeys derived from it."""

    __slots__ = ("_gcm", "_names", "_props", "key_id")

    def __init__(self, key_id: bytes, key: bytes) -> None:
        self.key_id = key_id
        self._gcm = Gcm(key)
        self._names = Siv(hkdf(key, info=_INFO_NAMES, length=SIV_KEY_BYTES))
        self._props = Gcm(hkdf(key, info=_INFO_PROPS))

    def new_data_key(self, blob_id: bytes) -> tuple[bytes, bytes]:
        """A fresh data key for ``blob_id``: (key, sealed form to store)."""
        key = random_bytes(KEY_BYTES)
        return key, self._gcm.seal_random_nonce(key, _AAD_DATA_KEY + blob_id)

    def open_data_key(self, blob_id: bytes, sealed: bytes) -> bytes:
        return self._gcm.open_random_nonce(sealed, _AAD_DATA_KEY + blob_id)

    @property
    def name_cipher(self) -> Siv:
        return self._names

    @property
    def property_cipher(self) -> Gcm:
        return self._props


class KeyRing:
    """The master key plus a cache of unwrapped organisation keys (thread-safe)."""

    def __init__(self, master: MasterKey) -> None:
        self.master = master
        self._org_keys: dict[bytes, OrgKey] = {}
        self._lock = threading.Lock()

    def org_key(self, wrapped: WrappedKey) -> OrgKey:
        with self._lock:
            cached = self._org_keys.get(wrapped.key_id)
        if cached is not None:
            return cached
        try:
            key = self.master.unwrap_org_key(wrapped)
        except DecryptionFailed:
            raise KeyFileError(
                "an organisation key does not open with this master key; "
                "is [storage] key_file the key of this instance?"
            ) from None
        with self._lock:
            self._org_keys[wrapped.key_id] = key
        return key


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
