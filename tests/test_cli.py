"""End to end through the command line, against the simulator over loopback HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from recorder.cli import cli
from recorder.sources.coinw.simulator import Fault, Simulator
from tests.conftest import API_KEY, snapshot_count, wait_for


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray ./recorder.toml from the developer's checkout


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_poll_stores_exact_amounts_and_prints_the_changes(
    env: dict[str, str], sqlite_url: str
) -> None:
    result = invoke(env, "poll")
    assert result.exit_code == 0, result.output
    assert "default BTC appeared 0.0012" in result.stdout
    assert "default USDT appeared 257.51830114" in result.stdout
    stored = rows(sqlite_url, "SELECT currency, amount FROM balances ORDER BY currency")
    assert [(c, Decimal(str(a))) for c, a in stored] == [
        ("BTC", Decimal("0.0012")),
        ("USDT", Decimal("257.518301140000000")),
    ]


def test_poll_records_changes_and_nothing_for_the_same_amount_written_differently(
    env: dict[str, str], sqlite_url: str, simulator: Simulator
) -> None:
    simulator.set_holdings(API_KEY, {"BTC": "0.0012", "CWT": "400.000"})
    assert invoke(env, "poll").exit_code == 0
    simulator.set_holdings(API_KEY, {"BTC": "0.0015", "CWT": "400.0"})
    result = invoke(env, "poll")
    assert result.stdout.strip() == "default BTC 0.0012 -> 0.0015 (+0.0003)"
    simulator.set_holdings(API_KEY, {"BTC": "0.0015", "CWT": "400"})
    assert "no change" in invoke(env, "poll").stdout
    changes = rows(
        sqlite_url,
        "SELECT currency, old_amount, new_amount, delta FROM balance_changes ORDER BY id",
    )
    assert changes == [
        ("BTC", None, "0.0012", "0.0012"),
        ("CWT", None, "400", "400"),
        ("BTC", "0.0012", "0.0015", "0.0003"),
    ]
    assert snapshot_count(sqlite_url) == 3


@pytest.mark.parametrize(
    "empty",
    [
        b'{"code": "200", "data": {}}',
        b'{"code": "200", "data": []}',
    ],
)
def test_a_success_envelope_holding_nothing_records_every_currency_as_gone(
    env: dict[str, str], sqlite_url: str, simulator: Simulator, empty: bytes
) -> None:
    assert invoke(env, "poll").exit_code == 0
    simulator.add_fault(Fault.raw(empty), API_KEY)
    result = invoke(env, "poll")
    assert result.exit_code == 0
    assert "default BTC gone (was 0.0012)" in result.stdout
    assert snapshot_count(sqlite_url) == 2
    latest = rows(
        sqlite_url,
        "SELECT count(*) FROM balances WHERE snapshot_id = (SELECT max(id) FROM snapshots)",
    )
    assert latest == [(0,)]


@pytest.mark.parametrize(
    "empty", [b"", b"   ", b'{"code": "200", "msg": "SUCCESS"}', b'{"code": "200"}']
)
def test_an_empty_reply_is_believed_only_when_the_next_poll_confirms_it(
    env: dict[str, str], sqlite_url: str, simulator: Simulator, empty: bytes
) -> None:
    assert invoke(env, "poll").exit_code == 0
    simulator.add_fault(Fault.raw(empty, times=2), API_KEY)
    first = invoke(env, "poll")
    assert first.exit_code == 1
    assert "poll failed (empty_reply)" in first.stderr or "empty_reply" in first.stderr
    assert snapshot_count(sqlite_url) == 1  # nothing is gone yet
    ((reply_at,),) = rows(sqlite_url, "SELECT attempted_at FROM poll_errors")
    second = invoke(env, "poll")
    assert second.exit_code == 0, second.output
    assert "default BTC gone (was 0.0012)" in second.stdout
    # The sell-everything is recorded at the time of the first such reply.
    assert rows(sqlite_url, "SELECT taken_at FROM snapshots ORDER BY id DESC LIMIT 1") == [
        (reply_at,)
    ]


def test_an_empty_reply_the_next_poll_contradicts_changes_nothing(
    env: dict[str, str], sqlite_url: str, simulator: Simulator
) -> None:
    assert invoke(env, "poll").exit_code == 0
    simulator.add_fault(Fault.raw(b""), API_KEY)
    assert invoke(env, "poll").exit_code == 1
    third = invoke(env, "poll")
    assert third.exit_code == 0 and "no change" in third.stdout
    assert rows(sqlite_url, "SELECT count(*) FROM balance_changes WHERE new_amount IS NULL") == [
        (0,)
    ]


@pytest.mark.parametrize(
    ("fault", "kind", "says"),
    [
        (Fault.envelope(29001, "API access frequently"), "rate_limit", "29001"),
        (Fault.http(429), "rate_limit", "HTTP 429"),
        (Fault.http(502), "http_status", "HTTP 502"),
        (Fault.json({"code": "200", "data": {"BTC": "lots"}}), "invalid_amount", "'lots'"),
        (Fault.raw("<html>oops</html>", content_type="text/html"), "not_json", "not valid JSON"),
    ],
)
def test_a_failed_poll_stores_one_error_row_and_no_snapshot(
    env: dict[str, str], sqlite_url: str, simulator: Simulator, fault: Fault, kind: str, says: str
) -> None:
    fault.times = None  # every attempt fails, retries included
    simulator.add_fault(fault, API_KEY)
    result = invoke(env, "poll")
    assert result.exit_code == 1
    assert says in result.stderr
    assert "Traceback" not in result.output
    assert snapshot_count(sqlite_url) == 0
    errors = rows(sqlite_url, "SELECT kind, message FROM poll_errors")
    assert len(errors) == 1
    assert errors[0][0] == kind and says in str(errors[0][1])


def test_db_upgrade_creates_the_schema_once(env: dict[str, str]) -> None:
    first = invoke(env, "db", "upgrade")
    assert first.exit_code == 0 and "from empty to" in first.stdout
    second = invoke(env, "db", "upgrade")
    assert "already at the latest schema" in second.stdout


def test_a_bad_config_exits_2_with_one_line(env: dict[str, str]) -> None:
    result = invoke({**env, "RECORDER_INTERVAL_SECONDS": "0.1"}, "poll")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "RECORDER_INTERVAL_SECONDS" in result.stderr


def test_an_unreachable_database_keeps_the_poll_in_the_buffer_and_exits_1(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "RECORDER_DATABASE_URL": "postgresql://x@127.0.0.1:1/x?connect_timeout=2"}
    result = invoke(env, "poll")
    assert result.exit_code == 1
    assert "The database at postgresql+psycopg://***@127.0.0.1:1/x" in result.stderr
    assert "Connection refused" in result.stderr and "check database_url" in result.stderr
    assert "the snapshot waits in the buffer journal" in result.stdout
    assert "Traceback" not in result.output
    (journal,) = tmp_path.glob("recorder-buffer-*.jsonl")
    assert '"BTC":"0.0012"' in journal.read_text()


def test_version_and_help(env: dict[str, str]) -> None:
    assert invoke(env, "--version").stdout.startswith("recorder, version ")
    for command in (["run"], ["poll"], ["demo"], ["db"], ["db", "upgrade"]):
        result = invoke(env, *command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.stdout


def test_python_dash_m_recorder_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "recorder", "--version"], capture_output=True, text=True, check=True
    )
    assert "recorder, version" in out.stdout


def start_daemon(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recorder", *args, "run"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_polls_at_every_interval_and_stops_cleanly_on_sigterm(
    env: dict[str, str], sqlite_url: str, simulator: Simulator
) -> None:
    simulator.set_holdings(API_KEY, lambda n: {"BTC": f"0.00{n}"})
    daemon = start_daemon(env)
    try:
        wait_for(
            lambda: (
                snapshot_count(sqlite_url) >= 3
                if Path(sqlite_url.removeprefix("sqlite:///")).exists()
                else False
            ),
            timeout=20,
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=10)
    assert daemon.returncode == 0, stderr
    assert "default BTC 0.001 -> 0.002 (+0.001)" in stderr
    assert "Traceback" not in stderr
    times = [r.at for r in simulator.requests("returnBalances")]
    # One poll per interval, not a burst (the first may start a little late).
    assert len(times) <= (times[-1] - times[0]) / 1.0 + 2, times


def test_sigterm_finishes_the_poll_in_flight_before_exiting(
    env: dict[str, str], sqlite_url: str, simulator: Simulator
) -> None:
    simulator.add_fault(Fault.stall(2.0), API_KEY)
    daemon = start_daemon({**env, "RECORDER_INTERVAL_SECONDS": "60"})
    try:
        wait_for(lambda: simulator.requests("returnBalances"), timeout=20)
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, stderr
    assert time.monotonic() - started < 10
    assert snapshot_count(sqlite_url) == 1  # the stalled poll was stored, not abandoned


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a database URL"),
        ("oracle://scott@db/orders", "supports sqlite, postgresql and mysql"),
        ("sqlite:////no/such/folder/recorder.db", "does not exist"),
    ],
)
def test_a_bad_database_url_is_one_sentence_and_exit_2(
    env: dict[str, str], url: str, message: str
) -> None:
    for command in (["poll"], ["db", "upgrade"], ["at"], ["changes"]):
        result = invoke({**env, "RECORDER_DATABASE_URL": url}, *command)
        assert result.exit_code == 2, (command, result.output)
        assert message in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_a_readable_secret_file_is_named_with_its_fix(env: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "coinw.secret"
    secret.write_text(env["COINW_SECRET_KEY"])
    secret.chmod(0o644)
    env = {k: v for k, v in env.items() if k != "COINW_SECRET_KEY"}
    result = invoke({**env, "COINW_SECRET_KEY_FILE": str(secret)}, "poll")
    assert result.exit_code == 0
    assert f"chmod o-rwx {secret}" in result.stderr


@pytest.mark.parametrize(
    "command",
    [["at"], ["changes", "--format", "json"], ["export", "-o", "-"], ["history"]],
    ids=" ".join,
)
def test_output_into_a_pipe_nobody_reads_ends_quietly(
    env: dict[str, str], command: list[str]
) -> None:
    assert invoke(env, "poll").exit_code == 0  # a history to show
    # The reading end is closed before the command starts: its first write finds no
    # reader, as `recorder at | head -1` does once head has its line.
    reading, writing = os.pipe()
    os.close(reading)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "recorder", *command],
            env={**os.environ, **env},
            stdout=writing,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writing)
    assert (result.returncode, result.stderr) == (141, "")
