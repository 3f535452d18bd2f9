"""Commands that poll: `run` (the daemon), `poll` (once), `demo` (against the simulator)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from recorder import logs, text
from recorder.cli.group import State, cli, pass_state
from recorder.values import PollOutcome, PollStatus


@cli.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on this port (overrides [metrics] port).",
)
@pass_state
def run(state: State, metrics_port: int | None) -> None:
    """Run the daemon: poll every account now, then every interval_seconds.

    Stops cleanly on SIGTERM or Ctrl+C after the polls in flight are stored. Under
    systemd (Type=notify) it reports READY, WATCHDOG and STOPPING.
    """
    from recorder import app

    settings = state.settings()
    settings.require_accounts()
    port = metrics_port if metrics_port is not None else settings.metrics.port
    with app.running(settings, metrics_port=port) as recorder:
        finished = recorder.daemon.run()
    if not finished:
        # A poll thread is stuck (the database does not answer): Python would wait for it
        # at exit, and SIGTERM must end the recorder within 10 s. Everything worth keeping
        # is in the journal already (each entry is synced as it is added).
        logging.shutdown()
        os._exit(0)


@cli.command()
@pass_state
def poll(state: State) -> None:
    """Poll every account once, store the snapshots and print the changes.

    Exits 0 when every account was recorded, 1 when any poll failed.
    """
    from recorder import app

    settings = state.settings(quiet=True)
    settings.require_accounts()
    with app.running(settings) as recorder:
        outcomes = recorder.poller.poll_all()
    failed = [outcome for outcome in outcomes if not _report(outcome)]
    if failed:
        sys.exit(1)


def _report(outcome: PollOutcome) -> bool:
    """Print what one poll did; False when it did not record its account."""
    if outcome.status in (PollStatus.FAILED, PollStatus.SKIPPED):
        click.echo(f"{outcome.account}: poll failed: {text.safe(outcome.error)}", err=True)
        return False
    if outcome.status is PollStatus.BUFFERED:
        click.echo(
            f"{outcome.account}: the database is unavailable; the snapshot waits in the "
            "buffer journal and the next run or poll writes it.",
            err=True,
        )
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
    help="SQLite file to record into (replaced if it exists).",
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

    logs.configure(state.log_level or "INFO")
    path = run_demo(database, polls=polls, interval=interval)
    click.echo("")
    click.echo(f"Recorded {polls} polls into {path}")
    click.echo("Try it with plain SQL:")
    click.echo(f'  sqlite3 {path} "{SQL_TO_TRY}"')
    click.echo("or ask the recorder what the account held, and see the HTML report:")
    click.echo(f"  RECORDER_DATABASE_URL=sqlite:///{path} recorder at")
    click.echo(
        f"  RECORDER_DATABASE_URL=sqlite:///{path} recorder export --format html -o report.html"
    )
