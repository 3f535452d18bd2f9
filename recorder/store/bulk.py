"""The bulk path: many rows at once in storage form, and the reads that copy a history.

Rows go in with one executemany per table (COPY on PostgreSQL: several times faster),
values already as the driver takes them: amounts as canonical text, times from
`Dialect.storage_time`. `db copy` and `benchmarks/make_history.py` write through it.

A history is read back in chunks of snapshots (by id), each with its balances and
changes, in one normal form whatever the backend: ids as integers, times as aware UTC
datetimes, amounts as canonical decimal text. The same form feeds `Checksum`, so two
databases agree on a table exactly when their checksums do.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Connection

from recorder.store.database import Database
from recorder.store.dialects import TABLES, Dialect

Row = tuple[Any, ...]
#: Runs one query (`?` markers) and returns every row.
Rows = Callable[[str, Sequence[Any]], list[Row]]


class BulkWriter:
    """Inserts into the recorder's tables inside one transaction."""

    def __init__(self, db: Database, connection: Connection) -> None:
        self.db = db
        self.connection = connection

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        ignore_duplicates: bool = False,
    ) -> None:
        """Insert `rows` (tuples in `columns` order) into `table`."""
        if not rows:
            return
        dialect = self.db.dialect
        if not ignore_duplicates and dialect.copy_rows(self.connection, table, columns, rows):
            return
        sql = dialect.insert(table, columns, ignore_duplicates=ignore_duplicates)
        self.connection.exec_driver_sql(sql, list(map(tuple, rows)))


@contextlib.contextmanager
def bulk(db: Database) -> Iterator[BulkWriter]:
    """One transaction of bulk inserts."""
    with db.transaction() as connection:
        yield BulkWriter(db, connection)


def resync_ids(db: Database) -> None:
    """After rows were inserted with explicit ids: make new ids start past them."""
    statements = db.dialect.resync_ids()
    if statements:
        with db.transaction() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)


# -- reading a history in one normal form ---------------------------------------------------


class Reader:
    """Queries on one database, in one read transaction where it matters (`read_snapshot`)."""

    def __init__(self, db: Database, rows: Rows) -> None:
        self.db = db
        self.dialect: Dialect = db.dialect
        self.rows = rows

    def max_id(self, table: str, *, up_to: int | None = None) -> int:
        """The largest id of a table (0 for an empty table), at most `up_to` if given."""
        where, params = ("", ()) if up_to is None else (" WHERE id <= ?", (up_to,))
        return int(self.rows(f"SELECT COALESCE(MAX(id), 0) FROM {table}{where}", params)[0][0])

    def count(self, table: str, *, up_to: int) -> int:
        """Rows of a table with id at most `up_to`."""
        return int(self.rows(f"SELECT count(*) FROM {table} WHERE id <= ?", (up_to,))[0][0])

    def accounts(self) -> list[Row]:
        """(id, name) of every account, by id."""
        found = self.rows("SELECT id, name FROM accounts ORDER BY id", ())
        return [(int(i), str(n)) for i, n in found]

    def ids(self, table: str, after: int, up_to: int, limit: int) -> list[int]:
        """Up to `limit` ids of a table after `after` and at most `up_to`, in order."""
        sql = f"SELECT id FROM {table} WHERE id > ? AND id <= ? ORDER BY id LIMIT {int(limit)}"
        return [int(i) for (i,) in self.rows(sql, (after, up_to))]

    def snapshot_rows(self, after: int, up_to: int) -> list[Row]:
        """Snapshots with after < id <= up_to (without their balances), normal form."""
        text, to_time = self.dialect.number_text, self.dialect.time_from_storage
        return [
            (int(i), int(a), to_time(t), _canonical(v), u, r)
            for i, a, t, v, u, r in self.rows(
                f"SELECT id, account_id, taken_at, {text('total_value_usdt')}, unpriced_count, "
                "recorded_by FROM snapshots WHERE id > ? AND id <= ? ORDER BY id",
                (after, up_to),
            )
        ]

    def snapshot_chunk(self, after: int, up_to: int) -> tuple[list[Row], list[Row], list[Row]]:
        """Snapshots with after < id <= up_to, their balances (by snapshot, then currency as
        bytes, whatever the server's collation) and their changes (by id), normal form."""
        text, to_time = self.dialect.number_text, self.dialect.time_from_storage
        snapshots = self.snapshot_rows(after, up_to)
        numbers, canonical = ", ".join(text(c) for c in _BALANCE_AMOUNTS), _canonical
        balances = sorted(
            (
                (int(i), c, canonical(a), canonical(p), canonical(v), canonical(f), canonical(o))
                for i, c, a, p, v, f, o in self.rows(
                    f"SELECT snapshot_id, currency, {numbers} FROM balances "
                    "WHERE snapshot_id > ? AND snapshot_id <= ?",
                    (after, up_to),
                )
            ),
            key=itemgetter(0, 1),
        )
        changes = [
            (int(i), int(a), int(s), c, _canonical(o), _canonical(n), _canonical(d), to_time(t))
            for i, a, s, c, o, n, d, t in self.rows(
                "SELECT id, account_id, snapshot_id, currency, "
                f"{text('old_amount')}, {text('new_amount')}, {text('delta')}, taken_at "
                "FROM balance_changes WHERE snapshot_id > ? AND snapshot_id <= ? ORDER BY id",
                (after, up_to),
            )
        ]
        return snapshots, balances, changes

    def poll_errors(self, after: int, up_to: int, limit: int | None = None) -> list[Row]:
        """Failed polls with after < id <= up_to (at most `limit`), by id, normal form."""
        to_time = self.dialect.time_from_storage
        most = "" if limit is None else f" LIMIT {int(limit)}"
        return [
            (int(i), int(a), to_time(t), k, m)
            for i, a, t, k, m in self.rows(
                "SELECT id, account_id, attempted_at, kind, message FROM poll_errors "
                f"WHERE id > ? AND id <= ? ORDER BY id{most}",
                (after, up_to),
            )
        ]


_BALANCE_AMOUNTS = ("amount", "price_usdt", "value_usdt", "available", "on_orders")


def _canonical(value: Any) -> Any:
    """An amount read as decimal text, without trailing zeros ("1.50" -> "1.5"): the
    backends agree on it even for a value someone stored by hand."""
    if value is None or not isinstance(value, str):
        return value if value is None else str(value)
    if value[-1] != "0" or "." not in value:
        return value
    return value.rstrip("0").rstrip(".")


def reader(db: Database) -> Reader:
    """Reads on this thread's kept connection (each query sees the latest commits)."""
    return Reader(db, db.rows)


@contextlib.contextmanager
def read_snapshot(db: Database) -> Iterator[Reader]:
    """Reads that all see the database as it was at the first of them: one read-only
    transaction (REPEATABLE READ on PostgreSQL, a consistent snapshot on MariaDB, a read
    transaction on SQLite), while writers go on."""
    with db.translated():
        raw = db.engine.raw_connection()
    try:
        sql = db.dialect.sql

        def rows(statement: str, params: Sequence[Any]) -> list[Row]:
            with db.translated():
                cursor = raw.cursor()
                try:
                    cursor.execute(sql(statement), tuple(params))
                    return [tuple(row) for row in cursor.fetchall()]
                finally:
                    cursor.close()

        with db.translated():
            cursor = raw.cursor()
            for statement in db.dialect.read_snapshot:
                cursor.execute(statement)
            cursor.close()
        yield Reader(db, rows)
    finally:
        with contextlib.suppress(Exception):
            raw.rollback()
        with contextlib.suppress(Exception):
            raw.close()


# -- checksums ------------------------------------------------------------------------------


class Checksum:
    """A table's rows, counted and hashed (SHA-256 over each row's normal form, in order):
    ids, times, currencies and exact amounts all count."""

    def __init__(self) -> None:
        self.rows = 0
        self._hash = hashlib.sha256()

    def add(self, rows: Sequence[Row]) -> None:
        """Feed rows, in their order."""
        self.rows += len(rows)
        self._hash.update("".join(map(repr, rows)).encode())

    @property
    def value(self) -> tuple[int, str]:
        """(rows, hex digest)."""
        return self.rows, self._hash.hexdigest()


@dataclass(frozen=True)
class Bounds:
    """Where a copy (or a checksum) stops: the largest snapshot and poll error ids."""

    snapshots: int
    poll_errors: int


def bounds(source: Reader) -> Bounds:
    """The largest ids `source` holds now."""
    return Bounds(source.max_id("snapshots"), source.max_id("poll_errors"))


def chunks(source: Reader, up_to: Bounds, size: int) -> Iterator[tuple[int, int]]:
    """(after, up_to] ranges of snapshot ids of at most `size` snapshots, covering all of
    0..up_to.snapshots: ids may have holes (pruning), so ranges follow the ids present."""
    after = 0
    while after < up_to.snapshots:
        ids = source.ids("snapshots", after, up_to.snapshots, size)
        last = ids[-1] if len(ids) == size else up_to.snapshots
        yield after, last
        after = last


def checksums(db: Database, size: int = 5000) -> dict[str, tuple[int, str]]:
    """Per table: (rows, digest) over the whole history, to compare two databases."""
    source = reader(db)
    up_to = bounds(source)
    sums = {table: Checksum() for table in TABLES}
    sums["accounts"].add(source.accounts())
    for after, last in chunks(source, up_to, size):
        for table, rows in zip(TABLES[1:4], source.snapshot_chunk(after, last), strict=True):
            sums[table].add(rows)
    after = 0
    while rows := source.poll_errors(after, up_to.poll_errors, size):
        sums["poll_errors"].add(rows)
        after = rows[-1][0]
    return {table: checksum.value for table, checksum in sums.items()}
