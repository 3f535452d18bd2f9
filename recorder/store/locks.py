"""Named locks held by one dedicated database session: PostgreSQL advisory locks,
MariaDB/MySQL GET_LOCK. They vanish when the session ends, so a process that dies or loses
its connection frees its accounts for another process to take."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from recorder.store.database import Database

#: First half of PostgreSQL's two-part lock key: "reco" in ASCII, for this program only.
NAMESPACE = 0x7265636F


class LockSession:
    """One database session of its own, holding this process's account locks."""

    def __init__(self, db: Database) -> None:
        self._sql = sa.text(db.dialect.try_lock)
        self._engine = db.lock_engine()
        self._connection: Connection | None = None

    def _session(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def alive(self) -> bool:
        """True while the session (and so every lock it holds) is intact."""
        if self._connection is None:
            return False
        try:
            self._connection.execute(sa.text("SELECT 1"))
        except exc.DBAPIError:
            self._drop()
            return False
        return True

    def try_acquire(self, key: int, name: str) -> bool | None:
        """Take the lock without waiting: True taken, False held elsewhere, None unreachable."""
        try:
            got = self._session().execute(
                self._sql, {"namespace": NAMESPACE, "key": key, "name": name}
            )
            return bool(got.scalar())
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
