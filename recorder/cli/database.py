"""Commands that look after the database: `db upgrade`, `db copy`, `prune`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from recorder.cli.group import State, cli, pass_state
from recorder.cli.options import progress, reading
from recorder.errors import ConfigError

#: How each table's rows are counted in sentences.
ROWS = {
    "accounts": "account",
    "snapshots": "snapshot",
    "balances": "balance row",
    "balance_changes": "change",
    "poll_errors": "poll error",
}
VERIFYING = (
    "Verifying: counting the rows and summing every amount on both sides (this reads both "
    "databases in full)..."
)


def counted(count: int, noun: str) -> str:
    """'1 account', '2,000 accounts'."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


@cli.group()
def db() -> None:
    """Manage the database: schema upgrades, copies into another database."""


@db.command()
@pass_state
def upgrade(state: State) -> None:
    """Create the tables, or migrate an older database to this version's schema."""
    from recorder.store import migrate
    from recorder.store.database import Database

    settings = state.settings()
    database = Database(settings.database_url)
    try:
        before = migrate.current_revision(database)
        migrate.ensure_schema(database)
        after = migrate.current_revision(database)
    finally:
        database.close()
    if before == after:
        click.echo(f"{database.display_url} is already at the latest schema ({after}).")
    else:
        click.echo(f"Upgraded {database.display_url} from {before or 'empty'} to {after}.")


@db.command()
@click.option(
    "--to",
    "target_url",
    required=True,
    metavar="URL",
    help="Database to copy into, e.g. postgresql://user@host/recorder.",
)
@pass_state
def copy(state: State, target_url: str) -> None:
    """Copy the whole history into another database and verify it.

    The usual move when a SQLite file is outgrown: copy it into PostgreSQL, check the
    summary, then point database_url at PostgreSQL. It copies a consistent snapshot of the
    source, even while a recorder writes to it. Safe to run again: it copies every row the
    target lacks, refuses a target whose rows differ from the source's, and checks every
    table's checksum (ids, times, currencies and exact amounts) on both sides.
    """
    from recorder.store import migrate, status
    from recorder.store.copy import copy_history
    from recorder.store.database import Database

    settings = state.settings()
    source, target = Database(settings.database_url), Database(target_url)
    try:
        migrate.check_schema(source)  # a copy never creates (or migrates) its source
        total = lambda: status.count_rows(source)["balances"]  # noqa: E731
        with progress(total, "", label="Copying", finished=VERIFYING) as step:
            result = copy_history(source, target, progress=step)
    finally:
        source.close()
        target.close()
    copied = ", ".join(counted(count, ROWS[table]) for table, count in result.copied.items())
    click.echo(f"Copied {copied} into {target.display_url}.")
    newest = result.newest.isoformat() if result.newest else "none"
    click.echo(
        f"The copy is a consistent snapshot of the source up to snapshot id "
        f"{result.bounds.snapshots:,} (newest taken at {newest}) and poll error id "
        f"{result.bounds.poll_errors:,}."
    )
    click.echo(
        "Verified: "
        + ", ".join(counted(count, ROWS[table]) for table, (count, _) in result.checksums.items())
        + "; ids, times, currencies and exact amounts match on both sides (SHA-256 per table)."
    )
    if result.source_changed:
        click.echo(
            "The source changed during the copy: what it recorded since is not in the target "
            "yet; run the copy again to bring it over."
        )


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option(
    "--vacuum",
    is_flag=True,
    help="Afterwards give the freed space back to the disk (SQLite VACUUM, "
    "PostgreSQL VACUUM, MariaDB OPTIMIZE TABLE; can take a while).",
)
@pass_state
def prune(state: State, dry_run: bool, vacuum: bool) -> None:
    """Thin out old snapshots as [retention] says; the change log is never touched.

    Keeps every snapshot younger than keep_all_days; beyond, the last snapshot of each
    hour (or day), every snapshot that recorded a change, each account's first, and the
    first after a gap, so what an account held at any moment stays exactly answerable.
    """
    from recorder.store import maintenance, retention

    # One sentence says what was done; the per-account log lines are for the daemon.
    settings = state.settings(quiet=True)
    kept = settings.retention
    if kept.keep_all_days is None:
        raise ConfigError(
            "No retention is configured: add [retention] with keep_all_days = 30 (and "
            'keep_one_per = "hour" or "day") to the config file.'
        )
    now = datetime.now(UTC)
    with reading(state, read_only=False) as database:
        count = retention.prune(
            database,
            kept.keep_all_days,
            kept.keep_one_per,
            now,
            interval_seconds=settings.interval_seconds,
            dry_run=dry_run,
        )
        if not dry_run:
            maintenance.analyze(database, vacuum=vacuum)
    before = (now - timedelta(days=kept.keep_all_days)).isoformat(timespec="seconds")
    verb = "Would prune" if dry_run else "Pruned"
    click.echo(
        f"{verb} {counted(count, 'snapshot')} older than {before} (kept: the last of each "
        f"{kept.keep_one_per} and every snapshot that recorded a change); the change log is "
        "untouched."
    )
