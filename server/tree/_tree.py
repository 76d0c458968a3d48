"""The tree service: files and folders kept in the database, contents in blobs.

Every operation is one short database transaction (see :mod:`server.db`),
preceded, for operations that carry bytes, by the blob work done *outside*
any transaction: an upload or a copy first makes its blobs durable, then
commits the rows that point to them, then deletes the blobs the commit made
unreachable.  A crash between those steps leaves either the old or the new
state plus orphan blobs, which ``meddav fsck`` removes.

Callers are expected to have asked :mod:`server.policy` first: the tree
enforces the shape of the tree (names, cycles, quotas), not who may act.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Select, delete, literal, select, update
from sqlalchemy.orm import Session

from server.crypto import (
    BlobReader,
    BlobWriter,
    KeyRing,
    OrgKey,
    WrappedKey,
    open_name,
    open_property,
    seal_given_name,
    seal_lookup_name,
    seal_property,
)
from server.db import Database
from server.db.models import KIND_DIR, KIND_FILE, DeadProperty, Node, OrgKeyRecord, User, Version
from server.errors import AlreadyExists, BadRequest, Conflict, NotFound, QuotaExceeded
from server.storage import BaseBlobStore, BlobUpload
from server.tree._names import validate_name

if TYPE_CHECKING:
    from server.config import Settings

__all__ = ["Entry", "Tree", "Upload", "VersionRef"]

_CHUNK = 500  # ids per IN (...) clause


def _chunks(items: Sequence[int], size: int = _CHUNK) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _new_etag() -> str:
    return uuid.uuid4().hex


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


class Tree:
    """Operations on the file tree of every user."""

    def __init__(self, settings: Settings, db: Database, keys: KeyRing, blobs: BaseBlobStore) -> None:
        self.settings = settings
        self.db = db
        self.keys = keys
        self.blobs = blobs
        self._org_keys: dict[int, tuple[int, OrgKey]] = {}  # org id -> (record id, key)
        self._keys_by_record: dict[int, OrgKey] = {}
        self._key_lock = threading.Lock()

    # -- keys ------------------------------------------------------------------

    def _load_key(self, session: Session, record: OrgKeyRecord) -> OrgKey:
        key = self.keys.org_key(WrappedKey(record.key_id, record.sealed))
        with self._key_lock:
            self._keys_by_record[record.id] = key
        return key

    def org_key(self, session: Session, org_id: int) -> tuple[int, OrgKey]:
        """The current key of an organisation: (record id, key)."""
        with self._key_lock:
            cached = self._org_keys.get(org_id)
        if cached is not None:
            return cached
        record = session.scalars(
            select(OrgKeyRecord)
            .where(OrgKeyRecord.org_id == org_id, OrgKeyRecord.retired_at.is_(None))
            .order_by(OrgKeyRecord.id.desc())
        ).first()
        if record is None:
            raise NotFound(f"organisation {org_id} has no key")
        pair = (record.id, self._load_key(session, record))
        with self._key_lock:
            self._org_keys[org_id] = pair
        return pair

    def _key_by_record(self, session: Session, record_id: int) -> OrgKey:
        with self._key_lock:
            cached = self._keys_by_record.get(record_id)
        if cached is not None:
            return cached
        record = session.get(OrgKeyRecord, record_id)
        if record is None:
            raise NotFound(f"organisation key {record_id} is missing")
        return self._load_key(session, record)

    # -- reading ---------------------------------------------------------------

    def _entry(self, session: Session, node: Node, version: Version | None) -> Entry:
        _, key = self.org_key(session, node.org_id)
        parent = node.parent_id if node.parent_id is not None else 0
        name = open_name(key, node.name, node.given_name, parent) if node.parent_id is not None else ""
        ref = None
        if version is not None:
            ref = VersionRef(version.id, version.blob_id, version.org_key_id, version.sealed_key, version.size)
        return Entry(
            id=node.id,
            parent_id=node.parent_id,
            org_id=node.org_id,
            owner_id=node.owner_id,
            is_dir=node.kind == KIND_DIR,
            name=name,
            size=node.size,
            ctime=node.ctime,
            mtime=node.mtime,
            etag=node.etag,
            version=ref,
        )

    def _select_nodes(self) -> Select[Node, Version]:
        return select(Node, Version).outerjoin(Version, Node.version_id == Version.id)

    def get(self, node_id: int) -> Entry:
        with self.db.read() as s:
            row = s.execute(self._select_nodes().where(Node.id == node_id)).first()
            if row is None:
                raise NotFound(f"node {node_id} not found")
            return self._entry(s, row[0], row[1])

    def resolve(self, root_id: int, names: Sequence[str]) -> Entry | None:
        """The node at ``names`` below ``root_id``, or None.  Lookup is by NFC form."""
        with self.db.read() as s:
            row = s.execute(self._select_nodes().where(Node.id == root_id)).first()
            if row is None:
                return None
            node, version = row
            for name in names:
                if node.kind != KIND_DIR:
                    return None
                _, key = self.org_key(s, node.org_id)
                row = s.execute(
                    self._select_nodes().where(
                        Node.parent_id == node.id, Node.name == seal_lookup_name(key, name, node.id)
                    )
                ).first()
                if row is None:
                    return None
                node, version = row
            return self._entry(s, node, version)

    def children(self, folder: Entry) -> list[Entry]:
        with self.db.read() as s:
            rows = s.execute(self._select_nodes().where(Node.parent_id == folder.id)).all()
            return [self._entry(s, node, version) for node, version in rows]

    def is_ancestor(self, ancestor_id: int, node_id: int) -> bool:
        """True when ``ancestor_id`` is ``node_id`` or one of its ancestors."""
        with self.db.read() as s:
            return self._is_ancestor(s, ancestor_id, node_id)

    def _is_ancestor(self, s: Session, ancestor_id: int, node_id: int | None) -> bool:
        while node_id is not None:
            if node_id == ancestor_id:
                return True
            node_id = s.scalar(select(Node.parent_id).where(Node.id == node_id))
        return False

    def open(self, entry: Entry) -> BlobReader | io.BytesIO:
        """A seekable reader of a file's plaintext (empty for a file with no content)."""
        if entry.is_dir:
            raise BadRequest("a folder has no content")
        if entry.version is None:
            return io.BytesIO(b"")
        v = entry.version
        with self.db.read() as s:
            key = self._key_by_record(s, v.org_key_id)
        blob_key_id = bytes.fromhex(v.blob_id)
        data_key = key.open_data_key(blob_key_id, v.sealed_key)
        source, size = self.blobs.open(v.blob_id)
        try:
            return BlobReader(data_key, blob_key_id, source, plaintext_size=v.size, ciphertext_size=size)
        except BaseException:
            source.close()
            raise

    # -- quota -----------------------------------------------------------------

    def usage(self, owner_id: int) -> tuple[int, int | None]:
        """(bytes used, quota in bytes or None when unlimited) of a user."""
        with self.db.read() as s:
            user = s.get(User, owner_id)
            if user is None:
                raise NotFound(f"user {owner_id} not found")
            return user.used_bytes, self._quota_of(user)

    def _quota_of(self, user: User) -> int | None:
        quota = user.quota_bytes if user.quota_bytes is not None else self.settings.storage.default_quota_bytes
        return quota or None

    def _charge(self, s: Session, owner_id: int, delta: int) -> None:
        """Add ``delta`` bytes to the owner's usage; raise QuotaExceeded past the quota."""
        user = s.get(User, owner_id)
        if user is None:
            raise NotFound(f"user {owner_id} not found")
        quota = self._quota_of(user)
        if delta > 0 and quota is not None and user.used_bytes + delta > quota:
            raise QuotaExceeded(f"quota of user {owner_id} exceeded")
        s.execute(update(User).where(User.id == owner_id).values(used_bytes=User.used_bytes + delta))

    def allowance(self, owner_id: int, *, replacing: int = 0) -> int | None:
        """Bytes the owner may still store (``replacing`` bytes being freed), None if unlimited."""
        used, quota = self.usage(owner_id)
        if quota is None:
            return None
        return max(0, quota - used + replacing)

    # -- creating ----------------------------------------------------------------

    def _parent_for_insert(self, s: Session, parent_id: int) -> Node:
        parent = s.get(Node, parent_id)
        if parent is None or parent.kind != KIND_DIR:
            raise Conflict(f"folder {parent_id} does not exist")
        return parent

    def _existing(self, s: Session, parent: Node, key: OrgKey, name: str) -> Node | None:
        return s.scalars(
            select(Node).where(Node.parent_id == parent.id, Node.name == seal_lookup_name(key, name, parent.id))
        ).first()

    def _insert(self, s: Session, parent: Node, key: OrgKey, name: str, *, kind: str, now: float) -> Node:
        node = Node(
            org_id=parent.org_id,
            owner_id=parent.owner_id,
            parent_id=parent.id,
            kind=kind,
            name=seal_lookup_name(key, name, parent.id),
            given_name=seal_given_name(key, name, parent.id),
            size=0,
            ctime=now,
            mtime=now,
            etag=_new_etag(),
        )
        s.add(node)
        s.flush()
        return node

    def mkdir(self, parent: Entry, name: str) -> Entry:
        validate_name(name)
        now = time.time()
        with self.db.write() as s:
            folder = self._parent_for_insert(s, parent.id)
            _, key = self.org_key(s, folder.org_id)
            if self._existing(s, folder, key, name) is not None:
                raise AlreadyExists(f"name taken in folder {folder.id}")
            node = self._insert(s, folder, key, name, kind=KIND_DIR, now=now)
            folder.mtime = now
            return self._entry(s, node, None)

    def create_empty_file(self, parent: Entry, name: str) -> Entry:
        """An empty file (what locking an unmapped URL creates, RFC 4918 §7.3)."""
        validate_name(name)
        now = time.time()
        with self.db.write() as s:
            folder = self._parent_for_insert(s, parent.id)
            _, key = self.org_key(s, folder.org_id)
            if self._existing(s, folder, key, name) is not None:
                raise AlreadyExists(f"name taken in folder {folder.id}")
            node = self._insert(s, folder, key, name, kind=KIND_FILE, now=now)
            folder.mtime = now
            return self._entry(s, node, None)

    def upload(self, parent: Entry, name: str, *, expected_size: int | None = None) -> Upload:
        """Start writing the content of ``parent/name`` (a new file or a new version).

        Nothing is visible until :meth:`Upload.finish`; ``expected_size``, when
        the client announced it, is checked against the quota now and against
        the bytes received at the end.
        """
        validate_name(name)
        with self.db.read() as s:
            folder = s.get(Node, parent.id)
            if folder is None or folder.kind != KIND_DIR:
                raise Conflict(f"folder {parent.id} does not exist")
            record_id, key = self.org_key(s, folder.org_id)
            existing = self._existing(s, folder, key, name)
            if existing is not None and existing.kind == KIND_DIR:
                raise Conflict(f"node {existing.id} is a folder")
            replacing = existing.size if existing is not None else 0
            owner_id = folder.owner_id
        allowance = self.allowance(owner_id, replacing=replacing)
        if expected_size is not None and allowance is not None and expected_size > allowance:
            raise QuotaExceeded(f"quota of user {owner_id} exceeded")
        return Upload(self, parent.id, name, record_id, key, allowance=allowance, expected_size=expected_size)

    def _finish_upload(self, upload: Upload, size: int) -> Entry:
        now = time.time()
        old_blob: str | None = None
        with self.db.write() as s:
            folder = self._parent_for_insert(s, upload.parent_id)
            _, key = self.org_key(s, folder.org_id)
            node = self._existing(s, folder, key, upload.name)
            version = Version(
                blob_id=upload.blob_id,
                org_key_id=upload.org_key_record,
                sealed_key=upload.sealed_key,
                size=size,
                created_at=now,
            )
            s.add(version)
            s.flush()
            old_size = 0
            if node is None:
                node = self._insert(s, folder, key, upload.name, kind=KIND_FILE, now=now)
                folder.mtime = now
            elif node.kind == KIND_DIR:
                raise Conflict(f"node {node.id} is a folder")
            else:
                old_size = node.size
                if node.version_id is not None:
                    old = s.get(Version, node.version_id)
                    assert old is not None
                    old_blob = old.blob_id
                    node.version_id = None
                    s.flush()
                    s.delete(old)
            node.version_id = version.id
            node.size = size
            node.mtime = now
            node.etag = _new_etag()
            self._charge(s, folder.owner_id, size - old_size)
            s.flush()
            entry = self._entry(s, node, version)
        if old_blob is not None:
            self.blobs.delete(old_blob)
        return entry

    # -- changing ----------------------------------------------------------------

    def touch(self, entry: Entry, mtime: float) -> Entry:
        """Set a node's modification time (Win32LastModifiedTime, X-OC-Mtime)."""
        with self.db.write() as s:
            node = s.get(Node, entry.id)
            if node is None:
                raise NotFound(f"node {entry.id} not found")
            node.mtime = mtime
            version = s.get(Version, node.version_id) if node.version_id is not None else None
            return self._entry(s, node, version)

    def move(self, entry: Entry, new_parent: Entry, new_name: str, *, overwrite: bool) -> bool:
        """Move or rename a node; rows only, never bytes.  Return True if a node was replaced."""
        validate_name(new_name)
        replaced_blobs: list[str] = []
        with self.db.write() as s:
            node = s.get(Node, entry.id)
            if node is None or node.parent_id is None:
                raise NotFound(f"node {entry.id} not found")
            folder = self._parent_for_insert(s, new_parent.id)
            if node.kind == KIND_DIR and self._is_ancestor(s, node.id, folder.id):
                raise Conflict(f"cannot move node {node.id} below itself")
            _, key = self.org_key(s, folder.org_id)
            target = self._existing(s, folder, key, new_name)
            replaced = False
            if target is not None and target.id != node.id:
                if not overwrite:
                    raise AlreadyExists(f"name taken in folder {folder.id}")
                if self._is_ancestor(s, target.id, node.id):
                    raise Conflict(f"cannot replace node {target.id}, an ancestor of node {node.id}")
                replaced_blobs = self._delete_subtree(s, target)
                replaced = True
            old_parent = s.get(Node, node.parent_id)
            now = time.time()
            node.parent_id = folder.id
            node.name = seal_lookup_name(key, new_name, folder.id)
            node.given_name = seal_given_name(key, new_name, folder.id)
            folder.mtime = now
            if old_parent is not None:
                old_parent.mtime = now
            s.flush()
        for blob_id in replaced_blobs:
            self.blobs.delete(blob_id)
        return replaced

    def delete(self, entry: Entry) -> None:
        """Delete a node and everything below it."""
        with self.db.write() as s:
            node = s.get(Node, entry.id)
            if node is None:
                raise NotFound(f"node {entry.id} not found")
            if node.parent_id is None:
                raise Conflict("a root folder cannot be deleted")
            parent = s.get(Node, node.parent_id)
            if parent is not None:
                parent.mtime = time.time()
            blobs = self._delete_subtree(s, node)
        for blob_id in blobs:
            self.blobs.delete(blob_id)

    def _subtree(self, s: Session, node_id: int) -> list[tuple[int, int, int | None, int]]:
        """(id, depth, version id, size) of a node and all its descendants."""
        base = select(Node.id, literal(0).label("depth")).where(Node.id == node_id)
        tree = base.cte("subtree", recursive=True)
        tree = tree.union_all(select(Node.id, (tree.c.depth + 1).label("depth")).where(Node.parent_id == tree.c.id))
        rows = s.execute(
            select(tree.c.id, tree.c.depth, Node.version_id, Node.size).join(Node, Node.id == tree.c.id)
        ).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def _delete_subtree(self, s: Session, node: Node) -> list[str]:
        """Delete rows of a subtree, charge the owner; return the blob ids to delete after commit."""
        rows = self._subtree(s, node.id)
        rows.sort(key=lambda r: r[1], reverse=True)  # children before parents (foreign keys)
        ids = [r[0] for r in rows]
        version_ids = [r[2] for r in rows if r[2] is not None]
        freed = sum(r[3] for r in rows)
        owner_id = node.owner_id
        blobs: list[str] = []
        for chunk in _chunks(version_ids):
            blobs.extend(s.scalars(select(Version.blob_id).where(Version.id.in_(chunk))))
        for chunk in _chunks(ids):
            s.execute(delete(DeadProperty).where(DeadProperty.node_id.in_(chunk)))
        for chunk in _chunks(ids):
            s.execute(delete(Node).where(Node.id.in_(chunk)))
        for chunk in _chunks(version_ids):
            s.execute(delete(Version).where(Version.id.in_(chunk)))
        if freed:
            self._charge(s, owner_id, -freed)
        return blobs

    def copy(self, entry: Entry, new_parent: Entry, new_name: str, *, overwrite: bool, recursive: bool) -> bool:
        """Copy a node (a folder with its members when ``recursive``).

        File contents are re-encrypted into new blobs, streamed segment by
        segment.  Return True if a node was replaced.
        """
        validate_name(new_name)
        sources = self._copy_sources(entry, recursive=recursive)
        total = sum(e.size for e, _ in sources if not e.is_dir)
        with self.db.read() as s:
            folder = self._parent_for_insert(s, new_parent.id)
            owner_id = folder.owner_id
            record_id, key = self.org_key(s, folder.org_id)
            target = self._existing(s, folder, key, new_name)
            replacing = target.size if target is not None and target.kind == KIND_FILE else 0
        allowance = self.allowance(owner_id, replacing=replacing)
        if allowance is not None and total > allowance:
            raise QuotaExceeded(f"quota of user {owner_id} exceeded")

        new_blobs: dict[int, tuple[str, bytes]] = {}  # source id -> (blob id, sealed key)
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
            while chunk := reader.read(1024 * 1024):
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
        with self.db.write() as s:
            folder = self._parent_for_insert(s, new_parent.id)
            root_source = sources[0][0]
            if root_source.is_dir and self._is_ancestor(s, root_source.id, folder.id):
                raise Conflict(f"cannot copy node {root_source.id} below itself")
            _, key = self.org_key(s, folder.org_id)
            target = self._existing(s, folder, key, new_name)
            replaced_blobs: list[str] = []
            if target is not None:
                if not overwrite:
                    raise AlreadyExists(f"name taken in folder {folder.id}")
                replaced_blobs = self._delete_subtree(s, target)
                folder = self._parent_for_insert(s, new_parent.id)
            new_ids: dict[int, Node] = {}
            added = 0
            for source, props in sources:
                if source.id == root_source.id:
                    parent, name = folder, new_name
                else:
                    assert source.parent_id is not None
                    parent, name = new_ids[source.parent_id], source.name
                node = self._insert(s, parent, key, name, kind=KIND_DIR if source.is_dir else KIND_FILE, now=now)
                node.mtime = source.mtime
                if source.id in new_blobs:
                    blob_id, sealed = new_blobs[source.id]
                    version = Version(
                        blob_id=blob_id, org_key_id=record_id, sealed_key=sealed, size=source.size, created_at=now
                    )
                    s.add(version)
                    s.flush()
                    node.version_id = version.id
                    node.size = source.size
                    added += source.size
                for prop_name, value in props.items():
                    s.add(
                        DeadProperty(
                            node_id=node.id, name=prop_name, value=seal_property(key, node.id, prop_name, value)
                        )
                    )
                new_ids[source.id] = node
            folder.mtime = now
            self._charge(s, folder.owner_id, added)
        return replaced_blobs, target is not None

    # -- dead properties -------------------------------------------------------------

    def properties(self, node_ids: Iterable[int]) -> dict[int, dict[str, bytes]]:
        """Decrypted dead properties of many nodes: one query per 500 nodes, not one per node."""
        ids = list(node_ids)
        out: dict[int, dict[str, bytes]] = {}
        if not ids:
            return out
        with self.db.read() as s:
            for chunk in _chunks(ids):
                rows = s.execute(
                    select(DeadProperty, Node.org_id)
                    .join(Node, Node.id == DeadProperty.node_id)
                    .where(DeadProperty.node_id.in_(chunk))
                )
                for prop, org_id in rows:
                    _, key = self.org_key(s, org_id)
                    out.setdefault(prop.node_id, {})[prop.name] = open_property(
                        key, prop.node_id, prop.name, prop.value
                    )
        return out

    def set_properties(self, entry: Entry, changes: Sequence[tuple[str, bytes | None]]) -> None:
        """Set (value) or remove (None) dead properties of a node, all in one transaction."""
        with self.db.write() as s:
            node = s.get(Node, entry.id)
            if node is None:
                raise NotFound(f"node {entry.id} not found")
            _, key = self.org_key(s, node.org_id)
            for name, value in changes:
                existing = s.get(DeadProperty, (node.id, name))
                if value is None:
                    if existing is not None:
                        s.delete(existing)
                elif existing is not None:
                    existing.value = seal_property(key, node.id, name, value)
                else:
                    s.add(DeadProperty(node_id=node.id, name=name, value=seal_property(key, node.id, name, value)))
                s.flush()


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
        self.name = name
        self.org_key_record = org_key_record
        self.blob_id = uuid.uuid4().hex
        key_id = bytes.fromhex(self.blob_id)
        data_key, self.sealed_key = key.new_data_key(key_id)
        self._allowance = allowance
        self._expected = expected_size
        self._blob: BlobUpload | None = tree.blobs.begin(self.blob_id)
        self._writer = BlobWriter(data_key, key_id, self._blob.write)
        self._finished = False

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
        if self._blob is None:
            raise BadRequest("upload already finished")
        blob = self._blob
        try:
            size = self._writer.close()
            if self._expected is not None and size != self._expected:
                raise BadRequest("less data than announced")
            blob.commit()
            entry = self.tree._finish_upload(self, size)
        except BaseException:
            self._blob = None
            blob.abort()
            self.tree.blobs.delete(self.blob_id)
            raise
        self._blob = None
        self._finished = True
        return entry

    def abort(self) -> None:
        if self._blob is not None:
            self._blob.abort()
            self._blob = None
