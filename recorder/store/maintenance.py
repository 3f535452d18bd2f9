"""Keeping a long history in shape: statistics for the query planner, giving freed space
back to the disk, and the two statements that retention (store/retention.py) needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from recorder.store.database import Database


def analyze(db: Database, *, vacuum: bool = False) -> None:
    """Refresh the planner's statistics; with `vacuum`, also give freed space back."""
    statements, outside_transaction = db.dialect.maintenance(vacuum=vacuum)
    if outside_transaction:
        with db.autocommit() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    else:
        with db.transaction() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement).all()


def prune_candidates(
    db: Database, account_id: int, before: datetime
) -> list[tuple[int, datetime, bool]]:
    """(id, taken_at, recorded a change) of the account's snapshots before `before`."""
    rows = db.rows(
        "SELECT s.id, s.taken_at, EXISTS (SELECT 1 FROM balance_changes c "
        "WHERE c.snapshot_id = s.id) FROM snapshots s "
        "WHERE s.account_id = ? AND s.taken_at < ? ORDER BY s.taken_at, s.id",
        (account_id, db.dialect.storage_time(before)),
    )
    to_time = db.dialect.time_from_storage
    return [(int(i), to_time(t), bool(c)) for i, t, c in rows]


def delete_snapshots(db: Database, ids: Sequence[int]) -> None:
    """Delete these snapshots and their balances, in one short transaction. Refuses
    (WriteRejectedError) a snapshot that a change row points to."""
    if not ids:
        return
    marks = ", ".join("?" * len(ids))
    with db.transaction() as connection:
        db.run(connection, f"DELETE FROM balances WHERE snapshot_id IN ({marks})", list(ids))
        db.run(connection, f"DELETE FROM snapshots WHERE id IN ({marks})", list(ids))
