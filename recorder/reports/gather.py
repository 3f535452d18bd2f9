"""History as answers: holdings at a moment, balances over time, the change log, the rows
of an export. Reads through the store only; turning the answers into text is formats.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import IO, Any

from recorder import amounts, timespec
from recorder.errors import InputError
from recorder.store import export, history
from recorder.store.database import Database
from recorder.values import ChangeEntry, Holding, StoredSnapshot

HOLDING_COLUMNS = ("account", "taken_at", "currency", "amount", "price_usdt", "value_usdt")
HISTORY_COLUMNS = (
    "account",
    "period",
    "taken_at",
    "currency",
    "amount",
    "price_usdt",
    "value_usdt",
    "carried",
)
CHANGE_COLUMNS = ("account", "taken_at", "currency", "change", "old_amount", "new_amount", "delta")
EXPORT_COLUMNS = (
    "account",
    "taken_at",
    "snapshot_id",
    "currency",
    "amount",
    "price_usdt",
    "value_usdt",
    "available",
    "on_orders",
)
#: `export --every`: one row set per account and period, carried where needed.
PERIOD_EXPORT_COLUMNS = (
    "account",
    "period",
    "taken_at",
    "snapshot_id",
    "currency",
    "amount",
    "price_usdt",
    "value_usdt",
    "available",
    "on_orders",
    "carried",
)


@dataclass(frozen=True)
class Selection:
    """Which part of the history a command looks at."""

    accounts: Mapping[str, int]
    currencies: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    zone: tzinfo = UTC

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            since, until = (
                timespec.show(t, self.zone, precise=False) for t in (self.since, self.until)
            )
            raise InputError(
                f"--since ({since}) is after --until ({until}); give the earlier moment first."
            )

    @property
    def range(self) -> tuple[datetime | None, datetime | None]:
        """(since, until)."""
        return self.since, self.until

    @property
    def account_ids(self) -> list[int]:
        """The selected accounts' ids."""
        return list(self.accounts.values())


@dataclass(frozen=True)
class AccountHoldings:
    """What one account held at one moment, with its total value."""

    account: str
    snapshot: StoredSnapshot | None
    holdings: list[Holding]

    @property
    def total_value_usdt(self) -> Decimal | None:
        """Sum of the priced values shown; None when none is priced."""
        values = [h.value_usdt for h in self.holdings if h.value_usdt is not None]
        total = Decimal(0)
        for value in values:
            total = amounts.add(total, value)
        return total if values or not self.holdings else None

    @property
    def unpriced(self) -> list[str]:
        """Currencies held without a price (not counted in the total)."""
        return [h.currency for h in self.holdings if h.value_usdt is None]


def not_before_the_newest(db: Database, selection: Selection, now: datetime) -> datetime:
    """ "Now", or the newest snapshot's time when this clock is behind it (it went back, or
    it was ahead when that snapshot was taken): "what is held now" is always the newest."""
    span = history.time_range(db, selection.account_ids)
    return now if span is None else max(now, span[1])


def holdings_at(db: Database, selection: Selection, moment: datetime) -> list[AccountHoldings]:
    """Each account's holdings as of `moment`: its last snapshot at or before it."""
    found = {
        snapshot.account: (snapshot, rows)
        for snapshot, rows in history.holdings_at(
            db, selection.accounts, moment, selection.currencies
        )
    }
    return [
        AccountHoldings(name, *found[name]) if name in found else AccountHoldings(name, None, [])
        for name in selection.accounts
    ]


@dataclass(frozen=True)
class PeriodSnapshot:
    """The snapshot in effect at the end of one period for one account."""

    period: datetime  # the period's start (in the selection's zone, as UTC)
    snapshot: StoredSnapshot
    #: True when the account has no snapshot of its own in the period: the last one
    #: before it is carried into it.
    carried: bool


def period_snapshots(
    db: Database, selection: Selection, every: str, now: datetime
) -> list[PeriodSnapshot]:
    """Every account's snapshot in effect at the end of every period, in time order: from
    the period of its first snapshot up to now (or --until), carrying the last known
    holdings through periods without a snapshot."""
    span = history.time_range(db, selection.account_ids)
    if span is None:
        return []
    since = max(selection.since or span[0], span[0])
    until = max(now, span[1])  # carried up to now, never into the future
    if selection.until is not None:
        until = min(until, selection.until)
    if since > until:
        return []
    periods = list(timespec.periods(since, until, every, selection.zone))
    # Clip the first and last period to the selection, so --since / --until are honoured.
    clipped = [(max(start, since), min(end, until + timespec.TICK)) for start, end in periods]
    found = []
    for name, account_id in selection.accounts.items():
        ends = [end for _, end in clipped]
        snapshots = history.last_snapshots_before(db, name, account_id, ends)
        for (period, _), (start, _), snapshot in zip(periods, clipped, snapshots, strict=True):
            if snapshot is not None:  # None: before the account's first snapshot
                found.append(PeriodSnapshot(period, snapshot, snapshot.taken_at < start))
    found.sort(key=lambda item: (item.period, item.snapshot.account))
    return found


def balances_over_time(
    db: Database, selection: Selection, every: str | None, now: datetime
) -> Iterator[tuple[datetime | None, Holding, bool]]:
    """(period, balance row, carried) over time; every snapshot when `every` is None."""
    if every is None:
        for row in export.iter_holdings(
            db, dict(selection.accounts), selection.currencies, selection.since, selection.until
        ):
            yield None, row, False
        return
    chosen = period_snapshots(db, selection, every, now)
    # Fetch balances in slices so a long history never sits in memory at once; a carried
    # snapshot serves several periods but is read once per slice.
    for i in range(0, len(chosen), 1000):
        part = chosen[i : i + 1000]
        unique = list({item.snapshot.snapshot_id: item.snapshot for item in part}.values())
        rows: dict[int, list[Holding]] = {}
        for row in history.holdings_of(db, unique, selection.currencies):
            rows.setdefault(row.snapshot_id, []).append(row)
        for item in part:
            for row in rows.get(item.snapshot.snapshot_id, []):
                yield item.period, row, item.carried


def changes(db: Database, selection: Selection) -> Iterator[ChangeEntry]:
    """The change log of the selection, oldest first."""
    return export.iter_changes(
        db, dict(selection.accounts), selection.currencies, selection.since, selection.until
    )


def change_kind(entry: ChangeEntry) -> str:
    """appeared, gone or changed."""
    if entry.old_amount is None:
        return "appeared"
    if entry.new_amount is None:
        return "gone"
    return "changed"


def count_rows(db: Database, selection: Selection) -> int:
    """How many balance rows an export of the selection has."""
    return export.count_holdings(
        db, selection.account_ids, selection.currencies, selection.since, selection.until
    )


def export_batches(db: Database, selection: Selection) -> Iterator[list[tuple[Any, ...]]]:
    """Every balance row of the selection as EXPORT_COLUMNS tuples of text, in batches.

    Amounts stay the canonical text the database holds (no Decimal round trip); each
    snapshot's time is converted once, not once per row: this is what makes a CSV export
    of ten million rows take seconds, in constant memory.
    """
    names = {account_id: name for name, account_id in selection.accounts.items()}
    zone, to_time = selection.zone, db.dialect.time_from_storage
    last_raw: Any = None
    shown = ""
    for batch in export.iter_export_rows(
        db, selection.account_ids, selection.currencies, selection.since, selection.until
    ):
        rows = []
        for row in batch:
            if row[1] != last_raw:
                last_raw = row[1]
                shown = timespec.show(to_time(last_raw), zone)
            rows.append((names[row[0]], shown, *row[2:]))
        yield rows


def write_export_csv(
    db: Database,
    selection: Selection,
    out: IO[str],
    progress: Callable[[int], None] | None = None,
) -> int:
    """The CSV export: EXPORT_COLUMNS, every balance row, streamed in constant memory.

    The database builds each row's numeric tail; Python adds the account and the time,
    converted once per snapshot. Nothing here needs CSV quoting: account names and
    currencies are checked when they enter the recorder, the rest are numbers.
    """
    names = {account_id: name for name, account_id in selection.accounts.items()}
    to_time = db.dialect.time_from_storage
    out.write(",".join(EXPORT_COLUMNS) + "\n")
    count = 0
    last: tuple[Any, Any] = (None, None)
    prefix = ""
    for batch in export.iter_export_rows(
        db,
        selection.account_ids,
        selection.currencies,
        selection.since,
        selection.until,
        csv_tail=True,
    ):
        lines = []
        for account_id, raw_time, tail in batch:
            if (account_id, raw_time) != last:
                last = (account_id, raw_time)
                shown = timespec.show(to_time(raw_time), selection.zone)
                prefix = f"{names[account_id]},{shown},"
            lines.append(prefix + tail)
        out.write("\n".join(lines))
        out.write("\n")
        count += len(batch)
        if progress is not None:
            progress(len(batch))
    return count
