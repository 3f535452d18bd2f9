"""Log set-up: one readable line per event (or one JSON object, for log shippers), UTC
times to the millisecond, secrets redacted and control characters escaped. Lines about an
account name it, and JSON lines carry it in an `account` field; a change carries its
`currency`, `old`, `new` and `delta` (exact decimal strings) as fields of their own.

Under systemd (stderr is the journal's stream: $JOURNAL_STREAM names it) every line starts
with its syslog priority, `<3>` for an error to `<7>` for debug, so `journalctl -p warning`
and the journal's colours work.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from decimal import Decimal
from typing import Any, TextIO

from recorder import amounts, text

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
#: No message is longer: journald splits lines past its LineMax (48K bytes) into several.
MESSAGE_LIMIT = 10_000
#: Fields a log record may carry besides its message, shown in JSON lines.
FIELDS = ("account", "currency", "old", "new", "delta")
#: syslog priorities of the log levels, for the journal.
PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


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
    """Times in UTC to the millisecond with a Z, like everything the recorder stores."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


def _field(value: Any) -> Any:
    return amounts.to_text(value) if isinstance(value, Decimal) else value


class JSONFormatter(UTCFormatter):
    """One JSON object per line: time, level, logger, message, and the fields known."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                document[name] = _field(getattr(record, name))
        if record.exc_info:
            document["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(document)


class JournalFormatter(logging.Formatter):
    """Another formatter's lines, each prefixed with the record's syslog priority."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        priority = PRIORITIES.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in self.inner.format(record).split("\n"))


def writes_to_the_journal(stream: TextIO) -> bool:
    """True when `stream` is the journal's stream systemd connected ($JOURNAL_STREAM is
    "device:inode" of it; a child writing to a pipe inherits the variable, not the file)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        found = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False  # not a real file (a test's capture, a closed stream)
    return expected == f"{found.st_dev}:{found.st_ino}"


def configure(level: str = "INFO", stream: TextIO | None = None, fmt: str = "text") -> None:
    """Send the recorder's log lines to stderr (or `stream`) at `level`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_recorder", False):
            root.removeHandler(handler)
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler._recorder = True  # type: ignore[attr-defined]
    formatter: logging.Formatter = JSONFormatter() if fmt == "json" else UTCFormatter(FORMAT)
    if writes_to_the_journal(stream):
        formatter = JournalFormatter(formatter)
    handler.setFormatter(formatter)
    handler.addFilter(SafeTextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries speak only when something is wrong: httpx would log every request URL
    # (with its signature), APScheduler every job start.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # psycopg warns of its own follow-up errors ("pipeline aborted") beside the one the
    # recorder reports.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
