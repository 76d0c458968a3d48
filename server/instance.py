"""One MedDAV instance: creating it (``meddav init``) and opening it.

An instance is a data directory (database + blob store), a configuration file
inside it, and a master key file *outside* it.  :func:`open_instance` checks
that the three belong together before anything is served: the database
schema is current, and the key file is the one this database was created
with (an HMAC of the instance id under the master key, compared in constant
time).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import bindparam, insert, select

from server.accounts import Accounts
from server.audit import AuditEvent, AuditLog
from server.auth import Authenticator, PasswordHasher, PasswordPolicy
from server.config import Settings, default_key_file, load_settings, toml_value
from server.credentials import Credentials, SecretDigester
from server.crypto import CredentialSealer, JobSealer, KeyRing, LockSealer, MasterKey, ShareNoteSealer, StateSealer
from server.db import Database, Tx, prepared
from server.db.models import instance_t, organisations_t
from server.errors import ConfigError, KeyFileError
from server.events import Event, from_payload
from server.jobs import Foreground, JobFailed, JobQueue, schedule_builtins
from server.mail import MAIL_JOB, Mailer
from server.plugins import NOTIFY_JOB, Plugins, load_plugins, mail_context
from server.policy import ROLE_INSTANCE_ADMIN
from server.sharing import DIGEST_JOB, Shares
from server.storage import BaseBlobStore
from server.storage import load as load_blob_store
from server.tree import Tree

__all__ = ["InitResult", "Instance", "init_instance", "open_instance"]

logger = logging.getLogger(__name__)

CONFIG_NAME = "meddav.toml"
LOCK_NAME = "meddav.lock"
#: The job kind that hands one event to one plugin (at least once, retried, dead-lettered).
EVENT_JOB = "plugins.event"
#: The periodic job that ends expired shares (and audits it), every SWEEP_EVERY seconds.
SHARES_SWEEP = "shares.sweep"
SWEEP_EVERY = 900
#: How often owners who asked for it are told of new files in their drop boxes (one digest mail each).
DIGEST_EVERY = 3600


@dataclass
class Instance:
    """The services of an opened instance, shared by every request."""

    settings: Settings
    db: Database
    keys: KeyRing
    blobs: BaseBlobStore
    tree: Tree
    accounts: Accounts
    authenticator: Authenticator
    credentials: Credentials
    lock_sealer: LockSealer
    audit: AuditLog
    shares: Shares
    mailer: Mailer
    plugins: Plugins
    jobs: JobQueue
    state_sealer: StateSealer
    #: The requests in flight, which the job workers inside the server give way to.
    foreground: Foreground = field(default_factory=Foreground)

    @property
    def job_handlers(self) -> dict[str, Any]:
        """Handlers of the jobs plugins need: event delivery, notifications, and their own kinds."""

        def deliver(ctx: Any) -> None:
            name = ctx.payload["plugin"]
            event = from_payload(ctx.payload["event"])

            def hand_over(_: Any) -> None:
                self.plugins.deliver(name, event)

            # Plugins.deliver counts the hook's exceptions itself; the guard adds the time-out.
            self.plugins.guarded(name, "meddav_event", hand_over, count_errors=False)(ctx)

        channels = self.plugins.notification_channels()

        def notify(ctx: Any) -> None:
            p = ctx.payload
            if p["channel"] == "email":
                self.mailer.send(p["template"], p["to"], locale=p["locale"], context=mail_context(p["context"]))
                return
            send = channels.get(p["channel"])
            if send is None:
                raise JobFailed(f"no notification channel {p['channel']!r}: enable the plugin that provides it")
            send(p["to"], p["template"], p["context"])

        def send_mail(ctx: Any) -> None:  # a mail of the core, composed when it is sent
            p = ctx.payload
            zone = zoneinfo.ZoneInfo(p["time_zone"]) if p.get("time_zone") else None
            self.mailer.send(p["template"], p["to"], locale=p["locale"], context=mail_context(p["context"]), tz=zone)

        def sweep(ctx: Any) -> None:
            ended = self.shares.sweep()
            if ended:
                logger.info("expired shares ended", extra={"fields": {"shares": ended}})

        def digest(ctx: Any) -> None:
            mailed = self.shares.digest()
            if mailed:
                logger.info("drop-box digests queued", extra={"fields": {"mails": mailed}})

        core = {EVENT_JOB: deliver, NOTIFY_JOB: notify, MAIL_JOB: send_mail, SHARES_SWEEP: sweep, DIGEST_JOB: digest}
        return {**core, **self.plugins.job_handlers()}

    def flush_audit(self, timeout: float = 10.0) -> bool:
        """Wait until every request answered so far is in the audit log; False if ``timeout`` ended first.

        A request's audit event is recorded when the server closes its answer, which may be just after
        the client read it: this waits for the requests in flight, then for the audit log's writer."""
        deadline = time.monotonic() + timeout
        if not self.foreground.wait_idle(timeout):
            return False
        return self.audit.flush(max(0.0, deadline - time.monotonic()))

    def start_plugins(self) -> None:
        """Give each plugin its facade on this instance, then call their ``meddav_startup``."""
        for facade in self.plugins.facades.values():
            facade.bind(self)
        self.plugins.call_each("meddav_startup")

    def schedule_jobs(self) -> None:
        """Declare the periodic jobs: the core's, the sweep of expired shares, the plugins' (idempotent:
        their schedule survives restarts).  Called at start by whoever runs a scheduler."""
        schedule_builtins(self.jobs)
        self.jobs.schedule(SHARES_SWEEP, SHARES_SWEEP, every_seconds=SWEEP_EVERY)
        self.jobs.schedule(DIGEST_JOB, DIGEST_JOB, every_seconds=DIGEST_EVERY)
        for job in self.plugins.periodic_jobs():
            self.jobs.schedule(job.name, job.kind, every_seconds=job.every_seconds, daily_at=job.daily_at)

    def close(self) -> None:
        self.audit.close()
        self.blobs.close()
        self.db.close()

    def hold_serve_lock(self) -> IO[str]:
        """Mark the data directory as served (shared lock; ``meddav fsck`` tests for it)."""
        handle = open(self.settings.storage.data_dir / LOCK_NAME, "a")  # noqa: SIM115 - held while serving
        fcntl.flock(handle, fcntl.LOCK_SH)
        return handle

    def is_served(self) -> bool:
        """True when a ``meddav serve`` process holds this data directory."""
        path = self.settings.storage.data_dir / LOCK_NAME
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False


def _services(settings: Settings, master: MasterKey) -> Instance:
    plugins = load_plugins(settings)  # first: a plugin's configuration error stops the start before anything opens
    db = Database(settings)
    keys = KeyRing(master)
    blobs = load_blob_store(settings)
    hasher = PasswordHasher(settings.auth)
    digester = SecretDigester(master.secret_digest_key())
    credentials = Credentials(db, digester, CredentialSealer(master.credentials_key()))
    authenticator = Authenticator.from_settings(settings, db, hasher, credentials)
    credentials.on_change = authenticator.forget_user
    tree = Tree(settings, db, keys, blobs)
    accounts = Accounts(
        db,
        keys,
        hasher,
        policy=PasswordPolicy(settings.passwords),
        on_credentials_changed=authenticator.forget_user,
    )
    audit = AuditLog(db)
    jobs = JobQueue(db, JobSealer(master.jobs_key()), settings.jobs)
    instance = Instance(
        settings=settings,
        db=db,
        keys=keys,
        blobs=blobs,
        tree=tree,
        accounts=accounts,
        authenticator=authenticator,
        credentials=credentials,
        lock_sealer=LockSealer(master.lock_key()),
        audit=audit,
        shares=Shares(
            db,
            tree,
            accounts,
            hasher,
            digester,
            ShareNoteSealer(master.share_note_key()),
            audit,
            jobs,
            settings.sharing,
            base_url=settings.public_base_url(),
            channels=plugins.notification_channels,
        ),
        mailer=Mailer.from_settings(settings.mail, base_url=settings.public_base_url()),
        plugins=plugins,
        jobs=jobs,
        state_sealer=StateSealer(master.plugin_state_key()),
    )

    def plugin_failed(name: str, hook: str) -> None:
        instance.audit.record(
            AuditEvent(
                surface="plugin",
                action="plugin.failed",
                outcome="error",
                principal=f"plugin:{name}",
                address="local",
                detail=f"hook={hook}",
            )
        )

    plugins.on_failure = plugin_failed
    listeners = instance.plugins.listeners()
    if listeners:
        grants = _Grants({name: instance.plugins.facades[name].organisations for name in listeners})

        # The outbox: each change's events are jobs of the change's own transaction, one per listening
        # plugin granted the change's organisation (the others are not told: ids and sizes are data too).
        def outbox(c: Tx, event: Event) -> None:
            for name in listeners:
                if event.org_id not in grants.ids(c, name):
                    continue
                key = f"{name}:{event.kind}:{_event_subject(event)}:{event.at:.6f}"
                instance.jobs.enqueue(c, EVENT_JOB, key, {"plugin": name, "event": event.to_payload()})

        instance.tree.outbox = outbox
        instance.accounts.outbox = outbox
    return instance


class _Grants:
    """The organisation ids each plugin is granted (``[plugins.<name>] organisations``, by name).

    Looked up in the change's own transaction (another one would wait for its write lock), once;
    a name that does not exist yet (``meddav init`` creates the first organisation after opening)
    is looked up again at the next event until it does.  ``meddav serve`` refuses to start with a
    granted name that does not exist (:meth:`PluginFacade.bind`)."""

    def __init__(self, names: dict[str, tuple[str, ...]]) -> None:
        self._names = names
        self._ids: dict[str, frozenset[int]] = {}
        self._complete: set[str] = set()

    def ids(self, tx: Tx, plugin: str) -> frozenset[int]:
        if plugin not in self._complete:
            found = [tx.scalar(_ORG_BY_NAME, name=name) for name in self._names[plugin]]
            self._ids[plugin] = frozenset(int(org_id) for org_id in found if org_id is not None)
            if None not in found:
                self._complete.add(plugin)
        return self._ids[plugin]


_ORG_BY_NAME = prepared(select(organisations_t.c.id).where(organisations_t.c.name == bindparam("name")))


def _event_subject(event: Event) -> int:
    """The id an event is about (its node, or the account it created), for the job's key."""
    return int(getattr(event, "node_id", None) or getattr(event, "created_user_id", None) or 0)


def open_instance(settings: Settings) -> Instance:
    """Open an initialised instance; raise ConfigError or KeyFileError naming the fix."""
    data_dir = settings.storage.data_dir
    source = str(settings.source or "configuration")
    if not data_dir.is_dir():
        raise ConfigError(
            source,
            [f"[storage] data_dir = {str(data_dir)!r}: not found; create an instance with meddav init --data-dir DIR"],
        )
    master = MasterKey.load_file(settings.storage.key_file)
    if not master.file_is_private():
        logger.warning("master key file %s is readable by other users: chmod 600 it", settings.storage.key_file)
    instance = _services(settings, master)
    try:
        revision, head = instance.db.revision(), instance.db.head()
        if revision is None:
            raise ConfigError(source, [f"no MedDAV database at {settings.database.url}: run meddav init first"])
        if revision != head:
            raise ConfigError(
                source,
                [f"database schema is at revision {revision}, this MedDAV needs {head}: run meddav db upgrade"],
            )
        with instance.db.read() as c:
            record = c.one(select(instance_t.c.instance_id, instance_t.c.key_check))
        if record is None:
            raise ConfigError(source, ["the database holds no instance: run meddav init on an empty data directory"])
        if not master.matches(record.instance_id, record.key_check):
            raise KeyFileError(
                f"{settings.storage.key_file}: this is not the master key of this instance; "
                "point [storage] key_file at the key file created with it"
            )
    except BaseException:
        instance.close()
        raise
    return instance


@dataclass(frozen=True)
class InitResult:
    config_path: Path
    key_file: Path
    admin_name: str
    admin_password: str


def _write_config(data_dir: Path, key_file: Path, extra: dict[str, dict[str, Any]] | None) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": 8080},
        "storage": {"data_dir": ".", "key_file": os.path.relpath(key_file, data_dir)},
    }
    for name, values in (extra or {}).items():
        sections.setdefault(name, {}).update(values)
    lines = [
        "# MedDAV configuration written by `meddav init`.",
        "# Every option, with its default and meaning: conf/meddav.example.toml",
        "# (or `meddav config example`).  Relative paths are relative to this file.",
        "# [storage] key_file lives outside the data directory: back it up apart.",
    ]
    for name, values in sections.items():
        lines.append(f"\n[{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items() if not isinstance(value, dict))
        for table, body in values.items():
            if isinstance(body, dict):  # e.g. [plugins.<name>]
                lines.append(f"\n[{name}.{table}]")
                lines.extend(f"{key} = {toml_value(value)}" for key, value in body.items())
    config_path = data_dir / CONFIG_NAME
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return config_path


def init_instance(
    data_dir: Path,
    *,
    key_file: Path | None = None,
    admin_name: str = "admin",
    admin_password: str | None = None,
    organisation: str = "Default organisation",
    options: dict[str, dict[str, Any]] | None = None,
) -> InitResult:
    """Create a complete instance in ``data_dir``; refuse to touch an existing one.

    ``options`` adds options to the written configuration file, by section.  Whatever the caller's
    umask, what it creates is its owner's only (the database file, the blob store).
    """
    previous = os.umask(0o077)
    try:
        return _init_instance(data_dir, key_file, admin_name, admin_password, organisation, options)
    finally:
        os.umask(previous)


def _init_instance(
    data_dir: Path,
    key_file: Path | None,
    admin_name: str,
    admin_password: str | None,
    organisation: str,
    options: dict[str, dict[str, Any]] | None,
) -> InitResult:
    data_dir = data_dir.resolve()
    key_file = (key_file or default_key_file(data_dir)).resolve()
    if key_file == data_dir or data_dir in key_file.parents:
        raise ConfigError(
            "meddav init",
            [
                f"--key-file {key_file}: inside the data directory; a backup of the data would carry its key. "
                f"Use a path beside it, e.g. {default_key_file(data_dir)}"
            ],
        )
    if (data_dir / CONFIG_NAME).exists():
        raise ConfigError("meddav init", [f"{data_dir} already holds an instance ({CONFIG_NAME} exists)"])
    if key_file.exists():
        raise ConfigError(
            "meddav init",
            [f"{key_file} already exists: it may be another instance's key. Move it away, or pass --key-file"],
        )
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # an existing (empty) directory keeps its mode otherwise
    master = MasterKey.create_file(key_file)
    config_path = _write_config(data_dir, key_file, options)
    settings = load_settings(config_path)
    instance = _services(settings, master)
    try:
        instance.db.upgrade()
        instance_id = secrets.token_bytes(16)
        with instance.db.write() as c:
            c.run(
                insert(instance_t).values(
                    id=1, instance_id=instance_id, key_check=master.key_check(instance_id), created_at=time.time()
                )
            )
        instance.accounts.create_organisation(organisation)
        password = admin_password or secrets.token_urlsafe(18)
        instance.accounts.create_user(admin_name, password, role=ROLE_INSTANCE_ADMIN)
    finally:
        instance.close()
    return InitResult(config_path=config_path, key_file=key_file, admin_name=admin_name, admin_password=password)
