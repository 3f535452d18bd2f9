"""The `recorder` command group: global options, settings, and the one place where an
expected failure becomes a sentence and an exit code.

Expected failures (RecorderError) print one sentence and exit 2 for bad configuration or
input, 1 otherwise; nothing expected ever prints a traceback.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from recorder import __version__, config, logs, text
from recorder.errors import ConfigError, InputError, RecorderError

log = logging.getLogger("recorder")


class RecorderGroup(click.Group):
    """A group that turns expected errors into one line on stderr and an exit code, and
    lists its commands with their whole first sentence."""

    group_class = type  # `db` and any later subgroup behave the same

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with the first sentence of its help, never cut short (click cuts
        at the terminal width less the names; the definition list wraps instead)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, InputError) as error:
            click.echo(f"Error: {text.safe(error, limit=2000)}", err=True)
            ctx.exit(2)
        except RecorderError as error:
            click.echo(f"Error: {text.safe(error, limit=2000)}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError as error:
            if not stdout_closed():
                report_bug(ctx, error)
            # `recorder at | head -1`: the reader has all it wanted. Quiet, as a program
            # killed by SIGPIPE is; standard output goes to /dev/null so that flushing
            # what is left at exit cannot fail again (Python's documented way).
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(SIGPIPE_EXIT)
        except Exception as error:
            report_bug(ctx, error)


#: The exit code a shell reports for a program that SIGPIPE ended (128 + 13).
SIGPIPE_EXIT = 141


def stdout_closed() -> bool:
    """True when standard output is a pipe (or socket) nobody reads any more."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no file descriptor (a test runner's buffer)
        return False


def report_bug(ctx: click.Context, error: Exception) -> None:
    """Say that an unexpected error stopped the command, with its trace, and exit 1. The
    trace may quote text from outside (a reply, a database's error): it is shown masked
    and escaped, like every log line."""
    click.echo(
        f"Error: an unexpected {type(error).__name__} stopped the command "
        f"({text.safe(error)}); this is a bug, please report it with this trace:",
        err=True,
    )
    click.echo(logs.safe_traceback(traceback.format_exc()), err=True)
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
        self._with_keys = False

    def settings(self, *, quiet: bool = False, keys: bool = False) -> config.Settings:
        """Load the settings once and start logging at the configured level. Only commands
        that poll ask for the accounts' `keys`: the others need the accounts' names, and
        may run where the service's credentials are not (cron, a shell)."""
        if self._settings is None or (keys and not self._with_keys):
            self._settings = config.load(self.config_path, read_keys=keys)
            self._with_keys = keys
            level = self.log_level or self._settings.log_level
            if quiet and self.log_level is None:
                level = max(level, "WARNING", key=logging.getLevelName)
            logs.configure(level, fmt=self.log_format or self._settings.log_format)
            for warning in self._settings.warnings:
                log.warning("%s", warning)
        return self._settings


pass_state = click.make_pass_decorator(State)


@click.group(
    cls=RecorderGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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


def main() -> None:
    """Entry point of the `recorder` console script."""
    cli(prog_name="recorder")
