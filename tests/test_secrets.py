"""The secret key appears in no output, log line, error, repr, or database file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from recorder.cli import cli
from recorder.exchange import signed_query
from recorder.simulator import Fault, Simulator
from tests.conftest import API_KEY, SECRET


def test_no_command_reveals_the_secret_or_the_signature(
    env: dict[str, str],
    simulator: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {**env, "RECORDER_LOG_LEVEL": "DEBUG"}
    outputs = []
    caplog.set_level(logging.DEBUG)
    simulator.add_fault(Fault.http(502), API_KEY)
    simulator.add_fault(Fault.envelope(6000, "signature error"), API_KEY)
    for args in (
        ["--help"],
        ["run", "--help"],
        ["db", "upgrade"],
        ["poll"],
        ["poll"],
        ["poll"],
        ["poll", "--help"],
    ):
        result = runner.invoke(cli, args, env=env)
        outputs.append(result.output)
        if result.exception and not isinstance(result.exception, SystemExit):
            outputs.append(repr(result.exception))
    demo = runner.invoke(cli, ["demo", "--polls", "1", "--database", str(tmp_path / "d.db")])
    outputs.append(demo.output)
    outputs.append(caplog.text)
    signature = signed_query("returnBalances", _credentials())["sign"]
    everything = "\n".join(outputs)
    assert "poll failed" in everything  # the failures did happen and were reported
    assert SECRET not in everything
    assert signature not in everything
    database_bytes = b"".join(
        p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(("recorder.db", "d.db"))
    )
    assert database_bytes  # the databases were written
    assert SECRET.encode() not in database_bytes
    assert signature.encode() not in database_bytes


def _credentials():  # type: ignore[no-untyped-def]
    from recorder.exchange import Credentials
    from recorder.secret import Secret

    return Credentials(API_KEY, Secret(SECRET))


def test_the_secret_is_not_passed_to_child_processes_by_accident() -> None:
    # The recorder reads secrets; it must not export them back into its own environment.
    assert SECRET not in "".join(os.environ.values())
