"""Commands about the recording itself: `status` (a health check) and `gaps`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from recorder.cli.group import State, cli, pass_state
from recorder.cli.options import emit, format_option, reading, selection, selection_options

if TYPE_CHECKING:
    from recorder.config import Settings
    from recorder.store.database import Database

#: The id of an account that is configured but has never been recorded: it has no rows.
NEVER_RECORDED = -1


def _accounts_to_check(db: Database, settings: Settings, names: tuple[str, ...]) -> dict[str, int]:
    """The accounts to check: those named, else the configured ones, else all recorded."""
    from recorder.store import history

    if names:
        return history.resolve_accounts(db, names)
    recorded = history.resolve_accounts(db)
    configured = [a.name for a in settings.accounts]
    if configured:
        return {name: recorded.get(name, NEVER_RECORDED) for name in configured}
    return recorded


@cli.command()
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="NAME",
    help="Only this account (repeatable). Default: the configured accounts.",
)
@format_option("table", "json", default="table")
@pass_state
def status(state: State, accounts: tuple[str, ...], output_format: str) -> None:
    """Is recording healthy? Per account: last success and its age, last error, errors in
    the last 24 h, snapshots; the database's size and schema revision; polls waiting in
    the outage journal.

    Exits 1 when any account's last success is older than three intervals (or it has
    none), or polls wait for the database: a health check for cron or a container.
    """
    from recorder import app
    from recorder.polling import journal
    from recorder.reports import health

    settings = state.settings(quiet=True)
    with reading(state) as db:
        report = health.status_report(
            db,
            _accounts_to_check(db, settings, accounts),
            settings.interval_seconds,
            datetime.now(UTC),
            journal.waiting(app.journal_path(settings, db)),
        )
    if output_format == "json":
        click.echo(health.status_json(report))
    else:
        for line in health.status_lines(report):
            click.echo(line)
    if not report.healthy:
        sys.exit(1)


@cli.command()
@selection_options(currencies=False)
@format_option("table", "csv", "json", default="table")
@pass_state
def gaps(
    state: State,
    accounts: tuple[str, ...],
    zone_name: str,
    since: str | None,
    until: str | None,
    output_format: str,
) -> None:
    """Where the history has holes: every stretch longer than two intervals without a
    successful snapshot, per account, from the database alone.

    With [retention], thinned-out periods older than keep_all_days look like gaps;
    by default only the period since then is checked.
    """
    from recorder.reports import health

    settings = state.settings(quiet=True)
    now = datetime.now(UTC)
    with reading(state) as db:
        chosen = selection(db, accounts, (), zone_name, since, until)
        start = chosen.since
        if start is None and settings.retention.keep_all_days is not None:
            start = now - timedelta(days=settings.retention.keep_all_days)
        found = health.gaps(
            db, chosen.accounts, settings.interval_seconds, start, chosen.until, now
        )
    rows = [
        (g.account, g.start, g.end, health.human(g.length), int(g.length.total_seconds()))
        for g in found
    ]
    emit(("account", "from", "until", "length", "seconds"), rows, output_format, chosen.zone)
    if output_format == "table":
        click.echo(
            f"{len(found)} gap(s) longer than {2 * settings.interval_seconds:g} s"
            + (" (until: still open)" if any(g.end is None for g in found) else "")
            + "."
        )
