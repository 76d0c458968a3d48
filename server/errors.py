"""The one tree of MedDAV's own exceptions.

::

    MedDAVError
     ├── ConfigError          the configuration cannot be used (lists every problem)
     ├── NotFound             no such node, user or organisation
     ├── Conflict             the operation clashes with the current state
     │    └── AlreadyExists   a name is taken in its folder
     ├── BadRequest           the request itself is malformed (a name, a length)
     ├── PolicyDenied         the policy refused the action
     ├── AuthenticationFailed credentials were refused (never says which part)
     ├── Busy                 too much work at once (e.g. password hashing); retry later
     ├── QuotaExceeded        the write would exceed the owner's quota
     ├── StorageError         the blob store failed (I/O error)
     │    └── StorageFull     no space left where blobs are stored
     ├── DecryptionFailed     a key or a blob failed authentication (opaque on purpose)
     └── KeyFileError         the master key file is missing, malformed or wrong

Messages carry ids, never a plaintext file name, a password or a token: these
exceptions end up in logs.  ``server.dav.errors`` alone maps them to HTTP
statuses for WebDAV.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "AuthenticationFailed",
    "BadRequest",
    "Busy",
    "ConfigError",
    "Conflict",
    "DecryptionFailed",
    "KeyFileError",
    "MedDAVError",
    "NotFound",
    "PolicyDenied",
    "QuotaExceeded",
    "StorageError",
    "StorageFull",
]


class MedDAVError(Exception):
    """Base class of every error MedDAV raises on purpose."""


class ConfigError(MedDAVError):
    """The configuration has problems; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([header, *("  " + p for p in self.problems)]))


class NotFound(MedDAVError):
    """The node, user or organisation does not exist (or is not visible)."""


class Conflict(MedDAVError):
    """The operation clashes with the current state of the tree."""


class AlreadyExists(Conflict):
    """A member with this name already exists in the folder."""


class BadRequest(MedDAVError):
    """The request is malformed: an invalid name, a wrong length, a bad value."""


class PolicyDenied(MedDAVError):
    """The access policy refused the action."""


class AuthenticationFailed(MedDAVError):
    """The credentials were refused.  Says nothing of whether the user exists."""


class Busy(MedDAVError):
    """The server is doing as much of this work as it allows at once; retry shortly."""


class QuotaExceeded(MedDAVError):
    """Storing the data would exceed the owner's quota; nothing was stored."""


class StorageError(MedDAVError):
    """The blob store failed to store or read bytes."""


class StorageFull(StorageError):
    """The blob store ran out of space; nothing was stored."""


class DecryptionFailed(MedDAVError):
    """A ciphertext did not authenticate.

    Deliberately carries no detail (like Fernet's ``InvalidToken``): the caller
    logs which blob or key was concerned, never which check failed.
    """


class KeyFileError(MedDAVError):
    """The master key file is missing, malformed, too open, or not this instance's."""
