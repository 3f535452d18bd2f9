"""The HTML report: one self-contained file with charts drawn by matplotlib as inline SVG.

It shows the total value over time, the value held in each currency over time, the
holdings at the end of the period and the changes within it. Nothing is fetched when it is
opened: no scripts, fonts or images from the network.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from recorder import amounts, timespec
from recorder.errors import ConfigError
from recorder.reports import formats, gather
from recorder.store import history
from recorder.store.database import Database
from recorder.values import Holding, StoredSnapshot

#: Charts are drawn from at most this many points per account; longer histories are
#: thinned to the last snapshot of each hour, day or week.
MAX_POINTS = 1500
MAX_CHANGES = 2000


@dataclass(frozen=True)
class Series:
    """Points of the charts, carried forward across accounts at every snapshot time."""

    times: list[datetime]
    totals: list[Decimal]
    per_currency: dict[str, list[Decimal]]
    unpriced: set[str]


def choose_snapshots(
    db: Database, selection: gather.Selection, now: datetime
) -> list[StoredSnapshot]:
    """The snapshots to chart: all of them when few, else the last of each period."""
    span = history.time_range(db, selection.account_ids)
    if span is None:
        return []
    since = max(selection.since or span[0], span[0])
    until = min(selection.until or now, span[1])
    seconds = max((until - since).total_seconds(), 1)
    counts = history.count_snapshots(db, selection.account_ids, since, until)
    if counts <= MAX_POINTS * max(1, len(selection.accounts)):
        return history.snapshots_in(db, selection.accounts, since, until)
    every = "hour" if seconds <= 60 * 86400 else "day" if seconds <= 4 * 365 * 86400 else "week"
    return [snapshot for _, snapshot in gather.period_snapshots(db, selection, every, now)]


def build_series(refs: Sequence[StoredSnapshot], holdings: Sequence[Holding]) -> Series:
    """Portfolio totals and per-currency values at each snapshot time, across accounts."""
    by_snapshot: dict[int, list[Holding]] = {}
    for row in holdings:
        by_snapshot.setdefault(row.snapshot_id, []).append(row)
    currencies = sorted({h.currency for h in holdings if h.value_usdt is not None})
    unpriced = {h.currency for h in holdings if h.value_usdt is None}
    current: dict[str, dict[str, Decimal]] = {}  # account -> currency -> value
    times: list[datetime] = []
    totals: list[Decimal] = []
    per_currency: dict[str, list[Decimal]] = {c: [] for c in currencies}
    for ref in sorted(refs, key=lambda r: (r.taken_at, r.snapshot_id)):
        current[ref.account] = {
            h.currency: h.value_usdt
            for h in by_snapshot.get(ref.snapshot_id, [])
            if h.value_usdt is not None
        }
        times.append(ref.taken_at)
        total = Decimal(0)
        for currency in currencies:
            value = Decimal(0)
            for values in current.values():
                value = amounts.add(value, values.get(currency, Decimal(0)))
            per_currency[currency].append(value)
            total = amounts.add(total, value)
        totals.append(total)
    return Series(times, totals, per_currency, unpriced)


def _figure_svg(draw: Any, zone: tzinfo) -> str:
    try:
        import matplotlib
        import matplotlib.dates as mdates
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise ConfigError(f"HTML reports need matplotlib: {formats.REPORT_EXTRA_HINT}.") from None
    matplotlib.rcParams["svg.hashsalt"] = "recorder"  # stable ids: reproducible files
    figure = Figure(figsize=(10, 3.6), dpi=96, layout="constrained")
    axes = figure.add_subplot()
    draw(axes)
    locator = mdates.AutoDateLocator(tz=zone)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=zone))
    axes.grid(True, alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _floats(values: Sequence[Decimal]) -> list[float]:
    return [float(v) for v in values]  # float-ok: chart coordinates, not stored amounts


def total_chart(series: Series, zone: tzinfo) -> str:
    """SVG line chart of the total value over time."""

    def draw(axes: Any) -> None:
        axes.plot(
            series.times,
            _floats(series.totals),
            color="#2563eb",
            linewidth=1.6,
            drawstyle="steps-post",
        )
        axes.set_ylabel("USDT")
        axes.set_title("Total value (USDT at capture time)", loc="left", fontsize=11)

    return _figure_svg(draw, zone)


def currency_chart(series: Series, zone: tzinfo) -> str:
    """SVG stacked area chart of the value held in each currency over time."""

    def draw(axes: Any) -> None:
        names = list(series.per_currency)
        if names:
            axes.stackplot(
                series.times,
                *[_floats(series.per_currency[c]) for c in names],
                labels=names,
                step="post",
                alpha=0.85,
            )
            axes.legend(loc="upper left", fontsize=8, ncols=min(len(names), 6), frameon=False)
        axes.set_ylabel("USDT")
        axes.set_title("Holdings per currency (value in USDT)", loc="left", fontsize=11)

    return _figure_svg(draw, zone)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], zone: tzinfo) -> str:
    head = "".join(
        f'<th class="{"num" if c in formats.NUMERIC else ""}">{html.escape(c)}</th>'
        for c in columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if c in formats.NUMERIC else ""}">'
            f"{html.escape(formats.text(v, zone, precise=False))}</td>"
            for c, v in zip(columns, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937;
       margin: 2rem auto; max-width: 1100px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #6b7280; margin-top: 0; } .note { color: #6b7280; font-size: .9rem; }
figure { margin: 1rem 0; } figure svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e5e7eb; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid #e5e7eb; border-radius: 8px; padding: .6rem 1rem; min-width: 12rem; }
.card b { display: block; font-size: 1.25rem; }
"""


def render(
    db: Database, selection: gather.Selection, now: datetime, title: str | None = None
) -> str:
    """The whole report as one HTML document."""
    zone = selection.zone
    refs = choose_snapshots(db, selection, now)
    holdings = history.holdings_of(db, refs, selection.currencies)
    series = build_series(refs, holdings)
    end = selection.until or now
    if series.times and end > series.times[-1]:
        # Holdings last until they change: draw the last step up to the end of the period.
        series.times.append(end)
        series.totals.append(series.totals[-1])
        for values in series.per_currency.values():
            values.append(values[-1])
    at_end = gather.holdings_at(db, selection, end)
    change_rows = list(gather.changes(db, selection))
    shown_changes = change_rows[-MAX_CHANGES:]
    accounts = ", ".join(selection.accounts) or "no accounts"
    start = selection.since or (series.times[0] if series.times else end)
    title = title or f"CoinW balances: {accounts}"
    end_rows = [formats.holding_cells(h) for entry in at_end for h in entry.holdings]
    first_total = series.totals[0] if series.totals else None
    last_total = series.totals[-1] if series.totals else None
    cards = [
        ("Total value at the end", f"{formats.text(last_total, zone) or '-'} USDT"),
        ("At the start", f"{formats.text(first_total, zone) or '-'} USDT"),
        ("Snapshots charted", str(len(refs))),
        ("Changes in the period", str(len(change_rows))),
    ]
    unpriced_note = (
        f"<p class='note'>Unpriced at capture time, not counted in values: "
        f"{html.escape(', '.join(sorted(series.unpriced)))}.</p>"
        if series.unpriced
        else ""
    )
    changes_note = (
        f"<p class='note'>Showing the latest {MAX_CHANGES} of {len(change_rows)} changes; "
        "`recorder changes` lists them all.</p>"
        if len(change_rows) > MAX_CHANGES
        else ""
    )
    charts = (
        f"<figure id='total-value'>{total_chart(series, zone)}</figure>"
        f"<figure id='holdings'>{currency_chart(series, zone)}</figure>"
        if series.times
        else "<p>No snapshots in this period.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(timespec.show(start, zone, precise=False))} to
{html.escape(timespec.show(end, zone, precise=False))}
 ({html.escape(str(zone))}). Values are in USDT at the prices recorded with each snapshot.</p>
<div class="cards">{
        "".join(
            f"<div class='card'>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in cards
        )
    }</div>
{charts}
{unpriced_note}
<h2>Holdings at the end of the period</h2>
{_table(gather.HOLDING_COLUMNS, end_rows, zone)}
<h2>Changes in the period</h2>
{changes_note}
{_table(gather.CHANGE_COLUMNS, [formats.change_cells(c) for c in reversed(shown_changes)], zone)}
<p class="note">Generated by recorder at {html.escape(timespec.show(now, zone, precise=False))}.
</p>
</body></html>
"""
