"""Every difference between SQLite, PostgreSQL and MariaDB/MySQL, in one place.

The backend is detected once, from the database URL, into one `Dialect` object; the rest
of the store asks it questions ("how is a time bound?", "how is an id returned?") and
never compares backend names itself. Each answer is plain SQL text or a plain value, so
`tests/test_dialects.py` checks all three backends without a server. Migrations keep
their own frozen copies of what they need.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from sqlite3 import SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE, SQLITE_TOOBIG
from typing import Any, ClassVar

from sqlalchemy import exc
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.types import DateTime, Text, TypeEngine

from recorder import amounts, text
from recorder.errors import ConfigError

#: The tables in the order their rows may be inserted (foreign keys point backwards).
TABLES = ("accounts", "snapshots", "balances", "balance_changes", "poll_errors")

OUTAGE = "outage"  # the database could not be reached or could not write: try again later
REFUSED = "refused"  # the database refused what was written: retrying cannot help


class Dialect:
    """What one backend needs; subclasses answer for SQLite, PostgreSQL and MariaDB/MySQL."""

    name: ClassVar[str]
    #: The DBAPI placeholder the driver takes.
    marker: ClassVar[str] = "%s"
    #: The driver installed by default for a URL that names none ("postgresql://").
    default_driver: ClassVar[str | None] = None
    #: The package extra that installs that driver.
    extra: ClassVar[str | None] = None
    #: A server several recorder processes can share (it has named locks); else a file
    #: that takes one writer at a time.
    server: ClassVar[bool] = True
    #: SUM() over amounts is exact (NUMERIC, DECIMAL; SQLite's goes through float).
    sums_exactly: ClassVar[bool] = True
    #: What to check when it cannot be used.
    outage_hint: ClassVar[str] = "check database_url and that the server is running"
    #: How an INSERT that skips rows whose key is already there begins and ends.
    insert_ignoring: ClassVar[tuple[str, str]] = ("INSERT", "")
    #: Whether an ORDER BY on a snapshot's balances must name the currency (SQLite reads
    #: them in primary key order anyway, and sorting would cost a temporary index).
    orders_balances_by_key: ClassVar[bool] = False
    #: SQL for the bytes the recorder's tables take (None: measure the file).
    size_query: ClassVar[str | None] = None
    #: One statement finding the last snapshot in each of many periods, if the backend can
    #: send the seeks at once (see history.last_snapshots_in).
    last_in_periods_query: ClassVar[str | None] = None
    #: SQL taking a named lock without waiting, true when taken; parameters (SQLAlchemy's
    #: `:name` style): namespace, key, name.
    try_lock: ClassVar[str] = ""
    #: The column types of amounts and times.
    amount_type: ClassVar[TypeEngine[Any]] = Text()
    time_type: ClassVar[TypeEngine[Any]] = DateTime()

    # -- SQL text ------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        """Statements are written with `?` markers; this is the driver's form of `text`."""
        return text if self.marker == "?" else text.replace("?", self.marker)

    def insert(self, table: str, columns: Sequence[str], *, ignore_duplicates: bool = False) -> str:
        """INSERT INTO table (columns) VALUES (?, ...), optionally skipping rows whose key
        is already there."""
        verb, suffix = self.insert_ignoring if ignore_duplicates else ("INSERT", "")
        names, values = ", ".join(columns), ", ".join([self.marker] * len(columns))
        return f"{verb} INTO {table} ({names}) VALUES ({values}){suffix}"

    def insert_returning_id(self, table: str, columns: Sequence[str]) -> str:
        """An INSERT whose new id `inserted_id` can read."""
        return self.insert(table, columns)

    def inserted_id(self, result: Any) -> int:
        """The id of the row the statement from `insert_returning_id` inserted."""
        return int(result.lastrowid)

    def number_text(self, expression: str) -> str:
        """SQL giving an amount column as canonical decimal text."""
        return expression

    def concat(self, fields: Sequence[str]) -> str:
        """SQL joining text expressions with commas (a CSV fragment)."""
        return " || ',' || ".join(fields)

    def id_text(self, expression: str) -> str:
        """SQL giving an integer column as text, for `concat`."""
        return expression

    def maintenance(self, *, vacuum: bool) -> tuple[list[str], bool]:
        """(statements refreshing statistics, or also giving space back; whether they
        must run outside a transaction)."""
        return (["ANALYZE", "VACUUM"] if vacuum else ["ANALYZE"]), True

    def resync_ids(self) -> list[str]:
        """Statements making new ids start past rows inserted with explicit ids."""
        return []

    def copy_rows(
        self, connection: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> bool:
        """Insert rows by the backend's own bulk path, if it has one; False if not."""
        return False

    # -- values --------------------------------------------------------------------------

    def storage_time(self, moment: datetime) -> Any:
        """`moment` as the driver takes it for a time column (naive UTC by default)."""
        return moment.astimezone(UTC).replace(tzinfo=None)

    def time_from_storage(self, value: Any) -> datetime:
        """A stored time as the driver returns it -> aware UTC datetime."""
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(moment, datetime):
            raise TypeError(f"the database returned a time as {type(value).__name__}")
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def amount(self, value: Any) -> Decimal:
        """An amount as the driver returns it -> canonical Decimal."""
        if isinstance(value, str):
            return amounts.from_text(value)
        if isinstance(value, Decimal):
            return amounts.canonical(value)
        raise TypeError(f"the database returned an amount as {type(value).__name__}")

    # -- connections ---------------------------------------------------------------------

    def engine_options(self, url: URL, pool_size: int) -> dict[str, Any]:
        """Keyword arguments for create_engine beyond the URL. No "pre-ping" round trip
        before each use: a connection the server dropped fails once, the pool is replaced,
        and the write waits in the outage buffer meanwhile."""
        sizes = {"pool_size": pool_size, "max_overflow": pool_size, "pool_recycle": 3600}
        return {"pool_pre_ping": False, **sizes, "connect_args": self.timeouts(url)}

    def timeouts(self, url: URL) -> dict[str, Any]:
        """Connect arguments that make an unreachable server fail fast."""
        return {}

    def on_connect(self, dbapi_connection: Any) -> None:
        """Run on every new connection."""

    def database_file(self, url: URL) -> Path | None:
        """The file holding the database (None for a server, or SQLite in memory)."""
        return None

    def lock_session_args(self, url: URL) -> dict[str, Any]:
        """Connect arguments of the session that holds the account locks."""
        return self.timeouts(url)

    def streaming_cursor(self, raw: Any) -> Any:
        """A DBAPI cursor that streams rows instead of loading the whole result."""
        return raw.cursor()

    def classify(self, error: BaseException) -> str:
        """REFUSED for a driver's error (unwrapped from SQLAlchemy's) about the data being
        written, OUTAGE for everything else: only what is positively about the data is
        given up on; anything else is kept and tried again."""
        return OUTAGE


class SQLite(Dialect):
    name = "sqlite"
    marker = "?"
    server = False
    sums_exactly = False
    outage_hint = "check that its file and folder exist and can be written, and the disk has room"
    orders_balances_by_key = True
    insert_ignoring = ("INSERT OR IGNORE", "")

    # Primary result codes (the low byte of an extended code) that refuse the data itself.
    _REFUSED_CODES = frozenset((SQLITE_CONSTRAINT, SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE))

    def storage_time(self, moment: datetime) -> Any:
        # SQLAlchemy's own SQLite format, "2026-03-31 23:30:00.000000": text sorts in time.
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def amount(self, value: Any) -> Decimal:
        # SQLite holds the canonical text already.
        return Decimal(value) if isinstance(value, str) else super().amount(value)

    def engine_options(self, url: URL, pool_size: int) -> dict[str, Any]:
        # No "pre-ping" round trip: a file does not go away between two statements.
        return {"pool_pre_ping": False}

    def database_file(self, url: URL) -> Path | None:
        database = url.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).expanduser().resolve()

    def on_connect(self, dbapi_connection: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers (reports, sqlite3 shell) work while the daemon writes, and keeps
        # every committed transaction across a crash; NORMAL sync is safe in WAL mode.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    def classify(self, error: BaseException) -> str:
        if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
            return REFUSED
        code = getattr(error, "sqlite_errorcode", None)
        return REFUSED if code is not None and code & 0xFF in self._REFUSED_CODES else OUTAGE


class PostgreSQL(Dialect):
    name = "postgresql"
    default_driver = "psycopg"
    extra = "postgres"

    insert_ignoring = ("INSERT", " ON CONFLICT DO NOTHING")
    size_query = (
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON "
        "n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema()"
    )
    # A network round trip per period would cost more than the seeks themselves.
    last_in_periods_query = (
        "SELECT s.id, s.taken_at, s.total_value_usdt, s.unpriced_count "
        "FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS p(start_at, end_at) "
        "CROSS JOIN LATERAL (SELECT id, taken_at, total_value_usdt, unpriced_count "
        "FROM snapshots WHERE account_id = %s AND taken_at >= p.start_at "
        "AND taken_at < p.end_at ORDER BY taken_at DESC, id DESC LIMIT 1) s "
        "ORDER BY s.taken_at"
    )
    # The namespace is the first half of PostgreSQL's two-part advisory lock key.
    try_lock = "SELECT pg_try_advisory_lock(:namespace, :key)"
    amount_type = postgresql.NUMERIC()
    time_type = postgresql.TIMESTAMP(timezone=True)

    # SQLSTATE classes about the data itself: data exceptions (a value out of range, too
    # long, not in the encoding), integrity, program limits (a row too large).
    _REFUSED_CLASSES = ("22", "23", "54")

    def insert_returning_id(self, table: str, columns: Sequence[str]) -> str:
        return self.insert(table, columns) + " RETURNING id"

    def inserted_id(self, result: Any) -> int:
        return int(result.scalar_one())

    def number_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def id_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def maintenance(self, *, vacuum: bool) -> tuple[list[str], bool]:
        verb = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
        return [f"{verb} {', '.join(TABLES)}"], True

    def resync_ids(self) -> list[str]:
        return [
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
            for table in TABLES
            if table != "balances"  # the one table without an id
        ]

    def copy_rows(
        self, connection: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> bool:
        # COPY is PostgreSQL's bulk path: several times executemany's rate.
        driver = connection.connection.driver_connection
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return True

    def storage_time(self, moment: datetime) -> Any:
        return moment.astimezone(UTC)

    def amount(self, value: Any) -> Decimal:
        # NUMERIC keeps the canonical scale it was given.
        return value if isinstance(value, Decimal) else super().amount(value)

    def timeouts(self, url: URL) -> dict[str, Any]:
        return {} if "connect_timeout" in url.query else {"connect_timeout": 10}

    def streaming_cursor(self, raw: Any) -> Any:
        return raw.cursor(name="recorder_export")  # a server-side cursor

    def classify(self, error: BaseException) -> str:
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and state:
            return REFUSED if state.startswith(self._REFUSED_CLASSES) else OUTAGE
        # No SQLSTATE: refused by the driver itself (a NUL in text), or no server at all.
        return REFUSED if type(error).__name__ in ("DataError", "IntegrityError") else OUTAGE


class MySQL(Dialect):
    name = "mysql"
    default_driver = "pymysql"
    extra = "mysql"

    insert_ignoring = ("INSERT IGNORE", "")
    size_query = (
        "SELECT sum(data_length + index_length) FROM information_schema.tables "
        "WHERE table_schema = DATABASE()"
    )
    try_lock = "SELECT GET_LOCK(:name, 0)"
    amount_type = mysql.DECIMAL(precision=65, scale=30)
    time_type = mysql.DATETIME(fsp=6)

    # Server error numbers about the data itself: duplicate key, too long, out of range,
    # a character the column cannot hold, a bad value, a missing reference, a row too big.
    _REFUSED_CODES = frozenset(
        {1048, 1062, 1118, 1264, 1265, 1292, 1300, 1366, 1406, 1416, 1451, 1452, 1690} | {3988}
    )

    def number_text(self, expression: str) -> str:
        # DECIMAL(65,30) pads with zeros: trim them, then a bare trailing point.
        return f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST({expression} AS CHAR)))"

    def concat(self, fields: Sequence[str]) -> str:
        return f"CONCAT_WS(',', {', '.join(fields)})"

    def maintenance(self, *, vacuum: bool) -> tuple[list[str], bool]:
        verb = "OPTIMIZE TABLE" if vacuum else "ANALYZE TABLE"
        return [f"{verb} {', '.join(TABLES)}"], False

    def timeouts(self, url: URL) -> dict[str, Any]:
        timeouts = {"connect_timeout": 10, "read_timeout": 60, "write_timeout": 60}
        return {key: value for key, value in timeouts.items() if key not in url.query}

    def streaming_cursor(self, raw: Any) -> Any:
        import pymysql.cursors

        return raw.cursor(pymysql.cursors.SSCursor)

    def classify(self, error: BaseException) -> str:
        code = error.args[0] if error.args and isinstance(error.args[0], int) else None
        if code in self._REFUSED_CODES:
            return REFUSED
        return REFUSED if type(error).__name__ in ("DataError", "IntegrityError") else OUTAGE


_BY_NAME: Mapping[str, type[Dialect]] = {
    "sqlite": SQLite,
    "postgresql": PostgreSQL,
    "mysql": MySQL,
    "mariadb": MySQL,
}
_INSTANCES = {name: dialect() for name, dialect in _BY_NAME.items()}
# URL schemes people write that SQLAlchemy itself does not take, or takes with a driver
# we do not ship (it defaults to psycopg2 and mysqlclient).
_SCHEMES = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
}


def for_name(name: str) -> Dialect:
    """The dialect of a SQLAlchemy dialect name ("sqlite", "postgresql", "mariadb", ...)."""
    return _INSTANCES[name]


def parse_url(url: str) -> URL:
    """A database URL with our default drivers filled in; ConfigError if we cannot use it."""
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise ConfigError(
            f"database_url {text.redact(url)!r} is not a database URL; expected e.g. "
            "sqlite:///recorder.db or postgresql://user@host/dbname."
        ) from None
    if parsed.drivername in _SCHEMES:
        backend = _SCHEMES[parsed.drivername]
        driver = _BY_NAME[backend].default_driver
        parsed = parsed.set(drivername=f"{backend}+{driver}" if driver else backend)
    elif parsed.drivername.startswith("postgres+"):
        parsed = parsed.set(drivername="postgresql+" + parsed.drivername.split("+", 1)[1])
    if parsed.get_backend_name() not in _BY_NAME:
        raise ConfigError(
            f"database_url uses {parsed.get_backend_name()!r}; the recorder supports sqlite, "
            "postgresql and mysql/mariadb."
        )
    return parsed


def for_url(url: URL) -> Dialect:
    """The dialect of a URL returned by `parse_url`."""
    return for_name(url.get_backend_name())
