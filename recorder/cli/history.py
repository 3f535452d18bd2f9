"""Commands that answer questions about the history: `at`, `history`, `changes`, `export`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from recorder.cli.group import State, cli, pass_state
from recorder.cli.options import (
    emit,
    format_option,
    progress,
    reading,
    selection,
    selection_options,
    write_text,
)
from recorder.errors import InputError


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
    """What every account held, and its value, as of WHEN (default: now).

    WHEN is a date (its end, in --tz), an ISO 8601 time, or an age such as 7d.
    Example: recorder at 2026-03-31 --tz Europe/Berlin
    """
    from recorder import timespec
    from recorder.reports import formats, gather

    with reading(state) as db:
        chosen = selection(db, accounts, currencies, zone_name)
        moment = timespec.parse_moment(when, chosen.zone, datetime.now(UTC), end_of_day=True)
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
    help="One row set per period: the last snapshot of each (in --tz). Default: every snapshot.",
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
    """Balances over time: every snapshot, or the last of each hour, day, week or month."""
    from recorder.reports import formats, gather

    with reading(state) as db:
        chosen = selection(db, accounts, currencies, zone_name, since, until)
        rows = (
            formats.history_cells(period, row)
            for period, row in gather.balances_over_time(db, chosen, every, datetime.now(UTC))
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
    output: str,
) -> None:
    """Export the history: every balance row as CSV, JSON Lines or XLSX, or an HTML report.

    CSV and JSON Lines stream in constant memory whatever the size. The HTML report is one
    self-contained file with charts of the total value and of the holdings per currency.
    """
    from recorder.reports import formats, gather, xlsx

    if output == "-" and output_format == "xlsx":
        raise InputError("XLSX cannot go to standard output; give a file with -o.")
    with reading(state) as db:
        chosen = selection(db, accounts, currencies, zone_name, since, until)
        if output_format == "html":
            from recorder.reports import html

            document = html.render(db, chosen, datetime.now(UTC))
            write_text(output, lambda out: out.write(document))
            if output != "-":
                click.echo(f"Wrote {output}", err=True)
            return
        with progress(lambda: gather.count_rows(db, chosen), output) as step:
            batches = gather.export_batches(db, chosen)
            if output_format == "xlsx":
                change_rows = (formats.change_cells(c) for c in gather.changes(db, chosen))
                xlsx.write_xlsx(
                    [
                        ("balances", gather.EXPORT_COLUMNS, formats.typed_cells(batches)),
                        ("changes", gather.CHANGE_COLUMNS, change_rows),
                    ],
                    output,
                    chosen.zone,
                    step,
                )
            elif output_format == "csv":
                write_text(output, lambda out: gather.write_export_csv(db, chosen, out, step))
            else:
                write_text(
                    output,
                    lambda out: formats.write_jsonl_batches(
                        gather.EXPORT_COLUMNS, batches, out, step
                    ),
                )
    if output != "-":
        click.echo(f"Wrote {output}", err=True)
