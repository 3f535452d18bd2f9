"""The `recorder` command line. Thin: it reads options and calls the rooms that do the
work. One module per family of commands; importing them registers them on the group."""

from recorder.cli import database, health, history, polling, statement
from recorder.cli.group import cli, main

__all__ = ["cli", "database", "health", "history", "main", "polling", "statement"]
