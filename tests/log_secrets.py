"""After the whole suite: no password, app password, link token, session secret, TOTP secret or plaintext
file name in any log line any server of the suite wrote.

:func:`start` sends every log record of this process (the servers tests start in threads) to one file,
at DEBUG for MedDAV's own loggers and with the libraries held at WARNING, as ``meddav serve`` does
(``server.log.setup_logging``).  :func:`scan` reads that file and every ``serve.log`` the suite's child
servers wrote under pytest's base temporary directory, and looks for:

- the passwords the test modules use (their module-level ``*PASSWORD*`` strings);
- secrets by their shape: link tokens and app passwords (40 base32 characters, or grouped by four),
  TOTP secrets (32 upper-case base32 characters), session and cookie secrets (43 URL-safe characters);
- the names of every file and folder of every instance the suite made, decrypted with its own key
  (names of at least :data:`MIN_NAME` characters: shorter ones are words any line may hold).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from server.log import TextFormatter

MIN_NAME = 8
#: Loggers held at WARNING: the libraries ``meddav serve`` holds there, and the tests' own peers (aiosmtpd's
#: ``mail.log`` prints the mails the test SMTP server receives: links are what a mail carries).
LIBRARIES = (
    "wsgidav",
    "cheroot",
    "sqlalchemy",
    "alembic",
    "urllib3",
    "selenium",
    "httpx",
    "httpcore",
    "asyncio",
    "mail.log",
)
SHAPES = {
    "link token or app password": re.compile(r"(?<![a-z2-7])[a-z2-7]{40}(?![a-z2-7])"),
    "grouped app password": re.compile(r"(?<![a-z2-7-])(?:[a-z2-7]{4}-){9}[a-z2-7]{4}(?![a-z2-7-])"),
    "TOTP secret": re.compile(r"(?<![A-Z2-7])[A-Z2-7]{32}(?![A-Z2-7])"),
    "session secret": re.compile(
        r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"
    ),
}


@dataclass
class Leak:
    source: str
    line_number: int
    what: str

    def __str__(self) -> str:  # never the secret itself
        return f"{self.source}:{self.line_number}: {self.what}"


def start(path: Path) -> logging.Handler:
    """Log every record of this process to ``path``, formatted as the server formats them."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(TextFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def passwords_of(modules: Iterable[object]) -> set[str]:
    """The module-level ``*PASSWORD*`` strings of the test modules (the passwords the tests type)."""
    found = set()
    for module in modules:
        for name, value in vars(module).items():
            if "PASSWORD" in name and isinstance(value, str) and len(value) >= MIN_NAME:
                found.add(value)
    return found


def instance_names(base: Path) -> tuple[set[str], int]:
    """The plaintext names of every file and folder of every instance under ``base``, and how many
    instances could be opened (an instance a test broke on purpose cannot)."""
    from server.config import load_settings
    from server.db.models import nodes_t
    from server.instance import open_instance

    names: set[str] = set()
    opened = 0
    for config in base.rglob("meddav.toml"):
        try:
            instance = open_instance(load_settings(config))
        except Exception:
            continue
        try:
            with instance.db.read() as tx:
                ids = [row[0] for row in tx.all(select(nodes_t.c.id))]
            for node_id in ids:
                try:
                    names.add(instance.tree.get(node_id).name)
                except Exception:
                    continue
            opened += 1
        except Exception:
            continue
        finally:
            instance.close()
    return {name for name in names if len(name) >= MIN_NAME}, opened


def log_files(suite_log: Path, base: Path) -> Iterator[Path]:
    """The suite's own log and every ``serve.log`` of a child server (``server.testing.ServerProcess``); not
    the clients' (litmus's ``debug.log`` holds the requests it sent, paths and all, as a client may)."""
    yield suite_log
    yield from sorted(base.rglob("serve.log"))


def scan(files: Iterable[Path], passwords: set[str], names: set[str]) -> tuple[list[Leak], int]:
    """Every line of ``files`` holding a secret; and how many lines were read."""
    leaks: list[Leak] = []
    lines = 0
    name_pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))) if names else None
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            lines += 1
            for password in passwords:
                if password in line:
                    leaks.append(Leak(str(path), number, "a password of the tests"))
            for what, shape in SHAPES.items():
                if shape.search(line):
                    leaks.append(Leak(str(path), number, f"something shaped like a {what}"))
            if name_pattern is not None and name_pattern.search(line):
                leaks.append(Leak(str(path), number, "a plaintext file or folder name"))
    return leaks, lines
