"""Expected failures are one sentence and an exit code, never a traceback: files that are
not UTF-8, keys with bytes that cannot be sent, a file that is not a database, dates
beyond the calendar."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from recorder.cli import cli


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    assert result.stderr.count("\n") <= 1, result.stderr
    return result.exit_code, result.stderr


def test_a_config_file_that_is_not_utf8_is_one_sentence(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "recorder.toml"
    config.write_bytes(b"interval_seconds = 5\n# caf\xe9\n")
    code, stderr = run(env, "--config", str(config), "poll")
    assert code == 2 and "is not UTF-8 text" in stderr


def test_a_secret_file_that_is_not_utf8_is_one_sentence(
    env: dict[str, str], tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\xff\xfe\xfd")
    secret.chmod(0o600)
    environ = {k: v for k, v in env.items() if k != "COINW_SECRET_KEY"}
    code, stderr = run({**environ, "COINW_SECRET_KEY_FILE": str(secret)}, "poll")
    assert code == 2 and "not UTF-8 text" in stderr


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("COINW_API_KEY", b"key-\xff\xfe-0123456789", "not UTF-8 text"),
        ("COINW_SECRET_KEY", b"key-\xff\xfe-0123456789", "not UTF-8 text"),
        ("RECORDER_DATABASE_URL", b"sqlite:///caf\xe9.db", "holds bytes that are not UTF-8"),
        ("COINW_BASE_URL", b"https://api.coinw\xff.com", "holds bytes that are not UTF-8"),
    ],
)
def test_a_setting_with_bytes_that_are_not_utf8_is_one_sentence(
    env: dict[str, str], tmp_path: Path, variable: str, value: bytes, said: str
) -> None:
    environ = {k.encode(): v.encode() for k, v in {**os.environ, **env}.items()}
    environ[variable.encode()] = value
    result = subprocess.run(
        [sys.executable, "-m", "recorder", "poll"],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@127.0.0.1:3306/test?read_timeout=abc",
        "postgresql://postgres@127.0.0.1:5432/test?connect_timeout=-1",
    ],
)
def test_a_database_timeout_that_is_not_a_number_is_one_sentence(
    env: dict[str, str], url: str
) -> None:
    code, stderr = run({**env, "RECORDER_DATABASE_URL": url}, "status")
    assert code == 2 and "must be a number of seconds" in stderr


def test_a_buffer_file_that_is_not_a_regular_file_is_refused_at_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    fifo = tmp_path / "journal.fifo"
    os.mkfifo(fifo)  # opening it to append would wait for a reader forever
    code, stderr = run({**env, "RECORDER_BUFFER_FILE": str(fifo)}, "poll")
    assert code == 2 and "is not a regular file" in stderr


def test_a_file_that_is_not_a_sqlite_database_is_one_sentence(
    env: dict[str, str], tmp_path: Path
) -> None:
    other = tmp_path / "notes.db"
    other.write_text("shopping list\n" * 100)
    code, stderr = run({**env, "RECORDER_DATABASE_URL": f"sqlite:///{other}"}, "at")
    assert code == 1 and "not a database" in stderr


@pytest.mark.parametrize(
    "args",
    [
        ["at", "9999-12-31"],
        ["at", "999999999999d"],
        ["changes", "--since", "99999999w"],
        ["at", "0001-01-01", "--tz", "Asia/Tokyo"],
        ["history", "--every", "month", "--since", "9999-12-01"],
    ],
    ids=" ".join,
)
def test_dates_beyond_the_calendar_are_one_sentence(env: dict[str, str], args: list[str]) -> None:
    assert CliRunner().invoke(cli, ["poll"], env=env).exit_code == 0  # a history to ask
    code, stderr = run(env, *args)
    assert code in (0, 2), stderr
    if code == 2:
        assert "outside the times the recorder can show" in stderr


def test_an_unexpected_error_shows_a_masked_trace_and_exits_1(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from recorder.secret import register

    register("sign=0123456789ABCDEF0123456789ABCDEF")

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom at /x?api_key=k&sign=0123456789ABCDEF0123456789ABCDEF\nINFO fake")

    assert CliRunner().invoke(cli, ["poll"], env=env).exit_code == 0
    monkeypatch.setattr("recorder.store.history.resolve_accounts", broken)
    result = CliRunner().invoke(cli, ["at"], env=env)
    assert result.exit_code == 1
    assert "unexpected RuntimeError" in result.stderr and "this is a bug" in result.stderr
    assert "0123456789ABCDEF0123456789ABCDEF" not in result.stderr
    assert "\nINFO fake" not in result.stderr
