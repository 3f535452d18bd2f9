"""One recorder per account: locks that keep two processes from polling the same account.

On SQLite a byte-range lock in a file beside the database; on PostgreSQL an advisory lock,
on MariaDB/MySQL a named lock, both held by one database session. The operating system or
the database server frees them when the process dies, so another process can take over.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import threading
import zlib
from pathlib import Path
from typing import IO

from recorder.store.database import Database
from recorder.store.locks import LockSession

log = logging.getLogger(__name__)


class Claim(enum.Enum):
    """Whether this process may record an account now."""

    HELD = "held"  # ours
    BUSY = "busy"  # another process holds it
    UNKNOWN = "unknown"  # the lock service (the database) cannot be reached


def lock_key(account: str) -> int:
    """A stable 31-bit number for an account name: its byte in the lock file."""
    return zlib.crc32(account.encode("utf-8")) & 0x7FFFFFFF


class AccountLocks:
    """Locks nothing: for databases the recorder has to itself (SQLite in memory)."""

    #: Why a claim was UNKNOWN, for the log.
    trouble = "the account locks cannot be checked"

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
                try:
                    self._file = open(self.path, "ab")  # noqa: SIM115 - held until close()
                    os.chmod(self.path, 0o600)
                except OSError as error:
                    # No lock file at all (a read-only or full disk, no permission): the
                    # database beside it will say more when it is written.
                    self.trouble = f"the lock file {self.path} cannot be opened ({error.strerror})"
                    return Claim.UNKNOWN
            try:
                fcntl.lockf(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, lock_key(account))
            except OSError as error:
                if error.errno in (errno.EACCES, errno.EAGAIN):  # held by another process
                    return Claim.BUSY
                self.trouble = f"the lock file {self.path} cannot be locked ({error.strerror})"
                return Claim.UNKNOWN
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

    trouble = "the database that holds the account locks is unreachable"

    def __init__(self, session: LockSession) -> None:
        self._session = session
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, account: str) -> Claim:
        with self._lock:
            if self._held and not self._session.alive():
                log.warning(
                    "Lost the database session that held the account locks (%s); another "
                    "recorder process may take them over now. This one takes each back at "
                    "its next poll if it is still free.",
                    ", ".join(sorted(self._held)),
                )
                self._held.clear()
            if account in self._held:
                return Claim.HELD
            # The lock session keys each lock by the schema (or MariaDB database) the server
            # says it is in, so recorders of two histories on one server never collide, and
            # two recorders of one history meet however their URLs are spelled.
            got = self._session.try_acquire(account)
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


class Claims:
    """This process's answer for each account, asked of the locks before every poll and
    every late write; each change of answer is logged once."""

    def __init__(self, account_locks: AccountLocks, *, ha: bool = False) -> None:
        self.locks = account_locks
        #: With ha, an account whose lock cannot be checked is not polled at all.
        self.ha = ha
        self._last: dict[str, Claim] = {}
        self._lock = threading.Lock()

    def claim(self, account: str) -> Claim:
        """Whether this process may record `account` now."""
        claim = self.locks.claim(account)
        with self._lock:
            previous = self._last.get(account)
            self._last[account] = claim
        if claim is previous:
            return claim
        extra = {"account": account}
        if claim is Claim.BUSY:
            log.warning(
                "%s: another recorder process is recording this account; this one will not "
                "poll it, and checks again every interval.",
                account,
                extra=extra,
            )
        elif claim is Claim.UNKNOWN:
            log.warning(
                "%s: %s; %s",
                account,
                self.locks.trouble,
                "not polling this account (ha = true) until its lock can be taken again, "
                "so that no two processes record it."
                if self.ha
                else "polling anyway, into the local buffer, until the lock can be taken.",
                extra=extra,
            )
        elif previous is not None:
            log.info("%s: this process records the account now.", account, extra=extra)
        return claim

    def close(self) -> None:
        """Release every lock."""
        self.locks.close()


def for_database(db: Database, interval: float = 60.0) -> AccountLocks:
    """The right kind of lock for the database: named locks on a server, a lock file
    beside a SQLite file, none for SQLite in memory. A holder that cannot reach the server
    gives up on a lock statement within half an `interval` (at most 10 s), and the server
    ends its silent session after two intervals (and two seconds), so another process can
    take its accounts over."""
    if db.dialect.server:
        timeout = min(max(interval / 2, 0.5), 10.0)
        return DatabaseLocks(LockSession(db, timeout=timeout, idle_seconds=2 * interval + 2))
    if db.path is None or os.name != "posix":
        return AccountLocks()
    return FileLocks(db.path.with_name(db.path.name + ".recorder-lock"))
