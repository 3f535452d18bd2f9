"""The bulk path: many rows at once in storage form, and the reads that copy a history.

Rows go in with one executemany per table (COPY on PostgreSQL: several times faster),
values already as the driver takes them: amounts as canonical text, times from
`Dialect.storage_time`. `db copy` and `benchmarks/make_history.py` write through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from recorder import amounts
from recorder.store.database import Database
from recorder.store.dialects import TABLES


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


# -- reading a history to copy it ---------------------------------------------------------


def max_id(db: Database, table: str) -> int:
    """The largest id of a table (0 for an empty table)."""
    return int(db.rows(f"SELECT COALESCE(MAX(id), 0) FROM {table}")[0][0])


def accounts(db: Database) -> list[tuple[int, str]]:
    """(id, name) of every account."""
    return [(int(i), str(n)) for i, n in db.rows("SELECT id, name FROM accounts ORDER BY id")]


def snapshot_chunk(
    db: Database, after: int, up_to: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Snapshots with after < id <= up_to, with their balances and changes, in portable
    form: amounts as canonical text, times as aware datetimes."""
    text, to_time = db.dialect.number_text, db.dialect.time_from_storage
    snapshots = [
        (i, a, to_time(t), v, u, r)
        for i, a, t, v, u, r in db.rows(
            f"SELECT id, account_id, taken_at, {text('total_value_usdt')}, unpriced_count, "
            "recorded_by FROM snapshots WHERE id > ? AND id <= ? ORDER BY id",
            (after, up_to),
        )
    ]
    numbers = ", ".join(
        text(c) for c in ("amount", "price_usdt", "value_usdt", "available", "on_orders")
    )
    balances = db.rows(
        f"SELECT snapshot_id, currency, {numbers} FROM balances "
        "WHERE snapshot_id > ? AND snapshot_id <= ? ORDER BY snapshot_id, currency",
        (after, up_to),
    )
    changes = [
        (*row[:7], to_time(row[7]))
        for row in db.rows(
            "SELECT id, account_id, snapshot_id, currency, "
            f"{text('old_amount')}, {text('new_amount')}, {text('delta')}, taken_at "
            "FROM balance_changes WHERE snapshot_id > ? AND snapshot_id <= ? ORDER BY id",
            (after, up_to),
        )
    ]
    return snapshots, balances, changes


def poll_errors_after(db: Database, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Failed polls with id > after, oldest first, times as aware datetimes."""
    to_time = db.dialect.time_from_storage
    return [
        (i, a, to_time(t), k, m)
        for i, a, t, k, m in db.rows(
            "SELECT id, account_id, attempted_at, kind, message FROM poll_errors "
            f"WHERE id > ? ORDER BY id LIMIT {int(limit)}",
            (after,),
        )
    ]


_SUMMED = {
    "accounts": (),
    "snapshots": ("total_value_usdt",),
    "balances": ("amount", "price_usdt", "value_usdt", "available", "on_orders"),
    "balance_changes": ("old_amount", "new_amount", "delta"),
    "poll_errors": (),
}


def checksums(db: Database) -> dict[str, tuple[int, Decimal]]:
    """Per table: (row count, exact sum of its amounts), to compare two databases."""
    result: dict[str, tuple[int, Decimal]] = {}
    for table in TABLES:
        count = int(db.rows(f"SELECT count(*) FROM {table}")[0][0])
        total = Decimal(0)
        for column in _SUMMED[table]:
            total = amounts.add(total, _exact_sum(db, table, column))
        result[table] = (count, total)
    return result


def _exact_sum(db: Database, table: str, column: str) -> Decimal:
    if db.dialect.sums_exactly:
        (value,) = db.rows(f"SELECT {db.dialect.number_text(f'SUM({column})')} FROM {table}")[0]
        return Decimal(value or 0)
    # Added here, exactly: SQLite's SUM() over text goes through float.
    total = Decimal(0)
    for rows in db.batches(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL", (), 50000):
        for (value,) in rows:
            total = amounts.add(total, Decimal(value))
    return total
