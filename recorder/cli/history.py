"""Commands that answer questions about the history: `at`, `history`, `changes`, `export`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import click

from recorder.cli.group import State, cli, pass_state
from recorder.cli.options import (
    emit,
    format_option,
    progress,
    reading,
    selection,
    selection_options,
)
from recorder.errors import InputError

if TYPE_CHECKING:
    from recorder.reports.gather import Selection
    from recorder.store.database import Database


@cli.command()
@click.argument("when", default="now")
@selection_options(with_range=False)
@format_option("table", "csv", "json", default="table")
@pass_state
def at(
    state: State,
    when: str,
    accounts: tuple[str, ...],
    currencies: tuple[str, ...],
    zone_name: str,
    output_format: str,
) -> None:
    """What every account held, and its value, as of WHEN (default: now, or the newest
    snapshot if this clock is behind it).

    WHEN is a date (its end, in --tz), an ISO 8601 time, or an age such as 7d.
    Example: recorder at 2026-03-31 --tz Europe/Berlin
    """
    from recorder import timespec
    from recorder.reports import formats, gather

    with reading(state) as db:
        chosen = selection(db, accounts, currencies, zone_name)
        moment = timespec.parse_moment(when, chosen.zone, datetime.now(UTC), end_of_day=True)
        if when == "now":
            moment = gather.not_before_the_newest(db, chosen, moment)
        result = gather.holdings_at(db, chosen, moment)
    zone = chosen.zone
    rows = [formats.holding_cells(h) for entry in result for h in entry.holdings]
    if output_format == "json":
        click.echo(formats.holdings_json(result, moment, zone))
    elif output_format == "csv":
        formats.write_csv(gather.HOLDING_COLUMNS, rows, sys.stdout, zone)
    else:
        click.echo(f"As of {timespec.show(moment, zone, precise=False)}")
        click.echo(formats.render_table(gather.HOLDING_COLUMNS, rows, zone))
        for entry in result:
            click.echo(formats.holdings_summary(entry, zone))


@cli.command()
@selection_options()
@click.option(
    "--every",
    type=click.Choice(["hour", "day", "week", "month"]),
    help="One row set per account and period (in --tz): the holdings at its end, carried from "
    "an earlier snapshot when it has none. Default: every snapshot.",
)
@format_option("table", "csv", "json", default="table")
@pass_state
def history(
    state: State,
    accounts: tuple[str, ...],
    currencies: tuple[str, ...],
    zone_name: str,
    since: str | None,
    until: str | None,
    every: str | None,
    output_format: str,
) -> None:
    """Balances over time: every snapshot, or the holdings at the end of each hour, day,
    week or month, carried into periods without a snapshot (`carried` says so; `taken_at`
    is the snapshot they come from)."""
    from recorder.reports import formats, gather

    with reading(state) as db:
        chosen = selection(db, accounts, currencies, zone_name, since, until)
        rows = (
            formats.history_cells(*row)
            for row in gather.balances_over_time(db, chosen, every, datetime.now(UTC))
        )
        emit(gather.HISTORY_COLUMNS, rows, output_format, chosen.zone)


@cli.command()
@selection_options()
@format_option("table", "csv", "json", default="table")
@pass_state
def changes(
    state: State,
    accounts: tuple[str, ...],
    currencies: tuple[str, ...],
    zone_name: str,
    since: str | None,
    until: str | None,
    output_format: str,
) -> None:
    """The change log: every currency that appeared, changed or disappeared."""
    from recorder.reports import formats, gather

    with reading(state) as db:
        chosen = selection(db, accounts, currencies, zone_name, since, until)
        rows = (formats.change_cells(entry) for entry in gather.changes(db, chosen))
        emit(gather.CHANGE_COLUMNS, rows, output_format, chosen.zone)


@cli.command()
@selection_options()
@format_option("csv", "jsonl", "xlsx", "html", default="csv")
@click.option(
    "--every",
    type=click.Choice(["hour", "day", "week", "month"]),
    help="One row set per account and period, carried like `history --every` (the HTML "
    "report: one chart point per period). Default: every balance row.",
)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    metavar="FILE",
    help="File to write ('-' for standard output, except xlsx).",
)
@pass_state
def export(
    state: State,
    accounts: tuple[str, ...],
    currencies: tuple[str, ...],
    zone_name: str,
    since: str | None,
    until: str | None,
    output_format: str,
    every: str | None,
    output: str,
) -> None:
    """Export the history: every balance row as CSV, JSON Lines or XLSX, or an HTML report.

    CSV and JSON Lines stream in constant memory whatever the size. The XLSX workbook adds
    the statement of the range and the change log. The HTML report is one self-contained
    file with charts, the statement and the changes. A file is written whole or not at all.
    """
    from recorder.reports import files

    if output == "-" and output_format == "xlsx":
        raise InputError("XLSX cannot go to standard output; give a file with -o.")
    with reading(state) as db:
        chosen = selection(db, accounts, currencies, zone_name, since, until)
        if output == "-":
            _export(db, chosen, output_format, every, sys.stdout, None)
            return
        if output_format == "xlsx":
            with files.replacing(output) as path:
                _export(db, chosen, output_format, every, None, str(path), output)
        else:
            with files.text_output(output) as out:
                _export(db, chosen, output_format, every, out, None, output)
    click.echo(f"Wrote {output}", err=True)


def _export(
    db: Database,
    chosen: Selection,
    output_format: str,
    every: str | None,
    out: IO[str] | None,
    path: str | None,
    shown: str = "-",
) -> None:
    """Write the export to the stream `out` (or, for XLSX, the file `path`)."""
    from recorder.reports import formats, gather

    now = datetime.now(UTC)
    if output_format == "html":
        from recorder.reports import html

        assert out is not None
        out.write(html.render(db, chosen, now, every=every))
        return
    if every is not None:
        rows: Iterable[Sequence[Any]] = (
            formats.period_export_cells(*row)
            for row in gather.balances_over_time(db, chosen, every, now)
        )
        _write_rows(db, chosen, output_format, gather.PERIOD_EXPORT_COLUMNS, rows, out, path)
        return
    with progress(lambda: gather.count_rows(db, chosen), shown) as step:
        if output_format == "xlsx":
            typed = formats.typed_cells(gather.export_batches(db, chosen))
            _write_rows(db, chosen, "xlsx", gather.EXPORT_COLUMNS, typed, out, path, step)
        elif output_format == "csv":
            assert out is not None
            gather.write_export_csv(db, chosen, out, step)
        else:
            assert out is not None
            batches = gather.export_batches(db, chosen)
            formats.write_jsonl_batches(gather.EXPORT_COLUMNS, batches, out, step)


def _write_rows(
    db: Database,
    chosen: Selection,
    output_format: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    out: IO[str] | None,
    path: str | None,
    step: Callable[[int], None] | None = None,
) -> None:
    """Typed rows as CSV, JSON Lines, or an XLSX workbook with the statement and changes."""
    from recorder.reports import formats, gather, statement, xlsx

    if output_format == "xlsx":
        assert path is not None
        summary = statement.build(db, chosen, statement.covering(chosen, datetime.now(UTC)))
        change_rows = (formats.change_cells(c) for c in gather.changes(db, chosen))
        sheets = [
            ("statement", statement.COLUMNS, statement.cells(summary)),
            ("balances", columns, rows),
            ("changes", gather.CHANGE_COLUMNS, change_rows),
        ]
        xlsx.write_xlsx(sheets, path, chosen.zone, step)
    elif output_format == "csv":
        assert out is not None
        formats.write_csv(columns, rows, out, chosen.zone)
    else:
        assert out is not None
        formats.write_jsonl(columns, rows, out, chosen.zone, step)
