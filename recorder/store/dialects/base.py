"""What every backend is asked, with the answers most of them share."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.engine import URL
from sqlalchemy.types import DateTime, String, Text, TypeEngine

from recorder import amounts

TABLES = ("accounts", "snapshots", "balances", "balance_changes", "poll_errors")

OUTAGE = "outage"  # the database could not be reached or could not write: try again later
REFUSED = "refused"  # the database refused what was written: retrying cannot help
#: Neither, as far as the backend's codes tell (a trigger's own code, an unexpected error):
#: tried again like an outage, and set aside only if it keeps failing while other writes
#: succeed (polling/outage.py).
UNKNOWN = "unknown"

#: TCP keepalives on every server connection: a peer that vanished (a cut network, not a
#: refused connection) is noticed within about a minute, even under a long statement
#: (the probes are answered by the server's kernel, so a slow statement is never cut).
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3


def keepalive(sock: socket.socket) -> None:
    """Turn TCP keepalives on for a connection's socket."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):  # Linux names; elsewhere the system's defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


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
    #: One statement finding the last snapshot before each of many period ends, if the
    #: backend can send the seeks at once (see history.last_snapshots_before); parameters:
    #: the ends (an array), the account id; rows: the end's 1-based position, then the
    #: snapshot's id, taken_at, total_value_usdt and unpriced_count.
    last_in_periods_query: ClassVar[str | None] = None
    #: SQL taking a named lock without waiting, true when taken; parameters (SQLAlchemy's
    #: `:name` style): namespace, key, name.
    try_lock: ClassVar[str] = ""
    #: Statements beginning a read-only transaction whose reads all see the database as
    #: it was at the first of them, while writers go on (`db copy` reads a live source).
    read_snapshot: ClassVar[tuple[str, ...]] = ()
    #: Schema upgrades one at a time: a statement run first in the upgrade's transaction
    #: that takes a lock without waiting (true when taken; no row: taken, having waited),
    #: and one releasing it ("": the transaction's end does).
    upgrade_lock: ClassVar[tuple[str, str]] = ("", "")
    #: True where table changes commit at once (no transactional DDL): an upgrade cut
    #: short leaves part of a migration behind.
    ddl_commits: ClassVar[bool] = False
    #: SQL naming where the recorder's tables live (schema or database): the account locks
    #: of one history are apart from another's on the same server.
    lock_scope: ClassVar[str] = ""
    #: The column types of amounts and times.
    amount_type: ClassVar[TypeEngine[Any]] = Text()
    time_type: ClassVar[TypeEngine[Any]] = DateTime()
    message_type: ClassVar[TypeEngine[Any]] = Text()

    def name_type(self, length: int) -> TypeEngine[Any]:
        """The column type of names, compared exactly (case included)."""
        return String(length)

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

    def engine_options(
        self, url: URL, pool_size: int, *, read_only: bool = False
    ) -> dict[str, Any]:
        """Keyword arguments for create_engine beyond the URL; `read_only` for a command
        that only reads, whose connections must never create or change the database. No
        "pre-ping" round trip before each use: a connection the server dropped fails once,
        the pool is replaced, and the write waits in the outage buffer meanwhile."""
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

    def lock_session_args(self, url: URL, timeout: float) -> dict[str, Any]:
        """Connect arguments of the session that holds the account locks: no wait on it
        lasts much longer than `timeout` seconds, even when the network drops its packets."""
        return self.timeouts(url)

    def lock_session_setup(self, timeout: float, idle_seconds: float) -> list[str]:
        """Statements run when the lock session connects: statements on it time out, and
        the server ends it (freeing its locks) once it has been silent `idle_seconds`."""
        return []

    def session_socket(self, driver_connection: Any) -> int | None:
        """The socket of a driver connection, to hang up on a statement past its deadline;
        None where there is no socket (SQLite)."""
        return None

    def streaming_cursor(self, raw: Any) -> Any:
        """A DBAPI cursor that streams rows instead of loading the whole result."""
        return raw.cursor()

    def diagnose(self, error: BaseException, path: Path | None) -> str:
        """What the driver's words for an outage leave out (a full or read-only disk), as
        a clause; "" when there is nothing to add."""
        return ""

    def classify(self, error: BaseException) -> str:
        """REFUSED for a driver's error (unwrapped from SQLAlchemy's) about the data being
        written, OUTAGE for one about the database or the way to it (unreachable, lost,
        full, read-only, locked, too slow), UNKNOWN for the rest. Only what is positively
        about the data is given up on at once; an outage never is."""
        return OUTAGE
