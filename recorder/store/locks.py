"""Named locks held by one dedicated database session: PostgreSQL advisory locks,
MariaDB/MySQL GET_LOCK. They vanish when the session ends, so a process that dies or loses
its connection frees its accounts for another process to take.

A session whose packets are dropped (a cut network, not a refused connection) must not
hang its holder, nor keep its locks for as long as TCP takes to give up. So every
statement on it has a deadline (its socket is hung up on from a timer), it has TCP
keepalives, and the server ends it when it has been silent for `idle_seconds`: the holder
touches it before every poll, so only a holder that cannot reach the server goes silent
that long, and its locks pass on.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from recorder.store.database import Database, hung_up_after

#: First half of PostgreSQL's two-part lock key: "reco" in ASCII, for this program only.
NAMESPACE = 0x7265636F


class LockSession:
    """One database session of its own, holding this process's account locks."""

    def __init__(self, db: Database, *, timeout: float, idle_seconds: float) -> None:
        self._dialect = db.dialect
        self._lock_sql = sa.text(db.dialect.try_lock)
        self._setup = db.dialect.lock_session_setup(timeout, idle_seconds)
        self._engine = db.lock_engine(timeout)
        self._timeout = timeout
        self._connection: Connection | None = None
        #: Where the recorder's tables live (schema or database): locks are per history.
        self._scope: str | None = None

    def _session(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect()
            try:
                for statement in self._setup:
                    self._run(connection, sa.text(statement), {})
                if self._scope is None:
                    self._scope = str(self._run(connection, sa.text(self._dialect.lock_scope), {}))
            except BaseException:
                with contextlib.suppress(Exception):
                    connection.invalidate()
                raise
            self._connection = connection
        return self._connection

    def _run(self, connection: Connection, statement: Any, params: dict[str, Any]) -> Any:
        """One statement's first value, given up on after the deadline (the session is then
        dropped and taken again later)."""
        driver = connection.connection.driver_connection
        with hung_up_after(self._dialect, driver, self._timeout):
            return _first(connection.execute(statement, params))

    def alive(self) -> bool:
        """True while the session (and so every lock it holds) is intact."""
        if self._connection is None:
            return False
        try:
            self._run(self._connection, sa.text("SELECT 1"), {})
        except exc.DBAPIError:
            self._drop()
            return False
        return True

    def try_acquire(self, account: str) -> bool | None:
        """Take the account's lock without waiting: True taken, False held elsewhere,
        None unreachable."""
        try:
            session = self._session()
            key = zlib.crc32(f"{self._scope}/{account}".encode()) & 0x7FFFFFFF
            name = f"recorder/{key}/{self._scope}"[:64]  # MariaDB: server-wide names
            params = {"namespace": NAMESPACE, "key": key, "name": name}
            got = self._run(session, self._lock_sql, params)
            return bool(got)
        except exc.DBAPIError:
            self._drop()
            return None

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.invalidate()
                self._connection.close()
        self._connection = None

    def close(self) -> None:
        """End the session, releasing every lock it holds."""
        if self._connection is not None:
            with contextlib.suppress(exc.DBAPIError):
                self._connection.close()
        self._connection = None
        self._engine.dispose()


def _first(result: Any) -> Any:
    return result.scalar() if result.returns_rows else None
