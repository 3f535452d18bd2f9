"""The secret key (and the signature derived from it) appears in no output, log line,
exception text, repr of a config object, exported file or database file."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from recorder import config
from recorder.cli import cli
from recorder.secret import Secret
from recorder.sources.coinw.client import signed_query
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.values import Credentials
from tests.conftest import API_KEY, SECRET, snapshot_count, wait_for
from tests.test_docs import all_commands

SIGNATURE = signed_query("returnBalances", Credentials(API_KEY, Secret(SECRET)))["sign"]


def assert_clean(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    assert SECRET.encode() not in data, f"the secret leaked into {where}"
    assert SIGNATURE.encode() not in data, f"the signature leaked into {where}"


def test_no_command_reveals_the_secret(
    env: dict[str, str],
    simulator: Simulator,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    env = {**env, "RECORDER_LOG_LEVEL": "DEBUG"}
    runner = CliRunner()
    simulator.set_ticker({"BTC_USDT": "96903.7"})
    simulator.add_fault(Fault.http(502), API_KEY)
    simulator.add_fault(Fault.envelope(6000, "signature error"), API_KEY)
    runs = [["--help"]] + [[*path.split(), "--help"] for path, _ in all_commands(cli)]
    runs += [
        ["db", "upgrade"],
        ["poll"],
        ["poll"],
        ["poll"],
        ["at"],
        ["history"],
        ["changes"],
        ["history", "--every", "day", "--format", "json"],
    ]
    runs += [
        ["export", "--format", f, "-o", str(tmp_path / f"export.{f}")]
        for f in ("csv", "jsonl", "xlsx", "html")
    ]
    runs += [["demo", "--polls", "2", "--database", str(tmp_path / "demo.db")]]
    failures = 0
    for args in runs:
        result = runner.invoke(cli, args, env=env)
        assert_clean(result.output, f"the output of {args}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            assert_clean(repr(result.exception), f"an exception of {args}")
        failures += "poll failed" in result.output
    assert failures >= 2  # the faults happened and were reported, without the secret

    before = snapshot_count(sqlite_url)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "recorder", "run"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: snapshot_count(sqlite_url) > before, timeout=20)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=15)
    assert_clean(out + err, "the daemon's output")
    assert b"Recording 1 account" in err

    assert_clean(caplog.text, "the log")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("recorder.db") for p in files)
    assert any(p.name.startswith("export.") for p in files)
    for path in files:
        assert_clean(path.read_bytes(), str(path))


def test_no_repr_of_a_config_object_shows_the_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    text = (
        "[[accounts]]\nname = 'a'\napi_key = 'k'\nsecret_key_file = 'secret'\n"
        "[[accounts]]\nname = 'b'\napi_key = 'k'\nsecret_key_env = 'S'\n"
    )
    path = tmp_path / "recorder.toml"
    path.write_text(text)
    path.chmod(0o600)
    settings = config.load(path, {"S": SECRET}, cwd=tmp_path)
    objects: list[object] = [settings, *settings.accounts]
    objects += [a.credentials for a in settings.accounts]
    objects += [a.credentials.secret_key for a in settings.accounts]
    for obj in objects:
        assert_clean(repr(obj), f"repr of {type(obj).__name__}")
        assert_clean(str(obj), f"str of {type(obj).__name__}")
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(settings.accounts[0].credentials.secret_key)


def test_help_texts_hold_no_secret_from_the_environment(env: dict[str, str]) -> None:
    for path, command in all_commands(cli):
        with click.Context(command) as context:
            assert_clean(command.get_help(context), f"the help of {path}")
