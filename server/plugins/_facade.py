"""The facade: everything a plugin may do to the core, each call checked by the policy and audited.

A plugin never gets the database, the ORM session or the blob store: it gets
a :class:`PluginFacade`, bound to the instance at start.  The facade acts
with the plugin's own principal (:class:`server.policy.PluginPrincipal`,
granted by the operator in ``[plugins.<name>] organisations`` and
``access``), asks :func:`server.policy.require` before every operation on a
node or an organisation, and records one audit row per call (surface
``plugin``, principal ``plugin:<name>``, ids only).  A refused call raises
:class:`~server.errors.PolicyDenied` and is audited as ``denied``.

Besides files and people, a plugin gets its own small records
(:meth:`PluginFacade.state_get`, :meth:`state_set`, :meth:`once_per`): sealed
at rest like job payloads, private to the plugin, not audited (they are the
plugin's memory, not the users' data).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from server import policy
from server.audit import AuditEvent
from server.db import prepared
from server.db.models import plugin_state_t
from server.errors import ConfigError, Conflict, MedDAVError, NotFound, PolicyDenied
from server.jobs import PeriodicInfo
from server.mail import TEMPLATES
from server.policy import Action, Organisation, PluginPrincipal

if TYPE_CHECKING:
    from server.accounts import UserInfo
    from server.instance import Instance
    from server.tree import Entry

__all__ = ["NOTIFY_JOB", "NodeInfo", "PluginFacade", "UserRef", "mail_context"]

logger = logging.getLogger(__name__)

#: The job kind that sends one notification (through e-mail or a plugin's channel), retried like any job.
NOTIFY_JOB = "plugins.notify"
_COPY_BLOCK = 64 * 1024
_STATE_GET = prepared(
    select(plugin_state_t.c.value, plugin_state_t.c.updated_at).where(
        plugin_state_t.c.plugin == bindparam("plugin"), plugin_state_t.c.key == bindparam("key")
    )
)
_STATE_GET_FOR_UPDATE = prepared(
    select(plugin_state_t.c.value)
    .where(plugin_state_t.c.plugin == bindparam("plugin"), plugin_state_t.c.key == bindparam("key"))
    .with_for_update()  # PostgreSQL locks the row; SQLite's write transaction is already exclusive
)
_STATE_INSERT = prepared(
    insert(plugin_state_t).values(
        plugin=bindparam("plugin"), key=bindparam("key"), value=bindparam("value"), updated_at=bindparam("now")
    )
)
_STATE_UPDATE = prepared(
    update(plugin_state_t)
    .where(plugin_state_t.c.plugin == bindparam("plugin"), plugin_state_t.c.key == bindparam("key"))
    .values(value=bindparam("value"), updated_at=bindparam("now"))
)
_STATE_RELEASE = prepared(
    delete(plugin_state_t).where(
        plugin_state_t.c.plugin == bindparam("plugin"),
        plugin_state_t.c.key == bindparam("key"),
        plugin_state_t.c.updated_at == bindparam("at"),
    )
)
_STATE_CLAIM = prepared(
    update(plugin_state_t)
    .where(
        plugin_state_t.c.plugin == bindparam("plugin"),
        plugin_state_t.c.key == bindparam("key"),
        plugin_state_t.c.updated_at <= bindparam("before"),
    )
    .values(value=bindparam("value"), updated_at=bindparam("now"))
)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A file or folder as a plugin sees it: a snapshot, never an ORM object."""

    id: int
    parent_id: int | None
    org_id: int
    owner_id: int
    group_id: int | None
    name: str  # "" for a drive's root; the group folder's name for a group folder
    is_dir: bool
    size: int
    mtime: float
    etag: str
    version_id: int | None  # the current content's version (None: a folder or an empty new file)
    #: An opaque tag of that version, never given to another version: ids may be reused after a delete
    #: (SQLite reuses the highest row id), so an identifier that must never name two contents uses both.
    version_tag: str | None = None

    @classmethod
    def of(cls, entry: Entry) -> NodeInfo:
        return cls(
            id=entry.id,
            parent_id=entry.parent_id,
            org_id=entry.org_id,
            owner_id=entry.owner_id,
            group_id=entry.group_id,
            name=entry.name,
            is_dir=entry.is_dir,
            size=entry.size,
            mtime=entry.mtime,
            etag=entry.etag,
            version_id=entry.version.id if entry.version is not None else None,
            version_tag=_version_tag(entry.version.blob_id) if entry.version is not None else None,
        )


@dataclass(frozen=True, slots=True)
class UserRef:
    """An account as a plugin sees it: who, how to reach them, in which language."""

    id: int
    username: str
    org_id: int
    role: str
    email: str | None
    locale: str  # "fr" or "en"
    disabled: bool


@dataclass
class PluginFacade:
    """What a plugin receives in its hooks (``plugin``): its name, its validated
    configuration, and the core's operations it may use.

    The operations work once the instance is open (from ``meddav_startup`` on);
    before, they raise ``RuntimeError``.
    """

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    #: Organisation names the operator granted (``[plugins.<name>] organisations``) and the access there.
    organisations: tuple[str, ...] = ()
    access: str = "read"
    principal: PluginPrincipal | None = None
    _instance: Instance | None = field(default=None, repr=False)

    # -- wiring (the core's side) ---------------------------------------------------------

    def bind(self, instance: Instance) -> None:
        """Attach to an opened instance: the organisations granted become ids (a missing one is an error)."""
        ids: set[int] = set()
        for name in self.organisations:
            try:
                ids.add(instance.accounts.organisation(name).id)
            except NotFound:
                source = str(instance.settings.source or "configuration")
                problem = f"[plugins.{self.name}] organisations: there is no organisation {name!r}; fix the name"
                raise ConfigError(source, [problem + " or create it first"]) from None
        org_ids = frozenset(ids)
        self.principal = PluginPrincipal(self.name, org_ids, self.access)
        self._instance = instance

    def _core(self) -> tuple[Instance, PluginPrincipal]:
        if self._instance is None or self.principal is None:
            raise RuntimeError(f"plugin {self.name}: the facade is used before the instance is open")
        return self._instance, self.principal

    def _audit(
        self, action: str, outcome: str, *, org_id: int | None = None, node_id: int | None = None, **kw: Any
    ) -> None:
        instance, principal = self._core()
        instance.audit.record(
            AuditEvent(
                surface="plugin",
                action=action,
                outcome=outcome,
                principal=principal.username,
                address="local",
                org_id=org_id,
                node_id=node_id,
                **kw,
            )
        )

    def _require(self, subject: Any, act: Action, audit_action: str, *, node_id: int | None = None) -> None:
        _, principal = self._core()
        try:
            policy.require(principal, subject, act)
        except PolicyDenied:
            self._audit(audit_action, "denied", org_id=getattr(subject, "org_id", None), node_id=node_id)
            raise

    def _entry(self, node_id: int, act: Action, audit_action: str) -> Entry:
        instance, _ = self._core()
        try:
            entry = instance.tree.get(node_id)
        except NotFound:
            self._audit(audit_action, "failed", node_id=node_id, detail="not found")
            raise
        self._require(entry, act, audit_action, node_id=node_id)
        return entry

    # -- files ----------------------------------------------------------------------------

    def node(self, node_id: int) -> NodeInfo:
        """One node (READ on it)."""
        entry = self._entry(node_id, Action.READ, "plugin.node.read")
        self._audit("plugin.node.read", "ok", org_id=entry.org_id, node_id=node_id)
        return NodeInfo.of(entry)

    def path(self, node_id: int) -> list[NodeInfo]:
        """The node and its ancestors, from the top (a drive's root or a group folder) down to the
        node; LIST on each folder and READ on the node.  One audit row."""
        chain: list[Entry] = []
        current: int | None = node_id
        while current is not None:
            entry = self._entry(current, Action.READ if not chain else Action.LIST, "plugin.node.path")
            chain.append(entry)
            current = entry.parent_id
            if len(chain) > 4096:
                raise Conflict("the tree is deeper than any real one: refusing to walk it")
        self._audit("plugin.node.path", "ok", org_id=chain[0].org_id, node_id=node_id)
        return [NodeInfo.of(entry) for entry in reversed(chain)]

    def children(self, folder_id: int) -> list[NodeInfo]:
        """The members of a folder (LIST on it)."""
        instance, _ = self._core()
        folder = self._entry(folder_id, Action.LIST, "plugin.folder.list")
        self._audit("plugin.folder.list", "ok", org_id=folder.org_id, node_id=folder_id)
        return [NodeInfo.of(entry) for entry in instance.tree.children(folder)]

    def resolve(self, username: str, path: str) -> NodeInfo | None:
        """The node at ``path`` in ``username``'s drive as WebDAV shows it (``"Patients/Dupont"``;
        group folders at the top), or None.  LIST on the folders on the way, READ on the node."""
        instance, _ = self._core()
        names = [part for part in path.strip("/").split("/") if part]
        try:
            user = instance.accounts.get(username)
        except MedDAVError as error:
            self._audit("plugin.node.resolve", "failed", detail=type(error).__name__)
            raise
        self._require(Organisation(user.org_id), Action.LIST, "plugin.node.resolve")
        top: Entry | None
        if names and (group := instance.tree.group_folder_named(user.org_id, names[0])) is not None:
            top, names = group, names[1:]
        else:
            top = instance.tree.get(user.root_id)
        self._require(top, Action.LIST if names else Action.READ, "plugin.node.resolve", node_id=top.id)
        entry: Entry | None = top
        if names:
            chain = instance.tree.resolve_below(top.id, top.org_id, names)
            entry = chain[-1] if len(chain) == len(names) else None
            for found in chain:
                self._require(found, Action.LIST if found.is_dir else Action.READ, "plugin.node.resolve")
        self._audit(
            "plugin.node.resolve",
            "ok" if entry is not None else "failed",
            org_id=user.org_id,
            node_id=entry.id if entry else None,
        )
        return NodeInfo.of(entry) if entry is not None else None

    def properties(self, node_id: int) -> dict[str, bytes]:
        """The dead properties of a node (set by WebDAV PROPPATCH), by Clark name ``{ns}name``; READ."""
        instance, _ = self._core()
        entry = self._entry(node_id, Action.READ, "plugin.node.properties")
        self._audit("plugin.node.properties", "ok", org_id=entry.org_id, node_id=node_id)
        return instance.tree.properties([node_id]).get(node_id, {})

    @contextmanager
    def open_file(self, node_id: int, *, version_id: int | None = None) -> Iterator[IO[bytes]]:
        """A streaming, seekable reader of a file's content (READ), closed at the end of the block.

        With ``version_id``, only that version: :class:`~server.errors.Conflict`
        if the file has been written since (the newer version has its own event).
        """
        instance, _ = self._core()
        entry = self._entry(node_id, Action.READ, "plugin.file.read")
        current = entry.version.id if entry.version is not None else None
        if version_id is not None and current != version_id:
            self._audit("plugin.file.read", "failed", org_id=entry.org_id, node_id=node_id, detail="superseded")
            raise Conflict(f"node {node_id} is no longer at version {version_id}")
        try:
            reader = instance.tree.open(entry)
        except MedDAVError as error:  # a folder, a missing blob, a version replaced since it was read...
            superseded = (
                isinstance(error, NotFound) and version_id is not None and self._version_of(node_id) != version_id
            )
            detail = "superseded" if superseded else type(error).__name__
            self._audit("plugin.file.read", "failed", org_id=entry.org_id, node_id=node_id, detail=detail)
            if superseded:
                raise Conflict(f"node {node_id} is no longer at version {version_id}") from None
            raise
        self._audit("plugin.file.read", "ok", org_id=entry.org_id, node_id=node_id, detail=f"size={entry.size}")
        try:
            yield reader  # type: ignore[misc]
        finally:
            reader.close()

    def _version_of(self, node_id: int) -> int | None:
        instance, _ = self._core()
        try:
            entry = instance.tree.get(node_id)
        except NotFound:
            return None
        return entry.version.id if entry.version is not None else None

    def write_file(self, folder_id: int, name: str, content: IO[bytes] | Iterable[bytes]) -> NodeInfo:
        """Store ``content`` (a binary file object or an iterable of byte blocks) as ``name`` in the folder:
        CREATE on the folder for a new file, WRITE on the file for a new version.  Streamed, encrypted on
        the way, charged to the space's quota; the file's events follow like any upload's."""
        instance, _ = self._core()
        folder = self._entry(folder_id, Action.CREATE, "plugin.file.write")
        try:
            chain = instance.tree.resolve_below(folder.id, folder.org_id, [name])
            existing = chain[0] if chain else None
            if existing is not None:
                self._require(existing, Action.WRITE, "plugin.file.write", node_id=existing.id)
            upload = instance.tree.upload(folder, name)
        except PolicyDenied:
            raise  # audited by _require
        except MedDAVError as error:  # a bad name, a folder in the way, the quota...
            self._audit(
                "plugin.file.write", "failed", org_id=folder.org_id, node_id=folder_id, detail=type(error).__name__
            )
            raise
        try:
            read = getattr(content, "read", None)
            blocks: Iterable[bytes] = iter(lambda: read(_COPY_BLOCK), b"") if read is not None else content
            for block in blocks:
                upload.write(block)
            entry = upload.finish()
        except BaseException:
            upload.abort()
            self._audit("plugin.file.write", "failed", org_id=folder.org_id, node_id=folder_id)
            raise
        self._audit(
            "plugin.file.write",
            "ok",
            org_id=entry.org_id,
            node_id=entry.id,
            target_id=folder_id,
            detail=f"size={entry.size}",
        )
        return NodeInfo.of(entry)

    # -- people ---------------------------------------------------------------------------

    def user(self, ref: int | str) -> UserRef:
        """An account by id or user name (LIST on its organisation)."""
        instance, _ = self._core()
        try:
            info = instance.accounts.get_by_id(ref) if isinstance(ref, int) else instance.accounts.get(ref)
        except MedDAVError as error:
            self._audit(
                "plugin.user.read",
                "failed",
                target_id=ref if isinstance(ref, int) else None,
                detail=type(error).__name__,
            )
            raise
        self._require(Organisation(info.org_id), Action.LIST, "plugin.user.read")
        self._audit("plugin.user.read", "ok", org_id=info.org_id, target_id=info.id)
        return _ref(info)

    def organisation_admins(self, org_id: int) -> list[UserRef]:
        """The enabled org admins of an organisation (LIST on it): whom to tell when something needs fixing."""
        instance, _ = self._core()
        self._require(Organisation(org_id), Action.LIST, "plugin.user.list")
        self._audit("plugin.user.list", "ok", org_id=org_id)
        return [
            _ref(info)
            for info in instance.accounts.list(org_id)
            if info.role == policy.ROLE_ORG_ADMIN and not info.disabled
        ]

    # -- jobs and notifications -----------------------------------------------------------

    def enqueue(self, kind: str, key: str, payload: Mapping[str, Any], *, delay: float = 0.0) -> int:
        """Add a job of one of the plugin's kinds (``"<name>.<verb>"``), idempotent on ``key``
        (ids, never names: keys are stored in clear; the payload is sealed).  Returns the job id."""
        instance, _ = self._core()
        if not kind.startswith(f"{self.name}."):
            raise ValueError(f"plugin {self.name} may only enqueue its own job kinds ({self.name}.*), not {kind!r}")
        run_after = instance.jobs.clock() + delay if delay else None
        job_id = instance.jobs.enqueue(None, kind, key, payload, run_after=run_after)
        self._audit("plugin.job.enqueue", "ok", target_id=job_id, detail=kind)
        return job_id

    def notify(
        self, to: str, template: str, context: Mapping[str, Any], *, channel: str = "email", locale: str = "fr"
    ) -> int:
        """Send a notification later, from a job (retried like any job): by ``channel`` ("email", built
        in, with a core template made for plugins: ``plugin_alert``; or a channel a plugin adds through
        ``meddav_notification_channels``).  An e-mail is composed now, so that a wrong template, context
        or address raises here (``ValueError``, ``InvalidMail``) rather than in a job.  Returns the job id."""
        instance, _ = self._core()
        try:
            if channel == "email":
                spec = TEMPLATES.get(template)
                if spec is None or not spec.for_plugins:
                    made_for_plugins = sorted(name for name, t in TEMPLATES.items() if t.for_plugins)
                    raise ValueError(f"plugins may send the mail templates {', '.join(made_for_plugins)} only")
                instance.mailer.compose(template, to, locale=locale, context=mail_context(dict(context)))
            elif channel not in instance.plugins.notification_channels():
                raise ValueError(f"no notification channel {channel!r}: enable the plugin that provides it")
        except (ValueError, TypeError, MedDAVError) as error:
            self._audit("plugin.notify", "failed", detail=f"channel={channel} {type(error).__name__}")
            raise
        payload: dict[str, Any] = {"plugin": self.name, "channel": channel, "to": to, "template": template}
        payload |= {"context": dict(context), "locale": locale}
        # Unique per call (two alerts in one clock tick are two mails); never the recipient: keys are in clear.
        key = f"{self.name}:{channel}:{template}:{uuid.uuid4().hex}"
        job_id = instance.jobs.enqueue(None, NOTIFY_JOB, key, payload)
        self._audit("plugin.notify", "ok", target_id=job_id, detail=f"channel={channel} template={template}")
        return job_id

    def job_counts(self) -> dict[str, int]:
        """How many of the plugin's jobs are in each state (pending, running, done, dead): for status pages."""
        instance, _ = self._core()
        return instance.jobs.counts(kind_prefix=f"{self.name}.")

    def periodic(self) -> list[PeriodicInfo]:
        """The plugin's periodic jobs as scheduled now: last and next run (for status pages)."""
        instance, _ = self._core()
        return [job for job in instance.jobs.periodic() if job.name.startswith(f"{self.name}.")]

    @property
    def lease_seconds(self) -> float:
        """How long a job may run before another worker may take it over (``[jobs] lease_seconds``)."""
        instance, _ = self._core()
        return float(instance.settings.jobs.lease_seconds)

    @property
    def base_url(self) -> str:
        """The server's public address (``[server] public_url``), for links in notifications."""
        instance, _ = self._core()
        return instance.settings.public_base_url()

    def now(self) -> float:
        """The time as the core's job queue sees it (tests inject a clock there)."""
        instance, _ = self._core()
        return instance.jobs.clock()

    # -- the plugin's own records ---------------------------------------------------------

    def state_get(self, key: str, default: Any = None) -> Any:
        """A JSON value the plugin stored under ``key`` (sealed at rest), or ``default``."""
        instance, _ = self._core()
        _own_key(key)
        with instance.db.read() as tx:
            row = tx.one(_STATE_GET, plugin=self.name, key=key)
        if row is None:
            return default
        return json.loads(instance.state_sealer.open(self.name, key, row.value))

    def state_set(self, key: str, value: Any, *, durable: bool = True) -> None:
        """Store a JSON-able value under ``key`` (replacing the previous one); ``durable`` as for
        :meth:`state_update`."""
        self.state_update(key, lambda _: value, durable=durable)

    def state_update(self, key: str, change: Callable[[Any], Any], default: Any = None, *, durable: bool = True) -> Any:
        """Replace the value under ``key`` by ``change(value)`` (``default`` when absent) in one write
        transaction, so that concurrent updates (counters, error lists) are not lost; returns the new value.

        Stored on disk before it returns.  ``durable=False`` is for records that may lose their last
        second to a power cut (counters, a status shown to people): the write then costs no disk flush of
        its own (``[database] namespace_sync_ms``); it survives a crash of the process all the same."""
        instance, _ = self._core()
        _own_key(key)
        for attempt in (1, 2):
            try:
                with instance.db.write(durable=durable) as tx:
                    row = tx.one(_STATE_GET_FOR_UPDATE, plugin=self.name, key=key)
                    old = default if row is None else json.loads(instance.state_sealer.open(self.name, key, row.value))
                    new = change(old)
                    sealed = self._seal(key, new)
                    now = instance.jobs.clock()
                    if row is None:
                        tx.run(_STATE_INSERT, plugin=self.name, key=key, value=sealed, now=now)
                    else:
                        tx.run(_STATE_UPDATE, plugin=self.name, key=key, value=sealed, now=now)
                return new
            except IntegrityError:  # the first insert raced another process's (PostgreSQL): update theirs
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def once_per(self, key: str, seconds: float) -> bool:
        """True at most once per ``seconds`` for ``key``, across threads, workers and restarts
        (e.g. one alert an hour per kind of error); records the time when it answers True.  Its keys are
        apart from those of :meth:`state_set`.  A power cut may undo the last second's records (one more
        True then), never the older ones."""
        instance, _ = self._core()
        _own_key(key)
        return self._claim(f"once:{key}", instance.jobs.clock(), seconds)

    @contextmanager
    def exclusive(self, key: str, seconds: float) -> Iterator[bool]:
        """Hold ``key`` for the block, across threads, workers and restarts: yields True when this caller
        holds it, False when another holder does.  A holder that dies releases it after ``seconds``
        (make it the job's lease: ``ctx.remaining()``); the block's end releases it at once."""
        instance, _ = self._core()
        _own_key(key)
        full, now = f"lock:{key}", instance.jobs.clock()
        held = self._claim(full, now, seconds)
        try:
            yield held
        finally:
            if held:  # only our own hold: one taken over after it expired carries another time
                with instance.db.write(durable=False) as tx:
                    tx.run(_STATE_RELEASE, plugin=self.name, key=full, at=now)

    def _claim(self, key: str, now: float, seconds: float) -> bool:
        instance, _ = self._core()
        sealed = self._seal(key, now)
        try:
            # Undone by a power cut, a hold is free again (its holder died too) and a period begins again.
            with instance.db.write(durable=False) as tx:
                if tx.run(_STATE_CLAIM, plugin=self.name, key=key, value=sealed, now=now, before=now - seconds):
                    return True
                if tx.one(_STATE_GET, plugin=self.name, key=key) is not None:
                    return False
                tx.run(_STATE_INSERT, plugin=self.name, key=key, value=sealed, now=now)
                return True
        except IntegrityError:  # another process inserted it meanwhile: it claimed this period
            return False

    def _seal(self, key: str, value: Any) -> bytes:
        instance, _ = self._core()
        if not key or len(key) > 200:
            raise ValueError("a state key has 1 to 200 characters")
        plain = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        return bytes(instance.state_sealer.seal(self.name, key, plain))


def mail_context(context: dict[str, Any]) -> dict[str, Any]:
    """A notification's mail context back from JSON: ``*_at`` values travel as POSIX times."""
    return {
        name: datetime.fromtimestamp(value, UTC) if name.endswith("_at") and isinstance(value, int | float) else value
        for name, value in context.items()
    }


def _own_key(key: str) -> None:
    """A key of the plugin's records; ``once:`` and ``lock:`` are the facade's own (once_per, exclusive)."""
    if key.startswith(("once:", "lock:")):
        raise ValueError(f"state keys starting with once: or lock: are reserved ({key!r})")


def _version_tag(blob_id: str) -> str:
    """16 hex digits derived from the version's random blob id (not the id itself: it names a blob file)."""
    return hashlib.sha256(b"meddav/version-tag/" + blob_id.encode()).hexdigest()[:16]


def _ref(info: UserInfo) -> UserRef:
    return UserRef(
        id=info.id,
        username=info.username,
        org_id=info.org_id,
        role=info.role,
        email=info.email,
        locale=info.locale or "fr",
        disabled=info.disabled,
    )
