"""`recorder statement`: opening and closing holdings and values of a period, with the
increases and decreases in between, per account and currency."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import click

from recorder.cli.group import State, cli, pass_state
from recorder.cli.options import format_option, reading, selection, selection_options
from recorder.errors import InputError, RecorderError


@cli.command()
@selection_options()
@click.option("--month", metavar="YYYY-MM", help="A calendar month in --tz, e.g. 2026-03.")
@click.option("--quarter", metavar="YYYY-QN", help="A calendar quarter in --tz, e.g. 2026-Q1.")
@click.option("--year", metavar="YYYY", help="A calendar year in --tz, e.g. 2026.")
@format_option("table", "csv", "json", "xlsx", "html", default="table")
@click.option(
    "-o",
    "--output",
    "output",
    default="-",
    metavar="FILE",
    help="File to write (default: standard output; xlsx and html need a file).",
)
@pass_state
def statement(
    state: State,
    accounts: tuple[str, ...],
    currencies: tuple[str, ...],
    zone_name: str,
    since: str | None,
    until: str | None,
    month: str | None,
    quarter: str | None,
    year: str | None,
    output_format: str,
    output: str,
) -> None:
    """A statement of a period: per account and currency, the opening amount and value,
    the increases and decreases from the change log, the net change, and the closing
    amount and value; each account's and all accounts' opening and closing value.

    The opening is the holdings in effect at the start (valued at the prices recorded with
    that snapshot); an account first recorded within the period opens with its first
    snapshot. Exact: opening + increases - decreases = closing on every row.
    Example: recorder statement --month 2026-03 --tz Europe/Berlin --format xlsx -o march.xlsx
    """
    from recorder.reports import files, formats
    from recorder.reports import statement as statements

    if output == "-" and output_format in ("xlsx", "html"):
        raise InputError(f"A {output_format.upper()} statement needs a file; give one with -o.")
    now = datetime.now(UTC)
    with reading(state) as db:
        chosen = selection(db, accounts, currencies, zone_name, since, until)
        period = statements.period_of(chosen, month, quarter, year, now)
        result = statements.build(db, chosen, period)
        zone = chosen.zone
        if output_format == "html":
            from recorder.reports import html

            with files.text_output(output) as out:
                out.write(html.render(db, statements.narrowed(chosen, period), now, result))
        elif output_format == "xlsx":
            from recorder.reports import xlsx

            with files.replacing(output) as path:
                sheet = ("statement", statements.COLUMNS, statements.cells(result))
                xlsx.write_xlsx([sheet], str(path), zone)
        else:
            if output_format == "json":
                document = formats.statement_json(result, zone) + "\n"
            elif output_format == "csv":
                buffer = io.StringIO()
                formats.write_csv(statements.COLUMNS, statements.cells(result), buffer, zone)
                document = buffer.getvalue()
            else:
                table = formats.render_table(
                    statements.TABLE_COLUMNS, statements.table_cells(result), zone
                )
                summary = formats.statement_summary(result, zone)
                heading = formats.statement_heading(period, zone)
                document = "\n".join([heading, table, *summary]) + "\n"
            if output == "-":
                click.echo(document, nl=False)
            else:
                with files.text_output(output) as out:
                    out.write(document)
    if output != "-":
        click.echo(f"Wrote {output}", err=True)
    if result.unreconciled:
        named = ", ".join(f"{line.account} {line.currency}" for line in result.unreconciled)
        raise RecorderError(
            f"The statement does not add up for {named}: the change log disagrees with the "
            "snapshots (opening + increases - decreases differs from the closing); "
            "`recorder changes` lists what was logged."
        )
