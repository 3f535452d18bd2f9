"""The poll's write path: one Observation becomes one transaction.

A snapshot is diffed against the account's previous snapshot, read inside the same
transaction, and its row, its balances and its changes commit together or not at all. A
failed poll is one poll_errors row. The statements every poll runs go to the driver as
plain SQL with values in storage form (benchmarks/: compiling them through SQLAlchemy
cost two thirds of a poll's write).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Connection

from recorder import amounts, text
from recorder.diff import diff
from recorder.errors import WriteRejectedError
from recorder.store.database import Database
from recorder.values import Change, Observation, Snapshot, Valuation, Written

log = logging.getLogger(__name__)

#: poll_errors.kind and .message are bounded: text from outside never grows a row.
KIND_LIMIT = 32
MESSAGE_LIMIT = 1000
#: poll_errors.kind of a reply that said nothing is held, not believed until confirmed.
EMPTY_REPLY = "empty_reply"

_SNAPSHOT_COLUMNS = ("account_id", "taken_at", "total_value_usdt", "unpriced_count", "recorded_by")
_BALANCE_COLUMNS = (
    "snapshot_id",
    "currency",
    "amount",
    "price_usdt",
    "value_usdt",
    "available",
    "on_orders",
)
_CHANGE_COLUMNS = (
    "account_id",
    "snapshot_id",
    "currency",
    "old_amount",
    "new_amount",
    "delta",
    "taken_at",
)
_ERROR_COLUMNS = ("account_id", "attempted_at", "kind", "message")


def account_id(db: Database, name: str) -> int:
    """The id of the named account, created on first use."""
    if name in db.account_ids:
        return db.account_ids[name]
    select = "SELECT id FROM accounts WHERE name = ?"
    found = db.rows(select, (name,))
    if not found:
        try:
            with db.transaction() as connection:
                db.run(connection, db.dialect.insert("accounts", ("name",)), (name,))
        except WriteRejectedError:
            # Another process created it first (then it is read back below), or the
            # database refuses the name itself.
            found = db.rows(select, (name,))
            if not found:
                raise
        found = found or db.rows(select, (name,))
    db.account_ids[name] = int(found[0][0])
    return db.account_ids[name]


def record(db: Database, observation: Observation, *, recorded_by: str, replay: bool) -> Written:
    """Store one poll's observation in one transaction. With `replay` (a late write from
    the outage buffer) what is already stored is not stored again.

    An ambiguous empty reply (no body, no `data`) of an account that held something is not
    believed at once: it becomes a poll_errors row of kind `empty_reply`, and only the
    next poll confirms it, when the account's latest attempt since its last snapshot is
    that row. The sell-everything is then recorded at the time of the first such reply.
    """
    account = account_id(db, observation.account)
    with db.transaction() as connection:
        snapshot = observation.snapshot
        if snapshot is None:
            kind = observation.error_kind or "poll_error"
            if not (replay and _has_poll_error(db, connection, account, observation.at, kind)):
                add_poll_error(db, connection, account, observation.at, kind, observation.message)
            return Written(None)
        if replay and (
            _has_snapshot(db, connection, account, snapshot.taken_at)
            or _has_poll_error(db, connection, account, snapshot.taken_at, EMPTY_REPLY)
        ):
            return Written(None)  # written before a crash, journal not yet trimmed
        snapshot = after_newest(db, connection, account, observation.account, snapshot)
        previous = previous_balances(db, connection, account, before=snapshot.taken_at)
        if snapshot.ambiguous and previous:
            first = _unconfirmed_empty_reply(db, connection, account, snapshot.taken_at)
            if first is None:
                message = (
                    f"CoinW's reply carried no balances (no body, or no 'data') while the "
                    f"account held {len(previous)} currencies; it is believed only when the "
                    "next poll confirms it."
                )
                add_poll_error(db, connection, account, snapshot.taken_at, EMPTY_REPLY, message)
                return Written(None, failure=(EMPTY_REPLY, message))
            snapshot = replace(snapshot, taken_at=first)
            previous = previous_balances(db, connection, account, before=first)
        changes = diff(previous, snapshot.balances)
        snapshot_id = add_snapshot(db, connection, account, snapshot, changes, recorded_by)
    return Written(snapshot_id, changes)


def after_newest(
    db: Database, connection: Connection, account: int, name: str, snapshot: Snapshot
) -> Snapshot:
    """The clock rule: a poll is never stored before its account's newest snapshot (or
    failed poll). When the clock went back (a bad NTP step, a restored VM), the poll is
    stamped one microsecond after that, and a warning names both times: what it holds is
    kept, the change log stays the diff of consecutive snapshots in time order, and empty
    replies stamped so still follow one another (the next confirms the one before)."""
    # Two plain max() subqueries in one statement, each one seek in its index.
    times = db.run(
        connection,
        "SELECT (SELECT max(taken_at) FROM snapshots WHERE account_id = ?), "
        "(SELECT max(attempted_at) FROM poll_errors WHERE account_id = ?)",
        (account, account),
    ).one()
    known = [db.dialect.time_from_storage(t) for t in times if t is not None]
    if not known:
        return snapshot
    newest = max(known)
    if snapshot.taken_at > newest:
        return snapshot
    stamped = newest + timedelta(microseconds=1)
    log.warning(
        "%s: the clock went back: this poll was taken at %s by the system clock, not after "
        "the account's newest poll of %s; it is stored at %s.",
        name,
        snapshot.taken_at.isoformat(),
        newest.isoformat(),
        stamped.isoformat(),
        extra={"account": name},
    )
    return replace(snapshot, taken_at=stamped)


def recorded_since(
    db: Database, name: str, at: datetime, own: Sequence[str]
) -> tuple[datetime, str | None] | None:
    """The newest snapshot another process (not one named in `own`) took of the account
    after `at`, or wrote after the newest snapshot of `own` (ids do not depend on anyone's
    clock: another process whose clock is behind still recorded after it), as (taken_at,
    recorded_by); None if there is none, or if a snapshot at `at` itself is stored (then
    it is this poll, written before a crash)."""
    account, stored = account_id(db, name), db.dialect.storage_time(at)
    names = ", ".join("?" for _ in own)
    rows = db.rows(
        "SELECT taken_at, recorded_by FROM snapshots WHERE account_id = ? "
        f"AND (recorded_by IS NULL OR recorded_by NOT IN ({names})) AND (taken_at > ? OR "
        f"id > (SELECT max(id) FROM snapshots WHERE account_id = ? AND recorded_by IN "
        f"({names}))) AND NOT EXISTS (SELECT 1 FROM snapshots WHERE account_id = ? AND "
        "taken_at = ?) ORDER BY id DESC LIMIT 1",
        (account, *own, stored, account, *own, account, stored),
    )
    return (db.dialect.time_from_storage(rows[0][0]), rows[0][1]) if rows else None


def _unconfirmed_empty_reply(
    db: Database, connection: Connection, account: int, before: datetime
) -> datetime | None:
    """When the account's latest attempt before `before`, since its last snapshot, is an
    unconfirmed empty reply: that reply's time."""
    newest = db.run(
        connection, "SELECT max(taken_at) FROM snapshots WHERE account_id = ?", (account,)
    ).scalar()
    sql = "SELECT kind, attempted_at FROM poll_errors WHERE account_id = ? AND attempted_at < ?"
    params: list[object] = [account, db.dialect.storage_time(before)]
    if newest is not None:
        sql += " AND attempted_at > ?"
        params.append(newest)
    row = db.run(connection, sql + " ORDER BY attempted_at DESC, id DESC LIMIT 1", params).first()
    if row is None:
        return None
    kind, attempted_at = tuple(row)
    return db.dialect.time_from_storage(attempted_at) if kind == EMPTY_REPLY else None


def add_poll_error(
    db: Database, connection: Connection, account: int, at: datetime, kind: str, message: str
) -> None:
    """A failed poll, its kind and message bounded and cleaned of control characters."""
    row = (
        account,
        db.dialect.storage_time(at),
        text.safe(kind)[:KIND_LIMIT],
        text.safe(message, MESSAGE_LIMIT),
    )
    db.run(connection, db.dialect.insert("poll_errors", _ERROR_COLUMNS), row)


def _has_snapshot(db: Database, connection: Connection, account: int, taken_at: datetime) -> bool:
    sql = "SELECT 1 FROM snapshots WHERE account_id = ? AND taken_at = ? LIMIT 1"
    params = (account, db.dialect.storage_time(taken_at))
    return db.run(connection, sql, params).first() is not None


def _has_poll_error(
    db: Database, connection: Connection, account: int, at: datetime, kind: str
) -> bool:
    sql = "SELECT 1 FROM poll_errors WHERE account_id = ? AND attempted_at = ? AND kind = ? LIMIT 1"
    params = (account, db.dialect.storage_time(at), kind)
    return db.run(connection, sql, params).first() is not None


def previous_balances(
    db: Database, connection: Connection, account: int, *, before: datetime | None = None
) -> dict[str, Decimal]:
    """Balances of the account's latest snapshot (taken before `before`, if given)."""
    condition = "account_id = ?" + (" AND taken_at < ?" if before is not None else "")
    params: list[object] = [account]
    if before is not None:
        params.append(db.dialect.storage_time(before))
    rows = db.run(
        connection,
        "SELECT currency, amount FROM balances WHERE snapshot_id = "
        f"(SELECT id FROM snapshots WHERE {condition} ORDER BY taken_at DESC, id DESC LIMIT 1)",
        params,
    )
    amount = db.dialect.amount
    return {str(row[0]): amount(row[1]) for row in map(tuple, rows)}


def latest_balances(db: Database, account: int) -> dict[str, Decimal]:
    """What the account held at its most recent snapshot ({} when it has none)."""
    with db.transaction() as connection:
        return previous_balances(db, connection, account)


def add_snapshot(
    db: Database,
    connection: Connection,
    account: int,
    snapshot: Snapshot,
    changes: Sequence[Change],
    recorded_by: str | None = None,
) -> int:
    """Insert a snapshot with its balances and changes; returns the snapshot id."""
    dialect = db.dialect
    valuation = snapshot.valuation or Valuation(unpriced=tuple(snapshot.balances))
    stored_at = dialect.storage_time(snapshot.taken_at)
    row = (
        account,
        stored_at,
        _text_or_none(valuation.total),
        valuation.unpriced_count,
        recorded_by,
    )
    result = db.run(connection, dialect.insert_returning_id("snapshots", _SNAPSHOT_COLUMNS), row)
    snapshot_id = dialect.inserted_id(result)
    if snapshot.balances:
        db.run(
            connection,
            dialect.insert("balances", _BALANCE_COLUMNS),
            _balance_rows(snapshot_id, snapshot, valuation),
        )
    if changes:
        db.run(
            connection,
            dialect.insert("balance_changes", _CHANGE_COLUMNS),
            [
                (
                    account,
                    snapshot_id,
                    change.currency,
                    _text_or_none(change.old_amount),
                    _text_or_none(change.new_amount),
                    amounts.to_text(change.delta),
                    stored_at,
                )
                for change in changes
            ],
        )
    return snapshot_id


def _balance_rows(
    snapshot_id: int, snapshot: Snapshot, valuation: Valuation
) -> list[tuple[object, ...]]:
    prices, values, parts = valuation.prices, valuation.values, snapshot.parts
    return [
        (
            snapshot_id,
            currency,
            amounts.to_text(amount),
            _text_or_none(prices.get(currency)),
            _text_or_none(values.get(currency)),
            _text_or_none(parts[currency][0]) if currency in parts else None,
            _text_or_none(parts[currency][1]) if currency in parts else None,
        )
        for currency, amount in snapshot.balances.items()
    ]


def _text_or_none(value: Decimal | None) -> str | None:
    """An amount in the storage form every backend takes: canonical decimal text."""
    return None if value is None else amounts.to_text(value)
