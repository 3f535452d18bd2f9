"""Turning answers into text: aligned tables, CSV, JSON, JSON Lines. Pure: no I/O but the
stream written to. Amounts are written exactly, as plain decimal strings (in JSON too,
because JSON numbers are floats to most readers); times are shown in the requested zone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import IO, Any

from recorder import amounts, timespec
from recorder.reports.gather import AccountHoldings, change_kind
from recorder.values import ChangeEntry, Holding

REPORT_EXTRA_HINT = "pip install 'coinw-recorder[report]'"


# -- cells ---------------------------------------------------------------------------


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
