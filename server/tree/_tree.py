"""The tree service: files and folders kept in the database, contents in blobs.

Every operation is one short database transaction (see :mod:`server.db`),
preceded, for operations that carry bytes, by the blob work done *outside*
any transaction: an upload or a copy first makes its blobs durable, then
commits the rows that point to them, then deletes the blobs the commit made
unreachable.  A crash between those steps leaves either the old or the new
state plus orphan blobs, which ``meddav fsck`` removes.  Changes of names
only (a new folder, a rename, deleting rows that hold no content) commit
without waiting for their fsync (``Database.grouped(durable=False)``).

Queries are SQLAlchemy Core statements: this module is on the path of every
request, and an ORM round trip costs ten times a Core one here.

Callers are expected to have asked :mod:`server.policy` first: the tree
enforces the shape of the tree (names, cycles, quotas), not who may act.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, bindparam, delete, insert, literal, select, update

from server.crypto import (
    BlobReader,
    BlobWriter,
    KeyRing,
    OrgKey,
    WrappedKey,
    lookup_form,
    open_name,
    open_property,
    seal_given_name,
    seal_lookup_name,
    seal_property,
)
from server.db import Database, Tx, prepared
from server.db.models import (
    KIND_DIR,
    KIND_FILE,
    dead_properties_t,
    group_folders_t,
    nodes_t,
    org_keys_t,
    users_t,
    versions_t,
)
from server.errors import AlreadyExists, BadRequest, Conflict, NotFound, QuotaExceeded
from server.events import Event, FileDeleted, FileWritten, NodeMoved
from server.storage import BaseBlobStore, BlobUpload
from server.tree._names import free_name, validate_name

if TYPE_CHECKING:
    from server.config import Settings

__all__ = ["GROUP_ACCESS", "Entry", "Tree", "Upload", "VersionRef"]

#: What members may do in a group folder: read and write, or read only (see server.policy).
GROUP_ACCESS = ("rw", "ro")

_CHUNK = 500  # ids per IN (...) clause
T = TypeVar("T")
_COPY_BLOCK = 1024 * 1024

_ENTRY = select(
    nodes_t.c.id,
    nodes_t.c.parent_id,
    nodes_t.c.org_id,
    nodes_t.c.owner_id,
    nodes_t.c.kind,
    nodes_t.c.name,
    nodes_t.c.given_name,
    nodes_t.c.size,
    nodes_t.c.ctime,
    nodes_t.c.mtime,
    nodes_t.c.etag,
    nodes_t.c.version_id,
    versions_t.c.blob_id,
    versions_t.c.org_key_id,
    versions_t.c.sealed_key,
    versions_t.c.size.label("version_size"),
    nodes_t.c.group_id,
    group_folders_t.c.member_access.label("group_access"),
    group_folders_t.c.name.label("group_name"),
    group_folders_t.c.given_name.label("group_given_name"),
).select_from(
    nodes_t.outerjoin(versions_t, nodes_t.c.version_id == versions_t.c.id).outerjoin(
        group_folders_t, nodes_t.c.group_id == group_folders_t.c.id
    )
)


# Statements on the path of every request: built once, compiled once, run on
# the raw cursor of the current transaction (server.db._runner).
_BY_ID = prepared(_ENTRY.where(nodes_t.c.id == bindparam("node_id")))
_BY_NAME = prepared(_ENTRY.where(nodes_t.c.parent_id == bindparam("parent_id"), nodes_t.c.name == bindparam("sealed")))
_CHILDREN = prepared(_ENTRY.where(nodes_t.c.parent_id == bindparam("parent_id")))
_PARENT_OF = prepared(select(nodes_t.c.parent_id).where(nodes_t.c.id == bindparam("node_id")))
_USAGE = prepared(select(users_t.c.used_bytes, users_t.c.quota_bytes).where(users_t.c.id == bindparam("user_id")))
_CHARGE = prepared(
    update(users_t)
    .where(users_t.c.id == bindparam("user_id"))
    .values(used_bytes=users_t.c.used_bytes + bindparam("delta"))
)
_GROUP_USAGE = prepared(
    select(group_folders_t.c.used_bytes, group_folders_t.c.quota_bytes).where(
        group_folders_t.c.id == bindparam("group_id")
    )
)
_GROUP_CHARGE = prepared(
    update(group_folders_t)
    .where(group_folders_t.c.id == bindparam("group_id"))
    .values(used_bytes=group_folders_t.c.used_bytes + bindparam("delta"))
)
_GROUP_BY_NAME = prepared(
    select(group_folders_t.c.root_id).where(
        group_folders_t.c.org_id == bindparam("org_id"), group_folders_t.c.name == bindparam("sealed")
    )
)
_GROUP_COLUMNS = (
    "org_id",
    "root_id",
    "name",
    "given_name",
    "member_access",
    "quota_bytes",
    "used_bytes",
    "created_at",
)
_INSERT_GROUP = prepared(
    insert(group_folders_t)
    .values({col: bindparam(f"p_{col}") for col in _GROUP_COLUMNS})
    .returning(group_folders_t.c.id)
)
_GROUP_ROOTS = prepared(
    _ENTRY.where(
        nodes_t.c.id.in_(select(group_folders_t.c.root_id).where(group_folders_t.c.org_id == bindparam("org_id")))
    )
)
_TOUCH = prepared(update(nodes_t).where(nodes_t.c.id == bindparam("node_id")).values(mtime=bindparam("p_mtime")))
_SET_VERSION = prepared(
    update(nodes_t)
    .where(nodes_t.c.id == bindparam("node_id"))
    .values(
        version_id=bindparam("p_version_id"),
        size=bindparam("p_size"),
        mtime=bindparam("p_mtime"),
        etag=bindparam("p_etag"),
    )
)
_NODE_COLUMNS = (
    "org_id",
    "owner_id",
    "group_id",
    "parent_id",
    "kind",
    "name",
    "given_name",
    "size",
    "ctime",
    "mtime",
    "etag",
)
_INSERT_NODE = prepared(
    insert(nodes_t).values({col: bindparam(f"p_{col}") for col in _NODE_COLUMNS}).returning(nodes_t.c.id)
)
_VERSION_COLUMNS = ("blob_id", "org_key_id", "sealed_key", "size", "created_at")
_INSERT_VERSION = prepared(
    insert(versions_t).values({col: bindparam(f"p_{col}") for col in _VERSION_COLUMNS}).returning(versions_t.c.id)
)
_RENAME = prepared(
    update(nodes_t)
    .where(nodes_t.c.id == bindparam("node_id"))
    .values(parent_id=bindparam("p_parent_id"), name=bindparam("p_name"), given_name=bindparam("p_given_name"))
)
_INSERT_PROPERTY = prepared(
    insert(dead_properties_t).values(
        node_id=bindparam("p_node_id"), name=bindparam("p_name"), value=bindparam("p_value")
    )
)
_DELETE_PROPERTY = prepared(
    delete(dead_properties_t).where(
        dead_properties_t.c.node_id == bindparam("node_id"), dead_properties_t.c.name == bindparam("prop_name")
    )
)
_ANY_CHILD = prepared(select(nodes_t.c.id).where(nodes_t.c.parent_id == bindparam("node_id")).limit(1))
_DELETE_NODE = prepared(delete(nodes_t).where(nodes_t.c.id == bindparam("node_id")))
_DELETE_NODE_PROPERTIES = prepared(delete(dead_properties_t).where(dead_properties_t.c.node_id == bindparam("node_id")))


def _subtree_statement() -> Select[Any]:
    """(id, depth, version id, size, blob id) of a node and all its descendants."""
    start = select(nodes_t.c.id, literal(0).label("depth")).where(nodes_t.c.id == bindparam("node_id"))
    tree = start.cte("subtree", recursive=True)
    below = select(nodes_t.c.id, (tree.c.depth + 1).label("depth")).where(nodes_t.c.parent_id == tree.c.id)
    tree = tree.union_all(below)
    return (
        select(tree.c.id, tree.c.depth, nodes_t.c.version_id, nodes_t.c.size, versions_t.c.blob_id)
        .select_from(tree.join(nodes_t, nodes_t.c.id == tree.c.id))
        .outerjoin(versions_t, versions_t.c.id == nodes_t.c.version_id)
    )


_SUBTREE = prepared(_subtree_statement())
_DELETE_VERSION = prepared(delete(versions_t).where(versions_t.c.id == bindparam("version_id")))


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _new_etag() -> str:
    return uuid.uuid4().hex


def _space(entry: Entry) -> tuple[str, int]:
    """The space holding a node: a group folder, or its owner's private tree (one quota each)."""
    return ("group", entry.group_id) if entry.group_id is not None else ("user", entry.owner_id)


def _group_parent(org_id: int) -> int:
    """The id under which group folder names are sealed: a virtual folder per organisation
    (negative, so never a node's id)."""
    return -org_id


class _FolderCache:
    """Folders on the way of recent requests, so a GET of ``/a/b/file`` reads only ``file``.

    Keyed by (parent id, NFC name).  An entry is used while it is younger than
    ``TTL`` seconds and no change of names (move, rename, delete, copy over,
    group folder settings) was committed in this process since it was read: a
    change bumps the generation after its commit, and an entry read under an
    older generation is not used.  Changes made by another process (the CLI,
    another node) are seen within ``TTL``, like a changed password (see
    ``server.auth.RECHECK_SECONDS``).
    """

    TTL = 1.0
    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self.generation = 0
        self._entries: dict[tuple[int, str], tuple[Entry, int, float]] = {}
        self._lock = threading.Lock()

    def get(self, parent_id: int, lookup: str) -> Entry | None:
        found = self._entries.get((parent_id, lookup))
        if found is None:
            return None
        entry, generation, stored = found
        if generation != self.generation or time.monotonic() - stored > self.TTL:
            return None
        return entry

    def put(self, parent_id: int, lookup: str, entry: Entry, generation: int) -> None:
        """Keep ``entry``, read while the generation was ``generation`` (read before the query)."""
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[(parent_id, lookup)] = (entry, generation, time.monotonic())

    def changed(self) -> None:
        with self._lock:
            self.generation += 1


@dataclass(frozen=True, slots=True)
class VersionRef:
    """Where a file's content is and how to open it."""

    id: int
    blob_id: str
    org_key_id: int
    sealed_key: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """A snapshot of one node, with its name decrypted.  Never an ORM object."""

    id: int
    parent_id: int | None
    org_id: int
    owner_id: int
    is_dir: bool
    name: str
    size: int
    ctime: float
    mtime: float
    etag: str
    version: VersionRef | None = field(default=None, compare=False)
    #: The group folder holding the node (None: its owner's private tree), and what members may do there.
    group_id: int | None = None
    group_access: str | None = None

    @property
    def is_group_root(self) -> bool:
        return self.group_id is not None and self.parent_id is None


def _sealed_lookup(key: OrgKey, name: str, parent_id: int) -> bytes | None:
    """The sealed lookup form of ``name`` in folder ``parent_id``, or None for a name no stored one can
    equal: a lone surrogate, which no UTF-8 holds (a path comes in as UTF-8; a caller in process may pass
    anything, and validate_name refuses such names before anything is stored)."""
    try:
        return seal_lookup_name(key, name, parent_id)
    except UnicodeEncodeError:
        return None


class Tree:
    """Operations on the file tree of every user."""

    def __init__(self, settings: Settings, db: Database, keys: KeyRing, blobs: BaseBlobStore) -> None:
        self.settings = settings
        self.db = db
        self.keys = keys
        self.blobs = blobs
        self._current_keys: dict[int, tuple[int, OrgKey]] = {}  # org id -> (record id, key)
        self._keys_by_record: dict[int, OrgKey] = {}
        self._key_lock = threading.Lock()
        self._folders = _FolderCache()
        #: Called inside the transaction of a change with its event (the job outbox); None: nobody listens.
        self.outbox: Callable[[Tx, Event], None] | None = None

    # -- keys ------------------------------------------------------------------

    def _unwrap(self, record_id: int, key_id: bytes, sealed: bytes) -> OrgKey:
        key = self.keys.org_key(WrappedKey(key_id, sealed))
        with self._key_lock:
            self._keys_by_record[record_id] = key
        return key

    def org_key(self, c: Tx, org_id: int) -> tuple[int, OrgKey]:
        """The current key of an organisation: (record id, key)."""
        with self._key_lock:
            cached = self._current_keys.get(org_id)
        if cached is not None:
            return cached
        row = c.one(
            select(org_keys_t.c.id, org_keys_t.c.key_id, org_keys_t.c.sealed)
            .where(org_keys_t.c.org_id == org_id, org_keys_t.c.retired_at.is_(None))
            .order_by(org_keys_t.c.id.desc())
        )
        if row is None:
            raise NotFound(f"organisation {org_id} has no key")
        pair = (row.id, self._unwrap(row.id, row.key_id, row.sealed))
        with self._key_lock:
            self._current_keys[org_id] = pair
        return pair

    def _key_by_record(self, record_id: int) -> OrgKey:
        """An organisation key by record id; the database is read only on a cache miss."""
        with self._key_lock:
            cached = self._keys_by_record.get(record_id)
        if cached is not None:
            return cached
        with self.db.read() as c:
            row = c.one(select(org_keys_t.c.key_id, org_keys_t.c.sealed).where(org_keys_t.c.id == record_id))
        if row is None:
            raise NotFound(f"organisation key {record_id} is missing")
        return self._unwrap(record_id, row.key_id, row.sealed)

    # -- reading ---------------------------------------------------------------

    def _entry(self, c: Tx, row: Any, *, lookup_name: str | None = None) -> Entry:
        """The entry of a node row; ``lookup_name``: the NFC name the row was found by, if so."""
        if row.parent_id is None:
            name = ""
            if row.group_id is not None:  # a group folder: its name is kept with the group
                _, key = self.org_key(c, row.org_id)
                name = open_name(key, row.group_name, row.group_given_name, _group_parent(row.org_id))
        elif row.given_name is None and lookup_name is not None:
            # Found by the deterministic ciphertext of this very name: no need to decrypt it.
            name = lookup_name
        else:
            _, key = self.org_key(c, row.org_id)
            name = open_name(key, row.name, row.given_name, row.parent_id)
        ref = None
        if row.version_id is not None:
            ref = VersionRef(row.version_id, row.blob_id, row.org_key_id, row.sealed_key, row.version_size)
        return Entry(
            id=row.id,
            parent_id=row.parent_id,
            org_id=row.org_id,
            owner_id=row.owner_id,
            is_dir=row.kind == KIND_DIR,
            name=name,
            size=row.size,
            ctime=row.ctime,
            mtime=row.mtime,
            etag=row.etag,
            version=ref,
            group_id=row.group_id,
            group_access=row.group_access,
        )

    def _get(self, c: Tx, node_id: int) -> Entry | None:
        row = c.one(_BY_ID, node_id=node_id)
        return self._entry(c, row) if row is not None else None

    def _child(self, c: Tx, parent: Entry, name: str) -> Entry | None:
        return self._child_of(c, parent.id, parent.org_id, name)

    def _child_of(self, c: Tx, parent_id: int, org_id: int, name: str) -> Entry | None:
        """The member ``name`` of folder ``parent_id`` (of organisation ``org_id``), by NFC form."""
        _, key = self.org_key(c, org_id)
        lookup = lookup_form(name)
        sealed = _sealed_lookup(key, lookup, parent_id)
        if sealed is None:
            return None
        row = c.one(_BY_NAME, parent_id=parent_id, sealed=sealed)
        return self._entry(c, row, lookup_name=lookup) if row is not None else None

    def get(self, node_id: int) -> Entry:
        with self.db.read() as c:
            entry = self._get(c, node_id)
        if entry is None:
            raise NotFound(f"node {node_id} not found")
        return entry

    def get_many(self, node_ids: Iterable[int]) -> dict[int, Entry]:
        """The nodes of ``node_ids`` that exist, by id: one query per 500 ids, not one per node."""
        found: dict[int, Entry] = {}
        with self.db.read() as c:
            for chunk in _chunks(list(dict.fromkeys(node_ids))):
                for row in c.all(_ENTRY.where(nodes_t.c.id.in_(chunk))):
                    found[row.id] = self._entry(c, row)
        return found

    def names_held(self, folder_id: int, org_id: int, names: Iterable[str]) -> set[str]:
        """Which of ``names`` folder ``folder_id`` (of organisation ``org_id``) holds, in lookup (NFC) form:
        one query per 500 names, where :meth:`resolve_below` would take one per name."""
        held: set[str] = set()
        with self.db.read() as c:
            _, key = self.org_key(c, org_id)
            by_sealed: dict[bytes, str] = {}
            for lookup in map(lookup_form, names):
                sealed = _sealed_lookup(key, lookup, folder_id)
                if sealed is not None:
                    by_sealed[sealed] = lookup
            for chunk in _chunks(list(by_sealed)):
                rows = c.all(select(nodes_t.c.name).where(nodes_t.c.parent_id == folder_id, nodes_t.c.name.in_(chunk)))
                held.update(by_sealed[bytes(row.name)] for row in rows)
        return held

    def resolve_below(self, folder_id: int, org_id: int, names: Sequence[str]) -> list[Entry]:
        """The entries along ``names`` below folder ``folder_id`` (of organisation
        ``org_id``): one per name found, stopping at the first missing one (or at
        a file standing where a folder is needed).  Lookup is by NFC form; the
        folder itself is not read, which spares a query on every request."""
        chain: list[Entry] = []
        last = len(names) - 1
        with self.db.read() as c:
            for index, name in enumerate(names):
                # Folders on the way are taken from the folder cache; the last name is always read.
                lookup = lookup_form(name)
                entry = self._folders.get(folder_id, lookup) if index < last else None
                if entry is None:
                    generation = self._folders.generation
                    entry = self._child_of(c, folder_id, org_id, name)
                    if entry is not None and entry.is_dir:
                        self._folders.put(folder_id, lookup, entry, generation)
                if entry is None:
                    break
                chain.append(entry)
                if not entry.is_dir:
                    break
                folder_id, org_id = entry.id, entry.org_id
        return chain

    def resolve(self, root_id: int, names: Sequence[str]) -> Entry | None:
        """The node at ``names`` below ``root_id``, or None."""
        root = self.get(root_id)
        if not names:
            return root
        chain = self.resolve_below(root.id, root.org_id, names)
        return chain[-1] if len(chain) == len(names) else None

    def ancestry(self, node_id: int) -> list[Entry]:
        """The node and its ancestors, its tree's root (a user's root or a group folder) first."""
        found: list[Entry] = []
        with self.db.read() as c:
            next_id: int | None = node_id
            while next_id is not None:
                entry = self._get(c, next_id)
                if entry is None:
                    raise NotFound(f"node {next_id} not found")
                found.append(entry)
                next_id = entry.parent_id
        found.reverse()
        return found

    def children(self, folder: Entry) -> list[Entry]:
        with self.db.read() as c:
            rows = c.all(_CHILDREN, parent_id=folder.id)
            return [self._entry(c, row) for row in rows]

    def _is_ancestor(self, c: Tx, ancestor_id: int, node_id: int | None) -> bool:
        """True when ``ancestor_id`` is ``node_id`` or one of its ancestors."""
        while node_id is not None:
            if node_id == ancestor_id:
                return True
            node_id = c.scalar(_PARENT_OF, node_id=node_id)
        return False

    def open(self, entry: Entry) -> BlobReader | io.BytesIO:
        """A seekable reader of a file's plaintext (empty for a file with no content)."""
        if entry.is_dir:
            raise BadRequest("a folder has no content")
        if entry.version is None:
            return io.BytesIO(b"")
        v = entry.version
        key = self._key_by_record(v.org_key_id)
        blob_key_id = bytes.fromhex(v.blob_id)
        data_key = key.open_data_key(blob_key_id, v.sealed_key)
        source, size = self.blobs.open(v.blob_id)
        try:
            return BlobReader(data_key, blob_key_id, source, plaintext_size=v.size, ciphertext_size=size)
        except BaseException:
            source.close()
            raise

    def blocks(self, entry: Entry, size: int = 256 * 1024) -> Iterator[bytes]:
        """A file's plaintext in blocks of ``size``; opened when first iterated, closed when done or dropped."""
        with self.open(entry) as reader:
            while block := reader.read(size):
                yield block

    # -- quota -----------------------------------------------------------------

    def _quota(self, quota_bytes: int | None) -> int | None:
        quota = quota_bytes if quota_bytes is not None else self.settings.storage.default_quota_bytes
        return quota or None

    def usage(self, holder: Entry) -> tuple[int, int | None]:
        """(bytes used, quota in bytes or None when unlimited) of the space holding ``holder``:
        its owner's private tree, or its group folder."""
        with self.db.read() as c:
            return self._usage(c, holder)

    def _usage(self, c: Tx, holder: Entry) -> tuple[int, int | None]:
        if holder.group_id is not None:
            row = c.one(_GROUP_USAGE, group_id=holder.group_id)
            if row is None:
                raise NotFound(f"group folder {holder.group_id} not found")
            return row.used_bytes, row.quota_bytes or None
        row = c.one(_USAGE, user_id=holder.owner_id)
        if row is None:
            raise NotFound(f"user {holder.owner_id} not found")
        return row.used_bytes, self._quota(row.quota_bytes)

    @staticmethod
    def _space_name(holder: Entry) -> str:
        return f"group folder {holder.group_id}" if holder.group_id is not None else f"user {holder.owner_id}"

    def _allowance(self, c: Tx, holder: Entry, *, replacing: int) -> int | None:
        """Bytes the space of ``holder`` may still store (``replacing`` bytes being freed), None if unlimited."""
        used, quota = self._usage(c, holder)
        return None if quota is None else max(0, quota - used + replacing)

    def _charge(self, c: Tx, holder: Entry, delta: int) -> None:
        """Add ``delta`` bytes to the usage of the space of ``holder``; raise QuotaExceeded past its quota."""
        if delta > 0:
            allowance = self._allowance(c, holder, replacing=0)
            if allowance is not None and delta > allowance:
                raise QuotaExceeded(f"quota of {self._space_name(holder)} exceeded")
        if not delta:
            return
        if holder.group_id is not None:
            c.run(_GROUP_CHARGE, group_id=holder.group_id, delta=delta)
        else:
            c.run(_CHARGE, user_id=holder.owner_id, delta=delta)

    # -- creating ----------------------------------------------------------------

    def _folder(self, c: Tx, folder_id: int) -> Entry:
        """A folder that must exist (to write into it), else Conflict (409)."""
        folder = self._get(c, folder_id)
        if folder is None or not folder.is_dir:
            raise Conflict(f"folder {folder_id} does not exist")
        return folder

    def _insert(self, c: Tx, parent: Entry, name: str, *, kind: str, now: float, mtime: float | None = None) -> int:
        _, key = self.org_key(c, parent.org_id)
        return c.insert(
            _INSERT_NODE,
            p_org_id=parent.org_id,
            p_owner_id=parent.owner_id,
            p_group_id=parent.group_id,
            p_parent_id=parent.id,
            p_kind=kind,
            p_name=seal_lookup_name(key, name, parent.id),
            p_given_name=seal_given_name(key, name, parent.id),
            p_size=0,
            p_ctime=now,
            p_mtime=now if mtime is None else mtime,
            p_etag=_new_etag(),
        )

    def _touch(self, c: Tx, node_id: int, now: float) -> None:
        c.run(_TOUCH, node_id=node_id, p_mtime=now)

    def _create(self, parent: Entry, name: str, kind: str) -> Entry:
        validate_name(name)
        now = time.time()

        def work(c: Tx) -> Entry | None:
            folder = self._folder(c, parent.id)
            if self._child(c, folder, name) is not None:
                raise AlreadyExists(f"name taken in folder {folder.id}")
            node_id = self._insert(c, folder, name, kind=kind, now=now)
            self._touch(c, folder.id, now)
            return self._get(c, node_id)

        entry = self.db.grouped(work, durable=False)  # rows only
        assert entry is not None
        return entry

    def mkdir(self, parent: Entry, name: str) -> Entry:
        return self._create(parent, name, KIND_DIR)

    def create_empty_file(self, parent: Entry, name: str) -> Entry:
        """An empty file (what locking an unmapped URL creates, RFC 4918 §7.3)."""
        return self._create(parent, name, KIND_FILE)

    def upload(self, parent: Entry, name: str, *, expected_size: int | None = None, new_only: bool = False) -> Upload:
        """Start writing the content of ``parent/name`` (a new file or a new version).

        Nothing is visible until :meth:`Upload.finish`; ``expected_size``, when
        the client announced it, is checked against the quota now and against
        the bytes received at the end.  With ``new_only``, the content never
        replaces a file: when ``name`` is taken as the upload finishes, it is
        stored under a free name (``name (2).ext``), chosen in the transaction
        that stores it (two uploads of one name never overwrite each other).
        """
        validate_name(name)
        with self.db.read() as c:
            folder = self._folder(c, parent.id)
            record_id, key = self.org_key(c, folder.org_id)
            existing = None if new_only else self._child(c, folder, name)
            if existing is not None and existing.is_dir:
                raise Conflict(f"node {existing.id} is a folder")
            allowance = self._allowance(c, folder, replacing=existing.size if existing is not None else 0)
        if expected_size is not None and allowance is not None and expected_size > allowance:
            raise QuotaExceeded(f"quota of {self._space_name(folder)} exceeded")
        upload = Upload(self, parent.id, name, record_id, key, allowance=allowance, expected_size=expected_size)
        upload.new_only = new_only
        return upload

    def _finish_upload(self, upload: Upload, size: int) -> Entry:
        now = time.time()

        def work(c: Tx) -> tuple[Entry | None, str | None]:
            old_blob: str | None = None
            folder = self._folder(c, upload.parent_id)
            if upload.new_only:
                upload.name = free_name(upload.asked, lambda name: self._child(c, folder, name) is not None)
            existing = self._child(c, folder, upload.name)
            version_id = c.insert(
                _INSERT_VERSION,
                p_blob_id=upload.blob_id,
                p_org_key_id=upload.org_key_record,
                p_sealed_key=upload.sealed_key,
                p_size=size,
                p_created_at=now,
            )
            if existing is None:
                node_id = self._insert(c, folder, upload.name, kind=KIND_FILE, now=now)
                self._touch(c, folder.id, now)
                old_size = 0
            elif existing.is_dir:
                raise Conflict(f"node {existing.id} is a folder")
            else:
                node_id, old_size = existing.id, existing.size
            c.run(
                _SET_VERSION,
                node_id=node_id,
                p_version_id=version_id,
                p_size=size,
                p_mtime=now,
                p_etag=_new_etag(),
            )
            if existing is not None and existing.version is not None:
                old_blob = existing.version.blob_id
                c.run(_DELETE_VERSION, version_id=existing.version.id)
            self._charge(c, folder, size - old_size)
            if self.outbox is not None:
                self.outbox(
                    c,
                    FileWritten(
                        org_id=folder.org_id,
                        node_id=node_id,
                        version_id=version_id,
                        parent_id=folder.id,
                        size=size,
                        group_id=folder.group_id,
                        created=existing is None,
                    ),
                )
            return self._get(c, node_id), old_blob

        entry, old_blob = self.db.grouped(work)
        if old_blob is not None:
            self.blobs.delete(old_blob)
        assert entry is not None
        return entry

    # -- changing ----------------------------------------------------------------

    def touch(self, entry: Entry, mtime: float) -> Entry:
        """Set a node's modification time (e.g. Windows' Win32LastModifiedTime)."""

        def work(c: Tx) -> Entry | None:
            self._touch(c, entry.id, mtime)
            return self._get(c, entry.id)

        updated = self.db.grouped(work, durable=False)  # a time only
        if updated is None:
            raise NotFound(f"node {entry.id} not found")
        return updated

    def move(self, entry: Entry, new_parent: Entry, new_name: str, *, overwrite: bool) -> bool:
        """Move or rename a node; rows only, never bytes.  Return True if a node was replaced."""
        validate_name(new_name)
        now = time.time()

        def work(c: Tx) -> tuple[bool, list[str]]:
            replaced_blobs: list[str] = []
            node = self._get(c, entry.id)
            if node is None or node.parent_id is None:
                raise NotFound(f"node {entry.id} not found")
            folder = self._folder(c, new_parent.id)
            if node.is_dir and self._is_ancestor(c, node.id, folder.id):
                raise Conflict(f"cannot move node {node.id} below itself")
            target = self._child(c, folder, new_name)
            replaced = target is not None and target.id != node.id
            if target is not None and target.id != node.id:
                if not overwrite:
                    raise AlreadyExists(f"name taken in folder {folder.id}")
                if self._is_ancestor(c, target.id, node.id):
                    raise Conflict(f"cannot replace node {target.id}, an ancestor of node {node.id}")
                replaced_blobs = self._delete_subtree(c, target)
            if _space(node) != _space(folder):
                self._change_space(c, node, folder)
            _, key = self.org_key(c, folder.org_id)
            c.run(
                _RENAME,
                node_id=node.id,
                p_parent_id=folder.id,
                p_name=seal_lookup_name(key, new_name, folder.id),
                p_given_name=seal_given_name(key, new_name, folder.id),
            )
            self._touch(c, folder.id, now)
            self._touch(c, node.parent_id, now)
            if self.outbox is not None:
                self.outbox(
                    c,
                    NodeMoved(
                        org_id=node.org_id, node_id=node.id, old_parent_id=node.parent_id, new_parent_id=folder.id
                    ),
                )
            return replaced, replaced_blobs

        try:
            replaced, replaced_blobs = self.db.grouped(work, durable=False)  # unless it replaces content
        finally:
            self._folders.changed()
        for blob_id in replaced_blobs:
            self.blobs.delete(blob_id)
        return replaced

    def _change_space(self, c: Tx, node: Entry, folder: Entry) -> None:
        """Move the usage of a subtree to the space of ``folder`` and make it that space's
        (a private tree's owner, or a group folder); contents keep their keys: one organisation."""
        rows = c.all(_SUBTREE, node_id=node.id)
        size = sum(r.size for r in rows)
        self._charge(c, node, -size)
        self._charge(c, folder, size)  # QuotaExceeded rolls the whole move back
        ids = [r.id for r in rows]
        for chunk in _chunks(ids):
            c.run(
                update(nodes_t)
                .where(nodes_t.c.id.in_(chunk))
                .values(group_id=folder.group_id, owner_id=folder.owner_id)
            )

    def delete(self, entry: Entry) -> None:
        """Delete a node and everything below it."""

        def work(c: Tx) -> list[str]:
            node = self._get(c, entry.id)
            if node is None:
                raise NotFound(f"node {entry.id} not found")
            if node.parent_id is None:
                raise Conflict("a root folder cannot be deleted")
            self._touch(c, node.parent_id, time.time())
            if self.outbox is not None:
                self.outbox(
                    c, FileDeleted(org_id=node.org_id, node_id=node.id, parent_id=node.parent_id, is_folder=node.is_dir)
                )
            return self._delete_subtree(c, node)

        self._remove(work)

    def _remove(self, work: Callable[[Tx], list[str]]) -> None:
        """Commit a removal of nodes (durable when it frees blobs, see _delete_subtree), then
        forget the cached folders and delete the freed blobs."""
        try:
            blob_ids = self.db.grouped(work, durable=False)
        finally:
            self._folders.changed()
        for blob_id in blob_ids:
            self.blobs.delete(blob_id)

    def _delete_subtree(self, c: Tx, node: Entry, *, charge: bool = True) -> list[str]:
        """Delete the rows of a subtree and credit the owner; return the blob ids to
        delete once the transaction has committed, durably: a power cut must not
        bring back rows whose blobs are gone."""
        if not node.is_dir or c.scalar(_ANY_CHILD, node_id=node.id) is None:
            # A file or an empty folder, the common case: a few prepared statements.
            c.run(_DELETE_NODE_PROPERTIES, node_id=node.id)
            c.run(_DELETE_NODE, node_id=node.id)
            if node.version is not None:
                c.run(_DELETE_VERSION, version_id=node.version.id)
            if charge:
                self._charge(c, node, -node.size)
            if node.version is None:
                return []
            c.require_durable()
            return [node.version.blob_id]
        rows = sorted(c.all(_SUBTREE, node_id=node.id), key=lambda r: r.depth, reverse=True)  # children first
        ids = [r.id for r in rows]
        version_ids = [r.version_id for r in rows if r.version_id is not None]
        for chunk in _chunks(ids):
            c.run(delete(dead_properties_t).where(dead_properties_t.c.node_id.in_(chunk)))
        for chunk in _chunks(ids):
            c.run(delete(nodes_t).where(nodes_t.c.id.in_(chunk)))
        for chunk in _chunks(version_ids):
            c.run(delete(versions_t).where(versions_t.c.id.in_(chunk)))
        if charge:
            self._charge(c, node, -sum(r.size for r in rows))
        blob_ids = [r.blob_id for r in rows if r.blob_id is not None]
        if blob_ids:
            c.require_durable()
        return blob_ids

    def copy(self, entry: Entry, new_parent: Entry, new_name: str, *, overwrite: bool, recursive: bool) -> bool:
        """Copy a node (a folder with its members when ``recursive``).

        File contents are re-encrypted into new blobs, streamed segment by
        segment.  Return True if a node was replaced.
        """
        validate_name(new_name)
        sources = self._copy_sources(entry, recursive=recursive)
        total = sum(e.size for e, _ in sources if not e.is_dir)
        with self.db.read() as c:
            folder = self._folder(c, new_parent.id)
            record_id, key = self.org_key(c, folder.org_id)
            target = self._child(c, folder, new_name)
            replacing = target.size if target is not None and not target.is_dir else 0
            allowance = self._allowance(c, folder, replacing=replacing)
        if allowance is not None and total > allowance:
            raise QuotaExceeded(f"quota of {self._space_name(folder)} exceeded")

        new_blobs: dict[int, tuple[str, bytes]] = {}  # source id -> (blob id, sealed data key)
        try:
            for source, _ in sources:
                if source.version is not None:
                    new_blobs[source.id] = self._copy_blob(source, key)
            replaced_blobs, replaced = self._commit_copy(
                sources, new_parent, new_name, new_blobs, record_id, overwrite=overwrite
            )
        except BaseException:
            for blob_id, _ in new_blobs.values():
                self.blobs.delete(blob_id)
            raise
        for blob_id in replaced_blobs:
            self.blobs.delete(blob_id)
        return replaced

    def _copy_sources(self, entry: Entry, *, recursive: bool) -> list[tuple[Entry, dict[str, bytes]]]:
        """The entries to copy, parents before children, with their dead properties."""
        entries: list[Entry] = []
        pending = deque([entry])
        while pending:
            current = pending.popleft()
            entries.append(current)
            if current.is_dir and recursive:
                pending.extend(self.children(current))
        props = self.properties(e.id for e in entries)
        return [(e, props.get(e.id, {})) for e in entries]

    def _copy_blob(self, source: Entry, key: OrgKey) -> tuple[str, bytes]:
        blob_id = uuid.uuid4().hex
        key_id = bytes.fromhex(blob_id)
        data_key, sealed = key.new_data_key(key_id)
        with self.open(source) as reader, self.blobs.begin(blob_id) as upload:
            writer = BlobWriter(data_key, key_id, upload.write)
            while chunk := reader.read(_COPY_BLOCK):
                writer.write(chunk)
            writer.close()
            upload.commit()
        return blob_id, sealed

    def _commit_copy(
        self,
        sources: list[tuple[Entry, dict[str, bytes]]],
        new_parent: Entry,
        new_name: str,
        new_blobs: dict[int, tuple[str, bytes]],
        record_id: int,
        *,
        overwrite: bool,
    ) -> tuple[list[str], bool]:
        now = time.time()
        root_source = sources[0][0]
        with self.db.write() as c:
            folder = self._folder(c, new_parent.id)
            if root_source.is_dir and self._is_ancestor(c, root_source.id, folder.id):
                raise Conflict(f"cannot copy node {root_source.id} below itself")
            _, key = self.org_key(c, folder.org_id)
            target = self._child(c, folder, new_name)
            replaced_blobs: list[str] = []
            if target is not None:
                if not overwrite:
                    raise AlreadyExists(f"name taken in folder {folder.id}")
                if self._is_ancestor(c, target.id, root_source.id):  # replacing it would delete the source
                    raise Conflict(f"cannot replace node {target.id}, an ancestor of node {root_source.id}")
                replaced_blobs = self._delete_subtree(c, target)
            copies: dict[int, Entry] = {}  # source id -> its copy's parent-to-be
            added = 0
            for source, props in sources:
                if source.id == root_source.id:
                    parent, name = folder, new_name
                else:
                    assert source.parent_id is not None
                    parent, name = copies[source.parent_id], source.name
                kind = KIND_DIR if source.is_dir else KIND_FILE
                node_id = self._insert(c, parent, name, kind=kind, now=now, mtime=source.mtime)
                if source.id in new_blobs:
                    blob_id, sealed = new_blobs[source.id]
                    version_id = c.insert(
                        _INSERT_VERSION,
                        p_blob_id=blob_id,
                        p_org_key_id=record_id,
                        p_sealed_key=sealed,
                        p_size=source.size,
                        p_created_at=now,
                    )
                    c.run(
                        _SET_VERSION,
                        node_id=node_id,
                        p_version_id=version_id,
                        p_size=source.size,
                        p_mtime=source.mtime,
                        p_etag=_new_etag(),
                    )
                    added += source.size
                for prop_name, value in props.items():
                    c.run(
                        _INSERT_PROPERTY,
                        p_node_id=node_id,
                        p_name=prop_name,
                        p_value=seal_property(key, node_id, prop_name, value),
                    )
                if source.is_dir:
                    copies[source.id] = Entry(
                        id=node_id,
                        parent_id=parent.id,
                        org_id=parent.org_id,
                        owner_id=parent.owner_id,
                        is_dir=True,
                        name=name,
                        size=0,
                        ctime=now,
                        mtime=source.mtime,
                        etag="",
                        group_id=parent.group_id,
                        group_access=parent.group_access,
                    )
            self._touch(c, folder.id, now)
            self._charge(c, folder, added)
        if target is not None:
            self._folders.changed()  # a folder may have been replaced
        return replaced_blobs, target is not None

    # -- group folders ------------------------------------------------------------------

    def create_group_folder(
        self, org_id: int, name: str, *, owner_id: int, member_access: str = "rw", quota_bytes: int | None = None
    ) -> Entry:
        """A new group folder of organisation ``org_id``; returns its root (named ``name``).

        ``owner_id`` is the admin creating it (recorded on its nodes; the group
        folder, not the admin, holds them).  ``member_access``: "rw" or "ro".
        """
        validate_name(name)
        if member_access not in GROUP_ACCESS:
            raise BadRequest('member access is "rw" (read and write) or "ro" (read only)')
        if quota_bytes is not None and quota_bytes < 0:
            raise BadRequest("a quota is a number of bytes, 0 for unlimited")
        now = time.time()

        def work(c: Tx) -> Entry | None:
            _, key = self.org_key(c, org_id)
            sealed = seal_lookup_name(key, name, _group_parent(org_id))
            if c.scalar(_GROUP_BY_NAME, org_id=org_id, sealed=sealed) is not None:
                raise AlreadyExists(f"organisation {org_id} already has a group folder of that name")
            root_id = c.insert(
                _INSERT_NODE,
                p_org_id=org_id,
                p_owner_id=owner_id,
                p_group_id=None,
                p_parent_id=None,
                p_kind=KIND_DIR,
                p_name=b"",
                p_given_name=None,
                p_size=0,
                p_ctime=now,
                p_mtime=now,
                p_etag=_new_etag(),
            )
            group_id = c.insert(
                _INSERT_GROUP,
                p_org_id=org_id,
                p_root_id=root_id,
                p_name=sealed,
                p_given_name=seal_given_name(key, name, _group_parent(org_id)),
                p_member_access=member_access,
                p_quota_bytes=quota_bytes or None,
                p_used_bytes=0,
                p_created_at=now,
            )
            c.run(update(nodes_t).where(nodes_t.c.id == root_id).values(group_id=group_id))
            return self._get(c, root_id)

        entry = self.db.grouped(work)
        assert entry is not None
        return entry

    def group_folders(self, org_id: int) -> list[Entry]:
        """The roots of an organisation's group folders, named."""
        with self.db.read() as c:
            rows = c.all(_GROUP_ROOTS, org_id=org_id)
            return sorted((self._entry(c, row) for row in rows), key=lambda e: e.name)

    def group_folder_named(self, org_id: int, name: str) -> Entry | None:
        """The root of the organisation's group folder called ``name`` (NFC lookup), or None."""
        with self.db.read() as c:
            _, key = self.org_key(c, org_id)
            sealed = _sealed_lookup(key, lookup_form(name), _group_parent(org_id))
            root_id = c.scalar(_GROUP_BY_NAME, org_id=org_id, sealed=sealed) if sealed is not None else None
            return self._get(c, root_id) if root_id is not None else None

    def set_group_folder(
        self, group_root: Entry, *, member_access: str | None = None, quota_bytes: int | None = None
    ) -> Entry:
        """Change what members may do in a group folder, or its quota (0: unlimited)."""
        values: dict[str, Any] = {}
        if member_access is not None:
            if member_access not in GROUP_ACCESS:
                raise BadRequest('member access is "rw" (read and write) or "ro" (read only)')
            values["member_access"] = member_access
        if quota_bytes is not None:
            if quota_bytes < 0:
                raise BadRequest("a quota is a number of bytes, 0 for unlimited")
            values["quota_bytes"] = quota_bytes or None
        if group_root.group_id is None or not group_root.is_group_root:
            raise NotFound("not a group folder")

        def work(c: Tx) -> Entry | None:
            if values:
                c.run(update(group_folders_t).where(group_folders_t.c.id == group_root.group_id).values(**values))
            return self._get(c, group_root.id)

        try:
            entry = self.db.grouped(work, durable=False)
        finally:
            self._folders.changed()  # cached entries carry the access mode
        if entry is None:
            raise NotFound("group folder not found")
        return entry

    def delete_group_folder(self, group_root: Entry) -> None:
        """Delete a group folder and everything in it."""
        if group_root.group_id is None or not group_root.is_group_root:
            raise NotFound("not a group folder")
        group_id = group_root.group_id

        def work(c: Tx) -> list[str]:
            root = self._get(c, group_root.id)
            if root is None:
                raise NotFound("group folder not found")
            ids = [r.id for r in c.all(_SUBTREE, node_id=root.id)]
            # Nodes and group refer to each other: unlink the nodes first.
            for chunk in _chunks(ids):
                c.run(update(nodes_t).where(nodes_t.c.id.in_(chunk)).values(group_id=None))
            c.run(delete(group_folders_t).where(group_folders_t.c.id == group_id))
            return self._delete_subtree(c, root, charge=False)

        self._remove(work)

    # -- dead properties -------------------------------------------------------------

    def properties(self, node_ids: Iterable[int]) -> dict[int, dict[str, bytes]]:
        """Decrypted dead properties of many nodes: one query per 500 nodes, not one per node."""
        ids = list(node_ids)
        out: dict[int, dict[str, bytes]] = {}
        if not ids:
            return out
        with self.db.read() as c:
            for chunk in _chunks(ids):
                rows = c.all(
                    select(
                        dead_properties_t.c.node_id,
                        dead_properties_t.c.name,
                        dead_properties_t.c.value,
                        nodes_t.c.org_id,
                    )
                    .join(nodes_t, nodes_t.c.id == dead_properties_t.c.node_id)
                    .where(dead_properties_t.c.node_id.in_(chunk))
                )
                for row in rows:
                    _, key = self.org_key(c, row.org_id)
                    out.setdefault(row.node_id, {})[row.name] = open_property(key, row.node_id, row.name, row.value)
        return out

    def set_properties(self, entry: Entry, changes: Sequence[tuple[str, bytes | None]]) -> None:
        """Set (value) or remove (None) dead properties of a node, in one transaction."""

        def work(c: Tx) -> None:
            if self._get(c, entry.id) is None:
                raise NotFound(f"node {entry.id} not found")
            _, key = self.org_key(c, entry.org_id)
            for name, value in changes:
                c.run(_DELETE_PROPERTY, node_id=entry.id, prop_name=name)
                if value is not None:
                    c.run(
                        _INSERT_PROPERTY,
                        p_node_id=entry.id,
                        p_name=name,
                        p_value=seal_property(key, entry.id, name, value),
                    )

        self.db.grouped(work, durable=False)  # properties are metadata


class Upload:
    """The content of one file being written: encrypted on the fly into a new blob.

    Plaintext goes in through :meth:`write`; nothing of it reaches the disk
    unencrypted and nothing is buffered beyond one segment.  :meth:`finish`
    makes the blob durable, then commits the rows; :meth:`abort` (or an
    exception in ``finish``) discards everything.
    """

    def __init__(
        self,
        tree: Tree,
        parent_id: int,
        name: str,
        org_key_record: int,
        key: OrgKey,
        *,
        allowance: int | None,
        expected_size: int | None,
    ) -> None:
        self.tree = tree
        self.parent_id = parent_id
        self.asked = name
        self.name = name  # as stored, once finished (a new-only upload may get a free name)
        self.new_only = False
        self.org_key_record = org_key_record
        self.blob_id = uuid.uuid4().hex
        key_id = bytes.fromhex(self.blob_id)
        data_key, self.sealed_key = key.new_data_key(key_id)
        self._allowance = allowance
        self._expected = expected_size
        self._blob: BlobUpload | None = tree.blobs.begin(self.blob_id)
        self._writer = BlobWriter(data_key, key_id, self._blob.write)

    @property
    def size(self) -> int:
        return self._writer.plaintext_size

    def write(self, data: bytes) -> None:
        if self._blob is None:
            raise BadRequest("upload already finished")
        if self._expected is not None and self.size + len(data) > self._expected:
            self.abort()
            raise BadRequest("more data than announced")
        if self._allowance is not None and self.size + len(data) > self._allowance:
            self.abort()
            raise QuotaExceeded("quota exceeded during upload")
        try:
            self._writer.write(data)
        except BaseException:
            self.abort()
            raise

    def finish(self) -> Entry:
        """Store the content durably, then make it the file's current version."""
        if self._blob is None:
            raise BadRequest("upload already finished")
        blob, self._blob = self._blob, None
        try:
            size = self._writer.close()
            if self._expected is not None and size != self._expected:
                raise BadRequest("less data than announced")
            blob.commit()
            return self.tree._finish_upload(self, size)
        except BaseException:
            blob.abort()
            self.tree.blobs.delete(self.blob_id)
            raise

    def abort(self) -> None:
        if self._blob is not None:
            self._blob.abort()
            self._blob = None
