"""The MedDAV provider: wsgidav's resource model over :mod:`server.tree`.

Paths resolve through the tree in the database, one name at a time, from the
authenticated principal's root; nothing here touches the file system, so no
path can reach outside a user's tree.  Every action is checked by
:mod:`server.policy` before the tree is asked to do it.

A user's root shows their private items, their organisation's group
folders and what colleagues shared with them.  A private item keeps its name
when a group folder has the same one (the group folder is then hidden from that
user's root; an item of that name cannot be created there, so this only happens
when a group folder is named after an existing item).  A shared item whose name
is taken there shows with its owner's name, ``name (owner).ext`` (the root's
names are :mod:`server.drive`'s, the same on every surface): never hidden, never
hiding.  What lies below a shared item is judged by the policy as
reached through that share (:class:`~server.policy.Shared`), at the time of the
request, so a revocation or an expiry applies to the very next request.

Lock URLs of group folder content are the group's, and those of a shared item
its owner's, so members or colleagues locking the same document do conflict.

COPY, MOVE and DELETE are handled natively (one transaction each, see
``server.tree``); dead properties live in the database, keyed by node id, so
they follow a node when it moves.
"""

from __future__ import annotations

import logging
import mimetypes
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from wsgidav import util, xml_tools
from wsgidav.dav_error import HTTP_CONFLICT, HTTP_FORBIDDEN, HTTP_INSUFFICIENT_STORAGE, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.util import etree

from server import policy
from server.crypto import lookup_form
from server.dav.errors import to_dav_error, translated
from server.drive import Drive, Member, Received
from server.errors import MedDAVError, NotFound
from server.policy import Action, Principal, Shared, ShareGrant
from server.tree import Entry, Tree, Upload

if TYPE_CHECKING:
    from server.dav.locks import DatabaseLockStorage
    from server.sharing import Shares


def group_space(org_id: int, group_root_id: int | None) -> str:
    """The first segment of the lock URLs of a group folder's content ("g<org>." alone: any group of the org)."""
    return f"g{org_id}." + ("" if group_root_id is None else str(group_root_id))


__all__ = ["REQUEST_TIME", "MedDAVProvider", "request_time"]

logger = logging.getLogger(__name__)

_MAX_PROPERTY_NAME = 500
_LOCK_PROPERTIES = ("{DAV:}lockdiscovery", "{DAV:}supportedlock")
_WIN32_MTIME = "{urn:schemas-microsoft-com:}Win32LastModifiedTime"
#: The request environ key of the file a LOCK of an unmapped URL makes, once the lock is taken.
LOCK_NULL = "meddav.lock_null"
#: The request environ key of a PROPPATCH's changes, stored together once all are known (server.dav.handlers).
PROPPATCH_PENDING = "meddav.proppatch"
#: (property name, its serialized value or None to remove it, the value as wsgidav parsed it)
PropertyChange = tuple[str, bytes | None, Any]
_CACHE = "meddav.resolved"
_VIA = "meddav.via"  # resolved path -> the share it was reached through
_DRIVE = "meddav.drive"
_BASES = "meddav.share_bases"
#: The request environ key of the time shares are judged at (:func:`request_time`).
REQUEST_TIME = "meddav.share_at"


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def request_time(environ: dict[str, Any], clock: Callable[[], float] = time.time) -> float:
    """The time shares are judged at during this request (read once: one request, one answer)."""
    at: float | None = environ.get(REQUEST_TIME)
    if at is None:
        at = environ[REQUEST_TIME] = clock()
    return at


class MedDAVProvider(DAVProvider):
    """Resolves request paths to resources of the principal's own tree."""

    def __init__(self, tree: Tree, shares: Shares | None = None) -> None:
        super().__init__()
        self.tree = tree
        self.shares = shares
        self._requests = threading.local()  # the environ of the request this thread serves

    def __repr__(self) -> str:
        return "MedDAVProvider()"

    def is_readonly(self) -> bool:
        return False

    # -- resolution --------------------------------------------------------------

    def get_resource_inst(self, path: str | None, environ: dict[str, Any]) -> _Resource | None:
        if path is None:  # the parent of the root (wsgidav asks for it in a COPY or MOVE of or onto the root)
            return None
        principal: Principal = environ["meddav.principal"]
        self._requests.environ = environ  # for ref_url_to_path, which wsgidav calls without it
        cache: dict[str, Entry | None] = environ.setdefault(_CACHE, {})
        names = _split(path)
        key = "/" + "/".join(names)
        if key not in cache:
            self._resolve_into(cache, principal, names, environ)
        entry = cache[key]
        if entry is None:
            return None
        if path.rstrip("/") == environ.get("PATH_INFO", "").rstrip("/"):
            environ["meddav.node_id"] = entry.id
        return self.resource_for(path, entry, environ, via=environ.get(_VIA, {}).get(key))

    def _resolve_into(
        self, cache: dict[str, Entry | None], principal: Principal, names: list[str], environ: dict[str, Any]
    ) -> None:
        """Resolve a path once and remember every prefix of it (a PUT also asks for the parent)."""
        # Errors here (a name that fails authentication, a missing key) are the
        # server's, not the client's: they propagate and become a logged 500.
        chain: list[Entry]
        via: ShareGrant | None = None
        if names:  # a private item, else a group folder, else an item a colleague shared (server.drive)
            chain, via = self.drive(environ).chain(names)
            offset = 1  # chain[0] is names[0]; the root is read only when asked for
        else:
            chain = [self.tree.get(principal.root_id)]
            offset = 0
        vias: dict[str, ShareGrant] = environ.setdefault(_VIA, {})
        for depth in range(offset, len(names) + 1):
            index = depth - offset
            key = "/" + "/".join(names[:depth])
            entry: Entry | None = chain[index] if index < len(chain) else None
            if entry is not None and not policy.allows(principal, self.subject(environ, entry, via), Action.READ):
                entry = None  # what the policy hides does not exist
            cache[key] = entry
            if via is not None and depth > 0:
                vias[key] = via

    def subject(self, environ: dict[str, Any], entry: Entry, via: ShareGrant | None = None) -> Any:
        """What the policy is asked about for ``entry``, reached through the share ``via`` (None: directly).

        The entry itself, or the node as reached through that share at the request's time; for
        :class:`server.dav.public.ShareProvider`, always as reached through the link's share."""
        return entry if via is None else Shared(entry, via, self._request_time(environ))

    def _request_time(self, environ: dict[str, Any]) -> float:
        shares = self.shares
        return request_time(environ, time.time if shares is None else shares.clock)

    def drive(self, environ: dict[str, Any]) -> Drive:
        """The requesting user's drive (:mod:`server.drive`), for this request."""
        drive: Drive | None = environ.get(_DRIVE)
        if drive is None:
            drive = environ[_DRIVE] = Drive(self.tree, self.shares, environ["meddav.principal"],
                                            self._request_time(environ))  # fmt: skip
        return drive

    def received(self, environ: dict[str, Any]) -> dict[str, Received]:
        """What colleagues shared with the requesting user, by the name it shows at the root of their drive."""
        return self.drive(environ).received()

    def _share_base(self, environ: dict[str, Any], via: ShareGrant) -> tuple[str, list[str]]:
        """Where a shared item lies in its owner's world: the lock space of its tree (a private tree's
        root id, or a group folder's space) and the names from that tree's root down to the item."""
        bases: dict[int, tuple[str, list[str]]] = environ.setdefault(_BASES, {})
        base = bases.get(via.share_id)
        if base is None:
            top, *below = self.tree.ancestry(via.root_id)
            space = group_space(top.org_id, top.id) if top.is_group_root else str(top.id)
            base = bases[via.share_id] = (space, [lookup_form(e.name) for e in below])
        return base

    def is_drive_root(self, environ: dict[str, Any], entry: Entry) -> bool:
        """Whether ``entry`` is the root of the requesting user's drive (where group folders show)."""
        principal: Principal = environ["meddav.principal"]
        return entry.id == principal.root_id

    def ref_url(self, resource: _Resource, path: str) -> str | None:
        """A resource's lock URL when it is not the user's own: a link share's space, or for an item
        shared by a colleague, the URL its owner locks it by (so that both lock the same document).
        None: the user's tree or group folder, as :meth:`_Resource.get_ref_url` builds it."""
        if resource.via is None:
            return None
        space, names = self._share_base(resource.environ, resource.via)
        inner = path.lstrip("/").partition("/")[2]  # below the shared item, which shows under its own name
        if names and (inner or resource.is_collection):
            inner = "/" + inner
        return quote(f"/{space}/" + "/".join(names) + inner)

    def resource_for(
        self,
        path: str,
        entry: Entry,
        environ: dict[str, Any],
        *,
        props: dict[str, bytes] | None = None,
        via: ShareGrant | None = None,
    ) -> _Resource:
        """The resource of an entry; ``props``: its dead properties, when already loaded; ``via``: the
        share it is reached through."""
        cls = FolderResource if entry.is_dir else FileResource
        return cls(self, path, entry, environ, props=props, via=via)

    def holds_locks(self, environ: dict[str, Any]) -> bool:
        """Whether any lock lies in the requesting principal's tree or their organisation's group folders.

        Most trees hold none, most of the time; their requests skip every lock
        check (a lock taken meanwhile by a concurrent LOCK is no different from
        one taken just after the request).
        """
        lock_manager = self.lock_manager
        if lock_manager is None:
            return False
        principal: Principal = environ["meddav.principal"]
        storage: DatabaseLockStorage = lock_manager.storage
        if storage.holds_locks_in(str(principal.root_id)) or storage.holds_locks_in(
            group_space(principal.org_id, None)
        ):
            return True
        if storage.is_empty():
            return False
        # The owners' spaces of what colleagues shared with this user (read only when some lock exists).
        return any(
            storage.holds_locks_in(self._share_base(environ, shared.grant)[0])
            for shared in self.received(environ).values()
        )

    def forget(self, environ: dict[str, Any]) -> None:
        """Drop the request's resolution cache after the tree changed."""
        environ.pop(_CACHE, None)
        environ.pop(_VIA, None)
        environ.pop(_DRIVE, None)

    def ref_url_to_path(self, ref_url: str) -> str:
        """The path, in the requesting user's drive, of a lock's URL (wsgidav names lock roots with it).

        Reference URLs are "/<space>/<path>" (see :meth:`_Resource.get_ref_url`).  A space of the user's
        (their tree, a group folder, which is at the root) maps to its path; a colleague's space maps to
        the item they shared, under the name it shows here (a lock above it: the item itself).  A lock
        this user cannot see at all is named by the drive's root: never a path of someone else's."""
        path = util.removeprefix(ref_url, self.share_path)
        space, _, rest = path.lstrip("/").partition("/")
        inner = "/" + unquote(rest)
        environ: dict[str, Any] | None = getattr(self._requests, "environ", None)
        candidates: list[str] = []
        if space.startswith("g"):
            try:
                group: Entry | None = self.tree.get(int(space.rsplit(".", 1)[1]))
            except (NotFound, ValueError):  # a group folder deleted since, or a lock of none ("g<org>.0")
                group = None
            if group is not None:
                candidates.append("/" + group.name + inner.rstrip("/") + ("/" if inner.endswith("/") else ""))
        else:
            candidates.append(inner)
        if environ is None:
            return candidates[0] if candidates else "/"
        principal = environ.get("meddav.principal")
        if not isinstance(principal, Principal):  # a link's own lock space: its paths, as they were
            return candidates[0] if candidates else "/"
        if space != str(principal.root_id):
            candidates[:0] = self._shown_paths(environ, space, inner)
        for candidate in candidates:
            if self.get_resource_inst(candidate, environ) is not None:
                return candidate
        return "/"

    def _shown_paths(self, environ: dict[str, Any], space: str, inner: str) -> list[str]:
        """Where a path of a colleague's lock space shows in this user's drive: below each item shared
        with them that holds it, or that item itself for a lock above it."""
        parts = [part for part in inner.split("/") if part]
        found = []
        for shared in self.received(environ).values():
            base_space, names = self._share_base(environ, shared.grant)
            if base_space != space:
                continue
            if parts[: len(names)] == names:
                below = parts[len(names) :]
                found.append("/" + "/".join([shared.name, *below]) + ("/" if inner.endswith("/") else ""))
            elif names[: len(parts)] == parts:  # a lock on a folder above the shared item covers it
                found.append(f"/{shared.name}/")
        return found

    def custom_request_handler(self, environ: dict[str, Any], start_response: Any, default_handler: Any) -> Any:
        from server.dav.handlers import handle  # handlers builds on this module's resources

        return handle(self, environ, start_response, default_handler)


class _Resource:
    """Behaviour shared by folders and files (a mixin over wsgidav's bases)."""

    provider: MedDAVProvider
    environ: dict[str, Any]
    path: str
    is_collection: bool
    entry: Entry
    via: ShareGrant | None
    _props: dict[str, bytes] | None

    if TYPE_CHECKING:  # provided by wsgidav's resource classes this is mixed into

        def get_preferred_path(self) -> str: ...

        def get_href(self) -> str: ...

    def __init__(
        self,
        provider: MedDAVProvider,
        path: str,
        entry: Entry,
        environ: dict[str, Any],
        *,
        props: dict[str, bytes] | None = None,
        via: ShareGrant | None = None,
    ) -> None:
        super().__init__(path, environ)  # type: ignore[call-arg]  # wsgidav's DAVCollection or DAVNonCollection
        self.provider = provider
        self.entry = entry
        self.via = via  # the share this resource is reached through (None: directly)
        self._props = props  # dead properties, when the caller already has them

    # -- identity ------------------------------------------------------------------

    @property
    def principal(self) -> Principal:
        principal: Principal = self.environ["meddav.principal"]
        return principal

    @property
    def tree(self) -> Tree:
        return self.provider.tree

    def require(self, action: Action) -> None:
        if not policy.allows(self.principal, self.provider.subject(self.environ, self.entry, self.via), action):
            who = getattr(self.principal, "user_id", None) or self.principal.username  # a user's id, or "share:<id>"
            logger.info("policy denied %s on node %s to %s", action.value, self.entry.id, who)
            raise DAVError(HTTP_FORBIDDEN)

    def get_ref_url(self) -> str:
        # Unique across trees (locks are keyed by it) and by Unicode form, so a
        # lock taken through an NFD path also covers the NFC path.  Content of a
        # group folder is the group's, whoever reaches it: "/g<org>.<group root>/<path inside>".
        path = lookup_form(self.get_preferred_path())
        special = self.provider.ref_url(self, path)
        if special is not None:
            return special
        if self.entry.group_id is not None:
            first, _, inner = path.lstrip("/").partition("/")
            group_root = self.entry.id if self.entry.is_group_root else None
            if group_root is None:
                found = self.provider.tree.group_folder_named(self.entry.org_id, first)
                group_root = found.id if found is not None else 0
            return quote(f"/{group_space(self.entry.org_id, group_root)}/{inner}")
        return quote(f"/{self.principal.root_id}{path}")

    def get_display_name(self) -> str:
        if self.via is not None and self.entry.id == self.via.root_id:
            shown: str = util.get_uri_name(self.path.rstrip("/"))  # a shared item, under the name it shows
            return shown
        return self.entry.name

    def get_creation_date(self) -> float:
        return self.entry.ctime

    def get_last_modified(self) -> float:
        return self.entry.mtime

    # -- dead properties ---------------------------------------------------------

    def _dead_properties(self) -> dict[str, bytes]:
        if self._props is None:
            self._props = self.tree.properties([self.entry.id]).get(self.entry.id, {})
        return self._props

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        names.extend(self._dead_properties())
        return names

    def get_property_value(self, name: str) -> Any:
        if name.startswith("{DAV:}") or name in _LOCK_PROPERTIES:
            return super().get_property_value(name)  # type: ignore[misc]
        self.require(Action.READ)
        value = self._dead_properties().get(name)
        if value is None:
            raise DAVError(404)
        return xml_tools.string_to_xml(value)

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> bool:
        if name.startswith("{DAV:}"):
            # Live and protected: let wsgidav answer (403 cannot-modify-protected-property).
            result: bool = super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]
            return result
        if len(name) > _MAX_PROPERTY_NAME:
            raise DAVError(HTTP_INSUFFICIENT_STORAGE, "property name too long")
        self.require(Action.WRITE)
        if dry_run:
            return True
        change = (name, None if value is None else etree.tostring(value), value)
        pending: list[tuple[_Resource, PropertyChange]] | None = self.environ.get(PROPPATCH_PENDING)
        if pending is not None:  # a PROPPATCH: stored all at once when wsgidav has gone through them all
            pending.append((self, change))
        else:
            self.store_properties([change])
        return True

    def store_properties(self, changes: list[PropertyChange]) -> None:
        """Set and remove dead properties in one transaction (a PROPPATCH is all or nothing, RFC 4918 9.2)."""
        translated(self.tree.set_properties)(self.entry, [(name, serialized) for name, serialized, _ in changes])
        for name, serialized, value in changes:
            if self._props is not None:
                if serialized is None:
                    self._props.pop(name, None)
                else:
                    self._props[name] = serialized
            if name == _WIN32_MTIME and value is not None and value.text:
                # Windows Explorer restores a file's original time this way (the property itself is stored
                # above: a crash before this leaves the time as it was, the value kept).
                parsed = util.parse_time_string(value.text)
                if parsed is not None:
                    self.entry = translated(self.tree.touch)(self.entry, float(parsed))

    def remove_all_properties(self, *, recursive: bool) -> None:
        """Nothing to do: properties go with their node's rows."""

    # -- delete, move, copy: native, one transaction each --------------------------------

    def _token_list(self) -> list[str]:
        if "wsgidav.conditions.if" not in self.environ:
            util.parse_if_header_dict(self.environ)
        tokens: list[str] = self.environ["wsgidav.ifLockTokenList"]
        return tokens

    def _check_locks_below(self) -> None:
        lock_manager = self.provider.lock_manager
        if lock_manager is not None and self.provider.holds_locks(self.environ):
            lock_manager.check_write_permission(
                url=self.get_ref_url(),
                depth="infinity",
                token_list=self._token_list(),
                # wsgidav's request server names the user "wsgidav.user_name"; a native DELETE never meets it.
                principal=self.environ.get("wsgidav.user_name") or self.environ.get("wsgidav.auth.user_name", ""),
            )

    def _drop_locks(self, ref_url: str) -> None:
        if self.provider.lock_manager is not None and self.provider.holds_locks(self.environ):
            self.provider.lock_manager.remove_all_locks_from_url(ref_url, recursive=True)

    def _destination(self, dest_path: str) -> tuple[FolderResource, str, _Resource | None]:
        parent = self.provider.get_resource_inst(util.get_uri_parent(dest_path), self.environ)
        if not isinstance(parent, FolderResource):
            raise DAVError(HTTP_CONFLICT, "destination folder does not exist")
        existing = self.provider.get_resource_inst(dest_path, self.environ)
        name = util.get_uri_name(dest_path.rstrip("/"))
        if existing is None:
            parent.check_free_name(name)
            if self.tree.resolve_below(parent.entry.id, parent.entry.org_id, [name]):
                raise DAVError(HTTP_FORBIDDEN, "the destination is taken")  # by a node the policy hides
        return parent, name, existing

    def handle_delete(self) -> bool:
        self.require(Action.DELETE)
        self._check_locks_below()
        translated(self.tree.delete)(self.entry)
        self._drop_locks(self.get_ref_url())
        self.provider.forget(self.environ)
        return True

    def handle_move(self, dest_path: str) -> bool:
        parent, name, existing = self._destination(dest_path)
        self.require(Action.DELETE)
        parent.require(Action.CREATE)
        if existing is not None:
            existing.require(Action.DELETE)
        source_url = self.get_ref_url()
        self.environ["meddav.target_id"] = parent.entry.id
        replaced = translated(self.tree.move)(self.entry, parent.entry, name, overwrite=True)
        self._drop_locks(source_url)
        if existing is not None:
            self._drop_locks(existing.get_ref_url())
        self.environ["meddav.created"] = not replaced
        self.provider.forget(self.environ)
        return True

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        parent, name, existing = self._destination(dest_path)
        self.require(Action.READ)
        parent.require(Action.CREATE)
        if existing is not None:
            existing.require(Action.DELETE)
        self.environ["meddav.target_id"] = parent.entry.id
        replaced = translated(self.tree.copy)(self.entry, parent.entry, name, overwrite=True, recursive=depth_infinity)
        if existing is not None:
            self._drop_locks(existing.get_ref_url())
        self.environ["meddav.created"] = not replaced
        self.provider.forget(self.environ)
        return True


class FolderResource(_Resource, DAVCollection):
    @property
    def reports_quota(self) -> bool:
        """Whether PROPFIND reports the quota (RFC 4331): the user's own usage, not the business of
        someone reaching the folder through a share."""
        return self.via is None

    def get_etag(self) -> None:
        return None

    # -- members -------------------------------------------------------------------

    def _members(self) -> list[Member]:
        self.require(Action.LIST)
        members = [Member(e.name, e, self.via) for e in self.tree.children(self.entry)]
        if self.provider.is_drive_root(self.environ, self.entry):
            members.extend(self.provider.drive(self.environ).root_extras({lookup_form(m.name) for m in members}))
        subject = self.provider.subject
        return [m for m in members if policy.allows(self.principal, subject(self.environ, m.entry, m.via), Action.READ)]

    def get_member_names(self) -> list[str]:
        return [m.name for m in self._members()]

    def get_member(self, name: str) -> _Resource | None:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def get_member_list(self) -> list[_Resource]:
        members = self._members()
        # Dead properties of all members in one query (PROPFIND allprop asks each).
        props = self.tree.properties(m.entry.id for m in members)
        return [
            self.provider.resource_for(
                util.join_uri(self.path, name), entry, self.environ, props=props.get(entry.id, {}), via=via
            )
            for name, entry, via in members
        ]

    # -- quota (RFC 4331) ---------------------------------------------------------------

    def _usage(self) -> tuple[int, int]:
        cached: tuple[int, int] | None = self.environ.get("meddav.usage")
        if cached is None:
            used, quota = self.tree.usage(self.entry)
            free = shutil.disk_usage(self.tree.settings.storage.blob_dir).free
            available = free if quota is None else max(0, min(free, quota - used))
            cached = (used, available)
            self.environ["meddav.usage"] = cached
        return cached

    def get_used_bytes(self) -> int:
        if not self.reports_quota:
            raise DAVError(HTTP_NOT_FOUND)
        return self._usage()[0]

    def get_available_bytes(self) -> int:
        if not self.reports_quota:
            raise DAVError(HTTP_NOT_FOUND)
        return self._usage()[1]

    # -- creating ------------------------------------------------------------------

    def check_free_name(self, name: str) -> None:
        """At a user's root, a name taken by a group folder of their organisation is not free."""
        if self.provider.is_drive_root(self.environ, self.entry) and self.tree.group_folder_named(
            self.entry.org_id, name
        ):
            raise DAVError(HTTP_CONFLICT, "a group folder of the organisation has this name")

    def create_empty_resource(self, name: str) -> _Resource:
        self.require(Action.CREATE)
        self.check_free_name(name)
        self.provider.forget(self.environ)
        path = util.join_uri(self.path, name)
        if self.environ["REQUEST_METHOD"] == "PUT":
            # The file appears only when its content is complete (end_write).
            return NewFileResource(self.provider, path, self, name, self.environ)
        if self.environ["REQUEST_METHOD"] == "LOCK":
            # The file appears once its lock is taken (server.dav.handlers): a refused lock makes none, and
            # a crash in between leaves a lock on nothing, dropped at the next start (DatabaseLockStorage).
            resource = NewFileResource(self.provider, path, self, name, self.environ)
            self.environ[LOCK_NULL] = resource
            return resource
        entry = translated(self.tree.create_empty_file)(self.entry, name)
        return FileResource(self.provider, path, entry, self.environ, via=self.via)

    def create_collection(self, name: str) -> None:
        self.require(Action.CREATE)
        self.check_free_name(name)
        created = translated(self.tree.mkdir)(self.entry, name)
        self.environ["meddav.node_id"] = created.id
        self.provider.forget(self.environ)


class _Writable:
    """PUT support shared by existing and new files: stream into a tree Upload."""

    environ: dict[str, Any]
    _upload: Upload | None = None  # set by begin_write(), cleared by end_write()

    def _expected_size(self) -> int | None:
        """The body length the client announced (Content-Length, or Finder's header)."""
        length = self.environ.get("CONTENT_LENGTH", "")
        if length and not self.environ.get("HTTP_TRANSFER_ENCODING"):
            return int(length)
        expected = self.environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH")
        return int(expected) if expected else None

    def writelines(self, chunks: Iterable[bytes]) -> None:
        upload = self._upload
        assert upload is not None
        try:
            for chunk in chunks:
                upload.write(chunk)
        except MedDAVError as exc:
            raise to_dav_error(exc) from None

    def close(self) -> None:
        """The body is complete; end_write() decides whether to keep it."""


class FileResource(_Writable, _Resource, DAVNonCollection):
    def get_content_length(self) -> int:
        return self.entry.size

    def get_content_type(self) -> str:
        return mimetypes.guess_type(self.entry.name, strict=False)[0] or "application/octet-stream"

    def get_etag(self) -> str:
        return self.entry.etag

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    @translated
    def get_content(self) -> Any:
        self.require(Action.READ)
        return self.tree.open(self.entry)

    def _parent_entry(self) -> Entry:
        assert self.entry.parent_id is not None
        return translated(self.tree.get)(self.entry.parent_id)

    def _authorize_write(self) -> None:
        self.require(Action.WRITE)

    #: Whether a PUT only ever adds a file (a taken name gets a free one as the content is stored).
    new_only = False

    def begin_write(self, *, content_type: str | None = None) -> _Writable:
        self._authorize_write()
        self._upload = translated(self.tree.upload)(
            self._parent_entry(), self.entry.name, expected_size=self._expected_size(), new_only=self.new_only
        )
        return self

    def end_write(self, *, with_errors: bool) -> None:
        upload, self._upload = self._upload, None
        if upload is None:
            return
        if with_errors:
            upload.abort()
            return
        self.entry = translated(upload.finish)()
        self.environ["meddav.node_id"] = self.entry.id
        self.provider.forget(self.environ)


class NewFileResource(FileResource):
    """The target of a PUT to a new name: it exists only once its content is stored."""

    def __init__(
        self, provider: MedDAVProvider, path: str, parent: FolderResource, name: str, environ: dict[str, Any]
    ) -> None:
        now = time.time()
        placeholder = Entry(
            id=0,
            parent_id=parent.entry.id,
            org_id=parent.entry.org_id,
            owner_id=parent.entry.owner_id,
            is_dir=False,
            name=name,
            size=0,
            ctime=now,
            mtime=now,
            etag="",
            group_id=parent.entry.group_id,
            group_access=parent.entry.group_access,
        )
        super().__init__(provider, path, placeholder, environ, props={}, via=parent.via)
        self._parent = parent

    def _parent_entry(self) -> Entry:
        return self._parent.entry

    def create_empty(self) -> None:
        """Make the file, empty: what a LOCK of an unmapped URL leaves (RFC 4918, section 7.3)."""
        self.entry = translated(self.tree.create_empty_file)(self._parent_entry(), self.entry.name)
        self.environ["meddav.node_id"] = self.entry.id
        self.provider.forget(self.environ)

    def _authorize_write(self) -> None:
        self._parent.require(Action.CREATE)
