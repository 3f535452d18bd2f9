"""The database connection: engines, connections, and the one translation of errors.

How statements run (one way for each kind; docs/benchmarks.md has the figures behind it):

- Every statement the recorder runs is plain SQL text with `?` markers, in the module of
  the store that needs it (writes, history, status, bulk, maintenance), sent to the driver
  with values already in storage form (`Dialect.storage_time`, `Dialect.bind_amount`) and
  read back with `Dialect.amount` / `Dialect.time_from_storage`. SQLAlchemy Core declares
  the schema (schema.py) for Alembic and for tests; its statement compilation and
  per-value type processing cost two thirds of a poll's write and ten times the query of a
  one-account question, so the recorder's own statements do without them.
- Writes: `Database.transaction()` gives a SQLAlchemy connection inside one transaction;
  statements go through `Database.run`. SQLite takes one writer at a time, so this
  process's writers queue on a lock instead of retrying "database is locked".
- Questions: `Database.rows` / `Database.cursor()` use this thread's kept connection
  (autocommit on servers: no pool checkout, no BEGIN/ROLLBACK round trips).
- Long reads (exports, copies, gaps): `Database.batches`, on a server-side cursor.
- Maintenance that cannot run in a transaction (ANALYZE, VACUUM): `Database.autocommit()`.

Every error of the driver or of SQLAlchemy leaves through `Database.translated`: an outage
(unreachable, lost, read-only, full, locked) becomes DatabaseUnavailableError, a refusal of
what was written (a duplicate key, a value too long or out of range, a character the column
cannot hold) becomes WriteRejectedError. Callers decide what each means for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, CursorResult, Engine

from recorder import secret, text
from recorder.errors import (
    ConfigError,
    DatabaseUnavailableError,
    StoreError,
    WriteRejectedError,
)
from recorder.store import dialects


class Database:
    """One database: its dialect, a pooled engine, and this process's connections to it.
    Thread-safe; one per process. `read_only` for commands that only read: a SQLite file
    is then opened so that nothing can create or change it (a user may read the history
    without being able to write it)."""

    def __init__(self, url: str, *, pool_size: int = 5, read_only: bool = False) -> None:
        self.url = dialects.parse_url(url)
        self.dialect = dialects.for_url(self.url)
        self.display_url = dialects.displayed(self.url)
        for password in dialects.url_secrets(self.url):
            # A driver's error text may quote it outside a URL, where display_url cannot help.
            secret.register(password)
        #: The SQLite file, or None for a server (or an in-memory database).
        self.path = self.dialect.database_file(self.url)
        #: Names this database in files that belong to it (the outage journal): 16 hex
        #: digits from its URL without the password (a SQLite file by its absolute path,
        #: whichever folder a relative URL was given from).
        named = self.display_url if self.path is None else f"sqlite:///{self.path}"
        self.identity = hashlib.sha256(named.encode()).hexdigest()[:16]
        if self.path is not None and not self.path.parent.is_dir():
            raise ConfigError(
                f"The folder for the SQLite database {str(self.path)!r} does not exist; "
                f"create {str(self.path.parent)!r} or change database_url."
            )
        self.engine = self._engine(
            self.dialect.engine_options(self.url, pool_size, read_only=read_only)
        )
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if self.dialect.server else threading.Lock()
        )
        #: Account name -> id, filled by store.writes.account_id.
        self.account_ids: dict[str, int] = {}
        self._readers = threading.local()
        self._readers_lock = threading.Lock()
        self._all_readers: list[Any] = []
        self._read_engine: Engine | None = None
        #: Seconds a write transaction or a question may take before its connection is hung
        #: up on (an outage); None: no limit. The daemon sets it: a database whose network
        #: drops every packet must not hold the recording, nor SIGTERM, for as long as TCP
        #: takes to give up (many minutes).
        self.deadline: float | None = None

    def _engine(self, options: dict[str, Any]) -> Engine:
        try:
            engine = sa.create_engine(self.url, **options)
        except ModuleNotFoundError as error:
            driver = self.url.get_driver_name()
            extra = self.dialect.extra
            hint = f"pip install 'coinw-recorder[{extra}]'" if extra else f"install {driver}"
            raise ConfigError(
                f"database_url needs the {error.name or driver} driver, which is not "
                f"installed: {hint}."
            ) from None
        event.listen(engine, "connect", lambda connection, _: self.dialect.on_connect(connection))
        return engine

    def close(self) -> None:
        """Release every connection."""
        with self._readers_lock:
            for reader in self._all_readers:
                with contextlib.suppress(Exception):
                    reader.close()
            self._all_readers.clear()
        self._readers = threading.local()
        if self._read_engine is not None:
            self._read_engine.dispose()
        self.engine.dispose()

    # -- the one error translation -------------------------------------------------------

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """Turn any error of SQLAlchemy or the driver inside into a StoreError."""
        driver_error = self.engine.dialect.loaded_dbapi.Error
        try:
            yield
        except exc.DBAPIError as error:
            cause = error.orig if error.orig is not None else error
            raise self.store_error(cause, invalidated=error.connection_invalidated) from None
        except driver_error as error:
            raise self.store_error(error) from None

    def store_error(self, error: BaseException, *, invalidated: bool = False) -> StoreError:
        """The StoreError for a driver's error: an outage or a refusal of the data."""
        reason = text.one_line(str(error), limit=300) or type(error).__name__
        kind = dialects.OUTAGE if invalidated else self.dialect.classify(error)
        if kind == dialects.REFUSED:
            return WriteRejectedError(
                f"The database at {self.display_url} refused the write ({reason}).", reason
            )
        diagnosis = self.dialect.diagnose(error, self.path)
        if diagnosis:
            reason = f"{reason}: {diagnosis}"
        unavailable = DatabaseUnavailableError(
            f"The database at {self.display_url} is unavailable ({reason}); "
            f"{self.dialect.outage_hint}.",
            reason,
        )
        unavailable.certain = kind == dialects.OUTAGE
        return unavailable

    # -- writes --------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, bounded: bool = True) -> Iterator[Connection]:
        """One write transaction: everything run on the connection commits together,
        within `deadline` unless not `bounded` (a schema migration takes what it takes)."""
        deadline = self.deadline if bounded else None
        with (
            self._write_lock,
            self.translated(),
            self.engine.connect() as connection,
            # The deadline covers the COMMIT too.
            hung_up_after(self.dialect, connection.connection.driver_connection, deadline),
            connection.begin(),
        ):
            yield connection

    def run(
        self, connection: Connection, sql: str, params: Sequence[Any] | Sequence[Sequence[Any]] = ()
    ) -> CursorResult[Any]:
        """Run one statement (`?` markers) inside a transaction; a list of tuples runs it
        once per tuple (executemany)."""
        values: Any = list(params) if params and isinstance(params[0], tuple) else tuple(params)
        return connection.exec_driver_sql(self.dialect.sql(sql), values)

    @contextlib.contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection outside any transaction, for statements that refuse to run in one."""
        with (
            self._write_lock,
            self.translated(),
            self.engine.connect() as connection,
        ):
            yield connection.execution_options(isolation_level="AUTOCOMMIT")

    # -- reads ---------------------------------------------------------------------------

    def in_range(
        self, column: str, since: datetime | None, until: datetime | None
    ) -> tuple[list[str], list[Any]]:
        """WHERE conditions (and their parameters) keeping `column` within since..until."""
        conditions, params = [], []
        if since is not None:
            conditions.append(f"{column} >= ?")
            params.append(self.dialect.storage_time(since))
        if until is not None:
            conditions.append(f"{column} <= ?")
            params.append(self.dialect.storage_time(until))
        return conditions, params

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query (`?` markers) on this thread's kept connection."""
        with self.cursor() as cursor:
            cursor.execute(self.dialect.sql(sql), tuple(params))
            return [tuple(row) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A DBAPI cursor on this thread's kept connection (use `dialect.sql` on statements)."""
        try:
            with self.translated():
                reader = self._reader()
                cursor = reader.cursor()
                try:
                    with hung_up_after(self.dialect, reader.driver_connection, self.deadline):
                        yield cursor
                finally:
                    cursor.close()
        except StoreError:
            self._drop_reader()  # it may be the connection that broke
            raise

    @contextlib.contextmanager
    def streaming(self) -> Iterator[Any]:
        """A cursor that streams its rows (server-side on PostgreSQL and MariaDB)."""
        with self.translated():
            raw = self.engine.raw_connection()
            try:
                cursor = self.dialect.streaming_cursor(raw)
                try:
                    yield cursor
                finally:
                    cursor.close()
            finally:
                raw.close()  # back to the pool

    def batches(
        self, sql: str, params: Sequence[Any] = (), size: int = 10000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of one long query (`?` markers), `size` at a time, streamed."""
        with self.streaming() as cursor:
            cursor.execute(self.dialect.sql(sql), list(params))
            while rows := cursor.fetchmany(size):
                yield list(rows)

    def _reader(self) -> Any:
        """This thread's reading connection, kept open: a question then costs no pool
        checkout, and on a server no BEGIN and ROLLBACK round trips (autocommit, so it never
        holds a transaction open; SQLite opens none for a SELECT)."""
        reader = getattr(self._readers, "connection", None)
        if reader is None:
            if not self.dialect.server:
                reader = self.engine.raw_connection()
            else:
                if self._read_engine is None:
                    self._read_engine = self._engine(
                        {
                            "poolclass": sa.pool.NullPool,
                            "isolation_level": "AUTOCOMMIT",
                            "connect_args": self.dialect.timeouts(self.url),
                        }
                    )
                reader = self._read_engine.raw_connection()
            self._readers.connection = reader
            with self._readers_lock:
                self._all_readers.append(reader)
        return reader

    def _drop_reader(self) -> None:
        reader = getattr(self._readers, "connection", None)
        if reader is not None:
            self._readers.connection = None
            with self._readers_lock:
                if reader in self._all_readers:
                    self._all_readers.remove(reader)
            with contextlib.suppress(Exception):
                reader.invalidate()

    # -- the lock session ----------------------------------------------------------------

    def lock_engine(self, timeout: float) -> Engine:
        """An engine for a session of its own that holds named locks (a server only),
        whose waits last about `timeout` seconds at most."""
        return sa.create_engine(
            self.url,
            poolclass=sa.pool.NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args=self.dialect.lock_session_args(self.url, timeout),
        )


def hung_up_after(
    dialect: dialects.Dialect, driver_connection: Any, seconds: float | None
) -> contextlib.AbstractContextManager[None]:
    """Hang up on the connection if what runs inside takes longer than `seconds`.

    Shutting its socket down wakes the driver with a lost-connection error, as a dead
    server would (the connection is then dropped); a server whose client went away rolls
    back what was not committed. Neither driver has a client-side timeout for a statement
    that sends its query and then never hears back. Without a limit, or on SQLite (its
    busy timeout bounds every wait), nothing is armed: it costs a question nothing.
    """
    fd = None if seconds is None else dialect.session_socket(driver_connection)
    if seconds is None or fd is None:
        return contextlib.nullcontext()
    return _timer(fd, seconds)


@contextlib.contextmanager
def _timer(fd: int, seconds: float) -> Iterator[None]:
    finished = threading.Event()
    guard = threading.Lock()

    def hang_up() -> None:
        with guard:
            if not finished.is_set():
                with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as dup:
                    dup.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, hang_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with guard:
            finished.set()
        timer.cancel()


def file_of(url: str) -> Path | None:
    """The SQLite file a database URL names (None for a server or memory)."""
    parsed = dialects.parse_url(url)
    return dialects.for_url(parsed).database_file(parsed)
