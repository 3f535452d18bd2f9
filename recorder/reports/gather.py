"""History as answers: holdings at a moment, balances over time, the change log, exports.

Reads through the store only. Turning rows into text (table, CSV, JSON, JSON Lines, XLSX)
is pure; amounts are written exactly, as plain decimal strings (in JSON too, because JSON
numbers are floats to most readers). Times are shown in the requested zone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import IO, Any

from recorder import amounts, timespec
from recorder.errors import ConfigError
from recorder.store.database import ChangeEntry, Holding, SnapshotRef, Store

HOLDING_COLUMNS = ("account", "taken_at", "currency", "amount", "price_usdt", "value_usdt")
HISTORY_COLUMNS = (
    "account",
    "period",
    "taken_at",
    "currency",
    "amount",
    "price_usdt",
    "value_usdt",
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
REPORT_EXTRA_HINT = "pip install 'coinw-recorder[report]'"


@dataclass(frozen=True)
class Selection:
    """Which part of the history a command looks at."""

    accounts: Mapping[str, int]
    currencies: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    zone: tzinfo = UTC


@dataclass(frozen=True)
class AccountHoldings:
    """What one account held at one moment, with its total value."""

    account: str
    snapshot: SnapshotRef | None
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


# -- gathering -------------------------------------------------------------------------


def holdings_at(store: Store, selection: Selection, moment: datetime) -> list[AccountHoldings]:
    """Each account's holdings as of `moment`: its last snapshot at or before it."""
    found = {
        ref.account: (ref, rows)
        for ref, rows in store.holdings_at(selection.accounts, moment, selection.currencies)
    }
    return [
        AccountHoldings(name, *found[name]) if name in found else AccountHoldings(name, None, [])
        for name in selection.accounts
    ]


def period_snapshots(
    store: Store, selection: Selection, every: str, now: datetime
) -> list[tuple[datetime, SnapshotRef]]:
    """(period start, last snapshot in it) for every account and period, in time order."""
    span = store.time_range(list(selection.accounts.values()))
    if span is None:
        return []
    since = max(selection.since or span[0], span[0])
    until = min(selection.until or now, span[1])
    if since > until:
        return []
    bounds = list(timespec.periods(since, until, every, selection.zone))
    # Clip the first and last period to the selection, so --since / --until are honoured.
    bounds = [(max(start, since), min(end, until + timespec.TICK)) for start, end in bounds]
    found = []
    for name, account_id in selection.accounts.items():
        refs = store.last_snapshots_in(name, account_id, bounds)
        for ref in refs:
            start = timespec.period_start(ref.taken_at, every, selection.zone)
            found.append((start, ref))
    found.sort(key=lambda item: (item[0], item[1].account))
    return found


def history(
    store: Store, selection: Selection, every: str | None, now: datetime
) -> Iterator[tuple[datetime | None, Holding]]:
    """(period, balance row) over time; every snapshot when `every` is None."""
    if every is None:
        ids = list(selection.accounts.values())
        for row in store.iter_holdings(ids, selection.currencies, selection.since, selection.until):
            yield None, row
        return
    chosen = period_snapshots(store, selection, every, now)
    period_of = {ref.snapshot_id: start for start, ref in chosen}
    # Fetch balances in slices so a long history never sits in memory at once.
    for i in range(0, len(chosen), 1000):
        refs = [ref for _, ref in chosen[i : i + 1000]]
        for row in store.holdings_of(refs, selection.currencies):
            yield period_of[row.snapshot_id], row


def export_batches(store: Store, selection: Selection) -> Iterator[list[tuple[Any, ...]]]:
    """Every balance row of the selection as EXPORT_COLUMNS tuples of text, in batches.

    Amounts stay the canonical text the database holds (no Decimal round trip); each
    snapshot's time is converted once, not once per row: this is what makes a CSV export
    of ten million rows take seconds, in constant memory.
    """
    names = {account_id: name for name, account_id in selection.accounts.items()}
    zone = selection.zone
    last_raw: Any = None
    shown = ""
    for batch in store.iter_export_rows(
        list(selection.accounts.values()),
        selection.currencies,
        selection.since,
        selection.until,
    ):
        rows = []
        for row in batch:
            if row[1] != last_raw:
                last_raw = row[1]
                shown = timespec.show(store.time_from_storage(last_raw), zone)
            rows.append((names[row[0]], shown, *row[2:]))
        yield rows


def changes(store: Store, selection: Selection) -> Iterator[ChangeEntry]:
    """The change log of the selection, oldest first."""
    return store.iter_changes(
        list(selection.accounts.values()), selection.currencies, selection.since, selection.until
    )


def change_kind(entry: ChangeEntry) -> str:
    """appeared, gone or changed."""
    if entry.old_amount is None:
        return "appeared"
    if entry.new_amount is None:
        return "gone"
    return "changed"


# -- cells -----------------------------------------------------------------------------


def text(value: Any, zone: tzinfo, *, precise: bool = True) -> str:
    """A value as shown in tables and CSV: exact decimals, times in `zone`, blanks for NULL.
    Times lose their microseconds on screen (precise=False), never in exports."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return amounts.to_text(value)
    if isinstance(value, datetime):
        return timespec.show(value, zone, precise=precise)
    return str(value)


def json_value(value: Any, zone: tzinfo) -> Any:
    """A value for JSON: decimals as exact strings, times as ISO 8601, NULL as null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    return text(value, zone)


def holding_cells(row: Holding) -> tuple[Any, ...]:
    return (row.account, row.taken_at, row.currency, row.amount, row.price_usdt, row.value_usdt)


def history_cells(period: datetime | None, row: Holding) -> tuple[Any, ...]:
    return (
        row.account,
        period,
        row.taken_at,
        row.currency,
        row.amount,
        row.price_usdt,
        row.value_usdt,
    )


def change_cells(entry: ChangeEntry) -> tuple[Any, ...]:
    return (
        entry.account,
        entry.taken_at,
        entry.currency,
        change_kind(entry),
        entry.old_amount,
        entry.new_amount,
        entry.delta,
    )


# -- renderers -------------------------------------------------------------------------

_NUMERIC = {
    "amount",
    "price_usdt",
    "value_usdt",
    "old_amount",
    "new_amount",
    "delta",
    "available",
    "on_orders",
    "snapshot_id",
    "total_value_usdt",
}


def render_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], zone: tzinfo) -> str:
    """An aligned plain-text table; numbers right-aligned so their digits line up."""
    cells = [[text(v, zone, precise=False) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if columns[i] in _NUMERIC else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def write_csv(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], out: IO[str], zone: tzinfo
) -> int:
    """Stream rows as CSV with a header; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([text(v, zone) for v in row])
        count += 1
    return count


def write_export_csv(
    store: Store,
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
    out.write(",".join(EXPORT_COLUMNS) + "\n")
    count = 0
    last: tuple[Any, Any] = (None, None)
    prefix = ""
    for batch in store.iter_export_rows(
        list(selection.accounts.values()),
        selection.currencies,
        selection.since,
        selection.until,
        csv_tail=True,
    ):
        lines = []
        for account_id, raw_time, tail in batch:
            if (account_id, raw_time) != last:
                last = (account_id, raw_time)
                shown = timespec.show(store.time_from_storage(raw_time), selection.zone)
                prefix = f"{names[account_id]},{shown},"
            lines.append(prefix + tail)
        out.write("\n".join(lines))
        out.write("\n")
        count += len(batch)
        if progress is not None:
            progress(len(batch))
    return count


def write_jsonl_batches(
    columns: Sequence[str],
    batches: Iterable[list[tuple[Any, ...]]],
    out: IO[str],
    progress: Callable[[int], None] | None = None,
) -> int:
    """JSON Lines of rows that are already text (None for NULL), a batch at a time."""
    count = 0
    encode = json.JSONEncoder(separators=(", ", ": ")).encode
    for batch in batches:
        out.writelines(encode(dict(zip(columns, row, strict=True))) + "\n" for row in batch)
        count += len(batch)
        if progress is not None:
            progress(len(batch))
    return count


def typed_cells(batches: Iterable[list[tuple[Any, ...]]]) -> Iterator[tuple[Any, ...]]:
    """Export rows with real times and Decimal amounts again (XLSX cells are typed)."""
    for batch in batches:
        for account, shown, snapshot_id, currency, *numbers in batch:
            yield (
                account,
                datetime.fromisoformat(shown),
                snapshot_id,
                currency,
                *(None if v is None else Decimal(v) for v in numbers),
            )


def write_json_array(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], out: IO[str], zone: tzinfo
) -> int:
    """Stream rows as one JSON array of objects; returns the number of rows."""
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n " if count else "\n ")
        out.write(json.dumps(dict(zip(columns, (json_value(v, zone) for v in row), strict=True))))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def holdings_json(result: Sequence[AccountHoldings], moment: datetime, zone: tzinfo) -> str:
    """`recorder at` as one JSON document with per-account totals."""
    document = {
        "as_of": timespec.show(moment, zone),
        "accounts": [
            {
                "account": entry.account,
                "taken_at": json_value(entry.snapshot.taken_at if entry.snapshot else None, zone),
                "total_value_usdt": json_value(entry.total_value_usdt, zone),
                "unpriced": entry.unpriced,
                "holdings": [
                    {
                        "currency": h.currency,
                        "amount": json_value(h.amount, zone),
                        "price_usdt": json_value(h.price_usdt, zone),
                        "value_usdt": json_value(h.value_usdt, zone),
                    }
                    for h in entry.holdings
                ],
            }
            for entry in result
        ],
    }
    return json.dumps(document, indent=2)


def holdings_summary(entry: AccountHoldings, zone: tzinfo) -> str:
    """One line under the table: the account's total and what it leaves out."""
    if entry.snapshot is None:
        return f"{entry.account}: no snapshot at or before that moment."
    total = entry.total_value_usdt
    line = f"{entry.account}: total {text(total, zone) or 'unknown'} USDT"
    line += f" (snapshot of {timespec.show(entry.snapshot.taken_at, zone, precise=False)})"
    if entry.unpriced:
        line += f"; unpriced, not counted: {', '.join(entry.unpriced)}"
    return line


# -- XLSX --------------------------------------------------------------------------------

#: Excel keeps 15 significant digits; a longer amount goes in as text so it is not rounded.
EXCEL_DIGITS = 15


def excel_value(value: Any, zone: tzinfo) -> Any:
    """A cell value for openpyxl: short decimals as numbers, long ones as exact text."""
    if isinstance(value, Decimal):
        digits = len(value.as_tuple().digits)
        if digits <= EXCEL_DIGITS:
            # Excel cells are doubles; a decimal of at most 15 significant digits survives
            # the trip to a double and back unchanged.
            return float(value)  # float-ok: checked above to be exact as a double
        return amounts.to_text(value)
    if isinstance(value, datetime):
        return value.astimezone(zone).replace(tzinfo=None)
    return value


def write_xlsx(
    sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]],
    path: str,
    zone: tzinfo,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write each (title, columns, rows) as a sheet; returns the number of rows written."""
    try:
        from openpyxl import Workbook
    except ModuleNotFoundError:
        raise ConfigError(f"XLSX export needs openpyxl: {REPORT_EXTRA_HINT}.") from None
    workbook = Workbook(write_only=True)  # rows go straight to disk: constant memory
    count = 0
    zone_name = str(zone)
    for title, columns, rows in sheets:
        sheet = workbook.create_sheet(title)
        sheet.append([f"{c} ({zone_name})" if c == "taken_at" else c for c in columns])
        for row in rows:
            sheet.append([excel_value(v, zone) for v in row])
            count += 1
            if progress is not None and count % 10000 == 0:
                progress(10000)
    workbook.save(path)
    if progress is not None:
        progress(count % 10000)
    return count
