"""Log set-up: one readable line per event (or one JSON object, for log shippers), UTC
times, secrets redacted and control characters escaped. Lines about an account name it,
and JSON lines carry it in an `account` field."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from recorder import text

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
#: No message is longer: journald splits lines past its LineMax (48K bytes) into several.
MESSAGE_LIMIT = 10_000


class SafeTextFilter(logging.Filter):
    """Masks secrets, escapes control characters and bounds every message, and masks the
    text of tracebacks (text from outside is made safe where it enters; this is defence
    in depth, and covers libraries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = text.safe(message, MESSAGE_LIMIT)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and not getattr(record, "_safe_traceback", False):
            record.exc_text = safe_traceback(record.exc_text)
            record._safe_traceback = True
        return True


def safe_traceback(trace: str) -> str:
    """A traceback masked and escaped line by line, every line indented: an exception's
    message with a line break cannot start a line that looks like a log line."""
    lines = text.redact(trace).split("\n")
    return "\n".join("    " + text.escape_controls(line) for line in lines)


class UTCFormatter(logging.Formatter):
    """Times in UTC with a Z, like everything the recorder stores."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


class JSONFormatter(UTCFormatter):
    """One JSON object per line: time, level, logger, message, and account when known."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        account = getattr(record, "account", None)
        if account is not None:
            document["account"] = account
        if record.exc_info:
            document["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(document)


def configure(level: str = "INFO", stream: TextIO | None = None, fmt: str = "text") -> None:
    """Send the recorder's log lines to stderr (or `stream`) at `level`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_recorder", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._recorder = True  # type: ignore[attr-defined]
    handler.setFormatter(JSONFormatter() if fmt == "json" else UTCFormatter(FORMAT))
    handler.addFilter(SafeTextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries speak only when something is wrong: httpx would log every request URL
    # (with its signature), APScheduler every job start.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
