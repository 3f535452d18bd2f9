"""Long reads, streamed in constant memory: every balance row of a range, the change log.

This is the export path: no Decimal objects where text will do, no type processing, a
server-side cursor on PostgreSQL and MariaDB (`Database.streaming`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from recorder.store.database import Database
from recorder.values import ChangeEntry, Holding

_NUMBERS = ("amount", "price_usdt", "value_usdt", "available", "on_orders")


def _in(column: str, values: Sequence[object]) -> str:
    return f"{column} IN ({', '.join('?' * len(values))})" if values else "1 = 0"


def _where(
    db: Database,
    account_ids: Sequence[int],
    currencies: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    *,
    time_column: str = "s.taken_at",
    account_column: str = "s.account_id",
    currency_column: str = "b.currency",
) -> tuple[str, list[Any]]:
    conditions, params = db.in_range(time_column, since, until)
    where = [_in(account_column, account_ids), *conditions]
    params = [*account_ids, *params]
    if currencies:
        where.append(_in(currency_column, currencies))
        params += currencies
    return " AND ".join(where), params


def count_holdings(
    db: Database,
    account_ids: Sequence[int],
    currencies: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """How many balance rows `iter_holdings` would yield."""
    where, params = _where(db, account_ids, currencies, since, until)
    sql = f"SELECT count(*) FROM snapshots s JOIN balances b ON b.snapshot_id = s.id WHERE {where}"
    return int(db.rows(sql, params)[0][0])


def iter_holdings(
    db: Database,
    accounts: dict[str, int],
    currencies: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    batch: int = 5000,
) -> Iterator[Holding]:
    """Every balance row in the range, streamed in time order."""
    names = {account_id: name for name, account_id in accounts.items()}
    where, params = _where(db, list(names), currencies, since, until)
    sql = (
        f"SELECT s.account_id, s.id, s.taken_at, b.currency, "
        f"{', '.join('b.' + n for n in _NUMBERS)} "
        f"FROM snapshots s JOIN balances b ON b.snapshot_id = s.id WHERE {where} "
        "ORDER BY s.taken_at, s.id, b.currency"
    )
    amount, to_time = db.dialect.amount, db.dialect.time_from_storage
    for rows in db.batches(sql, params, batch):
        for account_id, snapshot_id, taken_at, currency, held, *rest in rows:
            yield Holding(
                names[account_id],
                int(snapshot_id),
                to_time(taken_at),
                currency,
                amount(held),
                *(None if v is None else amount(v) for v in rest),
            )


def export_fields(db: Database, *, csv_tail: bool) -> str:
    """The export query's columns after taken_at (see iter_export_rows)."""
    numbers = [db.dialect.number_text(f"b.{column}") for column in _NUMBERS]
    if not csv_tail:
        return ", ".join(["b.snapshot_id", "b.currency", *numbers])
    fields = [db.dialect.id_text("b.snapshot_id"), "b.currency", numbers[0]]
    fields += [f"COALESCE({n}, '')" for n in numbers[1:]]
    return db.dialect.concat(fields)


def iter_export_rows(
    db: Database,
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
    the database is what lets a CSV export pass half a million rows a second. Use
    `dialect.time_from_storage` on taken_at.
    """
    conditions, params = db.in_range("s.taken_at", since, until)
    where = ["s.account_id = ?", *conditions]
    if currencies:
        where.append(_in("b.currency", currencies))
        params += currencies
    # Per account, in the order of the (account_id, taken_at) index. On SQLite the
    # nested loop over the balances' primary key yields each snapshot's currencies in
    # order without a sort step; elsewhere the order is spelled out.
    order = "s.taken_at, s.id" + ("" if db.dialect.orders_balances_by_key else ", b.currency")
    sql = (
        f"SELECT s.account_id, s.taken_at, {export_fields(db, csv_tail=csv_tail)} "
        "FROM snapshots s JOIN balances b ON b.snapshot_id = s.id "
        f"WHERE {' AND '.join(where)} ORDER BY {order}"
    )
    for account_id in account_ids:
        yield from db.batches(sql, [account_id, *params], batch)


def iter_changes(
    db: Database,
    accounts: dict[str, int],
    currencies: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    batch: int = 5000,
) -> Iterator[ChangeEntry]:
    """The change log in the range, oldest first, streamed."""
    names = {account_id: name for name, account_id in accounts.items()}
    where, params = _where(
        db,
        list(names),
        currencies,
        since,
        until,
        time_column="taken_at",
        account_column="account_id",
        currency_column="currency",
    )
    sql = (
        "SELECT account_id, taken_at, currency, old_amount, new_amount, delta "
        f"FROM balance_changes WHERE {where} ORDER BY taken_at, id"
    )
    amount, to_time = db.dialect.amount, db.dialect.time_from_storage
    for rows in db.batches(sql, params, batch):
        for account_id, taken_at, currency, old, new, delta in rows:
            yield ChangeEntry(
                names[account_id],
                to_time(taken_at),
                currency,
                None if old is None else amount(old),
                None if new is None else amount(new),
                amount(delta),
            )
