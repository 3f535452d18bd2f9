"""Log set-up: one readable line per event, UTC times, secrets redacted."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from recorder.secret import RedactingFilter

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class UTCFormatter(logging.Formatter):
    """Times in UTC with a Z, like everything the recorder stores."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send the recorder's log lines to stderr (or `stream`) at `level`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_recorder", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._recorder = True  # type: ignore[attr-defined]
    handler.setFormatter(UTCFormatter(FORMAT))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries speak only when something is wrong: httpx would log every request URL
    # (with its signature), APScheduler every job start.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
