"""A link share over WebDAV, at ``/public/<token>/``: for rclone, mobile apps and mounted drives.

One wsgidav application is mounted at ``/public``; its provider reads the share
from the first path segment (wsgidav builds every link from its fixed mount
path, so one mount per share would not do).  HTTP Basic with any user name and
the share's password (:class:`ShareAuth`); an unknown, expired or revoked link
gets the same 404 as a link that never existed, a share opened by e-mailed
codes is opened on its web page only (403), and a client outside the share's
networks gets 403.  A GET from a file's first byte takes one of the link's
downloads (``max_downloads``); once they are all taken, the link is used up
and answers 404 like any dead link.  Wrong passwords are throttled per share and per address,
like logins.

Below the token, :class:`ShareProvider` resolves paths from the shared item
down, and asks :mod:`server.policy` about each node as reached through the
share (:class:`~server.policy.Shared`), at the time of the request: the mode
applies, revocation and expiry apply to the very next request.  A drop box
answers PROPFIND of its root as an empty collection, accepts PUT of new files
(a name already taken, which it never reveals, gets a free one: ``name (2).ext``)
and hides everything else: GET, HEAD, PROPFIND, COPY, MOVE or DELETE of a member
answer 404 whether it exists or not; MKCOL, LOCK and PROPPATCH are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.mw.base_mw import BaseMiddleware

from server import policy
from server.auth import Throttled
from server.auth.client import client_address
from server.crypto import lookup_form
from server.dav.locks import DatabaseLockStorage
from server.dav.middleware import INSTANCE_KEY, challenge, parse_basic, too_many, unavailable
from server.dav.provider import (
    REQUEST_TIME,
    FolderResource,
    MedDAVProvider,
    NewFileResource,
    _Resource,
    _split,
    request_time,
)
from server.drive import Member
from server.errors import Busy, NotFound
from server.policy import Action, Shared, ShareGrant, SharePrincipal
from server.tree import Entry, Tree, free_name

if TYPE_CHECKING:
    from server.instance import Instance
    from server.sharing import ShareInfo

__all__ = ["DropBoxFolder", "ShareAuth", "ShareProvider"]

logger = logging.getLogger(__name__)

#: How long a verified share password is believed without Argon2 again (drives send it with every request).
VERIFIED_SECONDS = 60.0
#: How long a drop box shows its recipient a file they sent (a client checking its upload).
UPLOAD_MEMORY = 15 * 60.0
_SENT_MAX = 1000
_VERIFIED_MAX = 1000
_SHARE = "meddav.share"
_SEGMENT = "meddav.share_segment"
_DROPBOX_REFUSED = frozenset({"MKCOL", "LOCK", "UNLOCK", "PROPPATCH"})
_DROPBOX_HIDDEN = frozenset({"COPY", "MOVE", "DELETE"})
_OWN = "meddav.own_uploads"  # ids of the nodes of this request reached as the recipient's own uploads


def _answer(status: str, text: bytes, start_response: Any) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(text)))])
    return [text]


def _not_found(start_response: Any) -> list[bytes]:
    """The one answer of a dead link, a used-up one, and of what a drop box hides."""
    return _answer("404 Not Found", b"Not found / Introuvable\n", start_response)


def _attachment(start_response: Any) -> Any:
    """A file of a share is never rendered in the server's origin: a browser that opens a link share's
    URL saves the file, and an HTML or SVG file that it shows anyway runs no script (a sandbox)."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        headers = [
            *headers,
            ("Content-Disposition", "attachment"),
            ("Content-Security-Policy", "sandbox; default-src 'none'"),
        ]
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return start


def _counting_uploads(start_response: Any, count: Callable[[], None]) -> Any:
    """A new file (201) put through a link counts as one upload (the owner's overview, the digests)."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status.startswith("201") and exc_info is None:
            count()
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return start


def _from_first_byte(range_header: str) -> bool:
    """Whether a GET asks for the start of the file (no Range, or a first range from byte 0)."""
    if not range_header:
        return True
    first = range_header.partition("=")[2].split(",", 1)[0].strip()
    return first.startswith("0-")


class _Download:
    """A download taken before the answer: given back unless the answer is a file's content (a folder,
    an error raised or answered, a content that failed half-way all give it back, once)."""

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back: Callable[[], None] | None = give_back
        self._content = False

    def watch(self, start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            self._content = status.startswith(("200", "206")) and exc_info is None
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return start

    def give_back(self) -> None:
        give_back, self._give_back = self._give_back, None
        if give_back is not None:
            give_back()

    def answer(self, body: Iterable[bytes]) -> Iterable[bytes]:
        try:
            yield from body
        except BaseException:
            self.give_back()
            raise
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            if not self._content:
                self.give_back()


class ShareAuth(BaseMiddleware):
    """Find the share of the first path segment and check its password; no other access."""

    def __init__(self, wsgidav_app: Any, next_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        self.instance: Instance = config[INSTANCE_KEY]
        self._key = secrets.token_bytes(32)  # digests of verified passwords, for this process only
        self._verified: OrderedDict[tuple[int, bytes], float] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        instance = self.instance
        address = client_address(environ, instance.settings.server.trusted_proxies)
        environ["meddav.client_address"] = address
        segment = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
        try:
            share = (
                instance.authenticator.find_link(lambda: instance.shares.find_link(unquote(segment)), address)
                if segment
                else None
            )
        except Throttled as exc:
            return too_many(exc.retry_after, start_response)
        if share is None:  # unknown, expired, revoked or suspended: one answer
            return _not_found(start_response)
        if share.code_by_email:
            return _answer("403 Forbidden", b"Open this share on its web page / Ouvrez ce partage dans le navigateur\n",
                           start_response)  # fmt: skip
        if not share.admits(address):
            return _answer("403 Forbidden", b"Not from this network / Pas depuis ce reseau\n", start_response)
        realm = "MedDAV share"
        credentials = parse_basic(environ.get("HTTP_AUTHORIZATION", ""))
        if credentials is None:
            return challenge(realm, start_response)
        _, password = credentials
        account = f"share:{share.id}"
        environ["meddav.attempted_user"] = account
        environ["meddav.attempted_org"] = share.org_id
        throttle = instance.authenticator.throttle
        now = time.time()
        wait = throttle.check(account, address, now)
        if wait is not None:
            return too_many(int(wait) + 1, start_response)
        try:
            if not self._believed(share.id, password, now):
                if not instance.shares.check_password(share, password):
                    throttle.failed(account, address, now)
                    return challenge(realm, start_response)
                throttle.succeeded(account, address)
                self._believe(share.id, password, now)
        except Busy:
            return unavailable(start_response)
        if instance.audit.saturated:
            return unavailable(start_response)
        principal = SharePrincipal(share.grant())
        environ["meddav.principal"] = principal  # from here on, the request is audited as the share's
        environ[_SHARE] = share
        environ[_SEGMENT] = segment
        environ[REQUEST_TIME] = now
        environ["wsgidav.auth.user_name"] = principal.username
        environ["wsgidav.auth.realm"] = realm
        environ["wsgidav.auth.roles"] = []
        method = environ["REQUEST_METHOD"]
        if share.mode == "dropbox" and method in _DROPBOX_HIDDEN:  # one answer, whether the name exists or not
            return _not_found(start_response)
        if share.mode == "dropbox" and method in _DROPBOX_REFUSED:
            return _answer("403 Forbidden", b"A drop box takes files only / Depot de fichiers seulement\n",
                           start_response)  # fmt: skip
        instance.shares.seen(share)
        if method in ("GET", "HEAD"):
            start_response = _attachment(start_response)
        if method == "PUT":
            start_response = _counting_uploads(start_response, lambda: instance.shares.count_upload(share))
        if method == "GET" and _from_first_byte(environ.get("HTTP_RANGE", "")):
            # One download: a file fetched whole, or from its first byte (a drive's later ranges are free).
            if not instance.shares.take_download(share):
                return _not_found(start_response)  # used up
            counted = _Download(lambda: instance.shares.give_back_download(share))
            try:
                return counted.answer(self.next_app(environ, counted.watch(start_response)))
            except BaseException:
                counted.give_back()
                raise
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result

    def _digest(self, share_id: int, password: str) -> tuple[int, bytes]:
        return share_id, hmac.new(self._key, password.encode(), hashlib.sha256).digest()

    def _believed(self, share_id: int, password: str, now: float) -> bool:
        key = self._digest(share_id, password)
        with self._lock:
            until = self._verified.get(key)
            return until is not None and now < until

    def _believe(self, share_id: int, password: str, now: float) -> None:
        with self._lock:
            self._verified[self._digest(share_id, password)] = now + VERIFIED_SECONDS
            while len(self._verified) > _VERIFIED_MAX:
                self._verified.popitem(last=False)


class ShareProvider(MedDAVProvider):
    """Paths ``/<token>/...``: the shared item and what lies below it, as its share allows.

    For a drop box it remembers, for :data:`UPLOAD_MEMORY` seconds and in this process, what was sent
    through each share from each client address, and under which name: that file (only) answers under
    the name it was sent with, so that a client can check its upload, even when it was stored under a
    free name."""

    def __init__(self, tree: Tree) -> None:
        super().__init__(tree)
        # (share, client address) -> name as sent (lookup form) -> (name as sent, node, etag when stored, until)
        self._sent: dict[tuple[int, str], OrderedDict[str, tuple[str, int, str, float]]] = {}
        self._sent_lock = threading.Lock()

    def __repr__(self) -> str:
        return "ShareProvider()"

    def remember_upload(self, environ: dict[str, Any], name: str, entry: Entry) -> None:
        share: ShareInfo = environ[_SHARE]
        key = (share.id, environ["meddav.client_address"])
        with self._sent_lock:
            sent = self._sent.pop(key, OrderedDict())  # re-inserted last: the dict is oldest first
            sent[lookup_form(name)] = (name, entry.id, entry.etag, time.monotonic() + UPLOAD_MEMORY)
            while len(sent) > _SENT_MAX:
                sent.popitem(last=False)
            self._sent[key] = sent
            while len(self._sent) > _SENT_MAX:  # the senders of long ago (their uploads expired anyway)
                del self._sent[next(iter(self._sent))]

    def sent(self, environ: dict[str, Any]) -> dict[str, Entry]:
        """What the recipient at this client address sent lately, still as they sent it (in the drop box,
        unchanged since): name as sent (lookup form) -> the stored entry, named as sent."""
        share: ShareInfo = environ[_SHARE]
        key = (share.id, environ["meddav.client_address"])
        now = time.monotonic()
        with self._sent_lock:
            remembered = dict(self._sent.get(key, {}))
        found: dict[str, Entry] = {}
        for lookup, (name, node_id, etag, until) in remembered.items():
            if until <= now:
                continue
            try:
                entry = self.tree.get(node_id)
            except NotFound:
                continue
            # The same file, where it was put: not a node id reused since, nor a file moved or rewritten.
            if entry.parent_id == share.node_id and entry.etag == etag and not entry.is_dir:
                found[lookup] = replace(entry, name=name)
        return found

    def get_resource_inst(self, path: str | None, environ: dict[str, Any]) -> _Resource | None:
        names = _split(path or "")
        if not names or names[0] != unquote(environ[_SEGMENT]):
            return None  # another share's link (a Destination header), or /public itself
        return super().get_resource_inst(path, environ)

    def _resolve_into(
        self, cache: dict[str, Entry | None], principal: Any, names: list[str], environ: dict[str, Any]
    ) -> None:
        share: ShareInfo = environ[_SHARE]
        root = self.tree.get(share.node_id)
        chain = [root] + (self.tree.resolve_below(root.id, root.org_id, names[1:]) if root.is_dir else [])
        # A name the recipient sent a file under (a new PUT under it sends one more file, never overwrites).
        if share.mode == "dropbox" and len(names) == 2 and environ["REQUEST_METHOD"] != "PUT":
            own = self.sent(environ).get(lookup_form(names[1]))
            chain = [root]
            if own is not None:
                environ.setdefault(_OWN, set()).add(own.id)
                chain.append(replace(own, name=names[1]))
        cache["/"] = None
        for depth in range(1, len(names) + 1):
            entry = chain[depth - 1] if depth - 1 < len(chain) else None
            if entry is not None:
                subject = self.subject(environ, entry)
                # A drop box's folder is there to put files in; what the policy hides does not exist.
                if not (policy.allows(principal, subject, Action.READ) or (depth == 1 and policy.allows(
                        principal, subject, Action.CREATE))):  # fmt: skip
                    entry = None
            cache["/" + "/".join(names[:depth])] = entry

    def subject(self, environ: dict[str, Any], entry: Entry, via: ShareGrant | None = None) -> Shared:
        share: ShareInfo = environ[_SHARE]
        # Only a node reached as the recipient's own upload (under the name sent), never by its stored name.
        own = share.mode == "dropbox" and entry.id in environ.get(_OWN, ())
        return Shared(entry, share.grant(), request_time(environ), own_upload=own)

    def is_drive_root(self, environ: dict[str, Any], entry: Entry) -> bool:
        return False

    def ref_url(self, resource: _Resource, path: str) -> str | None:
        share: ShareInfo = resource.environ[_SHARE]
        return quote(f"/s{share.id}{path}")  # a link's own lock space, group folder content included

    def holds_locks(self, environ: dict[str, Any]) -> bool:
        lock_manager = self.lock_manager
        if lock_manager is None:
            return False
        share: ShareInfo = environ[_SHARE]
        storage: DatabaseLockStorage = lock_manager.storage
        return storage.holds_locks_in(f"s{share.id}")

    def resource_for(
        self,
        path: str,
        entry: Entry,
        environ: dict[str, Any],
        *,
        props: dict[str, bytes] | None = None,
        via: ShareGrant | None = None,
    ) -> _Resource:
        share: ShareInfo = environ[_SHARE]
        if not entry.is_dir:
            return super().resource_for(path, entry, environ, props=props)
        cls = DropBoxFolder if share.mode == "dropbox" else ShareFolder
        return cls(self, path, entry, environ, props=props)


class ShareFolder(FolderResource):
    """A folder reached through a link: the owner's quota and usage are not the link's business."""

    @property
    def reports_quota(self) -> bool:
        return False


class DropBoxFolder(ShareFolder):
    """A drop box's folder: new files only, never under a name already taken (which it does not reveal);
    its listing shows only what the recipient has just sent, under the names sent."""

    provider: ShareProvider

    def _members(self) -> list[Member]:
        self.require(Action.CREATE)
        share: ShareInfo = self.environ[_SHARE]
        if self.entry.id != share.node_id:
            return []
        sent = self.provider.sent(self.environ)
        self.environ.setdefault(_OWN, set()).update(entry.id for entry in sent.values())
        return [Member(entry.name, entry) for entry in sent.values()]

    def _dead_properties(self) -> dict[str, bytes]:
        return {}  # the owner's properties of the folder are not the recipient's to see

    def create_empty_resource(self, name: str) -> _Resource:
        self.require(Action.CREATE)
        if self.environ["REQUEST_METHOD"] != "PUT":
            raise DAVError(HTTP_FORBIDDEN, "a drop box takes files by PUT")
        free = self._free_name(name)
        self.provider.forget(self.environ)
        return _DropBoxFile(self.provider, util.join_uri(self.path, free), self, free, self.environ, sent_as=name)

    def _free_name(self, name: str) -> str:
        return free_name(
            name, lambda candidate: bool(self.tree.resolve_below(self.entry.id, self.entry.org_id, [candidate]))
        )

    def create_collection(self, name: str) -> None:
        raise DAVError(HTTP_FORBIDDEN, "a drop box takes files only")


class _DropBoxFile(NewFileResource):
    """A file sent to a drop box: stored under a free name if its name was taken meanwhile (never over
    another), and once stored, remembered under the name it was sent with."""

    provider: ShareProvider
    new_only = True

    def __init__(self, *args: Any, sent_as: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent_as = sent_as

    def end_write(self, *, with_errors: bool) -> None:
        super().end_write(with_errors=with_errors)
        if not with_errors and self.entry.id:
            self.provider.remember_upload(self.environ, self._sent_as, self.entry)
