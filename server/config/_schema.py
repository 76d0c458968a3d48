"""Every configuration option: its default, its help line and its validator.

The schema is data.  ``server.config`` validates a TOML document against it,
and renders ``conf/meddav.example.toml`` from it (a test keeps the two in
step).  A validator takes the raw TOML value and returns the typed value, or
raises :class:`Invalid` with a message that says what is wrong *and* what to do.
"""

from __future__ import annotations

import ipaddress
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SCHEMA", "Invalid", "Option", "Section"]


class Invalid(ValueError):
    """A value failed validation; the message ends with the fix."""


Validator = Callable[[Any], Any]


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    validate: Validator
    #: How the default is shown in the example file when it is computed at start.
    shown_default: str | None = None


@dataclass(frozen=True)
class Section:
    name: str
    help: str
    options: tuple[Option, ...]

    def option(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


# -- validators ---------------------------------------------------------------


def integer(low: int | None = None, high: int | None = None, *, hint: str = "") -> Validator:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be a whole number{_range_text(low, high)}{hint}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise Invalid(f"out of range: must be{_range_text(low, high)}{hint}")
        return value

    return check


def _range_text(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" between {low} and {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false (without quotes)")
    return value


def choice(*choices: str) -> Validator:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise Invalid("must be one of " + ", ".join(f'"{c}"' for c in choices))
        return value

    return check


def text(*, allow_empty: bool = True) -> Validator:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("must be a string in double quotes")
        if not allow_empty and not value.strip():
            raise Invalid("must not be empty")
        return value

    return check


def time_zone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid('must be a time zone name in double quotes, e.g. "Europe/Paris"')
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(f'unknown time zone {value!r}: use an IANA name such as "Europe/Paris"') from None
    return value


def host(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid('must be an IP address or host name, e.g. "127.0.0.1"')
    name = value.strip()
    try:
        ipaddress.ip_address(name)
    except ValueError:
        labels = name.split(".")
        if not all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels):
            raise Invalid('must be an IP address or host name, e.g. "127.0.0.1" or "0.0.0.0"') from None
    return name


def url_prefix(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid('must be a URL such as "https://files.example.org" or ""')
    url = value.strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise Invalid('must start with http:// or https://, e.g. "https://files.example.org"')
    return url


def networks(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    hint = 'must be a list of addresses or networks, e.g. ["127.0.0.1", "10.0.0.0/8"]'
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(hint)
    try:
        return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in value)
    except ValueError as exc:
        raise Invalid(f"{exc}; {hint}") from None


def plugin_names(value: Any) -> tuple[str, ...]:
    hint = 'must be a list of plugin names, e.g. ["ehr_bridge"] (see: meddav plugins list)'
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise Invalid(hint)
    return tuple(v.strip() for v in value)


def email_address(*, allow_empty: bool = False) -> Validator:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid('must be an e-mail address in double quotes, e.g. "MedDAV <no-reply@example.org>"')
        if not value.strip() and allow_empty:
            return ""
        if "@" not in value or any(c in value for c in "\r\n"):
            raise Invalid('must be an e-mail address, e.g. "MedDAV <no-reply@example.org>"')
        return value.strip()

    return check


# -- the schema ---------------------------------------------------------------

_PORT_HINT = "; pick a free port such as 8080"

SCHEMA: tuple[Section, ...] = (
    Section(
        "server",
        "The HTTP(S) listener.",
        (
            Option(
                "host",
                "127.0.0.1",
                "Address to listen on. Anything but a loopback address needs TLS (below) or allow_plain_http.",
                host,
            ),
            Option("port", 8080, "TCP port to listen on.", integer(1, 65535, hint=_PORT_HINT)),
            Option(
                "public_url",
                "",
                (
                    "URL users reach the server at, as printed in mount instructions (e.g. "
                    "https://files.example.org). Empty: built from host and port."
                ),
                url_prefix,
            ),
            Option(
                "tls_cert", "", "PEM certificate chain for HTTPS, relative to this file. Empty: plain HTTP.", text()
            ),
            Option("tls_key", "", "PEM private key for tls_cert, relative to this file.", text()),
            Option(
                "allow_plain_http",
                False,
                (
                    "Serve plain HTTP on a non-loopback address, for use behind a TLS-terminating reverse "
                    "proxy only. A warning is logged at every start."
                ),
                boolean,
            ),
            Option(
                "threads",
                16,
                "Worker threads, i.e. requests served at once.",
                integer(2, 512, hint="; 16 suits a small practice"),
            ),
            Option(
                "timeout_seconds",
                60,
                "Seconds a connection may stay silent before it is closed (slow or stalled clients).",
                integer(5, 3600),
            ),
            Option(
                "max_header_bytes",
                65536,
                "Largest request head (request line and headers) accepted, in bytes.",
                integer(8192, 1048576),
            ),
            Option(
                "trusted_proxies",
                [],
                (
                    "Reverse proxies whose X-Forwarded-For header is believed (addresses or networks); the "
                    "client address of any other request is the peer's, whatever the headers say."
                ),
                networks,
                shown_default="[]",
            ),
        ),
    ),
    Section(
        "storage",
        "Where data and keys live. Relative paths are relative to this file.",
        (
            Option(
                "data_dir",
                ".",
                "Data directory: the database (SQLite) and the blob store. Holds ciphertext only.",
                text(allow_empty=False),
            ),
            Option(
                "key_file",
                "",
                (
                    "Master key file. It must NOT be inside data_dir, so that a backup of the data never "
                    "carries its own key."
                ),
                text(),
                shown_default='"../<data_dir name>.master.key"',
            ),
            Option("backend", "local", 'Blob store: "local" (a directory).', choice("local")),
            Option("blob_dir", "", "Directory of the local blob store. Empty: <data_dir>/blobs.", text()),
            Option(
                "default_quota_bytes",
                0,
                "Storage quota of a user, in bytes, unless set per user (meddav user add --quota). 0: unlimited.",
                integer(0, hint="; use 0 for unlimited"),
            ),
        ),
    ),
    Section(
        "database",
        "The metadata database (tree, encrypted names, accounts, locks, properties).",
        (
            Option("url", "", "SQLAlchemy URL. Empty: SQLite file <data_dir>/meddav.sqlite3.", text()),
            Option(
                "sqlite_synchronous",
                "full",
                (
                    'SQLite durability: "full" makes every acknowledged write survive a power cut; "normal" '
                    "survives a crash of MedDAV but may lose the last writes on a power cut."
                ),
                choice("full", "normal"),
            ),
            Option(
                "namespace_sync_ms",
                1000,
                (
                    "Changes of names only (MKCOL, MOVE and DELETE of folders, renames, PROPPATCH) are acknowledged "
                    "before their fsync, which follows within this many milliseconds, as a file system does with "
                    "its metadata; a power cut in between may undo them, never a stored file. Contents, and "
                    "whatever frees a stored file, are durable when acknowledged. 0: every change is durable "
                    "when acknowledged."
                ),
                integer(0, 60000),
            ),
            Option(
                "busy_timeout_ms",
                10000,
                "How long a write waits for the database lock before failing, in milliseconds.",
                integer(100, 600000),
            ),
        ),
    ),
    Section(
        "dav",
        "The WebDAV protocol (under /dav/).",
        (
            Option(
                "max_xml_body_bytes",
                1048576,
                "Largest request body accepted by methods other than PUT (PROPFIND, PROPPATCH, LOCK...). Larger: 413.",
                integer(1024, 64 * 1048576),
            ),
            Option(
                "allow_infinite_depth",
                False,
                (
                    "Answer PROPFIND with Depth: infinity (a whole tree in one response). Off: 403 "
                    "propfind-finite-depth, as RFC 4918 allows."
                ),
                boolean,
            ),
            Option(
                "max_ranges",
                16,
                "Most byte ranges served in one multipart answer; a request asking for more gets the whole file.",
                integer(1, 1000),
            ),
            Option(
                "max_lock_timeout_seconds",
                604800,
                "Longest WebDAV lock granted, in seconds; longer or infinite requests are shortened to this.",
                integer(60, 31 * 86400),
            ),
        ),
    ),
    Section(
        "auth",
        "Authentication.",
        (
            Option("realm", "MedDAV", "Realm shown by clients when they ask for a password.", text(allow_empty=False)),
            Option(
                "cache_seconds",
                300,
                (
                    "How long a verified password is remembered (keyed hash in memory only), sparing an "
                    "Argon2 verification per request. Changing a password ends it at once."
                ),
                integer(0, 3600),
            ),
            Option(
                "max_concurrent_hashes",
                2,
                (
                    "Argon2 verifications run at once (each takes ~0.1 s and argon2_memory_kib of RAM); "
                    "requests beyond wait briefly, then get 503."
                ),
                integer(1, 64),
            ),
            Option(
                "argon2_time_cost",
                3,
                "Argon2id passes. Hashes made with other parameters are upgraded at the next login.",
                integer(1, 20),
            ),
            Option("argon2_memory_kib", 65536, "Argon2id memory per hash, in KiB.", integer(8, 4 * 1048576)),
            Option("argon2_parallelism", 4, "Argon2id lanes.", integer(1, 64)),
        ),
    ),
    Section(
        "passwords",
        "What a password chosen by a person must be (account passwords; share passwords later).",
        (
            Option("min_length", 12, "Fewest characters.", integer(6, 128)),
            Option(
                "max_length",
                128,
                "Most characters (Argon2 hashes any length; this bounds the work).",
                integer(16, 1024),
            ),
            Option(
                "min_strength",
                3,
                (
                    "Least zxcvbn strength score (0-4): refuses common passwords, words from dictionaries, "
                    "keyboard walks and the user's own name. 0: no check."
                ),
                integer(0, 4),
            ),
            Option("require_digit", False, "Require a digit (a composition policy some portals impose).", boolean),
            Option("require_lower", False, "Require a lower-case letter.", boolean),
            Option("require_upper", False, "Require an upper-case letter.", boolean),
            Option("require_symbol", False, "Require a character that is neither a letter nor a digit.", boolean),
        ),
    ),
    Section(
        "throttle",
        "Failed logins, on every surface, counted per account and per client address.",
        (
            Option(
                "delay_after",
                3,
                (
                    "Failures after which each further attempt must wait a growing delay (1 s, 2 s, 4 s...); "
                    "an attempt before the delay is over gets 429 with Retry-After, unchecked."
                ),
                integer(1, 1000),
            ),
            Option("max_delay_seconds", 60, "Longest of those delays.", integer(1, 3600)),
            Option(
                "max_failures",
                10,
                "Failures within window_seconds after which every attempt gets 429 until the window has passed.",
                integer(2, 10000),
            ),
            Option("window_seconds", 600, "How long a failure counts.", integer(10, 86400)),
        ),
    ),
    Section(
        "mail",
        "Outgoing e-mail (invitations, password resets, alerts). Mails never carry file names or contents.",
        (
            Option(
                "backend",
                "console",
                '"console": write messages to the log, secrets masked (no mail server needed); "smtp": send them.',
                choice("console", "smtp"),
            ),
            Option("from_address", "MedDAV <no-reply@localhost>", "Sender of every message.", email_address()),
            Option("smtp_host", "localhost", "SMTP server.", host),
            Option("smtp_port", 587, "SMTP port (587 for STARTTLS, 465 for TLS, 25 for none).", integer(1, 65535)),
            Option(
                "smtp_security",
                "starttls",
                '"starttls", "tls" (implicit TLS) or "none" (loopback relays only).',
                choice("starttls", "tls", "none"),
            ),
            Option("smtp_username", "", "SMTP login; empty: no authentication.", text()),
            Option("smtp_password", "", "SMTP password.", text()),
            Option("smtp_timeout_seconds", 10, "Give up on the SMTP server after this many seconds.", integer(1, 300)),
        ),
    ),
    Section(
        "web",
        "Web logins: sessions, second factor, links sent by e-mail.",
        (
            Option("session_idle_minutes", 15, "A web session unused this long ends.", integer(1, 24 * 60)),
            Option(
                "session_lifetime_hours",
                12,
                "A web session ends this long after login, used or not.",
                integer(1, 24 * 30),
            ),
            Option(
                "admins_need_second_factor",
                True,
                "Organisation and instance admins must set up a second factor (TOTP) before anything else.",
                boolean,
            ),
            Option("reset_link_minutes", 30, "How long a password-reset link works (once).", integer(5, 24 * 60)),
            Option("invitation_days", 7, "How long an invitation link works (once).", integer(1, 60)),
        ),
    ),
    Section(
        "plugins",
        "Plugins (entry point group meddav). Each enabled plugin reads its own table [plugins.<name>].",
        (
            Option(
                "enabled",
                [],
                "Plugins to load, by name; installed but not listed: not loaded. See: meddav plugins list.",
                plugin_names,
                shown_default="[]",
            ),
        ),
    ),
    Section(
        "jobs",
        "Background jobs (plugin events, deliveries, periodic work): durable, retried, never run twice at once.",
        (
            Option(
                "workers",
                2,
                "Worker threads inside `meddav serve`; 0 runs no worker there (run `meddav worker` apart).",
                integer(0, 64),
            ),
            Option(
                "lease_seconds",
                300,
                "How long a worker may hold a job; past that the job is claimed again (a time-out is a lease).",
                integer(5, 86400),
            ),
            Option("max_attempts", 8, "Attempts before a job goes to the dead letters.", integer(1, 100)),
            Option(
                "backoff_seconds",
                10,
                "Pause before the first retry; doubled at each attempt, with jitter.",
                integer(1, 3600),
            ),
            Option("max_backoff_seconds", 3600, "Longest pause between two attempts.", integer(1, 86400)),
            Option(
                "yield_ms",
                200,
                "Workers inside `meddav serve` pause this long between two jobs while users' requests are in "
                "flight, so that requests get the CPU first; the jobs catch up when the server is idle (0: no pause).",
                integer(0, 10000),
            ),
        ),
    ),
    Section(
        "sharing",
        "Shares: to a colleague of the organisation, or by link to someone without an account.",
        (
            Option(
                "default_expiry_days",
                7,
                "A link expires after this many days unless its owner chooses otherwise, at the end of that day "
                "in the time zone below.",
                integer(1, 3650),
            ),
            Option(
                "max_expiry_days",
                90,
                "The latest expiry an owner may choose for a link, in days from its creation.",
                integer(1, 3650),
            ),
            Option(
                "time_zone",
                "Europe/Paris",
                'Where "the end of the day" of an expiry is (IANA name); an organisation may have its own.',
                time_zone,
            ),
        ),
    ),
    Section(
        "audit",
        "The audit log: who did what, when, from where, with which outcome (ids, never file names).",
        (
            Option(
                "retention_days",
                365,
                "Rows older than this are removed by meddav audit prune; the rest stays verifiable. 0: keep all.",
                integer(0, 36500),
            ),
        ),
    ),
    Section(
        "log",
        "Logging (operators' logs; file names, passwords and tokens never appear in them).",
        (
            Option(
                "level",
                "info",
                'Minimum level: "debug", "info", "warning" or "error".',
                choice("debug", "info", "warning", "error"),
            ),
            Option(
                "format",
                "text",
                'Line format: "text" (key=value pairs) or "json" (one object per line).',
                choice("text", "json"),
            ),
            Option("request_log", True, "Log one line per request: method, node id, status, bytes, duration.", boolean),
        ),
    ),
)
