"""What the history commands share: their options, opening the database to read it, the
selection of accounts, currencies and times, and writing output."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from recorder.cli.group import State
from recorder.errors import InputError

if TYPE_CHECKING:
    from recorder.reports.gather import Selection
    from recorder.store.database import Database

F = TypeVar("F", bound=Callable[..., Any])


def selection_options(*, with_range: bool = True, currencies: bool = True) -> Callable[[F], F]:
    """--account, --currency, --tz (and --since, --until) shared by the history commands."""

    def decorate(func: F) -> F:
        options = [
            click.option(
                "--account",
                "accounts",
                multiple=True,
                metavar="NAME",
                help="Only this account (repeatable). Default: all.",
            )
        ]
        if currencies:
            options.append(
                click.option(
                    "--currency",
                    "currencies",
                    multiple=True,
                    metavar="CUR",
                    help="Only this currency (repeatable). Default: all.",
                )
            )
        options.append(
            click.option(
                "--tz",
                "zone_name",
                default="UTC",
                show_default=True,
                metavar="ZONE",
                help="Time zone for dates and shown times, e.g. Europe/Berlin.",
            )
        )
        if with_range:
            options += [
                click.option(
                    "--since",
                    metavar="WHEN",
                    help="From this moment: 2026-03-31, an ISO 8601 time, or 7d / 24h ago.",
                ),
                click.option(
                    "--until", metavar="WHEN", help="Up to this moment (a date means its end)."
                ),
            ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def format_option(*choices: str, default: str) -> Callable[[F], F]:
    """--format with the given choices."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        help="Output format.",
    )


@contextlib.contextmanager
def reading(state: State, *, read_only: bool = True) -> Iterator[Database]:
    """The database for a command that reads the history (or, not `read_only`, thins it
    out). It must exist at the current schema: reading never creates or migrates a
    database (SchemaError says what to do), nor changes a byte of it."""
    from recorder.store import migrate
    from recorder.store.database import Database

    settings = state.settings(quiet=True)
    db = Database(settings.database_url, read_only=read_only)
    try:
        migrate.check_schema(db)
        yield db
    finally:
        db.close()


def selection(
    db: Database,
    accounts: Sequence[str],
    currencies: Sequence[str],
    zone_name: str,
    since: str | None = None,
    until: str | None = None,
) -> Selection:
    """What a history command looks at, from its options."""
    from recorder import timespec
    from recorder.reports.gather import Selection
    from recorder.store import history

    zone = timespec.parse_zone(zone_name)
    now = datetime.now(UTC)
    return Selection(
        accounts=history.resolve_accounts(db, accounts),
        currencies=history.resolve_currencies(db, currencies),
        since=timespec.parse_moment(since, zone, now, option="--since") if since else None,
        until=timespec.parse_moment(until, zone, now, end_of_day=True, option="--until")
        if until
        else None,
        zone=zone,
    )


def emit(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], output_format: str, zone: tzinfo
) -> None:
    """Rows to standard output as a table, CSV or JSON."""
    from recorder.reports import formats

    if output_format == "csv":
        formats.write_csv(columns, rows, sys.stdout, zone)
    elif output_format == "json":
        formats.write_json_array(columns, rows, sys.stdout, zone)
    else:
        click.echo(formats.render_table(columns, rows, zone))


def write_text(output: str, write: Callable[[IO[str]], object]) -> None:
    """Write to the file `output` (or standard output for '-')."""
    if output == "-":
        write(sys.stdout)
        return
    try:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            write(handle)
    except OSError as error:
        raise InputError(f"Cannot write {output!r} ({error.strerror}).") from None


@contextlib.contextmanager
def progress(
    total: Callable[[], int], output: str, label: str = "Exporting", finished: str | None = None
) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on a terminal's stderr; silent when stderr is not a terminal. With
    `finished`, that line is shown once the bar is full, for work that follows it."""
    if not sys.stderr.isatty() or output == "-":
        yield None
        return
    with click.progressbar(length=total(), label=label, file=sys.stderr) as bar:
        if finished is None:
            yield bar.update
            return
        said, done = False, 0

        def step(count: int) -> None:
            nonlocal said, done
            bar.update(count)
            done += count
            if not said and done >= (bar.length or 0):
                said = True
                bar.render_finish()
                bar.hidden = True  # the bar is done: nothing more to draw on exit
                click.echo(finished, err=True)

        yield step
