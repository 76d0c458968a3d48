"""Encrypted file names.

A name is stored twice at most, both under the organisation's name key
(AES-256-SIV, deterministic), with the parent folder's id as associated data
so that equal names in different folders give unrelated ciphertexts:

- the *lookup name*: the NFC form of the name.  Being deterministic, it is what
  the database indexes, with a unique (parent, lookup name) constraint; a macOS
  client sending NFD and another sending NFC reach the same file.
- the *given name*: the name exactly as the client sent it, stored only when it
  differs from its NFC form, so a client that wrote NFD reads NFD back.

Names are case-sensitive: only Unicode normalisation is folded.
"""

from __future__ import annotations

import struct
import unicodedata

from server.crypto.keys import OrgKey

__all__ = ["lookup_form", "open_name", "seal_given_name", "seal_lookup_name"]

_PARENT = struct.Struct(">q")
_LOOKUP = b"lookup"
_GIVEN = b"given"


def lookup_form(name: str) -> str:
    """The form under which a name is looked up and kept unique: NFC."""
    return unicodedata.normalize("NFC", name)


def seal_lookup_name(key: OrgKey, name: str, parent_id: int) -> bytes:
    """Deterministic ciphertext of ``lookup_form(name)`` in folder ``parent_id``."""
    return key.name_cipher.seal(lookup_form(name).encode(), [_LOOKUP, _PARENT.pack(parent_id)])


def seal_given_name(key: OrgKey, name: str, parent_id: int) -> bytes | None:
    """Ciphertext of the name as given, or None when it equals its lookup form."""
    if name == lookup_form(name):
        return None
    return key.name_cipher.seal(name.encode(), [_GIVEN, _PARENT.pack(parent_id)])


def open_name(key: OrgKey, lookup: bytes, given: bytes | None, parent_id: int) -> str:
    """The name to show: the given form when stored, else the lookup form."""
    if given is not None:
        return key.name_cipher.open(given, [_GIVEN, _PARENT.pack(parent_id)]).decode()
    return key.name_cipher.open(lookup, [_LOOKUP, _PARENT.pack(parent_id)]).decode()
