"""``meddav doctor``: an instance's security settings, checked one by one, each with its fix.

:func:`diagnose` reads the configuration file, the files and directories it
names, and two facts from the database (read-only): whether the key file is
this instance's, and how many share links have not ended.  It needs no
running server and changes nothing.  Each check is a small function of a
:class:`Context` returning :class:`Finding` objects: a severity (``ok``,
``warning`` or ``problem``), what was seen, naming the option or the path,
and the fix (``chmod 600 /srv/meddav/var.master.key``).  :data:`CHECKS` lists
them in the order they are printed; ``docs/doctor.md`` says what each one
looks at and why.

What it leaves to others: validating the configuration (:mod:`server.config`;
a file that does not load is reported problem by problem, and nothing else is
checked, since the paths and switches are then unknown), the key file's format
(:class:`server.crypto.MasterKey`), the warnings logged at every start
(:func:`server.httpd.insecure_settings`, whose Argon2 minimum is the one here).

Nothing secret is ever printed: no key bytes, no password, not the database URL
(it may carry one).  Ownership is judged against the user running the check,
so run it as the user that runs ``meddav serve``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import pwd
import re
import shlex
import ssl
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from server.config import ENV_VAR, SCHEMA, Settings, default_key_file, is_loopback, load_settings
from server.crypto import MasterKey, certificate_validity
from server.db import Database
from server.db.models import instance_t, shares_t
from server.errors import ConfigError, KeyFileError

__all__ = ["CHECKS", "OK", "PROBLEM", "SEVERITIES", "WARNING", "Context", "Finding", "Report", "Stored", "diagnose"]

OK: Final = "ok"
WARNING: Final = "warning"
PROBLEM: Final = "problem"
SEVERITIES: Final = (OK, WARNING, PROBLEM)

#: A certificate expiring within this many days is a warning (automatic renewal usually runs 30 days ahead).
CERT_WARN_DAYS: Final = 30
#: The OWASP minimum for Argon2id (19 MiB, 2 passes), below which the start logs a warning too.
ARGON2_MIN_MEMORY_KIB: Final = 19456
ARGON2_MIN_TIME_COST: Final = 2
#: Files scanned for stray copies of a master key in the data directory (the blob store excluded).
_SCAN_LIMIT: Final = 2000
_KEY_FILE_MAX_BYTES: Final = 4096
#: Options whose value is never shown, even in a configuration problem (they may hold a password).
_SECRET_OPTIONS: Final = ("[mail] smtp_password", "[database] url")
_AS_SERVER: Final = "run meddav doctor as the user that runs meddav serve"


@dataclass(frozen=True)
class Finding:
    """One thing the doctor saw: its severity, the check, what (naming the option or path), the fix."""

    severity: str
    check: str
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.severity:<8} {self.check:<13} {self.message}"
        return f"{text}; fix: {self.fix}" if self.fix else text


@dataclass(frozen=True)
class Report:
    """Every finding, in the order of :data:`CHECKS`."""

    source: str
    user: str
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> int:
        return sum(f.severity == PROBLEM for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == WARNING for f in self.findings)

    def lines(self) -> list[str]:
        """One line per finding, then a summary line."""
        summary = (
            f"{self.source}: {_count(self.problems, 'problem')}, {_count(self.warnings, 'warning')} "
            f"(checked as user {self.user})"
        )
        if self.problems:
            summary += "; fix the problems, then run meddav doctor again"
        return [f.line() for f in self.findings] + [summary]

    def as_json(self) -> str:
        document = {
            "config": self.source,
            "user": self.user,
            "problems": self.problems,
            "warnings": self.warnings,
            "findings": [asdict(f) for f in self.findings],
        }
        return json.dumps(document, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class Stored:
    """What the doctor read from the database; None where it could not (``error`` says why)."""

    key_matches: bool | None = None
    open_links: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Context:
    """What every check may look at."""

    settings: Settings
    uid: int
    now: dt.datetime
    stored: Stored
    #: Why the key file could not be loaded (None: it is a master key file).
    key_error: str | None

    @property
    def config(self) -> str:
        return str(self.settings.source or "the configuration file")

    @property
    def user(self) -> str:
        return _user_name(self.uid)

    @property
    def chown_to(self) -> str:
        """The running user as chown takes it: the name, else the number."""
        name = _user_name(self.uid)
        return str(self.uid) if name.startswith("uid ") else name

    @property
    def public_scheme_host(self) -> tuple[str, str] | None:
        """([server] public_url's scheme, host), None when it is empty."""
        if not self.settings.server.public_url:
            return None
        parts = urlsplit(self.settings.server.public_url)
        return parts.scheme, parts.hostname or ""

    @property
    def proxy_tls(self) -> bool:
        """TLS ends at a proxy in front: MedDAV serves plain HTTP, users reach an https:// public_url."""
        public = self.public_scheme_host
        return not self.settings.server.tls and public is not None and public[0] == "https"

    @property
    def exposed(self) -> bool:
        """Reachable from other machines: a network address, or a public_url that is not loopback."""
        public = self.public_scheme_host
        return not is_loopback(self.settings.server.host) or (public is not None and not is_loopback(public[1]))


# -- the checks ---------------------------------------------------------------------------


def check_config(ctx: Context) -> list[Finding]:
    """The configuration file: not writable by others (it points at the key and the data), private if it holds
    a password."""
    source = ctx.settings.source
    if source is None:
        return []
    path = Path(source).resolve()
    quoted = shlex.quote(str(path))
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    found: list[Finding] = []
    if mode & 0o022:
        found.append(
            Finding(
                PROBLEM,
                "config",
                f"{path}: mode {mode:04o} lets {_open_to(mode)}; whoever can write it can point MedDAV at "
                "another key, data directory or certificate",
                f"chmod 600 {quoted}",
            )
        )
    secrets = _config_secrets(ctx.settings)
    if mode & 0o044 and secrets:
        found.append(
            Finding(
                PROBLEM,
                "config",
                f"{path}: holds {' and '.join(secrets)}, and its mode {mode:04o} lets {_open_to(mode)}",
                f"chmod 600 {quoted}",
            )
        )
    if st.st_uid not in (ctx.uid, 0):
        found.append(
            Finding(
                WARNING,
                "config",
                f"{path}: owned by {_user_name(st.st_uid)}, who can change any setting",
                f"chown {ctx.chown_to} {quoted}",
            )
        )
    return found or [Finding(OK, "config", f"{path}: mode {mode:04o}, owner {_user_name(st.st_uid)}")]


def check_tls(ctx: Context) -> list[Finding]:
    """HTTPS: served by MedDAV with a valid certificate and a private key, or by a proxy in front of a
    loopback address; plain HTTP only on loopback."""
    server = ctx.settings.server
    if server.tls_cert is None or server.tls_key is None:
        return [_plain_http(ctx)]
    found = _certificate(ctx, server.tls_cert, server.tls_key)
    return found + _owner_only(ctx, server.tls_key, "tls", "[server] tls_key")


def check_public_url(ctx: Context) -> list[Finding]:
    """The address in mails and mount instructions: https:// whenever other machines use it."""
    url = ctx.settings.server.public_url
    public = ctx.public_scheme_host
    if public is None:
        base = ctx.settings.public_base_url()
        if ctx.exposed:
            return [
                Finding(
                    WARNING,
                    "public-url",
                    f"[server] public_url is empty: links in mails and mount instructions are built from host "
                    f"and port ({base}), which may not be where users reach the server",
                    f'set [server] public_url = "https://<the name users reach>" in {ctx.config}',
                )
            ]
        return [Finding(OK, "public-url", f"[server] public_url is empty: links use {base} (loopback)")]
    scheme, host = public
    if scheme == "http" and not is_loopback(host):
        return [
            Finding(
                PROBLEM,
                "public-url",
                f"[server] public_url = {url}: links in mails (share links carry their token) and the passwords "
                "of the drives that follow them travel in clear",
                f'serve TLS (or a TLS proxy) and set [server] public_url = "https://{host}" in {ctx.config}',
            )
        ]
    return [Finding(OK, "public-url", f"[server] public_url = {url}")]


def check_proxy(ctx: Context) -> list[Finding]:
    """A TLS-terminating proxy in front: whose X-Forwarded-For is believed, and what MedDAV cannot do there."""
    server = ctx.settings.server
    found: list[Finding] = []
    for network in server.trusted_proxies:
        if network.prefixlen == 0:
            found.append(
                Finding(
                    PROBLEM,
                    "proxy",
                    f"[server] trusted_proxies holds {network}: every client may choose the address it is "
                    "throttled and audited under (X-Forwarded-For)",
                    f"list only the proxy's own address in [server] trusted_proxies in {ctx.config}",
                )
            )
        elif not (network.is_private or network.is_loopback):
            found.append(
                Finding(
                    WARNING,
                    "proxy",
                    f"[server] trusted_proxies holds {network}, a public network: any host there may forge "
                    "client addresses",
                    f"list only the proxy's own address in [server] trusted_proxies in {ctx.config}",
                )
            )
    if ctx.proxy_tls and not server.trusted_proxies:
        found.append(
            Finding(
                WARNING,
                "proxy",
                "[server] trusted_proxies is empty behind the proxy of [server] public_url: every client "
                "appears with the proxy's address, so one attacker's failed logins throttle everyone and "
                "the audit log shows only the proxy",
                f'set [server] trusted_proxies = ["<the proxy\'s address>"] in {ctx.config}',
            )
        )
    if found:
        return found
    if server.trusted_proxies:
        listed = ", ".join(str(n) for n in server.trusted_proxies)
        return [Finding(OK, "proxy", f"[server] trusted_proxies = {listed}")]
    return [Finding(OK, "proxy", "no reverse proxy configured ([server] trusted_proxies is empty)")]


def check_master_key(ctx: Context) -> list[Finding]:
    """The master key file: a key, this instance's, owner-only, outside the data directory and blob store,
    with no copy left inside the data directory."""
    storage = ctx.settings.storage
    path, quoted = storage.key_file, shlex.quote(str(storage.key_file))
    if not path.exists():
        return [
            Finding(
                PROBLEM,
                "master-key",
                f"[storage] key_file {path}: not found; nothing can be decrypted without it",
                f"restore it from your key backup, or set [storage] key_file in {ctx.config} to where it is",
            )
        ]
    found = _owner_only(ctx, path, "master-key", "[storage] key_file")
    if ctx.key_error is not None:
        found.append(Finding(PROBLEM, "master-key", ctx.key_error, "restore the key file created with this instance"))
    elif ctx.stored.key_matches is False:
        found.append(
            Finding(
                PROBLEM,
                "master-key",
                f"[storage] key_file {path}: a master key, but not the one this database was created with",
                f"set [storage] key_file in {ctx.config} to the key file created with this instance",
            )
        )
    for inside, where in ((storage.data_dir, "data_dir"), (storage.blob_dir, "blob_dir")):
        if _within(path, inside):
            found.append(
                Finding(
                    PROBLEM,
                    "master-key",
                    f"[storage] key_file {path}: inside [storage] {where} {inside}, so a backup of it carries "
                    "its own key",
                    f"move it beside the data directory (mv {quoted} "
                    f"{shlex.quote(str(default_key_file(storage.data_dir)))}) and update [storage] key_file in "
                    f"{ctx.config}",
                )
            )
    parent = path.parent
    parent_mode = stat.S_IMODE(parent.stat().st_mode)
    if parent_mode & 0o022 and not parent_mode & stat.S_ISVTX:
        found.append(
            Finding(
                WARNING,
                "master-key",
                f"{parent}: the key file's directory, mode {parent_mode:04o}, lets {_open_to(parent_mode)}: "
                "they can replace or delete the key file",
                f"chmod go-w {shlex.quote(str(parent))}",
            )
        )
    for copy in _key_copies(storage.data_dir, storage.blob_dir, path):
        found.append(
            Finding(
                PROBLEM,
                "master-key",
                f"{copy}: a master key inside the data directory, so a backup of the data carries a key",
                f"check it is a copy of your key backup, then delete it: shred -u {shlex.quote(str(copy))}",
            )
        )
    if found:
        return found
    mode = stat.S_IMODE(path.stat().st_mode)
    checked = ", this instance's" if ctx.stored.key_matches else ""
    return [
        Finding(
            OK,
            "master-key",
            f"[storage] key_file {path}: mode {mode:04o}, owner {ctx.user}, outside the data directory{checked}",
        )
    ]


def check_data_dir(ctx: Context) -> list[Finding]:
    """The data directory (and a blob store or SQLite file kept elsewhere): the serving user's, closed to
    everyone else."""
    storage = ctx.settings.storage
    data_dir = storage.data_dir
    if not data_dir.is_dir():
        return [
            Finding(
                PROBLEM,
                "data-dir",
                f"[storage] data_dir {data_dir}: not a directory",
                f"create the instance with meddav init --data-dir {shlex.quote(str(data_dir))}, or fix the path",
            )
        ]
    found = _private_dir(ctx, data_dir, "[storage] data_dir")
    places: list[Path] = [storage.blob_dir]
    database = _sqlite_file(ctx.settings)
    if database is not None:
        places.append(database)
    outside = [p for p in places if p.exists() and not _within(p, data_dir)]
    for place in outside:
        if place.is_dir():
            found += _private_dir(ctx, place, "[storage] blob_dir")
        else:
            found += _owner_only(ctx, place, "data-dir", "[database] url: SQLite file")
    # Inside a closed data directory, an open file is out of reach; but a later chmod, a copy or a
    # backup may keep its mode.  The configuration file has a check of its own.
    config = Path(ctx.settings.source).resolve() if ctx.settings.source else None
    loose = [
        entry
        for entry in sorted(data_dir.iterdir())
        if entry != config and not entry.is_symlink() and stat.S_IMODE(entry.lstat().st_mode) & 0o077
    ]
    if loose:
        names = ", ".join(e.name for e in loose[:3]) + (", ..." if len(loose) > 3 else "")
        found.append(
            Finding(
                WARNING,
                "data-dir",
                f"{data_dir}: {len(loose)} entr{'y' if len(loose) == 1 else 'ies'} open to group or others ({names})",
                f"chmod -R go-rwx {shlex.quote(str(data_dir))}",
            )
        )
    if found:
        return found
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    return [Finding(OK, "data-dir", f"[storage] data_dir {data_dir}: mode {mode:04o}, owner {ctx.user}")]


def check_debug(ctx: Context) -> list[Finding]:
    """Debug logging off: the configuration's only debug switch is [log] level."""
    level = ctx.settings.log.level
    if level == "debug":
        return [
            Finding(
                PROBLEM,
                "debug",
                '[log] level = "debug": the logs keep far more about who did what than operators need',
                f'set [log] level = "info" in {ctx.config} once the investigation is over',
            )
        ]
    return [Finding(OK, "debug", f'[log] level = "{level}"')]


def check_mail(ctx: Context) -> list[Finding]:
    """Mail really sent (links, their passwords and codes reach recipients), encrypted unless on loopback."""
    mail = ctx.settings.mail
    configure = (
        f'configure [mail] in {ctx.config}: backend = "smtp", smtp_host, smtp_port, smtp_security = "starttls" '
        "(see docs/mail.md)"
    )
    if mail.backend == "console":
        links = ctx.stored.open_links
        if links:
            return [
                Finding(
                    PROBLEM,
                    "mail",
                    f'[mail] backend = "console" with {_count(links, "share link")} not ended: mails go to the '
                    "log only, so their recipients got no link, no password and no code",
                    configure,
                )
            ]
        if ctx.exposed:
            return [
                Finding(
                    PROBLEM,
                    "mail",
                    '[mail] backend = "console" on an instance other machines reach: share links, e-mailed '
                    "codes, invitations and password resets go to the log and reach nobody",
                    configure,
                )
            ]
        return [
            Finding(
                WARNING,
                "mail",
                '[mail] backend = "console" (loopback instance): mails go to the log, fine for trying MedDAV '
                "out; share links and e-mailed codes need a real mail server",
                configure,
            )
        ]
    found: list[Finding] = []
    relay = f"{mail.smtp_host}:{mail.smtp_port}"
    if mail.smtp_security == "none" and not is_loopback(mail.smtp_host):
        found.append(
            Finding(
                PROBLEM,
                "mail",
                f'[mail] smtp_security = "none" to {relay}: share links, passwords of links and codes cross '
                "the network in clear",
                f'set [mail] smtp_security = "starttls" (port 587) or "tls" (port 465) in {ctx.config}, or relay '
                "through a mail server on 127.0.0.1",
            )
        )
    expected = {"tls": 465, "starttls": 587}.get(mail.smtp_security)
    if (mail.smtp_security, mail.smtp_port) in (("tls", 587), ("tls", 25), ("starttls", 465)):
        found.append(
            Finding(
                WARNING,
                "mail",
                f'[mail] smtp_security = "{mail.smtp_security}" on port {mail.smtp_port}: that port usually '
                "speaks the other way, and every mail would fail",
                f"set [mail] smtp_port = {expected} in {ctx.config}, or the port your provider gives for this mode",
            )
        )
    if ctx.exposed and mail.from_address.rstrip(">").lower().endswith("@localhost"):
        found.append(
            Finding(
                WARNING,
                "mail",
                f"[mail] from_address = {mail.from_address}: mail from @localhost is refused or marked as spam "
                "by most servers",
                f'set [mail] from_address = "MedDAV <no-reply@your-domain>" in {ctx.config}',
            )
        )
    return found or [Finding(OK, "mail", f'[mail] backend = "smtp" via {relay} ({mail.smtp_security})')]


def check_second_factor(ctx: Context) -> list[Finding]:
    """Administrators sign in to the web pages with a second factor."""
    if ctx.settings.web.admins_need_second_factor:
        return [Finding(OK, "second-factor", "[web] admins_need_second_factor = true")]
    return [
        Finding(
            PROBLEM if ctx.exposed else WARNING,
            "second-factor",
            "[web] admins_need_second_factor = false: an administrator's password alone opens every member "
            "account and the audit log",
            f"set [web] admins_need_second_factor = true in {ctx.config} (or remove the line)",
        )
    ]


def check_argon2(ctx: Context) -> list[Finding]:
    """Password hashing at least as costly as the defaults; below the OWASP minimum, a problem."""
    auth = ctx.settings.auth
    time_cost, memory = _default("auth", "argon2_time_cost"), _default("auth", "argon2_memory_kib")
    shown = f"argon2_time_cost = {auth.argon2_time_cost}, argon2_memory_kib = {auth.argon2_memory_kib}"
    fix = f"remove the argon2_* lines from [auth] in {ctx.config} (defaults: time {time_cost}, memory {memory} KiB)"
    if auth.argon2_memory_kib < ARGON2_MIN_MEMORY_KIB or auth.argon2_time_cost < ARGON2_MIN_TIME_COST:
        return [
            Finding(
                PROBLEM,
                "argon2",
                f"[auth] {shown}: below the OWASP minimum (19 MiB, 2 passes); a stolen database's passwords "
                "are cheap to guess",
                fix,
            )
        ]
    if auth.argon2_memory_kib < memory or auth.argon2_time_cost < time_cost:
        return [Finding(WARNING, "argon2", f"[auth] {shown}: weaker than the defaults", fix)]
    return [Finding(OK, "argon2", f"[auth] {shown}")]


#: Options where a value above (+1) or below (-1) the default weakens security, and what it costs.
_WEAKER: Final[tuple[tuple[str, str, int, str], ...]] = (
    ("passwords", "min_length", -1, "shorter passwords are guessed sooner"),
    ("passwords", "min_strength", -1, "weaker passwords are accepted"),
    ("throttle", "delay_after", +1, "more guesses before logins slow down"),
    ("throttle", "max_failures", +1, "more guesses before logins are refused"),
    ("throttle", "max_delay_seconds", -1, "guesses wait less"),
    ("throttle", "window_seconds", -1, "failures are forgotten sooner"),
    ("web", "session_idle_minutes", +1, "a browser left signed in stays open longer"),
    ("web", "session_lifetime_hours", +1, "a stolen session works longer"),
    ("web", "reset_link_minutes", +1, "a password-reset link works longer"),
    ("web", "invitation_days", +1, "an invitation link works longer"),
    ("sharing", "default_expiry_days", +1, "links live longer unless their owners choose"),
    ("sharing", "max_expiry_days", +1, "owners may keep links alive longer"),
    ("dav", "allow_infinite_depth", +1, "one PROPFIND lists a whole tree (slow, and a denial of service)"),
    ("audit", "retention_days", -1, "the audit trail is deleted sooner"),
)


def check_policy(ctx: Context) -> list[Finding]:
    """Sessions, password rules, login throttling, link lifetimes, audit retention: the defaults or stricter."""
    found: list[Finding] = []
    for section, option, weaker, cost in _WEAKER:
        value, default = getattr(getattr(ctx.settings, section), option), _default(section, option)
        if section == "audit" and value == 0:  # 0 keeps every row: stricter than any number of days
            continue
        if (value - default) * weaker > 0:
            found.append(
                Finding(
                    WARNING,
                    "policy",
                    f"[{section}] {option} = {_toml(value)}: weaker than the default {_toml(default)}; {cost}",
                    f"set [{section}] {option} = {_toml(default)} in {ctx.config} (or remove the line)",
                )
            )
    sections = ", ".join(dict.fromkeys(f"[{s}]" for s, *_ in _WEAKER))
    return found or [Finding(OK, "policy", f"{sections}: the defaults or stricter")]


def check_database(ctx: Context) -> list[Finding]:
    """PostgreSQL over verified TLS unless on this machine; the database readable by the doctor."""
    found: list[Finding] = []
    url = _database_url(ctx.settings)
    host = url.host if url is not None and url.get_backend_name() == "postgresql" else None
    if host and not host.startswith("/") and not is_loopback(host):  # "/...": a Unix socket
        mode = str(url.query.get("sslmode", "prefer")) if url is not None else ""
        where = f"[database] url: PostgreSQL at {host}"
        fix = f"add ?sslmode=verify-full to [database] url in {ctx.config} (with the server's CA in ~/.postgresql)"
        if mode in ("disable", "allow"):
            found.append(Finding(PROBLEM, "database", f"{where}, sslmode={mode}: queries travel in clear", fix))
        elif mode not in ("verify-ca", "verify-full"):
            found.append(
                Finding(
                    WARNING,
                    "database",
                    f"{where}, sslmode={mode}: the server's certificate is not verified",
                    fix,
                )
            )
    if ctx.stored.error is not None:
        found.append(
            Finding(
                WARNING,
                "database",
                f"cannot read the database ({ctx.stored.error}): whether the key file is this instance's, and "
                "the open share links, were not checked",
                "run meddav doctor as the user that runs meddav serve, with the database reachable and its "
                "driver installed",
            )
        )
    if found:
        return found
    kind = "SQLite" if _sqlite_file(ctx.settings) is not None else "PostgreSQL"
    return [Finding(OK, "database", f"{kind}, readable")]


#: The checks, in the order they are printed.
CHECKS: Final[tuple[Callable[[Context], list[Finding]], ...]] = (
    check_config,
    check_tls,
    check_public_url,
    check_proxy,
    check_master_key,
    check_data_dir,
    check_debug,
    check_mail,
    check_second_factor,
    check_argon2,
    check_policy,
    check_database,
)


def diagnose(
    config: str | os.PathLike[str] | None, *, uid: int | None = None, now: dt.datetime | None = None
) -> Report:
    """Run every check on the instance configured by ``config`` (default ``$MEDDAV_CONFIG``).

    A configuration file that does not load is reported problem by problem (nothing else can be
    checked then).  Raises :class:`ConfigError` when there is no file to read at all.
    ``uid`` is whose files are expected (default: the effective user); ``now`` dates certificates.
    """
    uid = os.geteuid() if uid is None else uid
    now = now or dt.datetime.now(dt.UTC)
    try:
        settings = load_settings(config)
    except ConfigError as error:
        path = config if config is not None else os.environ.get(ENV_VAR)
        if not path or not Path(path).is_file():
            raise
        fix = f"correct it in {path}; the other checks run once the configuration loads (meddav config check)"
        findings = tuple(Finding(PROBLEM, "config", _hide_secret(p), fix) for p in error.problems)
        return Report(str(path), _user_name(uid), findings)
    master, key_error = None, None
    try:
        master = MasterKey.load_file(settings.storage.key_file)
    except KeyFileError as error:
        key_error = str(error)
    ctx = Context(settings, uid, now, _read_database(settings, master, now), key_error)
    return Report(str(settings.source), ctx.user, tuple(f for check in CHECKS for f in _run(check, ctx)))


def _run(check: Callable[[Context], list[Finding]], ctx: Context) -> list[Finding]:
    """A check's findings; a file or directory it cannot examine is a problem of its own."""
    try:
        return check(ctx)
    except OSError as error:
        name = check.__name__.removeprefix("check_").replace("_", "-")
        return [Finding(PROBLEM, name, f"cannot examine {error.filename} ({error.strerror})", _AS_SERVER)]


# -- helpers ------------------------------------------------------------------------------


def _plain_http(ctx: Context) -> Finding:
    """The TLS finding when MedDAV itself serves plain HTTP."""
    host = ctx.settings.server.host
    tls_fix = (
        f"set [server] tls_cert and tls_key in {ctx.config}, or put a TLS-terminating proxy in front and set "
        '[server] public_url = "https://..."'
    )
    if not is_loopback(host):
        if ctx.proxy_tls:
            return Finding(
                WARNING,
                "tls",
                f"[server] host = {host}: plain HTTP on a network address (TLS ends at the proxy of "
                "[server] public_url); passwords and health data cross the network between proxy and MedDAV "
                "in clear",
                f'run the proxy on this machine and set [server] host = "127.0.0.1" in {ctx.config}, or give '
                "MedDAV its own certificate ([server] tls_cert, tls_key)",
            )
        return Finding(
            PROBLEM,
            "tls",
            f"[server] host = {host} with allow_plain_http and no https:// public_url: passwords and health "
            "data cross the network in clear",
            tls_fix,
        )
    if ctx.proxy_tls:
        return Finding(OK, "tls", f"plain HTTP on loopback ({host}) behind the TLS proxy of [server] public_url")
    return Finding(
        WARNING,
        "tls",
        f"[server] tls_cert is empty: plain HTTP on loopback ({host}), which only this machine reaches; fine for "
        "trying MedDAV out, not for practitioners' drives",
        f"before opening it to users: {tls_fix}",
    )


class _Passphrase(Exception):
    """The TLS key asked for a passphrase (which ``meddav serve`` cannot give)."""


def _refuse_passphrase() -> NoReturn:
    raise _Passphrase


def _certificate(ctx: Context, cert: Path, key: Path) -> list[Finding]:
    """The certificate chain: readable, dated, usable with the key as cheroot loads them."""
    try:
        pem = cert.read_bytes()
    except OSError as error:
        return [
            Finding(
                PROBLEM,
                "tls",
                f"[server] tls_cert {cert}: cannot be read ({error.strerror})",
                f"chmod 644 {shlex.quote(str(cert))}, or fix [server] tls_cert in {ctx.config}",
            )
        ]
    found: list[Finding] = []
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=_refuse_passphrase)
    except _Passphrase:
        found.append(
            Finding(
                PROBLEM,
                "tls",
                f"[server] tls_key {key}: encrypted with a passphrase, which meddav serve cannot type",
                f"store it unencrypted, owner-only: openssl pkey -in {shlex.quote(str(key))} -out KEY "
                "&& chmod 600 KEY, then set [server] tls_key = KEY",
            )
        )
    except ssl.SSLError as error:
        found.append(
            Finding(
                PROBLEM,
                "tls",
                f"[server] tls_cert and tls_key cannot be used together ({error.reason or error})",
                "set [server] tls_key to the private key of tls_cert (openssl x509 -noout -pubkey -in CERT and "
                "openssl pkey -pubout -in KEY print the same key)",
            )
        )
    except OSError as error:
        found.append(
            Finding(
                PROBLEM,
                "tls",
                f"[server] tls_key {key}: cannot be read ({error.strerror})",
                f"chown {ctx.chown_to} {shlex.quote(str(key))} && chmod 600 {shlex.quote(str(key))}",
            )
        )
    blocks = _PEM_CERTIFICATE.findall(pem)
    dates: list[tuple[dt.datetime, dt.datetime, int]] = []
    for index, block in enumerate(blocks, 1):
        try:
            dates.append((*certificate_validity(base64.b64decode(block)), index))
        except ValueError:
            found.append(
                Finding(
                    PROBLEM,
                    "tls",
                    f"[server] tls_cert {cert}: certificate {index} cannot be read",
                    "replace the file with the PEM certificate chain your authority issued",
                )
            )
    if not blocks:
        found.append(
            Finding(
                PROBLEM,
                "tls",
                f"[server] tls_cert {cert}: no PEM certificate in it",
                "point [server] tls_cert at the PEM certificate chain (BEGIN CERTIFICATE)",
            )
        )
    renew = "renew the certificate (e.g. certbot renew), put it in place, then restart meddav serve"
    for not_before, not_after, index in dates:
        which = f"[server] tls_cert {cert}" + (f" (certificate {index} of the chain)" if index > 1 else "")
        days = (not_after - ctx.now).days
        if not_after <= ctx.now:
            found.append(Finding(PROBLEM, "tls", f"{which}: expired on {not_after:%Y-%m-%d %H:%M} UTC", renew))
        elif not_before > ctx.now:
            found.append(
                Finding(
                    PROBLEM,
                    "tls",
                    f"{which}: not valid before {not_before:%Y-%m-%d %H:%M} UTC",
                    "check this machine's clock, or put the certificate in use now back in place",
                )
            )
        elif days < CERT_WARN_DAYS:
            found.append(
                Finding(
                    WARNING,
                    "tls",
                    f"{which}: expires on {not_after:%Y-%m-%d} UTC, in {_count(days, 'day')}",
                    f"{renew}; check that automatic renewal runs",
                )
            )
    if not found and dates:
        not_after = min(d[1] for d in dates)
        days = (not_after - ctx.now).days
        found.append(
            Finding(
                OK,
                "tls",
                f"[server] tls_cert {cert}: valid until {not_after:%Y-%m-%d} UTC ({_count(days, 'day')}), "
                "matches tls_key",
            )
        )
    return found


_PEM_CERTIFICATE: Final = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def _owner_only(ctx: Context, path: Path, check: str, label: str) -> list[Finding]:
    """Problems of a secret file: any access for group or others, another owner than the serving user."""
    quoted = shlex.quote(str(path))
    try:
        st = path.stat()
    except OSError as error:
        return [Finding(PROBLEM, check, f"{label} {path}: cannot be examined ({error.strerror})", _AS_SERVER)]
    mode = stat.S_IMODE(st.st_mode)
    found: list[Finding] = []
    if mode & 0o077:
        found.append(
            Finding(PROBLEM, check, f"{label} {path}: mode {mode:04o} lets {_open_to(mode)}", f"chmod 600 {quoted}")
        )
    if st.st_uid != ctx.uid:
        found.append(
            Finding(
                PROBLEM,
                check,
                f"{label} {path}: owned by {_user_name(st.st_uid)}, not by {ctx.user} who runs this check",
                f"chown {ctx.chown_to} {quoted} ({_AS_SERVER})",
            )
        )
    return found


def _private_dir(ctx: Context, path: Path, label: str) -> list[Finding]:
    """Problems of a directory only the serving user may enter."""
    quoted = shlex.quote(str(path))
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    found: list[Finding] = []
    if mode & 0o077:
        found.append(
            Finding(
                PROBLEM,
                "data-dir",
                f"{label} {path}: mode {mode:04o} lets {_open_to(mode)}",
                f"chmod 700 {quoted}",
            )
        )
    if st.st_uid != ctx.uid:
        found.append(
            Finding(
                PROBLEM,
                "data-dir",
                f"{label} {path}: owned by {_user_name(st.st_uid)}, not by {ctx.user} who runs this check",
                f"chown -R {ctx.chown_to} {quoted} ({_AS_SERVER})",
            )
        )
    return found


def _key_copies(data_dir: Path, blob_dir: Path, key_file: Path) -> list[Path]:
    """Master key files (or links to the key file) inside the data directory, the blob store excluded."""
    found: list[Path] = []
    scanned = 0
    for folder, dirs, files in os.walk(data_dir):
        dirs[:] = [d for d in dirs if Path(folder, d) != blob_dir]
        for name in files:
            path = Path(folder, name)
            scanned += 1
            if scanned > _SCAN_LIMIT:
                return found
            if path.is_symlink():
                if path.resolve() == key_file:
                    found.append(path)
                continue
            try:
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode) or st.st_size > _KEY_FILE_MAX_BYTES:  # a FIFO would block
                    continue
                MasterKey.load_file(path)
            except (OSError, KeyFileError):
                continue
            found.append(path)
    return found


def _read_database(settings: Settings, master: MasterKey | None, now: dt.datetime) -> Stored:
    """Whether the key file is this instance's, and how many links have not ended (read-only)."""
    database = _sqlite_file(settings)
    if database is not None and not database.is_file():  # connecting would create an empty one
        return Stored(error=f"no SQLite file at {database}")
    try:
        db = Database(settings, pool_size=1)
    except Exception as error:  # a missing driver or a malformed URL: reported, never fatal
        return Stored(error=type(error).__name__)
    try:
        with db.read() as c:
            record = c.one(select(instance_t.c.instance_id, instance_t.c.key_check))
            links = c.scalar(
                select(func.count())
                .select_from(shares_t)
                .where(
                    shares_t.c.kind == "link",
                    shares_t.c.revoked_at.is_(None),
                    or_(shares_t.c.expires_at.is_(None), shares_t.c.expires_at > now.timestamp()),
                )
            )
    except Exception as error:  # the class only: a driver's message may quote the URL
        return Stored(error=type(error).__name__)
    finally:
        db.close()
    matches = None if master is None or record is None else master.matches(record.instance_id, record.key_check)
    return Stored(key_matches=matches, open_links=int(links or 0))


def _database_url(settings: Settings) -> URL | None:
    try:
        return make_url(settings.database.url)
    except ArgumentError:
        return None


def _sqlite_file(settings: Settings) -> Path | None:
    url = _database_url(settings)
    if url is None or url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def _config_secrets(settings: Settings) -> list[str]:
    """The options of the file that hold a password (named, never shown)."""
    secrets = ["[mail] smtp_password"] if settings.mail.smtp_password else []
    url = _database_url(settings)
    if url is not None and url.password:
        secrets.append("a password in [database] url")
    return secrets


def _hide_secret(problem: str) -> str:
    """A configuration problem, without the value of an option that may hold a password."""
    for option in _SECRET_OPTIONS:
        if problem.startswith(option + " "):
            return f"{option}: the value is not valid (not shown: it may hold a password)"
    return problem


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _open_to(mode: int) -> str:
    """Who may do what beyond the owner: "group read, others read/write"."""
    parts = []
    for who, bits in (("group", (mode >> 3) & 7), ("others", mode & 7)):
        verbs = [verb for bit, verb in ((4, "read"), (2, "write"), (1, "execute")) if bits & bit]
        if verbs:
            parts.append(f"{who} {'/'.join(verbs)}")
    return ", ".join(parts)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _default(section: str, option: str) -> Any:
    for s in SCHEMA:
        opt = s.option(option) if s.name == section else None
        if opt is not None:
            return opt.default
    raise KeyError(f"[{section}] {option}")


def _toml(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
