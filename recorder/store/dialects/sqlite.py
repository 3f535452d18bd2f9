"""SQLite: a file, one writer at a time, amounts as canonical text."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from sqlite3 import (
    SQLITE_CONSTRAINT,
    SQLITE_MISMATCH,
    SQLITE_RANGE,
    SQLITE_READONLY_DIRECTORY,
    SQLITE_TOOBIG,
)
from typing import Any

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL

from recorder.store.dialects.base import OUTAGE, REFUSED, UNKNOWN, Dialect


class SQLite(Dialect):
    name = "sqlite"
    marker = "?"
    server = False
    sums_exactly = False
    outage_hint = "check that its file and folder exist and can be written, and the disk has room"
    orders_balances_by_key = True
    insert_ignoring = ("INSERT OR IGNORE", "")
    # In WAL mode a read transaction sees the database as of its first read.
    read_snapshot = ("BEGIN",)
    # The write lock, taken at once (waiting out another writer up to busy_timeout): the
    # whole upgrade is then one transaction no other writer can enter.
    upgrade_lock = ("BEGIN IMMEDIATE", "")

    # Primary result codes (the low byte of an extended code) that refuse the data itself.
    _REFUSED_CODES = frozenset((SQLITE_CONSTRAINT, SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE))
    # Primary result codes about the file and its disk, not the data: no permission, busy,
    # locked, out of memory, read-only, interrupted (the deadline), I/O error, corrupt,
    # full, cannot open, a lock protocol error, not a database.
    _OUTAGE_CODES = frozenset((3, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 26))

    def storage_time(self, moment: datetime) -> Any:
        # SQLAlchemy's own SQLite format, "2026-03-31 23:30:00.000000": text sorts in time.
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def amount(self, value: Any) -> Decimal:
        # SQLite holds the canonical text already.
        return Decimal(value) if isinstance(value, str) else super().amount(value)

    def engine_options(
        self, url: URL, pool_size: int, *, read_only: bool = False
    ) -> dict[str, Any]:
        # No "pre-ping" round trip: a file does not go away between two statements.
        options: dict[str, Any] = {"pool_pre_ping": False}
        path = self.database_file(url)
        if read_only and path is not None:
            # The driver's own arguments from the URL (timeout, check_same_thread), so a
            # read-only connection differs from a writing one only in how it opens.
            _, arguments = SQLiteDialect_pysqlite().create_connect_args(url)
            options["creator"] = lambda: connect_read_only(path, dict(arguments))
        return options

    def database_file(self, url: URL) -> Path | None:
        database = url.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).expanduser().resolve()

    def on_connect(self, dbapi_connection: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not isinstance(dbapi_connection, ReadOnlyConnection):
            # WAL lets readers (reports, sqlite3 shell) work while the daemon writes, and
            # keeps every committed transaction across a crash; NORMAL sync is safe in WAL
            # mode. Switching to WAL writes the file: never on a read-only connection.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    def diagnose(self, error: BaseException, path: Path | None) -> str:
        # SQLite says "disk I/O error" or "unable to open database file" for a full or
        # read-only disk: look at the disk itself to say which.
        if path is None:
            return ""
        folder = path.parent
        try:
            if os.statvfs(folder).f_flag & os.ST_RDONLY:
                return "the file system holding it is mounted read-only"
            if os.statvfs(folder).f_bavail == 0:
                return "the disk holding it is full"
        except OSError:
            return f"its folder {str(folder)!r} cannot be reached"
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            return "this user cannot write the file or its folder"
        return ""

    def classify(self, error: BaseException) -> str:
        if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
            return REFUSED
        code = getattr(error, "sqlite_errorcode", None)
        if code is None:
            return OUTAGE  # no code: the module's own error (a closed connection)
        if code & 0xFF in self._REFUSED_CODES:
            return REFUSED
        return OUTAGE if code & 0xFF in self._OUTAGE_CODES else UNKNOWN


class ReadOnlyConnection(sqlite3.Connection):
    """A connection opened read-only (on_connect then changes nothing in the file)."""


def connect_read_only(path: Path, arguments: dict[str, Any]) -> sqlite3.Connection:
    """Open the SQLite file at `path` so that nothing can create or change it.

    `mode=ro` reads a WAL database through its -shm file, which a running daemon keeps;
    with no daemon there is no -wal file, and SQLite, unable to create the -shm in a folder
    this user cannot write, refuses (SQLITE_READONLY_DIRECTORY). With no -wal file every
    committed row is in the database file itself, so it is then opened `immutable`: read
    as it is, without the -shm and without locks.
    """
    location = "file:" + urllib.parse.quote(str(path))
    connection = _open(f"{location}?mode=ro", arguments)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return connection
    except sqlite3.OperationalError as error:
        connection.close()
        cannot_share = getattr(error, "sqlite_errorcode", None) == SQLITE_READONLY_DIRECTORY
        if not cannot_share or Path(f"{path}-wal").exists():
            raise
    return _open(f"{location}?mode=ro&immutable=1", arguments)


def _open(uri: str, arguments: dict[str, Any]) -> sqlite3.Connection:
    connection: sqlite3.Connection = sqlite3.connect(
        uri, **{**arguments, "uri": True, "factory": ReadOnlyConnection}
    )
    return connection
