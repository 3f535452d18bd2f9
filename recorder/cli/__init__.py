"""The `recorder` command line."""

from recorder.cli.group import cli, main

__all__ = ["cli", "main"]
