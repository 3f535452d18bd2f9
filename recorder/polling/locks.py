"""One recorder per account: locks that keep two processes from polling the same account.

On SQLite a byte-range lock in a file beside the database; on PostgreSQL an advisory lock,
on MariaDB/MySQL a named lock, both held by one database session. The operating system or
the database server frees them when the process dies, so another process can take over.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import zlib
from pathlib import Path
from typing import IO

from recorder.store.database import AdvisoryLocks, Store

log = logging.getLogger(__name__)


class Claim(enum.Enum):
    """Whether this process may record an account now."""

    HELD = "held"  # ours
    BUSY = "busy"  # another process holds it
    UNKNOWN = "unknown"  # the lock service (the database) cannot be reached


def lock_key(account: str) -> int:
    """A stable 31-bit number for an account name (advisory lock key, lock file offset)."""
    return zlib.crc32(account.encode("utf-8")) & 0x7FFFFFFF


class AccountLocks:
    """Locks nothing: for databases the recorder has to itself (SQLite in memory)."""

    def claim(self, account: str) -> Claim:
        """Try to hold the account's lock (keeping it if already ours)."""
        return Claim.HELD

    def close(self) -> None:
        """Release every lock."""


class FileLocks(AccountLocks):
    """POSIX byte-range locks in one file: byte N locks the account whose key is N."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, account: str) -> Claim:
        import fcntl

        with self._lock:
            if account in self._held:
                return Claim.HELD
            if self._file is None:
                self._file = open(self.path, "ab")  # noqa: SIM115 - held until close()
                os.chmod(self.path, 0o600)
            try:
                fcntl.lockf(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, lock_key(account))
            except OSError:
                return Claim.BUSY
            self._held.add(account)
            return Claim.HELD

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()  # closing releases every lock this process holds on it
            self._file = None
            self._held.clear()


class DatabaseLocks(AccountLocks):
    """Locks held by a dedicated database session; lost when that session is."""

    def __init__(self, session: AdvisoryLocks, database: str) -> None:
        self._session = session
        self._database = database
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, account: str) -> Claim:
        with self._lock:
            if self._held and not self._session.alive():
                log.warning(
                    "Lost the database session that held the account locks (%s); they will be "
                    "taken again when the database answers.",
                    ", ".join(sorted(self._held)),
                )
                self._held.clear()
            if account in self._held:
                return Claim.HELD
            name = f"recorder/{self._database}/{lock_key(account)}"[:64]
            got = self._session.try_acquire(lock_key(account), name)
            if got is None:
                return Claim.UNKNOWN
            if got:
                self._held.add(account)
                return Claim.HELD
            return Claim.BUSY

    def close(self) -> None:
        with self._lock:
            self._session.close()
            self._held.clear()


def for_store(store: Store) -> AccountLocks:
    """The right kind of lock for the store's backend."""
    session = store.advisory_locks()
    if session is not None:
        return DatabaseLocks(session, store.url.database or "")
    database = store.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or os.name != "posix":
        return AccountLocks()
    return FileLocks(Path(f"{Path(database).expanduser().resolve()}.recorder-lock"))
