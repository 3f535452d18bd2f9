"""The `recorder` command line. Thin: it reads options and calls the modules that do the work.

Expected failures (RecorderError) print one sentence and exit 2 for bad configuration or
input, 1 otherwise; nothing expected ever prints a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from recorder import __version__, config, logs
from recorder.errors import ConfigError, InputError, RecorderError

log = logging.getLogger("recorder")


class RecorderGroup(click.Group):
    """A group that turns expected errors into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, InputError) as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(2)
        except RecorderError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(1)


class State:
    """What the group's options hand to every command."""

    def __init__(self, config_path: Path | None, log_level: str | None) -> None:
        self.config_path = config_path
        self.log_level = log_level
        self._settings: config.Settings | None = None

    def settings(self, *, quiet: bool = False) -> config.Settings:
        """Load the settings once and start logging at the configured level."""
        if self._settings is None:
            self._settings = config.load(self.config_path)
            level = self.log_level or self._settings.log_level
            if quiet and self.log_level is None:
                level = max(level, "WARNING", key=logging.getLevelName)
            logs.configure(level)
            for warning in self._settings.warnings:
                log.warning("%s", warning)
        return self._settings


pass_state = click.make_pass_decorator(State)


@click.group(cls=RecorderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="recorder")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config file (default: $RECORDER_CONFIG, else ./recorder.toml if present).",
)
@click.option(
    "--log-level",
    type=click.Choice(config.LOG_LEVELS, case_sensitive=False),
    help="Override log_level from the configuration.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, log_level: str | None) -> None:
    """Record the balance history of CoinW spot accounts in a SQL database."""
    ctx.obj = State(config_path, log_level.upper() if log_level else None)


def _open(settings: config.Settings) -> tuple[Any, Any]:
    from recorder.exchange import CoinWClient
    from recorder.store import Store

    store = Store(settings.database_url, pool_size=max(5, settings.workers))
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    client = CoinWClient(
        settings.base_url,
        timeout=settings.timeout_seconds,
        max_response_bytes=settings.max_response_bytes,
        max_connections=max(10, settings.workers),
    )
    return store, client


@cli.command()
@pass_state
def run(state: State) -> None:
    """Run the daemon: poll every account now, then every interval_seconds.

    Stops cleanly on SIGTERM or Ctrl+C after the polls in flight are stored.
    """
    from recorder.service import Recorder

    settings = state.settings()
    settings.require_accounts()
    store, client = _open(settings)
    try:
        Recorder(settings, store, client).run()
    finally:
        client.close()
        store.close()


@cli.command()
@pass_state
def poll(state: State) -> None:
    """Poll every account once, store the snapshots and print the changes.

    Exits 0 when every account was recorded, 1 when any poll failed.
    """
    from recorder.service import Recorder

    settings = state.settings(quiet=True)
    settings.require_accounts()
    store, client = _open(settings)
    try:
        results = Recorder(settings, store, client).poll_all()
    finally:
        client.close()
        store.close()
    failed = 0
    for result in results:
        if result.error is not None:
            failed += 1
            click.echo(f"{result.account}: poll failed: {result.error}", err=True)
            continue
        assert result.snapshot is not None
        count = len(result.snapshot.balances)
        summary = f"{count} currenc{'y' if count == 1 else 'ies'}"
        if not result.changes:
            click.echo(f"{result.account}: recorded {summary}, no change")
        for change in result.changes:
            click.echo(change.describe(result.account))
    if failed:
        sys.exit(1)


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


@cli.group()
def db() -> None:
    """Manage the database schema."""


@db.command()
@pass_state
def upgrade(state: State) -> None:
    """Create the tables, or migrate an older database to this version's schema."""
    from recorder.store import Store

    settings = state.settings()
    store = Store(settings.database_url)
    try:
        before = store.current_revision()
        store.ensure_schema()
        after = store.current_revision()
    finally:
        store.close()
    if before == after:
        click.echo(f"{store.display_url} is already at the latest schema ({after}).")
    else:
        click.echo(f"Upgraded {store.display_url} from {before or 'empty'} to {after}.")


def main() -> None:
    """Entry point of the `recorder` console script."""
    cli(prog_name="recorder")
