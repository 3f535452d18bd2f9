"""Statements: per account and currency, what was held at the start and at the end of a
period, what came in and went out in between, and what it was worth.

The opening is the snapshot in effect at the start (the last one taken before it); an
account first recorded inside the period opens with its first snapshot instead, so its
initial holdings are not counted as increases. The closing is the last snapshot taken
before the end. Increases and decreases are the change log's deltas in between, added
exactly, so for every row: opening + increases - decreases = closing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from recorder import amounts, timespec
from recorder.errors import InputError
from recorder.reports.gather import Selection
from recorder.store import history
from recorder.store.database import Database
from recorder.values import Holding, StoredSnapshot

#: CSV, JSON and XLSX columns. A row with an empty currency is an account's total value;
#: a row with neither account nor currency is the total of all accounts.
COLUMNS = (
    "account",
    "currency",
    "opening_taken_at",
    "opening_amount",
    "opening_price_usdt",
    "opening_value_usdt",
    "increases",
    "decreases",
    "net_change",
    "closing_taken_at",
    "closing_amount",
    "closing_price_usdt",
    "closing_value_usdt",
)
#: The table on a terminal leaves out the prices and snapshot times (the lines under it
#: name the snapshots).
TABLE_COLUMNS = (
    "account",
    "currency",
    "opening_amount",
    "opening_value_usdt",
    "increases",
    "decreases",
    "net_change",
    "closing_amount",
    "closing_value_usdt",
)
ZERO = Decimal(0)


@dataclass(frozen=True)
class Period:
    """What a statement covers: from `start` (None: the first snapshot) up to `end`,
    which is not included."""

    label: str  # "2026-03", "2026-Q1", "2026"; empty for --since/--until
    start: datetime | None
    end: datetime


def _month_after(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_of(
    selection: Selection,
    month: str | None,
    quarter: str | None,
    year: str | None,
    now: datetime,
) -> Period:
    """The period from --month 2026-03, --quarter 2026-Q1, --year 2026 (calendar periods
    in the selection's zone) or --since/--until; InputError for anything else."""
    given = [option for option in (month, quarter, year) if option]
    ranged = selection.since is not None or selection.until is not None
    if len(given) > 1 or (given and ranged):
        raise InputError("Give one period: --month, --quarter, --year, or --since/--until.")
    if not given:
        if not ranged:
            raise InputError(
                "A statement needs a period: --month 2026-03, --quarter 2026-Q1, --year 2026, "
                "or --since/--until."
            )
        return covering(selection, now)
    text = given[0].strip()
    if month and (found := re.fullmatch(r"(\d{4})-(\d{2})", text)) and 1 <= int(found[2]) <= 12:
        first, months = date(int(found[1]), int(found[2]), 1), 1
    elif quarter and (found := re.fullmatch(r"(\d{4})-[Qq]([1-4])", text)):
        first, months = date(int(found[1]), 3 * int(found[2]) - 2, 1), 3
    elif year and re.fullmatch(r"\d{4}", text) and int(text) > 0:
        first, months = date(int(text), 1, 1), 12
    else:
        option = "--month" if month else "--quarter" if quarter else "--year"
        example = {"--month": "2026-03", "--quarter": "2026-Q1", "--year": "2026"}[option]
        raise InputError(f"{option} {text!r} is not a period; write it like {example}.")
    label = text.upper() if quarter else text
    zone = selection.zone
    return Period(
        label,
        timespec.local_midnight(first, zone),
        timespec.local_midnight(_month_after(first, months), zone),
    )


def covering(selection: Selection, now: datetime) -> Period:
    """The period of a selection's --since and --until (up to now without --until); its
    label is empty: it is no calendar period."""
    end = now if selection.until is None else selection.until + timespec.TICK
    return Period("", selection.since, end)


@dataclass(frozen=True)
class Line:
    """One account and currency over the period. Values are None when unpriced."""

    account: str
    currency: str
    opening_taken_at: datetime
    opening_amount: Decimal
    opening_price: Decimal | None
    opening_value: Decimal | None
    increases: Decimal
    decreases: Decimal  # a positive number: what went out
    closing_taken_at: datetime
    closing_amount: Decimal
    closing_price: Decimal | None
    closing_value: Decimal | None

    @property
    def net_change(self) -> Decimal:
        """Increases less decreases."""
        return amounts.subtract(self.increases, self.decreases)

    @property
    def reconciled(self) -> bool:
        """opening + increases - decreases == closing, exactly."""
        return amounts.add(self.opening_amount, self.net_change) == self.closing_amount


def _total(values: Sequence[Decimal | None]) -> Decimal:
    total = ZERO
    for value in values:
        if value is not None:
            total = amounts.add(total, value)
    return total


@dataclass(frozen=True)
class AccountStatement:
    """One account's lines and total values."""

    account: str
    opening: StoredSnapshot
    closing: StoredSnapshot
    #: The account's first snapshot lies in the period and is its opening.
    first_recorded: bool
    lines: list[Line]

    @property
    def opening_total(self) -> Decimal:
        """Sum of the priced opening values."""
        return _total([line.opening_value for line in self.lines])

    @property
    def closing_total(self) -> Decimal:
        """Sum of the priced closing values."""
        return _total([line.closing_value for line in self.lines])

    @property
    def unpriced(self) -> list[str]:
        """Currencies held at the opening or closing without a price (not in the totals)."""
        return [
            line.currency
            for line in self.lines
            if (line.opening_value is None and line.opening_amount)
            or (line.closing_value is None and line.closing_amount)
        ]


@dataclass(frozen=True)
class Statement:
    """Every selected account's statement for one period."""

    period: Period
    accounts: list[AccountStatement]
    #: Selected accounts without any snapshot before the end of the period.
    missing: list[str]

    @property
    def opening_total(self) -> Decimal:
        """All accounts' opening value."""
        return _total([account.opening_total for account in self.accounts])

    @property
    def closing_total(self) -> Decimal:
        """All accounts' closing value."""
        return _total([account.closing_total for account in self.accounts])

    @property
    def lines(self) -> list[Line]:
        """Every account's lines, in order."""
        return [line for account in self.accounts for line in account.lines]

    @property
    def unreconciled(self) -> list[Line]:
        """Lines whose change log does not lead from the opening to the closing."""
        return [line for line in self.lines if not line.reconciled]


def build(db: Database, selection: Selection, period: Period) -> Statement:
    """The statement of the selected accounts and currencies for `period`."""
    currencies = selection.currencies
    last = period.end - timespec.TICK
    closing = {
        snapshot.account: (snapshot, rows)
        for snapshot, rows in history.holdings_at(db, selection.accounts, last, currencies)
    }
    opening: dict[str, tuple[StoredSnapshot, list[Holding]]] = {}
    if period.start is not None:
        before = period.start - timespec.TICK
        found = history.holdings_at(db, selection.accounts, before, currencies)
        opening = {snapshot.account: (snapshot, rows) for snapshot, rows in found}
    first_ids: dict[int, int] = {}  # account id -> its first snapshot, the opening
    for name, account_id in selection.accounts.items():
        if name in closing and name not in opening:
            first = history.first_snapshot(db, name, account_id, period.start, last)
            assert first is not None  # the closing snapshot is one
            opening[name] = (first, history.holdings_of(db, [first], currencies))
            first_ids[account_id] = first.snapshot_id
    flows: dict[tuple[int, str], list[Decimal]] = {}
    for account_id, snapshot_id, currency, delta in history.iter_deltas(
        db, [selection.accounts[name] for name in closing], currencies, period.start, last
    ):
        if first_ids.get(account_id) == snapshot_id:
            continue  # the first snapshot's holdings are the opening, not increases
        sums = flows.setdefault((account_id, currency), [ZERO, ZERO])
        if delta > 0:
            sums[0] = amounts.add(sums[0], delta)
        else:
            sums[1] = amounts.subtract(sums[1], delta)
    accounts = [
        _account(name, account_id, opening[name], closing[name], account_id in first_ids, flows)
        for name, account_id in selection.accounts.items()
        if name in closing
    ]
    missing = [name for name in selection.accounts if name not in closing]
    return Statement(period, accounts, missing)


def _account(
    name: str,
    account_id: int,
    opening: tuple[StoredSnapshot, list[Holding]],
    closing: tuple[StoredSnapshot, list[Holding]],
    first_recorded: bool,
    flows: dict[tuple[int, str], list[Decimal]],
) -> AccountStatement:
    start = {h.currency: h for h in opening[1]}
    end = {h.currency: h for h in closing[1]}
    moved = {currency for account, currency in flows if account == account_id}
    lines = []
    for currency in sorted(start.keys() | end.keys() | moved):
        increases, decreases = flows.get((account_id, currency), [ZERO, ZERO])
        held, kept = start.get(currency), end.get(currency)
        lines.append(
            Line(
                name,
                currency,
                opening[0].taken_at,
                held.amount if held else ZERO,
                held.price_usdt if held else None,
                held.value_usdt if held else ZERO,  # nothing held is worth nothing
                increases,
                decreases,
                closing[0].taken_at,
                kept.amount if kept else ZERO,
                kept.price_usdt if kept else None,
                kept.value_usdt if kept else ZERO,
            )
        )
    return AccountStatement(name, opening[0], closing[0], first_recorded, lines)


def line_cells(line: Line) -> tuple[Any, ...]:
    """A line as COLUMNS."""
    return (
        line.account,
        line.currency,
        line.opening_taken_at,
        line.opening_amount,
        line.opening_price,
        line.opening_value,
        line.increases,
        line.decreases,
        line.net_change,
        line.closing_taken_at,
        line.closing_amount,
        line.closing_price,
        line.closing_value,
    )


def cells(statement: Statement) -> Iterator[tuple[Any, ...]]:
    """Every row as COLUMNS: each account's lines then its total, then all accounts'."""
    for account in statement.accounts:
        yield from (line_cells(line) for line in account.lines)
        yield (
            account.account,
            "",
            account.opening.taken_at,
            None,
            None,
            account.opening_total,
            None,
            None,
            None,
            account.closing.taken_at,
            None,
            None,
            account.closing_total,
        )
    empty = (None, None, None, None, None, None)
    yield ("", "", None, None, None, statement.opening_total, *empty, statement.closing_total)


def table_cells(statement: Statement) -> Iterator[tuple[Any, ...]]:
    """Every line as TABLE_COLUMNS."""
    picked = [COLUMNS.index(column) for column in TABLE_COLUMNS]
    for line in statement.lines:
        row = line_cells(line)
        yield tuple(row[i] for i in picked)


def narrowed(selection: Selection, period: Period) -> Selection:
    """The selection limited to the statement's period (for the report around it)."""
    return replace(selection, since=period.start, until=period.end - timespec.TICK)
