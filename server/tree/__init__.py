"""The file tree: folders and files in the database, contents in the blob store.

Public API: :class:`Tree` (the operations), :class:`Entry` (a decrypted
snapshot of a node, never an ORM object), :class:`Upload` (a file being
written) and :func:`validate_name` (the naming rules shared by every surface).
"""

from __future__ import annotations

from server.tree._names import MAX_NAME_BYTES, free_name, validate_name
from server.tree._tree import GROUP_ACCESS, Entry, Tree, Upload, VersionRef

__all__ = ["GROUP_ACCESS", "MAX_NAME_BYTES", "Entry", "Tree", "Upload", "VersionRef", "free_name", "validate_name"]
