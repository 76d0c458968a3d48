"""Typed settings, read from a TOML file and validated once, at start.

:func:`load_settings` reads the file named by ``--config`` or ``MEDDAV_CONFIG``
and returns a frozen :class:`Settings`.  Every problem is collected, then
raised together as one :class:`~server.errors.ConfigError` that reads like a
checklist::

    var/meddav.toml: 2 problems
      [server] port = 99999: out of range: must be between 1 and 65535; pick a free port such as 8080
      [sharing]: unknown section (known: server, storage, database, dav, auth, log)

Relative paths are resolved against the configuration file's directory.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.config._schema import SCHEMA, Invalid, Section
from server.errors import ConfigError

__all__ = [
    "ENV_VAR",
    "SCHEMA",
    "AuditSettings",
    "AuthSettings",
    "DatabaseSettings",
    "DavSettings",
    "JobSettings",
    "LogSettings",
    "MailSettings",
    "PasswordSettings",
    "PluginSettings",
    "ServerSettings",
    "Settings",
    "SharingSettings",
    "StorageSettings",
    "ThrottleSettings",
    "WebSettings",
    "default_key_file",
    "is_loopback",
    "load_settings",
    "render_example",
    "settings_from_dict",
    "toml_value",
]

ENV_VAR = "MEDDAV_CONFIG"


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    public_url: str
    tls_cert: Path | None
    tls_key: Path | None
    allow_plain_http: bool
    threads: int
    timeout_seconds: int
    max_header_bytes: int
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def https(self) -> bool:
        """Browsers reach the server over HTTPS: its own TLS, or a TLS-terminating proxy that the public
        URL names.  Cookies are then Secure, and HSTS is sent."""
        return self.tls or self.public_url.startswith("https://")


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path
    key_file: Path
    backend: str
    blob_dir: Path
    default_quota_bytes: int


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    sqlite_synchronous: str
    namespace_sync_ms: int
    busy_timeout_ms: int


@dataclass(frozen=True)
class DavSettings:
    max_xml_body_bytes: int
    allow_infinite_depth: bool
    max_ranges: int
    max_lock_timeout_seconds: int


@dataclass(frozen=True)
class AuthSettings:
    realm: str
    cache_seconds: int
    max_concurrent_hashes: int
    argon2_time_cost: int
    argon2_memory_kib: int
    argon2_parallelism: int


@dataclass(frozen=True)
class PasswordSettings:
    min_length: int
    max_length: int
    min_strength: int
    require_digit: bool
    require_lower: bool
    require_upper: bool
    require_symbol: bool


@dataclass(frozen=True)
class ThrottleSettings:
    delay_after: int
    max_delay_seconds: int
    max_failures: int
    window_seconds: int


@dataclass(frozen=True)
class MailSettings:
    backend: str
    from_address: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_username: str
    smtp_password: str
    smtp_timeout_seconds: int


@dataclass(frozen=True)
class WebSettings:
    session_idle_minutes: int
    session_lifetime_hours: int
    admins_need_second_factor: bool
    reset_link_minutes: int
    invitation_days: int


@dataclass(frozen=True)
class PluginSettings:
    enabled: tuple[str, ...]
    #: Each plugin's table [plugins.<name>], as written; validated by the plugin's schema when it loads.
    sections: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class JobSettings:
    workers: int
    lease_seconds: int
    max_attempts: int
    backoff_seconds: int
    max_backoff_seconds: int
    yield_ms: int = 200


@dataclass(frozen=True)
class AuditSettings:
    retention_days: int


@dataclass(frozen=True)
class SharingSettings:
    default_expiry_days: int = 7
    max_expiry_days: int = 90
    time_zone: str = "Europe/Paris"


@dataclass(frozen=True)
class LogSettings:
    level: str
    format: str
    request_log: bool


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    storage: StorageSettings
    database: DatabaseSettings
    dav: DavSettings
    auth: AuthSettings
    log: LogSettings
    passwords: PasswordSettings
    throttle: ThrottleSettings
    mail: MailSettings
    web: WebSettings
    plugins: PluginSettings
    jobs: JobSettings
    audit: AuditSettings
    sharing: SharingSettings = SharingSettings()
    #: The file these settings came from (None when built in code).
    source: Path | None = None

    def public_base_url(self, *, host: str | None = None, port: int | None = None) -> str:
        """Where users reach the server (no trailing slash): ``[server] public_url`` when
        set, else built from the address actually served (``host``/``port``, default
        the configured ones); a wildcard address is shown as loopback."""
        if self.server.public_url:
            return self.server.public_url
        scheme = "https" if self.server.tls else "http"
        host = host or self.server.host
        if host in ("0.0.0.0", "::"):  # noqa: S104 - naming a wildcard bind, not binding
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.server.port if port is None else port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_key_file(data_dir: Path) -> Path:
    """The key file's default place: beside the data directory, never inside it."""
    data_dir = data_dir.resolve()
    return data_dir.parent / f"{data_dir.name}.master.key"


def toml_value(value: Any) -> str:
    """A value as TOML source (for the example file and generated configurations)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # a TOML basic string: JSON's escapes are TOML's (newlines, controls, quotes)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):  # an inline table: {url = "...", feeds = [{folder = "..."}]}
        return "{" + ", ".join(f"{_toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:  # TOML has no null: leave the key out instead
        raise TypeError("None has no TOML form")
    if isinstance(value, dt.date | dt.time):  # TOML's own dates and times (as a wrong value may be written)
        return value.isoformat()
    return repr(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the configuration file.

    ``path`` defaults to ``$MEDDAV_CONFIG``.  Raises :class:`ConfigError`.
    """
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        raise ConfigError(
            "configuration",
            [f"no configuration file given: pass --config FILE or set {ENV_VAR} (meddav init writes one)"],
        )
    file = Path(path)
    try:
        with open(file, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(str(file), ["file not found; create it with meddav init, or fix the path"]) from None
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read the file ({exc.strerror})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"not valid TOML: {exc}"]) from None
    return settings_from_dict(document, base_dir=file.resolve().parent, source=file)


def settings_from_dict(document: dict[str, Any], *, base_dir: Path, source: Path | None = None) -> Settings:
    """Validate an already parsed document (used by tests and by :func:`load_settings`)."""
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    known_sections = {s.name: s for s in SCHEMA}

    for section_name, body in document.items():
        if section_name not in known_sections:
            problems.append(
                f"[{section_name}]: unknown section{_suggest(section_name, known_sections)}"
                f" (known: {', '.join(known_sections)})"
            )
        elif not isinstance(body, dict):
            problems.append(f"{section_name} = {toml_value(body)}: must be a [{section_name}] table")

    for section in SCHEMA:
        body = document.get(section.name, {})
        if not isinstance(body, dict):
            body = {}
        plugin_sections: dict[str, dict[str, Any]] = {}
        if section.name == "plugins":
            # [plugins.<name>] tables belong to each plugin's own schema (checked when it loads).
            plugin_sections = {k: v for k, v in body.items() if isinstance(v, dict)}
            body = {k: v for k, v in body.items() if not isinstance(v, dict)}
        values[section.name] = _validate_section(section, body, problems)
        if plugin_sections:
            values[section.name]["_sections"] = plugin_sections

    # Checks across options run even when single options failed (those hold
    # their defaults here), so one run lists every problem.
    settings = _build(values, base_dir, source, problems)
    if problems or settings is None:
        raise ConfigError(str(source) if source else "configuration", problems)
    return settings


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


#: Options whose values may hold a password: a problem with one names it, never shows its value.
_SECRET_OPTIONS = frozenset({("mail", "smtp_password"), ("database", "url")})


def _shown(section: str, key: str, value: Any) -> str:
    """A configured value as a problem shows it: secrets (a database URL may carry a password) hidden."""
    if (section, key) not in _SECRET_OPTIONS:
        return toml_value(value)
    if key == "url" and isinstance(value, str) and ":" in value:
        return toml_value(value.split(":", 1)[0] + ":…")  # the scheme says what is unsupported
    return "(hidden)"


def _validate_section(section: Section, body: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    names = [o.name for o in section.options]
    for key, raw in body.items():
        option = section.option(key)
        if option is None:
            problems.append(f"[{section.name}] {key}: unknown option{_suggest(key, names)}")
            continue
        try:
            result[key] = option.validate(raw)
        except Invalid as exc:
            problems.append(f"[{section.name}] {key} = {_shown(section.name, key, raw)}: {exc}")
    for option in section.options:
        result.setdefault(option.name, option.default)
    return result


def _resolve(base_dir: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base_dir / p)


def _build(v: dict[str, dict[str, Any]], base_dir: Path, source: Path | None, problems: list[str]) -> Settings | None:
    srv, sto, db, dav, auth, log = (v[n] for n in ("server", "storage", "database", "dav", "auth", "log"))

    # TLS: both files or neither, and they must be readable.
    tls_cert = _resolve(base_dir, srv["tls_cert"]) if srv["tls_cert"] else None
    tls_key = _resolve(base_dir, srv["tls_key"]) if srv["tls_key"] else None
    if (tls_cert is None) != (tls_key is None):
        missing = "tls_key" if tls_key is None else "tls_cert"
        problems.append(f"[server] {missing}: missing; set both tls_cert and tls_key, or neither")
    for key, path in (("tls_cert", tls_cert), ("tls_key", tls_key)):
        if path is not None and not path.is_file():
            problems.append(f"[server] {key} = {toml_value(srv[key])}: file not found ({path})")
    if not is_loopback(srv["host"]) and tls_cert is None and not srv["allow_plain_http"]:
        problems.append(
            f"[server] host = {toml_value(srv['host'])}: a non-loopback address without TLS would send "
            "passwords and health data in clear; set [server] tls_cert and tls_key, or "
            "[server] allow_plain_http = true when a TLS-terminating proxy is in front"
        )

    data_dir = _resolve(base_dir, sto["data_dir"]).resolve()
    key_file = (_resolve(base_dir, sto["key_file"]) if sto["key_file"] else default_key_file(data_dir)).resolve()
    if key_file == data_dir or data_dir in key_file.parents:
        problems.append(
            f"[storage] key_file = {toml_value(str(key_file))}: inside data_dir, so a backup of the data "
            f"would carry its own key; move it beside the data directory, e.g. {default_key_file(data_dir)}"
        )
    blob_dir = _resolve(base_dir, sto["blob_dir"]).resolve() if sto["blob_dir"] else data_dir / "blobs"

    if auth["argon2_memory_kib"] < 8 * auth["argon2_parallelism"]:
        problems.append(
            f"[auth] argon2_memory_kib = {auth['argon2_memory_kib']}: Argon2 needs at least 8 KiB per lane; "
            f"raise it to {8 * auth['argon2_parallelism']} or more, or lower argon2_parallelism"
        )

    sharing = v["sharing"]
    if sharing["default_expiry_days"] > sharing["max_expiry_days"]:
        problems.append(
            f"[sharing] default_expiry_days = {sharing['default_expiry_days']}: later than max_expiry_days "
            f"({sharing['max_expiry_days']}); lower it, or raise max_expiry_days"
        )

    url = db["url"] or f"sqlite:///{data_dir / 'meddav.sqlite3'}"
    if not url.startswith(("sqlite:", "postgresql:", "postgresql+")):
        problems.append(
            f"[database] url = {_shown('database', 'url', db['url'])}: unsupported database; use sqlite:///PATH "
            "or postgresql://USER@HOST/DB"
        )

    if problems:
        return None
    return Settings(
        server=ServerSettings(
            host=srv["host"],
            port=srv["port"],
            public_url=srv["public_url"],
            tls_cert=tls_cert,
            tls_key=tls_key,
            allow_plain_http=srv["allow_plain_http"],
            threads=srv["threads"],
            timeout_seconds=srv["timeout_seconds"],
            max_header_bytes=srv["max_header_bytes"],
            trusted_proxies=tuple(srv["trusted_proxies"]),
        ),
        storage=StorageSettings(
            data_dir=data_dir,
            key_file=key_file,
            backend=sto["backend"],
            blob_dir=blob_dir,
            default_quota_bytes=sto["default_quota_bytes"],
        ),
        database=DatabaseSettings(
            url=url,
            sqlite_synchronous=db["sqlite_synchronous"],
            namespace_sync_ms=db["namespace_sync_ms"],
            busy_timeout_ms=db["busy_timeout_ms"],
        ),
        dav=DavSettings(**dav),
        auth=AuthSettings(**auth),
        log=LogSettings(**log),
        passwords=PasswordSettings(**v["passwords"]),
        throttle=ThrottleSettings(**v["throttle"]),
        mail=MailSettings(**v["mail"]),
        web=WebSettings(**v["web"]),
        plugins=PluginSettings(enabled=tuple(v["plugins"]["enabled"]), sections=v["plugins"].get("_sections", {})),
        jobs=JobSettings(**v["jobs"]),
        audit=AuditSettings(**v["audit"]),
        sharing=SharingSettings(**v["sharing"]),
        source=source,
    )


def render_example() -> str:
    """The commented example configuration (``conf/meddav.example.toml``)."""
    lines = [
        "# MedDAV configuration, every option with its default.",
        "# Generated from server/config/_schema.py (meddav config example); a test keeps it in step.",
        "# Select the file with --config FILE or the MEDDAV_CONFIG environment variable.",
        "# Unknown options, wrong types and impossible values stop the start, each named with its fix.",
        "",
    ]
    for section in SCHEMA:
        lines.append(f"# {section.help}")
        lines.append(f"[{section.name}]")
        for option in section.options:
            for help_line in _wrap(option.help):
                lines.append(f"# {help_line}")
            shown = option.shown_default or toml_value(option.default)
            lines.append(f"#{option.name} = {shown}")
        lines.append("")
    return "\n".join(lines)


def _wrap(text: str, width: int = 96) -> list[str]:
    words = text.split()
    out: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return out
