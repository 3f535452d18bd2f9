"""The HTML report: one self-contained file, made to be forwarded.

It shows the value at the start and the end of the period (every selected account
counted, each at its last known holdings), the total value over time, the value held in
each currency over time, the allocation at the end, the statement of the period, a
section per account when there are several, the holdings at the end and the changes.
Numbers are written for reading: values to the cent, amounts to their own precision, with
thousands separators. Nothing is fetched when it is opened: no scripts, fonts or images.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from recorder import amounts, timespec
from recorder.reports import charts, formats, gather, statement
from recorder.store import history
from recorder.store.database import Database
from recorder.values import Holding, StoredSnapshot

#: Charts are drawn from at most this many points per account; longer histories are
#: thinned to the holdings at the end of each hour, day or week.
MAX_POINTS = 1500
MAX_CHANGES = 2000
#: Accounts beyond this many get no section of their own (the statement lists them all).
MAX_ACCOUNT_SECTIONS = 20
ZERO = Decimal(0)

Points = dict[str, float]  # currency -> value, as a chart coordinate


@dataclass(frozen=True)
class Series:
    """The value each account held in each currency at each time, carried from its last
    snapshot; the first time is the start of the period, with every account's opening.
    Chart coordinates only: the figures shown as numbers come from the statement."""

    times: list[datetime]
    accounts: dict[str, dict[str, list[float]]]

    def per_account(self) -> dict[str, list[float]]:
        """Each account's total value at each time."""
        return {
            name: [sum(point) for point in zip(*currencies.values(), strict=True)]
            if currencies
            else [0.0] * len(self.times)
            for name, currencies in self.accounts.items()
        }

    def per_currency(self) -> dict[str, list[float]]:
        """The value held in each currency at each time, all accounts together."""
        found: dict[str, list[float]] = {}
        for currencies in self.accounts.values():
            for currency, values in currencies.items():
                if currency in found:
                    found[currency] = [a + b for a, b in zip(found[currency], values, strict=True)]
                else:
                    found[currency] = list(values)
        return dict(sorted(found.items()))


def choose_snapshots(
    db: Database, selection: gather.Selection, now: datetime, every: str | None = None
) -> list[StoredSnapshot]:
    """The snapshots to chart: all of them when few, else (or with `every`) the holdings
    at the end of each period."""
    span = history.time_range(db, selection.account_ids)
    if span is None:
        return []
    since = max(selection.since or span[0], span[0])
    until = min(selection.until or now, span[1])
    if every is None:
        counts = history.count_snapshots(db, selection.account_ids, since, until)
        if counts <= MAX_POINTS * max(1, len(selection.accounts)):
            return history.snapshots_in(db, selection.accounts, since, until)
        seconds = max((until - since).total_seconds(), 1)
        every = "hour" if seconds <= 60 * 86400 else "day" if seconds <= 4 * 365 * 86400 else "week"
    chosen = gather.period_snapshots(db, selection, every, now)
    return list({item.snapshot.snapshot_id: item.snapshot for item in chosen}.values())


def build_series(
    start: datetime,
    end: datetime,
    openings: Mapping[str, Points],
    refs: Sequence[StoredSnapshot],
    holdings: Sequence[Holding],
) -> Series:
    """Every account's values over time: its opening from `start`, then each snapshot's
    holdings until the next one, up to `end`. Unpriced holdings are left out."""
    by_snapshot: dict[int, Points] = {}
    for row in holdings:
        values = by_snapshot.setdefault(row.snapshot_id, {})
        if row.value_usdt is not None:
            values[row.currency] = float(row.value_usdt)  # float-ok: a chart coordinate
    state: dict[str, Points] = dict(openings)
    times, points = [start], [dict(state)]
    for ref in sorted(refs, key=lambda r: (r.taken_at, r.snapshot_id)):
        if start <= ref.taken_at <= end:
            state[ref.account] = by_snapshot.get(ref.snapshot_id, {})
            if ref.taken_at == times[-1]:
                points[-1] = dict(state)  # several snapshots at one moment: one point
            else:
                times.append(ref.taken_at)
                points.append(dict(state))
    if end > times[-1]:  # holdings last until they change: draw the last step to the end
        times.append(end)
        points.append(dict(state))
    accounts: dict[str, dict[str, list[float]]] = {}
    for name in sorted({name for point in points for name in point}):
        held = sorted({c for point in points for c in point.get(name, {})})
        accounts[name] = {c: [point.get(name, {}).get(c, 0.0) for point in points] for c in held}
    return Series(times, accounts)


def _cell(column: str, value: Any, zone: tzinfo) -> tuple[str, str]:
    """(text, class) of one table cell, written for reading."""
    if isinstance(value, Decimal) or (value is None and column in formats.NUMERIC):
        if value is None:
            return ("unpriced" if "value" in column or "price" in column else ""), "num"
        shown = formats.money(value) if "value" in column else formats.quantity(value)
        return shown, "num"
    return formats.text(value, zone, precise=False), ""


def _table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    zone: tzinfo,
    *,
    table_id: str = "",
    strong: Sequence[bool] = (),
) -> str:
    head = "".join(
        f'<th class="{"num" if c in formats.NUMERIC else ""}">{html.escape(_label(c))}</th>'
        for c in columns
    )
    body = []
    for index, row in enumerate(rows):
        cells = [_cell(c, v, zone) for c, v in zip(columns, row, strict=True)]
        tag = ' class="total"' if index < len(strong) and strong[index] else ""
        body.append(
            f"<tr{tag}>"
            + "".join(f'<td class="{k}">{html.escape(t)}</td>' for t, k in cells)
            + "</tr>"
        )
    ident = f' id="{table_id}"' if table_id else ""
    table = f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f"<div class='wide'>{table}</div>"


def _label(column: str) -> str:
    """A column's heading: "opening_value_usdt" -> "opening value" (values are in USDT)."""
    return column.removesuffix("_usdt").replace("_", " ")


def statement_table(result: statement.Statement, zone: tzinfo) -> str:
    """The statement as an HTML table: each account's lines and total, then all accounts."""
    picked = [statement.COLUMNS.index(c) for c in statement.TABLE_COLUMNS]
    rows, strong = [], []
    for row in statement.cells(result):
        shown = [row[i] for i in picked]
        total = row[1] == ""
        if total:
            shown[0] = shown[0] or "all accounts"
            shown[1] = "total"
        rows.append(shown)
        strong.append(total)
    return _table(statement.TABLE_COLUMNS, rows, zone, table_id="statement", strong=strong)


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return (
        "<div class='cards'>"
        + "".join(
            f"<div class='card'>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in items
        )
        + "</div>"
    )


def _change(opening: Decimal, closing: Decimal) -> str:
    difference = amounts.subtract(closing, opening)
    sign = "+" if difference > 0 else ""
    share = f" ({sign}{amounts.ratio(difference, opening):.1%})" if opening else ""
    return f"{sign}{formats.money(difference)} USDT{share}"


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937;
       margin: 2rem auto; max-width: 1100px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #6b7280; margin-top: 0; } .note { color: #6b7280; font-size: .9rem; }
figure { margin: 1rem 0; } figure svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #e5e7eb; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.wide { overflow-x: auto; }
tr.total td { font-weight: 600; border-bottom: 2px solid #d1d5db; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid #e5e7eb; border-radius: 8px; padding: .6rem 1rem; flex: 1 1 12rem; }
.card b { display: block; font-size: 1.25rem; font-variant-numeric: tabular-nums; }
section.account { border-top: 1px solid #e5e7eb; margin-top: 2.5rem; }
"""


def _account_section(
    index: int,
    account: statement.AccountStatement,
    series: Series,
    end_rows: list[tuple[Any, ...]],
    zone: tzinfo,
) -> str:
    name = html.escape(account.account)
    cards = _cards(
        [
            ("Value at the start", f"{formats.money(account.opening_total)} USDT"),
            ("Value at the end", f"{formats.money(account.closing_total)} USDT"),
            ("Change", _change(account.opening_total, account.closing_total)),
        ]
    )
    chart = charts.stacked(
        series.times,
        series.accounts.get(account.account, {}),
        f"{account.account}: value per currency (USDT)",
        zone,
        palette=list(series.per_currency()),
    )
    holdings = _table(gather.HOLDING_COLUMNS, end_rows, zone)
    return (
        f"<section class='account' id='account-{index}'><h2>Account {name}</h2>{cards}"
        f"<figure id='account-{index}-holdings'>{chart}</figure>"
        f"<h3>Holdings at the end of the period</h3>{holdings}</section>"
    )


def render(
    db: Database,
    selection: gather.Selection,
    now: datetime,
    result: statement.Statement | None = None,
    *,
    every: str | None = None,
    title: str | None = None,
) -> str:
    """The whole report as one HTML document, for the selection's range (or the period of
    the statement `result`)."""
    zone = selection.zone
    result = result or statement.build(db, selection, statement.covering(selection, now))
    period = result.period
    end = min(period.end - timespec.TICK, now)  # the last moment in the period
    span = history.time_range(db, selection.account_ids)
    start = period.start or (span[0] if span else end)
    refs = choose_snapshots(db, selection, now, every)
    openings = {
        account.account: {
            line.currency: float(line.opening_value)  # float-ok: a chart coordinate
            for line in account.lines
            if line.opening_value is not None and line.opening_amount
        }
        for account in result.accounts
    }
    series = build_series(
        start, end, openings, refs, history.holdings_of(db, refs, selection.currencies)
    )
    at_end = gather.holdings_at(db, selection, end)
    end_rows = {e.account: [formats.holding_cells(h) for h in e.holdings] for e in at_end}
    change_rows = list(gather.changes(db, selection))
    accounts = ", ".join(selection.accounts) or "no accounts"
    title = title or f"CoinW balances: {accounts}"
    cards = _cards(
        [
            ("Value at the start", f"{formats.money(result.opening_total)} USDT"),
            ("Value at the end", f"{formats.money(result.closing_total)} USDT"),
            ("Change", _change(result.opening_total, result.closing_total)),
            ("Changes logged", f"{len(change_rows):,}"),
        ]
    )
    unpriced = sorted({c for account in result.accounts for c in account.unpriced})
    notes = []
    if unpriced:
        notes.append(f"Unpriced at capture time, not counted in values: {', '.join(unpriced)}.")
    for account in result.accounts:
        if account.first_recorded and account.opening.taken_at > start:
            shown = timespec.show(account.opening.taken_at, zone, precise=False)
            notes.append(
                f"{account.account} was first recorded at {shown}; its first snapshot is its "
                "opening, counted from the start."
            )
    if len(change_rows) > MAX_CHANGES:
        notes.append(
            f"Showing the latest {MAX_CHANGES:,} of {len(change_rows):,} changes; "
            "`recorder changes` lists them all."
        )
    if len(result.accounts) > MAX_ACCOUNT_SECTIONS:
        notes.append(f"Sections are shown for the first {MAX_ACCOUNT_SECTIONS} accounts.")
    closing_values: dict[str, Decimal] = {}
    for line in result.lines:
        if line.closing_value:
            closing_values[line.currency] = closing_values.get(line.currency, ZERO)
            closing_values[line.currency] = amounts.add(
                closing_values[line.currency], line.closing_value
            )
    if series.accounts and len(series.times) > 1:
        several = len(series.accounts) > 1
        charts_html = (
            "<figure id='total-value'>"
            + charts.stacked(
                series.times,
                series.per_account()
                if several
                else {"total": series.per_account()[next(iter(series.accounts))]},
                "Total value (USDT at capture time)" + (", per account" if several else ""),
                zone,
            )
            + "</figure><figure id='holdings'>"
            + charts.stacked(series.times, series.per_currency(), "Value per currency (USDT)", zone)
            + "</figure><h2>Allocation at the end of the period</h2><figure id='allocation'>"
            + charts.allocation(closing_values, "Value per currency at the end (USDT)")
            + "</figure>"
        )
    else:
        charts_html = "<p>No snapshots in this period.</p>"
    sections = ""
    if len(result.accounts) > 1:
        sections = "".join(
            _account_section(i, account, series, end_rows.get(account.account, []), zone)
            for i, account in enumerate(result.accounts[:MAX_ACCOUNT_SECTIONS], 1)
        )
    all_end_rows = [row for rows in end_rows.values() for row in rows]
    shown_changes = [formats.change_cells(c) for c in reversed(change_rows[-MAX_CHANGES:])]
    note_html = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    shown_start = html.escape(timespec.show(start, zone, precise=False))
    shown_end = html.escape(timespec.show(end, zone, precise=False))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">From {shown_start} to {shown_end} ({html.escape(str(zone))}). Values are in
USDT at the prices recorded with each snapshot; an account's holdings count until its next
snapshot.</p>
{cards}
{charts_html}
{note_html}
<h2>Statement</h2>
<p class="note">Opening: the holdings in effect at the start; closing: at the end.
Opening + increases - decreases = closing on every line.</p>
{statement_table(result, zone)}
{sections}
<h2>Holdings at the end of the period</h2>
{_table(gather.HOLDING_COLUMNS, all_end_rows, zone, table_id="holdings-at-end")}
<h2>Changes in the period</h2>
{_table(gather.CHANGE_COLUMNS, shown_changes, zone, table_id="changes")}
<p class="note">Generated by recorder at {html.escape(timespec.show(now, zone, precise=False))}.
</p>
</body></html>
"""
