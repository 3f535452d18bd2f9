"""The `recorder` command line. Thin: it reads options and calls the modules that do the work.

Expected failures (RecorderError) print one sentence and exit 2 for bad configuration or
input, 1 otherwise; nothing expected ever prints a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from recorder import __version__, config, logs
from recorder.errors import ConfigError, InputError, RecorderError

log = logging.getLogger("recorder")
F = TypeVar("F", bound=Callable[..., Any])


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

    def __init__(
        self, config_path: Path | None, log_level: str | None, log_format: str | None
    ) -> None:
        self.config_path = config_path
        self.log_level = log_level
        self.log_format = log_format
        self._settings: config.Settings | None = None

    def settings(self, *, quiet: bool = False) -> config.Settings:
        """Load the settings once and start logging at the configured level."""
        if self._settings is None:
            self._settings = config.load(self.config_path)
            level = self.log_level or self._settings.log_level
            if quiet and self.log_level is None:
                level = max(level, "WARNING", key=logging.getLevelName)
            logs.configure(level, fmt=self.log_format or self._settings.log_format)
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
@click.option(
    "--log-format",
    type=click.Choice(config.LOG_FORMATS),
    help="Override log_format: readable text lines, or one JSON object per line.",
)
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, log_level: str | None, log_format: str | None
) -> None:
    """Record the balance history of CoinW spot accounts in a SQL database."""
    ctx.obj = State(config_path, log_level.upper() if log_level else None, log_format)


def _open(settings: config.Settings) -> tuple[Any, Any]:
    """The store and the exchange client. The database may be down: the recorder then
    keeps its polls in the outage buffer until it is back."""
    from recorder.sources.coinw.client import CoinWClient
    from recorder.store.database import Store

    store = Store(settings.database_url, pool_size=max(5, settings.workers))
    client = CoinWClient(
        settings.base_url,
        timeout=settings.timeout_seconds,
        max_response_bytes=settings.max_response_bytes,
        max_connections=max(10, settings.workers),
        max_requests_per_second=settings.max_requests_per_second,
    )
    return store, client


def _listeners(recorder: Any, settings: config.Settings, metrics_port: int | None) -> list[Any]:
    """Metrics and notifications hung off the recorder; returns what needs closing."""
    closing: list[Any] = []
    port = metrics_port if metrics_port is not None else settings.metrics.port
    if port is not None:
        from recorder.polling.metrics import Metrics

        metrics = Metrics(buffered=lambda: len(recorder.buffer))
        try:
            served = metrics.serve(port, settings.metrics.address)
        except OSError as error:
            raise ConfigError(
                f"Cannot serve metrics on {settings.metrics.address}:{port} "
                f"({error.strerror}); choose another port with --metrics-port."
            ) from None
        log.info(
            "Serving Prometheus metrics on http://%s:%d/metrics", settings.metrics.address, served
        )
        recorder.listeners.append(metrics.observe)
        closing.append(metrics)
    if settings.notify:
        from recorder.polling.notify import Notifier

        notifier = Notifier(settings.notify)
        recorder.listeners.append(notifier.observe)
        closing.append(notifier)
    return closing


def _check_ha(settings: config.Settings, store: Any) -> None:
    if settings.ha and store.is_sqlite:
        raise ConfigError(
            "ha = true needs a shared PostgreSQL (or MariaDB) database: several recorders "
            "cannot share a SQLite file across machines."
        )


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
    from recorder.polling.cycle import Recorder

    settings = state.settings()
    settings.require_accounts()
    store, client = _open(settings)
    closing: list[Any] = []
    try:
        _check_ha(settings, store)
        recorder = Recorder(settings, store, client)
        closing = _listeners(recorder, settings, metrics_port)
        recorder.run()
    finally:
        for item in closing:
            item.close()
        client.close()
        store.close()


@cli.command()
@pass_state
def poll(state: State) -> None:
    """Poll every account once, store the snapshots and print the changes.

    Exits 0 when every account was recorded, 1 when any poll failed.
    """
    from recorder.polling.cycle import Recorder

    settings = state.settings(quiet=True)
    settings.require_accounts()
    store, client = _open(settings)
    try:
        _check_ha(settings, store)
        recorder = Recorder(settings, store, client)
        closing = _listeners(recorder, settings, None) if settings.notify else []
        try:
            results = recorder.poll_all()
        finally:
            recorder.close()
            for item in closing:
                item.close()
    finally:
        client.close()
        store.close()
    failed = 0
    for result in results:
        if result.error is not None:
            failed += 1
            click.echo(f"{result.account}: poll failed: {result.error}", err=True)
            continue
        if result.buffered:
            failed += 1
            click.echo(
                f"{result.account}: the database is unavailable; the snapshot waits in the "
                "buffer journal and the next run or poll writes it.",
                err=True,
            )
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
    click.echo("or ask the recorder what the account held, and see the HTML report:")
    click.echo(f"  RECORDER_DATABASE_URL=sqlite:///{path} recorder at")
    click.echo(
        f"  RECORDER_DATABASE_URL=sqlite:///{path} recorder export --format html -o report.html"
    )


@cli.group()
def db() -> None:
    """Manage the database schema."""


@db.command()
@pass_state
def upgrade(state: State) -> None:
    """Create the tables, or migrate an older database to this version's schema."""
    from recorder.store.database import Store

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
    summary, then point database_url at PostgreSQL. Safe to run again: it copies only what
    the target lacks, and checks row counts and exact sums of amounts on both sides.
    """
    from recorder.store.copy import copy_history
    from recorder.store.database import Store

    settings = state.settings()
    source, target = Store(settings.database_url), Store(target_url)
    try:
        with _progress(lambda: source.count_rows()["balances"], "", label="Copying") as step:
            result = copy_history(source, target, progress=step)
    finally:
        source.close()
        target.close()
    copied = ", ".join(f"{count:,} {table}" for table, count in result.copied.items())
    click.echo(f"Copied {copied} into {target.display_url}.")
    click.echo(
        "Verified: "
        + ", ".join(f"{table} {count:,} rows" for table, (count, _) in result.checksums.items())
        + "; every amount sums to the same exact total on both sides."
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
    hour (or day) and every snapshot that recorded a change, so what an account held at
    any moment stays exactly answerable.
    """
    from recorder.store.retention import prune as run_prune

    settings = state.settings()
    if settings.retention.keep_all_days is None:
        raise ConfigError(
            "No retention is configured: add [retention] with keep_all_days = 30 (and "
            'keep_one_per = "hour" or "day") to the config file.'
        )
    with _reading(state) as store:
        count = run_prune(store, settings.retention, datetime.now(UTC), dry_run=dry_run)
        if not dry_run:
            store.analyze(vacuum=vacuum)
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(f"{verb} {count:,} snapshots; the change log is untouched.")


# -- history commands --------------------------------------------------------------------


def selection_options(*, with_range: bool = True) -> Callable[[F], F]:
    """--account, --currency, --tz (and --since, --until) shared by the history commands."""

    def decorate(func: F) -> F:
        options = [
            click.option(
                "--account",
                "accounts",
                multiple=True,
                metavar="NAME",
                help="Only this account (repeatable). Default: all.",
            ),
            click.option(
                "--currency",
                "currencies",
                multiple=True,
                metavar="CUR",
                help="Only this currency (repeatable). Default: all.",
            ),
            click.option(
                "--tz",
                "zone_name",
                default="UTC",
                show_default=True,
                metavar="ZONE",
                help="Time zone for dates and shown times, e.g. Europe/Berlin.",
            ),
        ]
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
def _reading(state: State) -> Iterator[Any]:
    """The store for a command that reads the history, at the current schema, closed after."""
    from recorder.store.database import Store

    settings = state.settings(quiet=True)
    store = Store(settings.database_url)
    try:
        store.ensure_schema()
        yield store
    finally:
        store.close()


def _selection(
    store: Any,
    accounts: tuple[str, ...],
    currencies: tuple[str, ...],
    zone_name: str,
    since: str | None = None,
    until: str | None = None,
) -> Any:
    from recorder import timespec
    from recorder.reports import gather as report

    zone = timespec.parse_zone(zone_name)
    now = datetime.now(UTC)
    return report.Selection(
        accounts=store.resolve_accounts(accounts),
        currencies=store.resolve_currencies(currencies),
        since=timespec.parse_moment(since, zone, now, option="--since") if since else None,
        until=timespec.parse_moment(until, zone, now, end_of_day=True, option="--until")
        if until
        else None,
        zone=zone,
    )


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
    from recorder.reports import gather as report

    with _reading(state) as store:
        selection = _selection(store, accounts, currencies, zone_name)
        moment = timespec.parse_moment(when, selection.zone, datetime.now(UTC), end_of_day=True)
        result = report.holdings_at(store, selection, moment)
    zone = selection.zone
    rows = [report.holding_cells(h) for entry in result for h in entry.holdings]
    if output_format == "json":
        click.echo(report.holdings_json(result, moment, zone))
    elif output_format == "csv":
        report.write_csv(report.HOLDING_COLUMNS, rows, sys.stdout, zone)
    else:
        click.echo(f"As of {timespec.show(moment, zone, precise=False)}")
        click.echo(report.render_table(report.HOLDING_COLUMNS, rows, zone))
        for entry in result:
            click.echo(report.holdings_summary(entry, zone))


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
    from recorder.reports import gather as report

    with _reading(state) as store:
        selection = _selection(store, accounts, currencies, zone_name, since, until)
        rows = (
            report.history_cells(period, row)
            for period, row in report.history(store, selection, every, datetime.now(UTC))
        )
        _emit(report.HISTORY_COLUMNS, rows, output_format, selection.zone)


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
    from recorder.reports import gather as report

    with _reading(state) as store:
        selection = _selection(store, accounts, currencies, zone_name, since, until)
        rows = (report.change_cells(entry) for entry in report.changes(store, selection))
        _emit(report.CHANGE_COLUMNS, rows, output_format, selection.zone)


def _emit(columns: tuple[str, ...], rows: Any, output_format: str, zone: Any) -> None:
    from recorder.reports import gather as report

    out = sys.stdout
    if output_format == "csv":
        report.write_csv(columns, rows, out, zone)
    elif output_format == "json":
        report.write_json_array(columns, rows, out, zone)
    else:
        click.echo(report.render_table(columns, rows, zone))


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
    from recorder.reports import gather as report

    if output == "-" and output_format == "xlsx":
        raise InputError("XLSX cannot go to standard output; give a file with -o.")
    with _reading(state) as store:
        selection = _selection(store, accounts, currencies, zone_name, since, until)
        if output_format == "html":
            from recorder.reports import html as report_html

            document = report_html.render(store, selection, datetime.now(UTC))
            _write_text(output, lambda out: out.write(document))
            return
        ids = list(selection.accounts.values())
        args = (ids, selection.currencies, selection.since, selection.until)
        with _progress(lambda: store.count_holdings(*args), output) as progress:
            batches = report.export_batches(store, selection)
            if output_format == "xlsx":
                change_rows = (report.change_cells(c) for c in report.changes(store, selection))
                report.write_xlsx(
                    [
                        ("balances", report.EXPORT_COLUMNS, report.typed_cells(batches)),
                        ("changes", report.CHANGE_COLUMNS, change_rows),
                    ],
                    output,
                    selection.zone,
                    progress,
                )
            elif output_format == "csv":
                _write_text(
                    output, lambda out: report.write_export_csv(store, selection, out, progress)
                )
            else:
                _write_text(
                    output,
                    lambda out: report.write_jsonl_batches(
                        report.EXPORT_COLUMNS, batches, out, progress
                    ),
                )
    if output != "-":
        click.echo(f"Wrote {output}", err=True)


def _write_text(output: str, write: Any) -> None:
    if output == "-":
        write(sys.stdout)
        return
    try:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            write(handle)
    except OSError as error:
        raise InputError(f"Cannot write {output!r} ({error.strerror}).") from None


@contextlib.contextmanager
def _progress(total: Any, output: str, label: str = "Exporting") -> Any:
    """A progress bar on a terminal's stderr; silent when stderr is not a terminal."""
    if not sys.stderr.isatty() or output == "-":
        yield None
        return
    with click.progressbar(length=total(), label=label, file=sys.stderr) as bar:
        yield bar.update


# -- health -------------------------------------------------------------------------------


def _health_accounts(store: Any, settings: config.Settings, names: tuple[str, ...]) -> Any:
    """The accounts to check: those named, else the configured ones, else all recorded."""
    if names:
        return store.resolve_accounts(names)
    recorded = store.resolve_accounts()
    configured = [a.name for a in settings.accounts]
    if configured:
        return {name: store.account_id(name) for name in configured}
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
    the last 24 h, snapshots; and the database's size and schema revision.

    Exits 1 when any account's last success is older than three intervals (or it has
    none): a health check for cron or a container.
    """
    import json

    from recorder.reports import health

    settings = state.settings(quiet=True)
    now = datetime.now(UTC)
    with _reading(state) as store:
        found = health.account_statuses(
            store, _health_accounts(store, settings, accounts), settings.interval_seconds, now
        )
        size, revision = store.database_size(), store.current_revision()
    if output_format == "json":
        click.echo(
            json.dumps(
                {
                    "database": store.display_url,
                    "size_bytes": size,
                    "schema_revision": revision,
                    "checked_at": now.isoformat(),
                    "interval_seconds": settings.interval_seconds,
                    "accounts": [
                        {
                            "account": s.account,
                            "stale": s.stale,
                            "last_success": s.last_success.isoformat() if s.last_success else None,
                            "age_seconds": s.age.total_seconds() if s.age else None,
                            "last_error": None
                            if s.last_error is None
                            else {**s.last_error, "at": s.last_error["at"].isoformat()},
                            "errors_24h": s.errors_24h,
                            "snapshots": s.snapshots,
                        }
                        for s in found
                    ],
                },
                indent=2,
            )
        )
    else:
        megabytes = f"{size / 1e6:,.1f} MB" if size is not None else "unknown size"
        click.echo(f"Database {store.display_url}: {megabytes}, schema {revision}")
        for s in found:
            when = (
                f"last success {s.last_success.isoformat(timespec='seconds')} "
                f"({health.human(s.age)} ago)"
                if s.last_success and s.age is not None
                else "never succeeded"
            )
            line = f"{s.account}: {'STALE, ' if s.stale else ''}{when}; {s.snapshots:,} "
            line += f"snapshots; {s.errors_24h} errors in 24 h"
            if s.last_error:
                error = s.last_error
                line += (
                    f"; last error {error['at'].isoformat(timespec='seconds')} "
                    f"{error['kind']}: {error['message']}"
                )
            click.echo(line)
    if any(s.stale for s in found) or not found:
        sys.exit(1)


@cli.command()
@selection_options()
@format_option("table", "csv", "json", default="table")
@pass_state
def gaps(
    state: State,
    accounts: tuple[str, ...],
    currencies: tuple[str, ...],
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
    from datetime import timedelta

    from recorder.reports import health

    if currencies:
        raise InputError("gaps are per account; --currency does not apply.")
    settings = state.settings(quiet=True)
    now = datetime.now(UTC)
    with _reading(state) as store:
        selection = _selection(store, accounts, (), zone_name, since, until)
        start = selection.since
        if start is None and settings.retention.keep_all_days is not None:
            start = now - timedelta(days=settings.retention.keep_all_days)
        found = health.gaps(
            store, selection.accounts, settings.interval_seconds, start, selection.until, now
        )
    rows = [
        (g.account, g.start, g.end, health.human(g.length), int(g.length.total_seconds()))
        for g in found
    ]
    _emit(("account", "from", "until", "length", "seconds"), rows, output_format, selection.zone)
    if output_format == "table":
        click.echo(
            f"{len(found)} gap(s) longer than {2 * settings.interval_seconds:g} s"
            + (" (until: still open)" if any(g.end is None for g in found) else "")
            + "."
        )


def main() -> None:
    """Entry point of the `recorder` console script."""
    cli(prog_name="recorder")
