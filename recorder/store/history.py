"""Reads that answer a question about the history: what was held at a moment, the
snapshots of a period, which accounts and currencies exist.

Each runs on the thread's kept connection as plain SQL (see database.py): for a
one-account question, SQLAlchemy's statement handling would cost ten times the query.
Seeks go one account at a time, so each is a lookup in the (account_id, taken_at) index.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from recorder.errors import InputError
from recorder.store.database import Database
from recorder.values import Holding, StoredSnapshot

_BALANCE_FIELDS = "currency, amount, price_usdt, value_usdt, available, on_orders"


def resolve_accounts(db: Database, names: Sequence[str] = ()) -> dict[str, int]:
    """Account name -> id for `names` (every account when empty); InputError if unknown."""
    known = {name: int(i) for name, i in db.rows("SELECT name, id FROM accounts ORDER BY name")}
    for name in names:
        if name not in known:
            listed = ", ".join(known) or "none yet"
            raise InputError(
                f"No account named {name!r} in the database (recorded accounts: {listed})."
            )
    return {name: known[name] for name in names} if names else known


def recorders(db: Database) -> set[str]:
    """Every `recorded_by` of the snapshots (who took them)."""
    return {str(who) for (who,) in db.rows("SELECT DISTINCT recorded_by FROM snapshots")}


def resolve_currencies(db: Database, names: Sequence[str]) -> list[str]:
    """Currencies as stored for the names given, matched without regard to case (every
    spelling ever held: "BTC" finds "BTC" and "btc"); InputError if never held."""
    if not names:
        return []
    known = [row[0] for row in db.rows("SELECT DISTINCT currency FROM balance_changes")]
    found: list[str] = []
    for name in names:
        matches = sorted(c for c in known if c.upper() == name.upper())
        if not matches:
            raise InputError(
                f"No account has ever held {name!r}; check the spelling "
                f"(held so far: {', '.join(sorted(known)) or 'nothing'})."
            )
        found += [m for m in matches if m not in found]
    return found


def time_range(db: Database, account_ids: Sequence[int]) -> tuple[datetime, datetime] | None:
    """First and last snapshot time of these accounts; None when they have none."""
    # One account at a time, so each min and max is a single seek in the
    # (account_id, taken_at) index; over several accounts at once it would be a scan.
    sql = db.dialect.sql(
        "SELECT (SELECT min(taken_at) FROM snapshots WHERE account_id = ?), "
        "(SELECT max(taken_at) FROM snapshots WHERE account_id = ?)"
    )
    found: list[datetime] = []
    to_time = db.dialect.time_from_storage
    with db.cursor() as cursor:
        for account_id in account_ids:
            cursor.execute(sql, (account_id, account_id))
            first, last = cursor.fetchone()
            if first is not None:
                found += [to_time(first), to_time(last)]
    return (min(found), max(found)) if found else None


def _snapshot(db: Database, account: str, row: Sequence[Any]) -> StoredSnapshot:
    snapshot_id, taken_at, total, unpriced = row
    return StoredSnapshot(
        account,
        int(snapshot_id),
        db.dialect.time_from_storage(taken_at),
        None if total is None else db.dialect.amount(total),
        unpriced,
    )


def _holding(db: Database, snapshot: StoredSnapshot, row: Sequence[Any]) -> Holding:
    currency, held, price, value, free, frozen = row
    amount = db.dialect.amount
    return Holding(
        snapshot.account,
        snapshot.snapshot_id,
        snapshot.taken_at,
        currency,
        amount(held),
        None if price is None else amount(price),
        None if value is None else amount(value),
        None if free is None else amount(free),
        None if frozen is None else amount(frozen),
    )


def holdings_at(
    db: Database, accounts: Mapping[str, int], moment: datetime, currencies: Sequence[str] = ()
) -> list[tuple[StoredSnapshot, list[Holding]]]:
    """Each account's latest snapshot at or before `moment` with its balance rows (by
    currency); accounts without one are left out. One query per account."""
    only = f" AND b.currency IN ({', '.join('?' * len(currencies))})" if currencies else ""
    sql = db.dialect.sql(
        "SELECT s.id, s.taken_at, s.total_value_usdt, s.unpriced_count, b.currency, "
        "b.amount, b.price_usdt, b.value_usdt, b.available, b.on_orders FROM snapshots s "
        f"LEFT JOIN balances b ON b.snapshot_id = s.id{only} "
        "WHERE s.id = (SELECT id FROM snapshots WHERE account_id = ? AND taken_at <= ? "
        "ORDER BY taken_at DESC, id DESC LIMIT 1)"
    )  # sorted by currency here, not in SQL: SQLite would build a temporary index
    stored = db.dialect.storage_time(moment)
    found = []
    with db.cursor() as cursor:
        for name, account_id in accounts.items():
            cursor.execute(sql, (*currencies, account_id, stored))
            rows = sorted(cursor.fetchall(), key=lambda row: row[4] or "")
            if not rows:
                continue
            snapshot = _snapshot(db, name, rows[0][:4])
            # An empty snapshot has one row from the LEFT JOIN, without a currency.
            holdings = [_holding(db, snapshot, row[4:]) for row in rows if row[4] is not None]
            found.append((snapshot, holdings))
    return found


def _account_ids(account_ids: Sequence[int]) -> str:
    return f"account_id IN ({', '.join('?' * len(account_ids))})" if account_ids else "1 = 0"


def count_snapshots(
    db: Database, account_ids: Sequence[int], since: datetime | None, until: datetime | None
) -> int:
    """How many snapshots these accounts have in the range."""
    conditions, params = db.in_range("taken_at", since, until)
    where = " AND ".join([_account_ids(account_ids), *conditions])
    return int(
        db.rows(f"SELECT count(*) FROM snapshots WHERE {where}", [*account_ids, *params])[0][0]
    )


def snapshots_in(
    db: Database, accounts: Mapping[str, int], since: datetime | None, until: datetime | None
) -> list[StoredSnapshot]:
    """Every snapshot of these accounts in the range, oldest first."""
    names = {account_id: name for name, account_id in accounts.items()}
    conditions, params = db.in_range("taken_at", since, until)
    where = " AND ".join([_account_ids(list(names)), *conditions])
    rows = db.rows(
        "SELECT account_id, id, taken_at, total_value_usdt, unpriced_count FROM snapshots "
        f"WHERE {where} ORDER BY taken_at, id",
        [*names, *params],
    )
    return [_snapshot(db, names[row[0]], row[1:]) for row in rows]


def last_snapshots_before(
    db: Database, account: str, account_id: int, ends: Sequence[datetime]
) -> list[StoredSnapshot | None]:
    """For each moment in `ends`, the account's last snapshot taken before it (None where
    the account had none yet): the holdings in effect when each period ends."""
    # One index seek per period: a year of days is 365 quick lookups, whatever the
    # number of snapshots in between. A period without a snapshot finds the last one
    # before it: the balances are carried.
    found: list[StoredSnapshot | None] = [None] * len(ends)
    at_once = db.dialect.last_in_periods_query
    with db.cursor() as cursor:
        if at_once is not None:
            cursor.execute(at_once, ([db.dialect.storage_time(end) for end in ends], account_id))
            for index, *row in cursor.fetchall():
                found[int(index) - 1] = _snapshot(db, account, row)
            return found
        sql = db.dialect.sql(
            "SELECT id, taken_at, total_value_usdt, unpriced_count FROM snapshots "
            "WHERE account_id = ? AND taken_at < ? ORDER BY taken_at DESC, id DESC LIMIT 1"
        )
        for index, end in enumerate(ends):
            cursor.execute(sql, (account_id, db.dialect.storage_time(end)))
            row = cursor.fetchone()
            if row is not None:
                found[index] = _snapshot(db, account, row)
        return found


def first_snapshot(
    db: Database, account: str, account_id: int, since: datetime | None, until: datetime | None
) -> StoredSnapshot | None:
    """The account's first snapshot in since..until (None if it has none there)."""
    conditions, params = db.in_range("taken_at", since, until)
    where = " AND ".join(["account_id = ?", *conditions])
    rows = db.rows(
        "SELECT id, taken_at, total_value_usdt, unpriced_count FROM snapshots "
        f"WHERE {where} ORDER BY taken_at, id LIMIT 1",
        [account_id, *params],
    )
    return _snapshot(db, account, rows[0]) if rows else None


def iter_deltas(
    db: Database,
    account_ids: Sequence[int],
    currencies: Sequence[str],
    since: datetime | None,
    until: datetime | None,
) -> Iterator[tuple[int, int, str, Decimal]]:
    """(account id, snapshot id, currency, delta) of every change in since..until, in no
    particular order: what a statement adds up (exactly, in Python: SQLite's SUM() over
    text goes through float)."""
    conditions, params = db.in_range("taken_at", since, until)
    where = [_account_ids(account_ids), *conditions]
    values: list[Any] = [*account_ids, *params]
    if currencies:
        where.append(f"currency IN ({', '.join('?' * len(currencies))})")
        values += currencies
    amount = db.dialect.amount
    for rows in db.batches(
        "SELECT account_id, snapshot_id, currency, delta FROM balance_changes "
        f"WHERE {' AND '.join(where)}",
        values,
    ):
        for account_id, snapshot_id, currency, delta in rows:
            yield int(account_id), int(snapshot_id), currency, amount(delta)


def holdings_of(
    db: Database, snapshots: Sequence[StoredSnapshot], currencies: Sequence[str] = ()
) -> list[Holding]:
    """The balance rows of these snapshots, in the snapshots' order then by currency."""
    by_id = {snapshot.snapshot_id: snapshot for snapshot in snapshots}
    rows: dict[int, list[Holding]] = {snapshot_id: [] for snapshot_id in by_id}
    ids = list(by_id)
    with db.cursor() as cursor:
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            sql = (
                f"SELECT snapshot_id, {_BALANCE_FIELDS} FROM balances "
                f"WHERE snapshot_id IN ({', '.join('?' * len(chunk))})"
            )
            params: list[Any] = list(chunk)
            if currencies:
                sql += f" AND currency IN ({', '.join('?' * len(currencies))})"
                params += currencies
            cursor.execute(db.dialect.sql(sql), params)
            for snapshot_id, *fields in cursor.fetchall():
                rows[snapshot_id].append(_holding(db, by_id[snapshot_id], fields))
    return [
        holding
        for snapshot in snapshots
        for holding in sorted(rows[snapshot.snapshot_id], key=lambda h: h.currency)
    ]
