"""The database: engine set-up, migrations, and every SQL statement the recorder runs.

Writes go through `Store.writer()`: one transaction in which the caller reads the previous
snapshot, diffs, and adds the new one, so a snapshot, its balances and its changes commit
together or not at all.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from recorder.amounts import add as amounts_add
from recorder.amounts import canonical as amounts_canonical
from recorder.amounts import to_text
from recorder.errors import ConfigError, InputError, SchemaError, StoreError
from recorder.polling.pricing import Valuation
from recorder.store import schema as models
from recorder.store.types import utc_from_storage

log = logging.getLogger(__name__)

#: The newest migration in migrations/versions (a test keeps the two in step), so that a
#: database already at it is recognised without loading Alembic.
HEAD_REVISION = "0003"

accounts_t = models.accounts
snapshots_t = models.snapshots
balances_t = models.balances
changes_t = models.balance_changes
poll_errors_t = models.poll_errors

# Drivers named in a URL without one ("postgresql://") default to psycopg2 in SQLAlchemy;
# we ship psycopg 3 and PyMySQL, so say which we mean.
_DEFAULT_DRIVERS = {
    "postgresql": "psycopg",
    "postgres": "psycopg",
    "mysql": "pymysql",
    "mariadb": "pymysql",
}
_EXTRAS = {"psycopg": "postgres", "pymysql": "mysql"}


class ChangeLike(Protocol):
    """A change as the store writes it (recorder.diff.Change is one)."""

    @property
    def currency(self) -> str: ...
    @property
    def old_amount(self) -> Decimal | None: ...
    @property
    def new_amount(self) -> Decimal | None: ...
    @property
    def delta(self) -> Decimal: ...


class SnapshotRef(NamedTuple):
    """One snapshot, as reports see it."""

    account: str
    snapshot_id: int
    taken_at: datetime
    total_value_usdt: Decimal | None
    unpriced_count: int | None


class Holding(NamedTuple):
    """One balance row with its account and time."""

    account: str
    snapshot_id: int
    taken_at: datetime
    currency: str
    amount: Decimal
    price_usdt: Decimal | None
    value_usdt: Decimal | None
    available: Decimal | None
    on_orders: Decimal | None


class ChangeEntry(NamedTuple):
    """One row of the change log with its account name."""

    account: str
    taken_at: datetime
    currency: str
    old_amount: Decimal | None
    new_amount: Decimal | None
    delta: Decimal


def parse_url(url: str) -> URL:
    """A database URL, with our default drivers filled in; ConfigError if it is malformed."""
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise ConfigError(
            f"database_url {url!r} is not a database URL; expected e.g. sqlite:///recorder.db "
            "or postgresql://user@host/dbname."
        ) from None
    backend = parsed.get_backend_name()
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=f"{backend}+{_DEFAULT_DRIVERS[parsed.drivername]}")
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ConfigError(
            f"database_url uses {backend!r}; the recorder supports sqlite, postgresql and "
            "mysql/mariadb."
        )
    return parsed


def safe_url(url: URL) -> str:
    """The URL as it can be shown: the password replaced by ***."""
    return url.render_as_string(hide_password=True)


def migrations_dir() -> Path:
    """Where the Alembic scripts are: inside an installed wheel, or at the repository root."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_migrations"
    if packaged.is_dir():
        return packaged
    return package.parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (reports, sqlite3 shell) work while the daemon writes, and keeps
    # every committed transaction across a crash; NORMAL sync is safe in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Store:
    """The recorder's database. Thread-safe; one per process."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = parse_url(url)
        self.display_url = safe_url(self.url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine(pool_size)
        # SQLite takes one writer at a time; queueing our own threads here avoids
        # "database is locked" retries between them.
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        )
        self._account_ids: dict[str, int] = {}
        self._readers = threading.local()
        self._readers_lock = threading.Lock()
        self._all_readers: list[Any] = []
        self._read_engine: Engine | None = None

    def _create_engine(self, pool_size: int) -> Engine:
        # No "pre-ping" round trip before every use of a pooled connection: a connection the
        # server dropped fails once, SQLAlchemy then replaces the whole pool, and a failed
        # write waits in the outage buffer until the next poll writes it.
        options: dict[str, Any] = {"pool_pre_ping": False}
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                parent = Path(database).expanduser().resolve().parent
                if not parent.is_dir():
                    raise ConfigError(
                        f"The folder for the SQLite database {database!r} does not exist; "
                        f"create {str(parent)!r} or change database_url."
                    )
        else:
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600)
            options["connect_args"] = self._timeouts()
        try:
            engine = sa.create_engine(self.url, **options)
        except ModuleNotFoundError as error:
            driver = self.url.get_driver_name()
            extra = _EXTRAS.get(driver, "")
            hint = f"pip install 'coinw-recorder[{extra}]'" if extra else f"install {driver}"
            raise ConfigError(
                f"database_url needs the {error.name or driver} driver, which is not "
                f"installed: {hint}."
            ) from None
        if self.is_sqlite:
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def _timeouts(self) -> dict[str, Any]:
        """Fail fast when the server is unreachable, unless the URL says otherwise."""
        query = self.url.query
        if self.url.get_backend_name() == "postgresql":
            return {} if "connect_timeout" in query else {"connect_timeout": 10}
        timeouts = {"connect_timeout": 10, "read_timeout": 60, "write_timeout": 60}
        return {key: value for key, value in timeouts.items() if key not in query}

    def close(self) -> None:
        """Release every pooled connection."""
        with self._readers_lock:
            for reader in self._all_readers:
                reader.close()
            self._all_readers.clear()
        self._readers = threading.local()
        if self._read_engine is not None:
            self._read_engine.dispose()
        self.engine.dispose()

    def advisory_locks(self) -> AdvisoryLocks | None:
        """A session holding server-side locks (PostgreSQL, MariaDB/MySQL); None on SQLite."""
        if self.is_sqlite:
            return None
        return AdvisoryLocks(self.url, self._timeouts())

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        lock = self._write_lock if write else contextlib.nullcontext()
        with lock:
            try:
                with self.engine.begin() as connection:
                    yield connection
            except exc.OperationalError as error:
                raise StoreError(self._describe(error)) from None
            except exc.DBAPIError as error:
                # Any failed write counts: the caller keeps the data and tries again later.
                if write or error.connection_invalidated:
                    raise StoreError(self._describe(error)) from None
                raise

    def _describe(self, error: exc.DBAPIError) -> str:
        reason = " ".join(str(error.orig).split())[:200] if error.orig else type(error).__name__
        if isinstance(error, exc.OperationalError) or error.connection_invalidated:
            return (
                f"The database at {self.display_url} is unreachable ({reason}); check "
                "database_url and that the server is running."
            )
        return f"The database at {self.display_url} refused the write ({reason})."

    # -- schema ------------------------------------------------------------------------

    def _alembic_config(self, connection: Connection) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(migrations_dir()))
        config.attributes["connection"] = connection
        return config

    def head_revision(self) -> str:
        """The newest migration this version of the recorder knows."""
        from alembic.script import ScriptDirectory

        config = self._alembic_config(None)  # type: ignore[arg-type]
        head = ScriptDirectory.from_config(config).get_current_head()
        assert head is not None
        return head

    def current_revision(self) -> str | None:
        """The migration the database is at; None for an empty database."""
        from alembic.migration import MigrationContext

        with self._connect(write=False) as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to `revision`."""
        from alembic import command

        with self._connect(write=True) as connection:
            command.upgrade(self._alembic_config(connection), revision)

    def downgrade(self, revision: str) -> None:
        """Undo migrations down to `revision` ("base" empties the database)."""
        from alembic import command

        with self._connect(write=True) as connection:
            command.downgrade(self._alembic_config(connection), revision)

    def ensure_schema(self) -> None:
        """Bring an empty or older database to the current schema; refuse a newer one."""
        if self._stamped_revision() == HEAD_REVISION:
            return  # the usual case, answered without loading Alembic (10 MB, 100 ms)
        current, head = self.current_revision(), self.head_revision()
        if current == head:
            return
        if current is not None and not self._knows(current):
            raise SchemaError(
                f"The database at {self.display_url} has schema revision {current}, newer than "
                "this recorder knows; upgrade the recorder."
            )
        log.info(
            "Upgrading the database schema at %s from %s to %s; this can take a while on a "
            "large database.",
            self.display_url,
            current or "empty",
            head,
        )
        self.upgrade()

    def _stamped_revision(self) -> str | None:
        """The revision in alembic_version, read directly; None if there is none."""
        try:
            with self._connect(write=False) as connection:
                rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                versions = [row[0] for row in rows]
        except (StoreError, exc.DBAPIError):
            return None  # no table yet, or unreachable: the slow path says which
        return versions[0] if len(versions) == 1 else None

    def _knows(self, revision: str) -> bool:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic_config(None))  # type: ignore[arg-type]
        try:
            return script.get_revision(revision) is not None
        except Exception:  # alembic raises several types for an unknown id
            return False

    # -- writes ------------------------------------------------------------------------

    def account_id(self, name: str) -> int:
        """The id of the named account, created on first use."""
        if name in self._account_ids:
            return self._account_ids[name]
        select = sa.select(accounts_t.c.id).where(accounts_t.c.name == name)
        with self._connect(write=False) as connection:
            found = connection.execute(select).scalar()
        if found is None:
            try:
                with self._connect(write=True) as connection:
                    connection.execute(accounts_t.insert().values(name=name))
            except exc.IntegrityError:
                pass  # another process created it first; read it back below
            with self._connect(write=False) as connection:
                found = connection.execute(select).scalar_one()
        self._account_ids[name] = int(found)
        return int(found)

    @contextlib.contextmanager
    def writer(self) -> Iterator[Writer]:
        """One write transaction: everything done through the Writer commits together."""
        with self._connect(write=True) as connection:
            yield Writer(connection, self)

    def add_poll_error(
        self, account_id: int, attempted_at: datetime, kind: str, message: str
    ) -> None:
        """Record a failed poll."""
        with self.writer() as writer:
            writer.add_poll_error(account_id, attempted_at, kind, message)

    # -- reads -------------------------------------------------------------------------

    def latest_balances(self, account_id: int) -> dict[str, Decimal]:
        """What the account held at its most recent snapshot ({} when it has none)."""
        with self._connect(write=False) as connection:
            return Writer(connection, self).previous_balances(account_id)

    def count_rows(self) -> dict[str, int]:
        """Row counts of every table, for status output and tests."""
        tables = (accounts_t, snapshots_t, balances_t, changes_t, poll_errors_t)
        with self._connect(write=False) as connection:
            return {
                table.name: connection.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar_one()
                for table in tables
            }

    # -- the bulk path: raw rows, no ORM or type processing ------------------------------

    def storage_time(self, moment: datetime) -> Any:
        """`moment` as this backend's driver takes it for a UTCDateTime column."""
        utc = moment.astimezone(UTC)
        if self.is_sqlite:
            # SQLAlchemy's own SQLite format, "2026-03-31 23:30:00.000000".
            return utc.replace(tzinfo=None).isoformat(" ", "microseconds")
        if self.url.get_backend_name() == "postgresql":
            return utc
        return utc.replace(tzinfo=None)

    @contextlib.contextmanager
    def bulk(self) -> Iterator[BulkWriter]:
        """One transaction of raw inserts (amounts as canonical text, times from
        `storage_time`): the path for copies and generated histories."""
        with self._connect(write=True) as connection:
            yield BulkWriter(connection)

    def sync_id_sequences(self) -> None:
        """After rows were inserted with explicit ids: make new ids start past them
        (PostgreSQL's sequences do not follow explicit ids; the others do by themselves)."""
        if self.url.get_backend_name() != "postgresql":
            return
        with self._connect(write=True) as connection:
            for table in ("accounts", "snapshots", "balance_changes", "poll_errors"):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                )

    def analyze(self, *, vacuum: bool = False) -> None:
        """Refresh the planner's statistics; with `vacuum`, also give freed space back."""
        backend = self.url.get_backend_name()
        tables = ("accounts", "snapshots", "balances", "balance_changes", "poll_errors")
        if backend == "postgresql":
            verb = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
            with self.engine.connect() as connection:
                autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.exec_driver_sql(f"{verb} {', '.join(tables)}")
        elif backend in ("mysql", "mariadb"):
            verb = "OPTIMIZE TABLE" if vacuum else "ANALYZE TABLE"
            with self._connect(write=True) as connection:
                connection.exec_driver_sql(f"{verb} {', '.join(tables)}").all()
        else:
            with self._write_lock, self.engine.connect() as connection:
                autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.exec_driver_sql("ANALYZE")
                if vacuum:
                    autocommit.exec_driver_sql("VACUUM")

    # -- copying and pruning -------------------------------------------------------------

    def _raw_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a raw query, with `?` markers rewritten to the driver's style."""
        if self.engine.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        with self._connect(write=False) as connection:
            return [tuple(row) for row in connection.exec_driver_sql(sql, tuple(params))]

    def max_key(self, table: str, column: str = "id") -> int:
        """The largest value of an integer key column (0 for an empty table)."""
        return int(self._raw_rows(f"SELECT COALESCE(MAX({column}), 0) FROM {table}")[0][0])

    def raw_accounts(self) -> list[tuple[int, str]]:
        """(id, name) of every account."""
        return [(int(i), str(n)) for i, n in self._raw_rows("SELECT id, name FROM accounts")]

    def raw_snapshot_chunk(
        self, after: int, up_to: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Snapshots with after < id <= up_to, with their balances and changes, in portable
        form: amounts as canonical text, times as aware datetimes."""
        backend = self.url.get_backend_name()

        def text(column: str) -> str:
            return _number_text(column, backend)

        snapshots = [
            (i, a, self.time_from_storage(t), v, u, r)
            for i, a, t, v, u, r in self._raw_rows(
                f"SELECT id, account_id, taken_at, {text('total_value_usdt')}, unpriced_count, "
                "recorded_by FROM snapshots WHERE id > ? AND id <= ? ORDER BY id",
                (after, up_to),
            )
        ]
        amounts = ", ".join(
            text(c) for c in ("amount", "price_usdt", "value_usdt", "available", "on_orders")
        )
        balances = self._raw_rows(
            f"SELECT snapshot_id, currency, {amounts} FROM balances "
            "WHERE snapshot_id > ? AND snapshot_id <= ? ORDER BY snapshot_id, currency",
            (after, up_to),
        )
        changes = [
            (*row[:7], self.time_from_storage(row[7]))
            for row in self._raw_rows(
                "SELECT id, account_id, snapshot_id, currency, "
                f"{text('old_amount')}, {text('new_amount')}, {text('delta')}, taken_at "
                "FROM balance_changes WHERE snapshot_id > ? AND snapshot_id <= ? ORDER BY id",
                (after, up_to),
            )
        ]
        return snapshots, balances, changes

    def raw_poll_errors(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Failed polls with id > after, oldest first, times as aware datetimes."""
        return [
            (i, a, self.time_from_storage(t), k, m)
            for i, a, t, k, m in self._raw_rows(
                "SELECT id, account_id, attempted_at, kind, message FROM poll_errors "
                f"WHERE id > ? ORDER BY id LIMIT {int(limit)}",
                (after,),
            )
        ]

    def checksums(self) -> dict[str, tuple[int, Decimal]]:
        """Per table: (row count, exact sum of its amounts), to compare two databases."""
        sums = {
            "snapshots": ("total_value_usdt",),
            "balances": ("amount", "price_usdt", "value_usdt", "available", "on_orders"),
            "balance_changes": ("old_amount", "new_amount", "delta"),
            "poll_errors": (),
            "accounts": (),
        }
        result: dict[str, tuple[int, Decimal]] = {}
        backend = self.url.get_backend_name()
        for table, columns in sums.items():
            count = int(self._raw_rows(f"SELECT count(*) FROM {table}")[0][0])
            total = Decimal(0)
            for column in columns:
                if backend == "sqlite":
                    # SUM() over text goes through float in SQLite: add exactly here.
                    query = f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
                    for batch in self._stream(query):
                        for (value,) in batch:
                            total = amounts_add(total, Decimal(value))
                else:
                    (value,) = self._raw_rows(f"SELECT SUM({column}) FROM {table}")[0]
                    total = amounts_add(total, Decimal(str(value or 0)))
            result[table] = (count, total)
        return result

    def _stream(self, sql: str) -> Iterator[list[tuple[Any, ...]]]:
        with self._cursor(streaming=True) as cursor:
            cursor.execute(sql)
            while rows := cursor.fetchmany(50000):
                yield list(rows)

    def prune_candidates(
        self, account_id: int, before: datetime
    ) -> list[tuple[int, datetime, bool]]:
        """(id, taken_at, recorded a change) of the account's snapshots before `before`."""
        rows = self._raw_rows(
            "SELECT s.id, s.taken_at, EXISTS (SELECT 1 FROM balance_changes c "
            "WHERE c.snapshot_id = s.id) FROM snapshots s "
            "WHERE s.account_id = ? AND s.taken_at < ? ORDER BY s.taken_at, s.id",
            (account_id, self.storage_time(before)),
        )
        return [(int(i), self.time_from_storage(t), bool(c)) for i, t, c in rows]

    def delete_snapshots(self, ids: Sequence[int]) -> None:
        """Delete these snapshots and their balances, in one short transaction. Refuses
        (IntegrityError -> StoreError) a snapshot that a change row points to."""
        if not ids:
            return
        with self._connect(write=True) as connection:
            connection.execute(balances_t.delete().where(balances_t.c.snapshot_id.in_(ids)))
            connection.execute(snapshots_t.delete().where(snapshots_t.c.id.in_(ids)))

    # -- health: status and gaps ----------------------------------------------------------

    def account_status(self, account_id: int, since: datetime) -> dict[str, Any]:
        """Last success, last error, errors since `since`, snapshot count of one account."""
        with self._cursor() as cursor:
            cursor.execute(
                self._marked("SELECT count(*), max(taken_at) FROM snapshots WHERE account_id = ?"),
                (account_id,),
            )
            count, last = cursor.fetchone()
            cursor.execute(
                self._marked(
                    "SELECT attempted_at, kind, message FROM poll_errors WHERE account_id = ? "
                    "ORDER BY attempted_at DESC, id DESC LIMIT 1"
                ),
                (account_id,),
            )
            error = cursor.fetchone()
            cursor.execute(
                self._marked(
                    "SELECT count(*) FROM poll_errors WHERE account_id = ? AND attempted_at >= ?"
                ),
                (account_id, self.storage_time(since)),
            )
            (recent,) = cursor.fetchone()
        return {
            "snapshots": int(count),
            "last_success": self.time_from_storage(last) if last is not None else None,
            "last_error": None
            if error is None
            else {
                "at": self.time_from_storage(error[0]),
                "kind": error[1],
                "message": error[2],
            },
            "errors_24h": int(recent),
        }

    def database_size(self) -> int | None:
        """Bytes the recorder's data takes (file, schema or database); None if unknown."""
        backend = self.url.get_backend_name()
        if backend == "sqlite":
            database = self.url.database or ""
            files = [Path(f"{database}{suffix}") for suffix in ("", "-wal")]
            return sum(f.stat().st_size for f in files if f.exists()) if database else None
        if backend == "postgresql":
            query = (
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN "
                "pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND "
                "n.nspname = current_schema()"
            )
        else:
            query = (
                "SELECT sum(data_length + index_length) FROM information_schema.tables "
                "WHERE table_schema = DATABASE()"
            )
        (size,) = self._raw_rows(query)[0]
        return None if size is None else int(size)

    def iter_snapshot_times(
        self, account_id: int, since: datetime | None, until: datetime | None
    ) -> Iterator[datetime]:
        """The account's snapshot times in order, streamed (for finding gaps)."""
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        where, params = [f"account_id = {marker}"], [account_id]
        if since is not None:
            where.append(f"taken_at >= {marker}")
            params.append(self.storage_time(since))
        if until is not None:
            where.append(f"taken_at <= {marker}")
            params.append(self.storage_time(until))
        sql = f"SELECT taken_at FROM snapshots WHERE {' AND '.join(where)} ORDER BY taken_at"
        with self._cursor(streaming=True) as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(10000):
                for (value,) in rows:
                    yield self.time_from_storage(value)

    # -- history, for reports -----------------------------------------------------------

    def resolve_accounts(self, names: Sequence[str] = ()) -> dict[str, int]:
        """Account name -> id for `names` (every account when empty); InputError if unknown."""
        with self._connect(write=False) as connection:
            query = sa.select(accounts_t.c.name, accounts_t.c.id).order_by(accounts_t.c.name)
            known = {name: account_id for name, account_id in connection.execute(query)}
        for name in names:
            if name not in known:
                listed = ", ".join(known) or "none yet"
                raise InputError(
                    f"No account named {name!r} in the database (recorded accounts: {listed})."
                )
        return {name: known[name] for name in names} if names else known

    def resolve_currencies(self, names: Sequence[str]) -> list[str]:
        """Currencies as stored, matched without regard to case; InputError if never held."""
        if not names:
            return []
        with self._connect(write=False) as connection:
            known = connection.execute(sa.select(changes_t.c.currency).distinct()).scalars()
            by_upper = {currency.upper(): currency for currency in known}
        missing = [name for name in names if name.upper() not in by_upper]
        if missing:
            raise InputError(
                f"No account has ever held {missing[0]!r}; check the spelling "
                f"(held so far: {', '.join(sorted(by_upper.values())) or 'nothing'})."
            )
        return [by_upper[name.upper()] for name in names]

    def time_range(self, account_ids: Sequence[int]) -> tuple[datetime, datetime] | None:
        """First and last snapshot time of these accounts; None when they have none."""
        # One account at a time, so each min and max is a single seek in the
        # (account_id, taken_at) index; over several accounts at once it would be a scan.
        sql = self._marked(
            "SELECT (SELECT min(taken_at) FROM snapshots WHERE account_id = ?), "
            "(SELECT max(taken_at) FROM snapshots WHERE account_id = ?)"
        )
        found: list[datetime] = []
        with self._cursor() as cursor:
            for account_id in account_ids:
                cursor.execute(sql, (account_id, account_id))
                first, last = cursor.fetchone()
                if first is not None:
                    found += [self.time_from_storage(first), self.time_from_storage(last)]
        return (min(found), max(found)) if found else None

    def _snapshot_refs(self, connection: Connection, query: sa.Select[Any]) -> list[SnapshotRef]:
        return [SnapshotRef(*row) for row in connection.execute(query)]

    def _ref_query(self) -> sa.Select[Any]:
        return sa.select(
            accounts_t.c.name,
            snapshots_t.c.id,
            snapshots_t.c.taken_at,
            snapshots_t.c.total_value_usdt,
            snapshots_t.c.unpriced_count,
        ).join(accounts_t, accounts_t.c.id == snapshots_t.c.account_id)

    # Reads that answer a user's question (`at`, `history`) run as plain SQL on the
    # driver too: for a one-account question, SQLAlchemy's statement handling would cost
    # ten times the query itself.

    @contextlib.contextmanager
    def _cursor(self, *, streaming: bool = False) -> Iterator[Any]:
        """A DBAPI cursor for plain SQL reads (a server-side one with `streaming`); the
        driver's own errors, which SQLAlchemy does not see here, become StoreError."""
        driver_error = self.engine.dialect.loaded_dbapi.Error
        try:
            if streaming:  # a server-side cursor lives inside a transaction
                raw = self.engine.raw_connection()
                try:
                    cursor = _streaming_cursor(raw, self.url.get_backend_name())
                    try:
                        yield cursor
                    finally:
                        cursor.close()
                finally:
                    raw.close()  # back to the pool
                return
            cursor = self._reader().cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        except exc.DBAPIError as error:
            if isinstance(error, exc.OperationalError) or error.connection_invalidated:
                raise StoreError(self._describe(error)) from None
            raise
        except driver_error as error:
            self._drop_reader()  # it may be the connection that broke
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            raise StoreError(
                f"The database at {self.display_url} failed a read ({reason}); check "
                "database_url and that the server is running."
            ) from None

    def _reader(self) -> Any:
        """This thread's reading connection, kept open: answering a question then costs
        no pool checkout, and on a server no BEGIN and ROLLBACK round trips (it runs in
        autocommit mode, so it never holds a transaction open; SQLite opens none for a
        SELECT). Together these were most of `recorder at`'s time."""
        reader = getattr(self._readers, "connection", None)
        if reader is None:
            if self.is_sqlite:
                reader = self.engine.raw_connection()
            else:
                if self._read_engine is None:
                    self._read_engine = sa.create_engine(
                        self.url,
                        poolclass=sa.pool.NullPool,
                        isolation_level="AUTOCOMMIT",
                        connect_args=self._timeouts(),
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

    def _marked(self, sql: str) -> str:
        return sql if self.engine.dialect.paramstyle == "qmark" else sql.replace("?", "%s")

    def _ref(self, account: str, row: Sequence[Any]) -> SnapshotRef:
        snapshot_id, taken_at, total, unpriced = row
        return SnapshotRef(
            account,
            int(snapshot_id),
            self.time_from_storage(taken_at),
            self._amount(total),
            unpriced,
        )

    def _amount(self, value: Any) -> Decimal | None:
        """An amount as the driver returns it -> canonical Decimal (or None)."""
        return None if value is None else self._to_decimal(value)

    @property
    def _to_decimal(self) -> Any:
        """What makes a driver's amount a canonical Decimal: SQLite holds canonical text,
        PostgreSQL keeps the canonical scale it was given, MariaDB pads to 30 places."""
        if self.is_sqlite:
            return Decimal
        if self.url.get_backend_name() == "postgresql":
            return _unchanged
        return amounts_canonical

    def holdings_at(
        self, accounts: Mapping[str, int], moment: datetime, currencies: Sequence[str] = ()
    ) -> list[tuple[SnapshotRef, list[Holding]]]:
        """Each account's latest snapshot at or before `moment` with its balance rows (by
        currency); accounts without one are left out. One query per account."""
        only = f" AND b.currency IN ({', '.join('?' * len(currencies))})" if currencies else ""
        sql = self._marked(
            "SELECT s.id, s.taken_at, s.total_value_usdt, s.unpriced_count, b.currency, "
            "b.amount, b.price_usdt, b.value_usdt, b.available, b.on_orders FROM snapshots s "
            f"LEFT JOIN balances b ON b.snapshot_id = s.id{only} "
            "WHERE s.id = (SELECT id FROM snapshots WHERE account_id = ? AND taken_at <= ? "
            "ORDER BY taken_at DESC, id DESC LIMIT 1)"
        )  # sorted by currency here, not in SQL: SQLite would build a temporary index
        stored = self.storage_time(moment)
        # SQLite hands back canonical text: Decimal() of it is all the conversion needed.
        amount = self._to_decimal
        found = []
        with self._cursor() as cursor:
            for name, account_id in accounts.items():
                cursor.execute(sql, (*currencies, account_id, stored))
                rows = sorted(cursor.fetchall(), key=_currency_of_row)
                if not rows:
                    continue
                ref = self._ref(name, rows[0][:4])
                snapshot_id, taken_at = ref.snapshot_id, ref.taken_at
                holdings = [
                    Holding(
                        name,
                        snapshot_id,
                        taken_at,
                        currency,
                        amount(held),
                        None if price is None else amount(price),
                        None if value is None else amount(value),
                        None if free is None else amount(free),
                        None if frozen is None else amount(frozen),
                    )
                    for *_, currency, held, price, value, free, frozen in rows
                    if currency is not None  # an empty snapshot: the row of the LEFT JOIN
                ]
                found.append((ref, holdings))
        return found

    def _in_range(
        self,
        query: sa.Select[Any],
        account_ids: Sequence[int],
        since: datetime | None,
        until: datetime | None,
    ) -> sa.Select[Any]:
        query = query.where(snapshots_t.c.account_id.in_(account_ids))
        if since is not None:
            query = query.where(snapshots_t.c.taken_at >= since)
        if until is not None:
            query = query.where(snapshots_t.c.taken_at <= until)
        return query

    def count_snapshots(
        self, account_ids: Sequence[int], since: datetime | None, until: datetime | None
    ) -> int:
        """How many snapshots these accounts have in the range."""
        query = self._in_range(
            sa.select(sa.func.count()).select_from(snapshots_t), account_ids, since, until
        )
        with self._connect(write=False) as connection:
            return int(connection.execute(query).scalar_one())

    def snapshot_refs(
        self, account_ids: Sequence[int], since: datetime | None, until: datetime | None
    ) -> list[SnapshotRef]:
        """Every snapshot of these accounts in the range, oldest first."""
        query = self._in_range(self._ref_query(), account_ids, since, until).order_by(
            snapshots_t.c.taken_at, snapshots_t.c.id
        )
        with self._connect(write=False) as connection:
            return self._snapshot_refs(connection, query)

    def last_snapshots_in(
        self, account: str, account_id: int, bounds: Sequence[tuple[datetime, datetime]]
    ) -> list[SnapshotRef]:
        """For each [start, end) in `bounds`, the account's last snapshot in it, if any."""
        # One index seek per period: a year of days is 365 quick lookups, whatever the
        # number of snapshots in between.
        if self.url.get_backend_name() == "postgresql":
            return self._last_snapshots_in_one_query(account, account_id, bounds)
        sql = self._marked(
            "SELECT id, taken_at, total_value_usdt, unpriced_count FROM snapshots "
            "WHERE account_id = ? AND taken_at >= ? AND taken_at < ? "
            "ORDER BY taken_at DESC, id DESC LIMIT 1"
        )
        found = []
        with self._cursor() as cursor:
            for start, end in bounds:
                cursor.execute(sql, (account_id, self.storage_time(start), self.storage_time(end)))
                row = cursor.fetchone()
                if row is not None:
                    found.append(self._ref(account, row))
        return found

    def _last_snapshots_in_one_query(
        self, account: str, account_id: int, bounds: Sequence[tuple[datetime, datetime]]
    ) -> list[SnapshotRef]:
        """last_snapshots_in for PostgreSQL: the same seeks, sent as one statement (a
        round trip per period would cost more than the seeks themselves)."""
        sql = (
            "SELECT s.id, s.taken_at, s.total_value_usdt, s.unpriced_count "
            "FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS p(start_at, end_at) "
            "CROSS JOIN LATERAL (SELECT id, taken_at, total_value_usdt, unpriced_count "
            "FROM snapshots WHERE account_id = %s AND taken_at >= p.start_at "
            "AND taken_at < p.end_at ORDER BY taken_at DESC, id DESC LIMIT 1) s "
            "ORDER BY s.taken_at"
        )
        with self._cursor() as cursor:
            cursor.execute(sql, ([s for s, _ in bounds], [e for _, e in bounds], account_id))
            return [self._ref(account, row) for row in cursor.fetchall()]

    def holdings_of(
        self, snapshots: Sequence[SnapshotRef], currencies: Sequence[str] = ()
    ) -> list[Holding]:
        """The balance rows of these snapshots, in the snapshots' order then by currency."""
        by_id = {ref.snapshot_id: ref for ref in snapshots}
        rows: dict[int, list[Holding]] = {ref.snapshot_id: [] for ref in snapshots}
        ids = list(by_id)
        amount = self._amount
        with self._cursor() as cursor:
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                sql = (
                    "SELECT snapshot_id, currency, amount, price_usdt, value_usdt, available, "
                    f"on_orders FROM balances WHERE snapshot_id IN ({', '.join('?' * len(chunk))})"
                )
                params: list[Any] = list(chunk)
                if currencies:
                    sql += f" AND currency IN ({', '.join('?' * len(currencies))})"
                    params += currencies
                cursor.execute(self._marked(sql), params)
                for snapshot_id, currency, held, price, value, free, frozen in cursor.fetchall():
                    ref = by_id[snapshot_id]
                    rows[snapshot_id].append(
                        Holding(
                            ref.account,
                            snapshot_id,
                            ref.taken_at,
                            currency,
                            amount(held) or Decimal(0),
                            amount(price),
                            amount(value),
                            amount(free),
                            amount(frozen),
                        )
                    )
        return [h for ref in snapshots for h in sorted(rows[ref.snapshot_id], key=_currency)]

    def _holdings_query(
        self,
        account_ids: Sequence[int],
        currencies: Sequence[str],
        since: datetime | None,
        until: datetime | None,
    ) -> sa.Select[Any]:
        query = (
            sa.select(
                accounts_t.c.name,
                snapshots_t.c.id,
                snapshots_t.c.taken_at,
                balances_t.c.currency,
                balances_t.c.amount,
                balances_t.c.price_usdt,
                balances_t.c.value_usdt,
                balances_t.c.available,
                balances_t.c.on_orders,
            )
            .select_from(snapshots_t)
            .join(accounts_t, accounts_t.c.id == snapshots_t.c.account_id)
            .join(balances_t, balances_t.c.snapshot_id == snapshots_t.c.id)
            .where(snapshots_t.c.account_id.in_(account_ids))
        )
        if currencies:
            query = query.where(balances_t.c.currency.in_(currencies))
        if since is not None:
            query = query.where(snapshots_t.c.taken_at >= since)
        if until is not None:
            query = query.where(snapshots_t.c.taken_at <= until)
        return query

    def count_holdings(
        self,
        account_ids: Sequence[int],
        currencies: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many balance rows `iter_holdings` would yield."""
        inner = self._holdings_query(account_ids, currencies, since, until).subquery()
        with self._connect(write=False) as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one()
            )

    def iter_holdings(
        self,
        account_ids: Sequence[int],
        currencies: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        batch: int = 5000,
    ) -> Iterator[Holding]:
        """Every balance row in the range, streamed in time order (constant memory)."""
        query = self._holdings_query(account_ids, currencies, since, until).order_by(
            snapshots_t.c.taken_at, snapshots_t.c.id, balances_t.c.currency
        )
        with self._connect(write=False) as connection:
            result = connection.execution_options(stream_results=True, yield_per=batch).execute(
                query
            )
            for row in result:
                yield Holding(*row)

    def iter_export_rows(
        self,
        account_ids: Sequence[int],
        currencies: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        csv_tail: bool = False,
        batch: int = 10000,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Every balance row in the range as raw tuples, in batches, fast and in constant
        memory: (account id, taken_at as stored, snapshot id, currency, amount, price_usdt,
        value_usdt, available, on_orders), amounts as canonical decimal text (or None).

        With `csv_tail`, the database itself joins everything after taken_at into one CSV
        fragment: (account id, taken_at as stored, "7,BTC,0.0012,96903.7,116.28444,,").
        No field needs CSV quoting (currency names and numbers), and building the text in
        the database is what lets a CSV export pass half a million rows a second.

        This is the export path: no ORM rows, no Decimal objects, no type processing, a
        server-side cursor on PostgreSQL and MariaDB. Use `time_from_storage` on taken_at.
        """
        backend = self.url.get_backend_name()
        selected = _export_columns(backend, csv_tail=csv_tail)
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        where = [f"s.account_id = {marker}"]
        params: list[Any] = []
        if since is not None:
            where.append(f"s.taken_at >= {marker}")
            params.append(self.storage_time(since))
        if until is not None:
            where.append(f"s.taken_at <= {marker}")
            params.append(self.storage_time(until))
        if currencies:
            where.append(f"b.currency IN ({', '.join([marker] * len(currencies))})")
            params.extend(currencies)
        # Per account, in the order of the (account_id, taken_at) index. On SQLite the
        # nested loop over the balances' primary key yields each snapshot's currencies in
        # order without a sort step; elsewhere the order is spelled out.
        order = "s.taken_at, s.id" + ("" if backend == "sqlite" else ", b.currency")
        sql = (
            f"SELECT s.account_id, s.taken_at, {selected} "
            "FROM snapshots s JOIN balances b ON b.snapshot_id = s.id "
            f"WHERE {' AND '.join(where)} ORDER BY {order}"
        )
        for account_id in account_ids:
            with self._cursor(streaming=True) as cursor:
                cursor.execute(sql, [account_id, *params])
                while rows := cursor.fetchmany(batch):
                    yield list(rows)

    def time_from_storage(self, value: Any) -> datetime:
        """A time as the raw read paths return it -> aware UTC datetime."""
        return utc_from_storage(value)

    def iter_changes(
        self,
        account_ids: Sequence[int],
        currencies: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[ChangeEntry]:
        """The change log in the range, oldest first, streamed."""
        query = (
            sa.select(
                accounts_t.c.name,
                changes_t.c.taken_at,
                changes_t.c.currency,
                changes_t.c.old_amount,
                changes_t.c.new_amount,
                changes_t.c.delta,
            )
            .join(accounts_t, accounts_t.c.id == changes_t.c.account_id)
            .where(changes_t.c.account_id.in_(account_ids))
            .order_by(changes_t.c.taken_at, changes_t.c.id)
        )
        if currencies:
            query = query.where(changes_t.c.currency.in_(currencies))
        if since is not None:
            query = query.where(changes_t.c.taken_at >= since)
        if until is not None:
            query = query.where(changes_t.c.taken_at <= until)
        with self._connect(write=False) as connection:
            result = connection.execution_options(stream_results=True, yield_per=5000).execute(
                query
            )
            for row in result:
                yield ChangeEntry(*row)


def _number_text(expression: str, backend: str) -> str:
    """SQL giving an amount column as canonical decimal text on any backend."""
    if backend == "postgresql":
        return f"CAST({expression} AS TEXT)"
    if backend in ("mysql", "mariadb"):
        # DECIMAL(65,30) pads with zeros: trim them, then a bare trailing point.
        return f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST({expression} AS CHAR)))"
    return expression  # SQLite already holds the canonical text


def _export_columns(backend: str, *, csv_tail: bool) -> str:
    """The export query's columns after taken_at (see Store.iter_export_rows)."""
    numbers = [
        _number_text(f"b.{c}", backend)
        for c in ("amount", "price_usdt", "value_usdt", "available", "on_orders")
    ]
    if not csv_tail:
        return ", ".join(["b.snapshot_id", "b.currency", *numbers])
    fields = ["b.snapshot_id", "b.currency", numbers[0]]
    fields += [f"COALESCE({n}, '')" for n in numbers[1:]]
    if backend in ("mysql", "mariadb"):
        return f"CONCAT_WS(',', {', '.join(fields)})"
    if backend == "postgresql":
        fields[0] = "CAST(b.snapshot_id AS TEXT)"
    return " || ',' || ".join(fields)


def _streaming_cursor(raw: Any, backend: str) -> Any:
    """A DBAPI cursor that streams rows instead of loading the whole result."""
    if backend == "postgresql":
        return raw.cursor(name="recorder_export")  # a server-side cursor
    if backend in ("mysql", "mariadb"):
        import pymysql.cursors

        return raw.cursor(pymysql.cursors.SSCursor)
    return raw.cursor()  # sqlite3 steps through the result as it is fetched


def _unchanged(value: Decimal) -> Decimal:
    return value


def _currency_of_row(row: Sequence[Any]) -> str:
    return row[4] or ""  # None: the LEFT JOIN's row for an empty snapshot


def _currency(holding: Holding) -> str:
    return holding.currency


class Writer:
    """The statements of one write transaction."""

    def __init__(self, connection: Connection, store: Store) -> None:
        self.connection = connection
        self._store = store
        self._backend = store.url.get_backend_name()
        self._marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"

    def has_snapshot(self, account_id: int, taken_at: datetime) -> bool:
        """True if the account already has a snapshot taken at exactly this moment."""
        query = sa.select(snapshots_t.c.id).where(
            snapshots_t.c.account_id == account_id, snapshots_t.c.taken_at == taken_at
        )
        return self.connection.execute(query.limit(1)).first() is not None

    def has_poll_error(self, account_id: int, attempted_at: datetime, kind: str) -> bool:
        """True if this failed poll is already recorded."""
        query = sa.select(poll_errors_t.c.id).where(
            poll_errors_t.c.account_id == account_id,
            poll_errors_t.c.attempted_at == attempted_at,
            poll_errors_t.c.kind == kind,
        )
        return self.connection.execute(query.limit(1)).first() is not None

    def add_poll_error(
        self, account_id: int, attempted_at: datetime, kind: str, message: str
    ) -> None:
        """Record a failed poll inside this transaction."""
        self.connection.execute(
            poll_errors_t.insert().values(
                account_id=account_id, attempted_at=attempted_at, kind=kind, message=message
            )
        )

    # The two statements every poll runs are plain SQL on the driver, with values already
    # in storage form: no statement compilation or per-value type processing on the poll
    # path (benchmarks/ measured them at two thirds of its cost).

    def _sql(self, text: str) -> str:
        return text if self._marker == "?" else text.replace("?", "%s")

    def previous_balances(
        self, account_id: int, *, before: datetime | None = None
    ) -> dict[str, Decimal]:
        """Balances of the account's latest snapshot (taken before `before`, if given),
        read inside this transaction."""
        condition = "account_id = ?" + (" AND taken_at < ?" if before is not None else "")
        params: list[Any] = [account_id]
        if before is not None:
            params.append(self._store.storage_time(before))
        rows = self.connection.exec_driver_sql(
            self._sql(
                "SELECT currency, amount FROM balances WHERE snapshot_id = "
                f"(SELECT id FROM snapshots WHERE {condition} "
                "ORDER BY taken_at DESC, id DESC LIMIT 1)"
            ),
            tuple(params),
        )
        if self._backend == "sqlite":
            return {currency: Decimal(text) for currency, text in rows}  # canonical already
        return {currency: amounts_canonical(value) for currency, value in rows}

    def add_snapshot(
        self,
        account_id: int,
        taken_at: datetime,
        balances: Mapping[str, Decimal],
        changes: Sequence[ChangeLike],
        *,
        valuation: Valuation | None = None,
        parts: Mapping[str, tuple[Decimal, Decimal]] | None = None,
        recorded_by: str | None = None,
    ) -> int:
        """Insert a snapshot with its balances and changes; returns the snapshot id."""
        valuation = valuation or Valuation(unpriced=tuple(balances))
        parts = parts or {}
        stored_at = self._store.storage_time(taken_at)
        prices, values = valuation.prices, valuation.values
        snapshot = (
            account_id,
            stored_at,
            _text_or_none(valuation.total),
            valuation.unpriced_count,
            recorded_by,
        )
        insert = self._sql(
            "INSERT INTO snapshots (account_id, taken_at, total_value_usdt, unpriced_count, "
            "recorded_by) VALUES (?, ?, ?, ?, ?)"
        )
        if self._backend == "postgresql":
            result = self.connection.exec_driver_sql(insert + " RETURNING id", snapshot)
            snapshot_id = int(result.scalar_one())
        else:
            result = self.connection.exec_driver_sql(insert, snapshot)
            snapshot_id = int(result.lastrowid)
        if balances:
            self.connection.exec_driver_sql(
                self._sql(
                    "INSERT INTO balances (snapshot_id, currency, amount, price_usdt, "
                    "value_usdt, available, on_orders) VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                [
                    (
                        snapshot_id,
                        currency,
                        to_text(amount),
                        _text_or_none(prices.get(currency)),
                        _text_or_none(values.get(currency)),
                        _text_or_none(parts[currency][0]) if currency in parts else None,
                        _text_or_none(parts[currency][1]) if currency in parts else None,
                    )
                    for currency, amount in balances.items()
                ],
            )
        if changes:
            self.connection.exec_driver_sql(
                self._sql(
                    "INSERT INTO balance_changes (account_id, snapshot_id, currency, "
                    "old_amount, new_amount, delta, taken_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                [
                    (
                        account_id,
                        snapshot_id,
                        change.currency,
                        _text_or_none(change.old_amount),
                        _text_or_none(change.new_amount),
                        to_text(change.delta),
                        stored_at,
                    )
                    for change in changes
                ],
            )
        return snapshot_id


def _text_or_none(value: Decimal | None) -> str | None:
    """An amount in the storage form every backend takes: canonical decimal text."""
    return None if value is None else to_text(value)


class AdvisoryLocks:
    """Named locks held by one dedicated database session (PostgreSQL advisory locks,
    MariaDB/MySQL GET_LOCK). They vanish when the session ends, so a process that dies or
    loses its connection frees its accounts for another process to take."""

    #: First half of PostgreSQL's two-part lock key: "reco" in ASCII, for this program only.
    NAMESPACE = 0x7265636F

    def __init__(self, url: URL, connect_args: Mapping[str, Any]) -> None:
        self.backend = url.get_backend_name()
        self._engine = sa.create_engine(
            url,
            poolclass=sa.pool.NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args=dict(connect_args),
        )
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
            connection = self._session()
            if self.backend == "postgresql":
                query = sa.text("SELECT pg_try_advisory_lock(:namespace, :key)")
                got = connection.execute(query, {"namespace": self.NAMESPACE, "key": key})
            else:
                got = connection.execute(sa.text("SELECT GET_LOCK(:name, 0)"), {"name": name})
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


class BulkWriter:
    """Raw executemany into the recorder's tables: the caller supplies storage forms."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._statements: dict[tuple[str, tuple[str, ...], bool], str] = {}

    def _sql(self, table: str, columns: Sequence[str], ignore_duplicates: bool) -> str:
        key = (table, tuple(columns), ignore_duplicates)
        if key not in self._statements:
            dialect = self.connection.dialect
            marker = "?" if dialect.paramstyle == "qmark" else "%s"
            names = ", ".join(columns)
            values = ", ".join([marker] * len(columns))
            verb, suffix = "INSERT", ""
            if ignore_duplicates:
                if dialect.name == "sqlite":
                    verb = "INSERT OR IGNORE"
                elif dialect.name == "postgresql":
                    suffix = " ON CONFLICT DO NOTHING"
                else:
                    verb = "INSERT IGNORE"
            self._statements[key] = f"{verb} INTO {table} ({names}) VALUES ({values}){suffix}"
        return self._statements[key]

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        ignore_duplicates: bool = False,
    ) -> None:
        """Insert `rows` (tuples in `columns` order) into `table` with one executemany."""
        if not rows:
            return
        if self.connection.dialect.name == "postgresql" and not ignore_duplicates:
            # COPY is PostgreSQL's bulk path: several times executemany's rate.
            driver: Any = self.connection.connection.driver_connection
            with (
                driver.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        self.connection.exec_driver_sql(
            self._sql(table, columns, ignore_duplicates), list(map(tuple, rows))
        )
