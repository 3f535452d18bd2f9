"""Turning answers into text: aligned tables, CSV, JSON, JSON Lines. Pure: no I/O but the
stream written to. Amounts are written exactly, as plain decimal strings (in JSON too,
because JSON numbers are floats to most readers); times are shown in the requested zone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import IO, Any

from recorder import amounts, timespec
from recorder.reports.gather import AccountHoldings, change_kind
from recorder.reports.statement import COLUMNS, Period, Statement, line_cells
from recorder.values import ChangeEntry, Holding

REPORT_EXTRA_HINT = "pip install 'coinw-recorder[report]'"
# Wide enough for any stored value (65 digits): rounding to the cent never overflows.
_WIDE = Context(prec=100)


# -- cells ---------------------------------------------------------------------------


def text(value: Any, zone: tzinfo, *, precise: bool = True) -> str:
    """A value as shown in tables and CSV: exact decimals, times in `zone`, blanks for NULL.
    Times lose their microseconds on screen (precise=False), never in exports."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
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


# -- numbers for reading (the HTML report) -------------------------------------------


def money(value: Decimal | None) -> str:
    """A value to the cent with thousands separators: 49,972.15 (half up); "-" for None."""
    if value is None:
        return "-"
    cents = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP, context=_WIDE)
    return format(abs(cents) if cents.is_zero() else cents, ",f")  # never "-0.00"


def quantity(value: Decimal | None) -> str:
    """An amount or price to its own precision with thousands separators: 1,234.5678."""
    if value is None:
        return "-"
    return format(amounts.canonical(value), ",f")


def holding_cells(row: Holding) -> tuple[Any, ...]:
    """A balance row as HOLDING_COLUMNS."""
    return (row.account, row.taken_at, row.currency, row.amount, row.price_usdt, row.value_usdt)


def history_cells(period: datetime | None, row: Holding, carried: bool) -> tuple[Any, ...]:
    """A balance row of a period as HISTORY_COLUMNS."""
    return (
        row.account,
        period,
        row.taken_at,
        row.currency,
        row.amount,
        row.price_usdt,
        row.value_usdt,
        carried,
    )


def period_export_cells(period: datetime | None, row: Holding, carried: bool) -> tuple[Any, ...]:
    """A balance row of a period as PERIOD_EXPORT_COLUMNS."""
    return (
        row.account,
        period,
        row.taken_at,
        row.snapshot_id,
        row.currency,
        row.amount,
        row.price_usdt,
        row.value_usdt,
        row.available,
        row.on_orders,
        carried,
    )


def change_cells(entry: ChangeEntry) -> tuple[Any, ...]:
    """A change log row as CHANGE_COLUMNS."""
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

NUMERIC = {
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
    "opening_amount",
    "opening_price_usdt",
    "opening_value_usdt",
    "increases",
    "decreases",
    "net_change",
    "closing_amount",
    "closing_price_usdt",
    "closing_value_usdt",
}


def render_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], zone: tzinfo) -> str:
    """An aligned plain-text table; numbers right-aligned so their digits line up."""
    cells = [[text(v, zone, precise=False) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if columns[i] in NUMERIC else v.ljust(w)
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


def write_jsonl(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    out: IO[str],
    zone: tzinfo,
    progress: Callable[[int], None] | None = None,
) -> int:
    """JSON Lines of typed rows (Decimals, times): one object per row."""
    count = 0
    for row in rows:
        values = (json_value(v, zone) for v in row)
        out.write(json.dumps(dict(zip(columns, values, strict=True))) + "\n")
        count += 1
        if progress is not None and count % 10000 == 0:
            progress(10000)
    if progress is not None:
        progress(count % 10000)
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


# -- statements ------------------------------------------------------------------------


def statement_heading(period: Period, zone: tzinfo) -> str:
    """The line above a statement: its period, bounds and zone."""
    start = timespec.show(period.start, zone, precise=False) if period.start else "the start"
    end = timespec.show(period.end, zone, precise=False)
    label = f" {period.label}" if period.label else ""
    return (
        f"Statement{label}: from {start} up to {end} ({zone}); values in USDT at "
        "the prices recorded with each snapshot"
    )


def statement_summary(statement: Statement, zone: tzinfo) -> list[str]:
    """The lines under a statement's table: each account's totals, then all accounts'."""
    lines = []
    for account in statement.accounts:
        opening = timespec.show(account.opening.taken_at, zone, precise=False)
        closing = timespec.show(account.closing.taken_at, zone, precise=False)
        line = f"{account.account}: opening {text(account.opening_total, zone)} USDT "
        line += f"({'first recorded' if account.first_recorded else 'snapshot of'} {opening}), "
        line += f"closing {text(account.closing_total, zone)} USDT (snapshot of {closing})"
        if account.unpriced:
            line += f"; unpriced, not counted: {', '.join(account.unpriced)}"
        lines.append(line)
    lines.append(
        f"all accounts: opening {text(statement.opening_total, zone)} USDT, "
        f"closing {text(statement.closing_total, zone)} USDT"
    )
    lines += [f"{name}: no snapshot before the end of the period." for name in statement.missing]
    return lines


def statement_json(statement: Statement, zone: tzinfo) -> str:
    """A statement as one JSON document; amounts as exact strings."""
    period = statement.period

    def value(v: Any) -> Any:
        return json_value(v, zone)

    document = {
        "period": period.label or None,
        "start": value(period.start),
        "end": value(period.end),
        "zone": str(zone),
        "opening_total_value_usdt": value(statement.opening_total),
        "closing_total_value_usdt": value(statement.closing_total),
        "accounts": [
            {
                "account": account.account,
                "opening_taken_at": value(account.opening.taken_at),
                "first_recorded": account.first_recorded,
                "closing_taken_at": value(account.closing.taken_at),
                "opening_total_value_usdt": value(account.opening_total),
                "closing_total_value_usdt": value(account.closing_total),
                "unpriced": account.unpriced,
                "lines": [
                    {
                        **{
                            column: value(cell)
                            for column, cell in zip(COLUMNS, line_cells(line), strict=True)
                            if column not in ("account", "opening_taken_at", "closing_taken_at")
                        },
                        "reconciled": line.reconciled,
                    }
                    for line in account.lines
                ],
            }
            for account in statement.accounts
        ],
        "without_snapshots": statement.missing,
    }
    return json.dumps(document, indent=2)
