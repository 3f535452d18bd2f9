"""Reads about the recording itself: each account's last success and errors, the times of
its snapshots (for gaps), the database's size and row counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from recorder.store.database import Database
from recorder.store.dialects import TABLES
from recorder.values import AccountActivity, ErrorRow


def account_activity(db: Database, account_id: int, since: datetime) -> AccountActivity:
    """Snapshot count, last success, last error and errors since `since` of one account."""
    to_time = db.dialect.time_from_storage
    with db.cursor() as cursor:
        cursor.execute(
            db.dialect.sql("SELECT count(*), max(taken_at) FROM snapshots WHERE account_id = ?"),
            (account_id,),
        )
        count, last = cursor.fetchone()
        cursor.execute(
            db.dialect.sql(
                "SELECT attempted_at, kind, message FROM poll_errors WHERE account_id = ? "
                "ORDER BY attempted_at DESC, id DESC LIMIT 1"
            ),
            (account_id,),
        )
        error = cursor.fetchone()
        cursor.execute(
            db.dialect.sql(
                "SELECT count(*) FROM poll_errors WHERE account_id = ? AND attempted_at >= ?"
            ),
            (account_id, db.dialect.storage_time(since)),
        )
        (recent,) = cursor.fetchone()
    return AccountActivity(
        snapshots=int(count),
        last_success=None if last is None else to_time(last),
        last_error=None if error is None else ErrorRow(to_time(error[0]), error[1], error[2]),
        errors_since=int(recent),
    )


def database_size(db: Database) -> int | None:
    """Bytes the recorder's data takes (file, schema or database); None if unknown."""
    query = db.dialect.size_query
    if query is None:
        if db.path is None:
            return None
        files = [db.path, db.path.with_name(db.path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())
    (size,) = db.rows(query)[0]
    return None if size is None else int(size)


def iter_snapshot_times(
    db: Database, account_id: int, since: datetime | None, until: datetime | None
) -> Iterator[datetime]:
    """The account's snapshot times in order, streamed (for finding gaps)."""
    conditions, params = db.in_range("taken_at", since, until)
    where = " AND ".join(["account_id = ?", *conditions])
    sql = f"SELECT taken_at FROM snapshots WHERE {where} ORDER BY taken_at"
    to_time = db.dialect.time_from_storage
    for rows in db.batches(sql, [account_id, *params]):
        for (value,) in rows:
            yield to_time(value)


def count_rows(db: Database) -> dict[str, int]:
    """Row counts of every table, for status output and tests."""
    return {table: int(db.rows(f"SELECT count(*) FROM {table}")[0][0]) for table in TABLES}
