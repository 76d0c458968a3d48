"""Structured logging for operators.

Lines are ``key=value`` pairs (``[log] format = "text"``) or one JSON object
(``"json"``).  A record's own fields are passed as ``extra={"fields": {...}}``::

    logger.info("request", extra={"fields": {"method": "PUT", "node": 12, "status": 201}})

What is logged: ids (node, user, share), never a file name, a password or a
token.  Who did what to which document belongs in the audit log, not here.
wsgidav's own logger is held at WARNING: at INFO and below it writes request
paths, which are file names.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from server.config import LogSettings

__all__ = ["JsonFormatter", "TextFormatter", "setup_logging"]

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "fields"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
    return fields


_second: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    """``2026-11-26T03:26:41.123Z``; the part up to the second is formatted once per second."""
    global _second
    second = int(record.created)
    cached, text = _second
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)  # one assignment: threads see the old pair or the new one
    return f"{text}.{int(record.msecs):03d}Z"


_NEEDS_QUOTES = re.compile(r'[\s"=\\]')


def _quote(value: Any) -> str:
    text = str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts=... level=info logger=server.dav msg="..." key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={_timestamp(record)}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        parts.extend(f"{k}={_quote(v)}" for k, v in _fields(record).items())
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(_fields(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def setup_logging(settings: LogSettings, *, stream: Any = None) -> None:
    """Send every MedDAV logger (and the libraries') to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    # The formatters use none of the caller, thread or process fields; not
    # collecting them saves a quarter of the cost of each request line
    # (the "Optimization" section of the logging HOWTO).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Libraries whose INFO/DEBUG lines carry request paths (file names) or SQL parameters.
    for name in ("wsgidav", "cheroot", "sqlalchemy", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
