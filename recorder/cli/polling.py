"""Commands that poll: `run` (the daemon), `poll` (once), `demo` (against the simulator)."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from recorder import logs, text
from recorder.cli.group import State, cli, pass_state
from recorder.values import PollOutcome, PollStatus

if TYPE_CHECKING:
    from recorder.store.database import Database


@cli.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics (and /healthz) on this port (overrides [metrics] port).",
)
@pass_state
def run(state: State, metrics_port: int | None) -> None:
    """Run the daemon: poll every account now, then every interval_seconds.

    Stops cleanly on SIGTERM or Ctrl+C after the polls in flight are stored. Under
    systemd (Type=notify) it reports READY, WATCHDOG and STOPPING.
    """
    from recorder import app
    from recorder.cli.health import health_check

    settings = state.settings(keys=True)
    settings.require_accounts()
    port = metrics_port if metrics_port is not None else settings.metrics.port
    with app.running(settings, metrics_port=port, health=health_check(settings)) as recorder:
        if not recorder.daemon.run():
            # A poll thread is stuck (the database does not answer): closing would wait for
            # its connection and Python for the thread, and SIGTERM must end the recorder
            # within 10 s. Everything worth keeping is in the journal already (each entry
            # is synced as it is added).
            logging.shutdown()
            os._exit(0)


@cli.command()
@pass_state
def poll(state: State) -> None:
    """Poll every account once, store the snapshots and print the changes.

    Exits 0 when every account was recorded, 1 when any poll failed.
    """
    from recorder import app

    settings = state.settings(quiet=True, keys=True)
    settings.require_accounts()
    with app.running(settings) as recorder:
        outcomes = recorder.poller.poll_all()
        why = "the database is unavailable"
        if any(outcome.status is PollStatus.BUFFERED for outcome in outcomes):
            why = _why_not_written(recorder.db) or why
    failed = [outcome for outcome in outcomes if not _report(outcome, why)]
    if failed:
        sys.exit(1)


def _why_not_written(db: Database) -> str | None:
    """Why the database took no snapshot, when it is not an outage: a schema newer than
    this recorder, which it never writes into (the upgrade is the fix, not waiting)."""
    from recorder.store import migrate

    revision = migrate.newer_schema(db)
    if revision is None:
        return None
    return (
        f"the database has schema revision {revision}, newer than this recorder knows, so "
        "upgrade the recorder"
    )


def _report(outcome: PollOutcome, why: str) -> bool:
    """Print what one poll did; False when it did not record its account. `why` a
    snapshot kept in the buffer was not written."""
    # Results go to stdout, like a recorded poll's; stderr is the log's alone (with
    # --log-format json a shipper reads every line of it as JSON).
    if outcome.status in (PollStatus.FAILED, PollStatus.SKIPPED):
        said = text.safe(outcome.error).removeprefix(f"{outcome.account}: ")
        click.echo(f"{outcome.account}: poll failed: {said}")
        return False
    if outcome.status is PollStatus.BUFFERED:
        if outcome.journaled:
            where = "waits in the buffer journal and the next run or poll writes it"
        else:
            where = (
                "could not be kept in the buffer journal (see the log above, or buffer_file "
                'is "") and is lost now'
            )
        click.echo(f"{outcome.account}: {why}; the snapshot {where}.")
        return False
    assert outcome.snapshot is not None
    count = len(outcome.snapshot.balances)
    summary = f"{count} currenc{'y' if count == 1 else 'ies'}"
    if not outcome.changes:
        click.echo(f"{outcome.account}: recorded {summary}, no change")
    for change in outcome.changes:
        click.echo(change.describe(outcome.account))
    return True


@cli.command()
@click.option(
    "--database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("demo.db"),
    show_default=True,
    help="SQLite file to record into (an earlier demo there is replaced; any other "
    "database is refused).",
)
@click.option(
    "--polls",
    type=click.IntRange(1, 1000),
    default=6,
    show_default=True,
    help="How many polls to record before stopping.",
)
@click.option(
    "--interval",
    type=click.FloatRange(1, 60),
    default=1.0,
    show_default=True,
    help="Seconds between polls.",
)
@pass_state
def demo(state: State, database: Path, polls: int, interval: float) -> None:
    """Record a simulated CoinW account for a few seconds: no API key needed."""
    from recorder.demo import SQL_TO_TRY, run_demo

    _refuse_a_history(database)
    logs.configure(state.log_level or "INFO")
    path = run_demo(database, polls=polls, interval=interval)
    url = f"RECORDER_DATABASE_URL=sqlite:///{path}"
    click.echo("")
    click.echo(f"Recorded {polls} polls into {path}")
    click.echo("Try it with plain SQL:")
    click.echo(f'  sqlite3 {path} "{SQL_TO_TRY}"')
    click.echo("or ask the recorder what the account held:")
    click.echo(f"  {url} recorder at")
    if not has_report_extra():
        click.echo(
            "and, after installing the report extra (pip install -e '.[report]' in the "
            "checkout you installed from), see the HTML report:"
        )
    else:
        click.echo("and see the HTML report:")
    click.echo(f"  {url} recorder export --format html -o report.html")


def has_report_extra() -> bool:
    """True when the `report` extra (XLSX and HTML exports) is installed."""
    return all(importlib.util.find_spec(name) for name in ("matplotlib", "openpyxl"))


def _refuse_a_history(path: Path) -> None:
    """The demo replaces its file: refuse one that holds anything but an earlier demo."""
    from recorder.demo import DEMO_ACCOUNT, DEMO_RECORDER
    from recorder.errors import InputError, StoreError
    from recorder.store import history
    from recorder.store.database import Database

    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    # Read-only: a file that is not the demo's is left exactly as it was.
    db = Database(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
    try:
        recorded: set[str] | None = set(history.resolve_accounts(db)) | history.recorders(db)
    except StoreError:
        recorded = None  # not a recorder database at all
    finally:
        db.close()
    if recorded is None or recorded - {DEMO_ACCOUNT, DEMO_RECORDER}:
        raise InputError(
            f"{path} holds a database that is not an earlier demo, and the demo replaces its "
            "file; give another file with --database."
        )
