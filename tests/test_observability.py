"""Metrics scraped from the real endpoint, JSON logs, `status` and `gaps`."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from recorder import __version__
from recorder.cli import cli
from recorder.reports.health import find_gaps
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.store.database import Database
from recorder.store.migrate import HEAD_REVISION
from tests.conftest import API_KEY, open_db, wait_for
from tests.helpers import add_snapshot


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_a_running_daemon_serves_its_metrics(
    env: dict[str, str], simulator: Simulator, tmp_path: Path
) -> None:
    simulator.set_ticker({"BTC_USDT": "96903.7"})
    simulator.add_fault(Fault.http(502), API_KEY)  # the first poll fails, the next succeed
    port = free_port()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "recorder", "run", "--metrics-port", str(port)],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def ready() -> dict[str, float] | None:
            try:
                samples = scrape(port)
            except httpx.HTTPError:
                return None
            return samples if samples.get('recorder_up{account="default"}') == 1 else None

        samples = wait_for(ready, timeout=30)
        healthz = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=15).status_code
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
    assert samples['recorder_poll_errors_total{account="default",kind="http_status"}'] == 1
    assert samples['recorder_balance{account="default",currency="BTC"}'] == 0.0012
    assert samples['recorder_balance{account="default",currency="USDT"}'] == 257.51830114
    assert samples['recorder_portfolio_value_usdt{account="default"}'] == pytest.approx(
        float(Decimal("0.0012") * Decimal("96903.7") + Decimal("257.51830114"))
    )
    assert samples["recorder_poll_duration_seconds_count"] >= 2
    assert samples["recorder_poll_lateness_seconds_count"] >= 2
    assert samples["recorder_buffered_polls"] == 0
    assert samples["recorder_oldest_buffered_seconds"] == 0
    assert samples['recorder_recording{account="default"}'] == 1
    last = samples['recorder_last_success_timestamp_seconds{account="default"}']
    assert abs(last - datetime.now(UTC).timestamp()) < 60
    # What operators expect of any daemon: process metrics, the build, zeroed counters.
    assert samples["process_resident_memory_bytes"] > 0 and samples["process_open_fds"] > 0
    build = f'recorder_build_info{{python="{platform.python_version()}",version="{__version__}"}}'
    assert samples[build] == 1
    for kind in ("auth", "connect", "timeout", "rate_limit", "invalid_amount"):
        assert samples[f'recorder_poll_errors_total{{account="default",kind="{kind}"}}'] == 0
    assert samples["recorder_notifications_dropped_total"] == 0
    assert healthz == 200


def test_healthz_answers_like_status(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    port = free_port()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "recorder", "run", "--metrics-port", str(port)],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answered() -> httpx.Response | None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=15)
            except httpx.HTTPError:
                return None
            return response if response.status_code == 200 else None

        healthy = wait_for(answered, timeout=30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
    status = CliRunner().invoke(cli, ["status", "--format", "json"], env=env)
    assert status.exit_code == 0
    from_daemon, from_status = json.loads(healthy.text), json.loads(status.stdout)
    assert healthy.headers["content-type"] == "application/json"
    for document in (from_daemon, from_status):
        del document["checked_at"], document["size_bytes"]
        for entry in document["accounts"]:
            del entry["age_seconds"]
    assert from_daemon == from_status


def test_healthz_is_503_when_status_would_fail() -> None:
    from recorder.errors import DatabaseUnavailableError
    from recorder.polling.metrics import Metrics

    answers: list[tuple[bool, str] | Exception] = [
        (False, '{"accounts": []}'),
        DatabaseUnavailableError("The database at x is unavailable (refused)."),
        (True, '{"accounts": [1]}'),
    ]

    def check() -> tuple[bool, str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    metrics = Metrics()
    port = metrics.serve(0, health=check)
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        stale, down, fine = (httpx.get(url, timeout=5) for _ in range(3))
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    finally:
        metrics.close()
    assert (stale.status_code, stale.text) == (503, '{"accounts": []}\n')
    assert down.status_code == 503 and "is unavailable (refused)" in down.text
    assert fine.status_code == 200


def test_json_logs_carry_the_account(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["--log-format", "json", "--log-level", "INFO", "poll"], env=env
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    change = next(line for line in lines if "BTC appeared" in line["message"])
    assert change["account"] == "default" and change["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", change["time"])
    assert (change["currency"], change["old"], change["new"], change["delta"]) == (
        "BTC",
        None,
        "0.0012",
        "0.0012",
    )


def test_a_change_event_carries_exact_amounts_as_fields(
    env: dict[str, str], simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["poll"], env=env).exit_code == 0
    simulator.set_holdings(API_KEY, {"BTC": "0.00120000000000000001"})  # and USDT is gone
    result = runner.invoke(cli, ["--log-format", "json", "--log-level", "INFO", "poll"], env=env)
    events = [json.loads(line) for line in result.stderr.splitlines()]
    fields = [(e["currency"], e["old"], e["new"], e["delta"]) for e in events if "currency" in e]
    assert fields == [
        ("BTC", "0.0012", "0.00120000000000000001", "0.00000000000000000001"),
        ("USDT", "257.51830114", None, "-257.51830114"),
    ]


def test_under_systemd_each_line_starts_with_its_journal_priority(
    env: dict[str, str], simulator: Simulator, tmp_path: Path
) -> None:
    simulator.add_fault(Fault.http(502), API_KEY)  # the first poll fails: a warning

    def run(stderr: Path, journal_stream: Path, until: str) -> list[str]:
        with stderr.open("w") as stream:
            found = journal_stream.stat()
            daemon = subprocess.Popen(
                [sys.executable, "-m", "recorder", "run"],
                env={**os.environ, **env, "JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino}"},
                cwd=tmp_path,
                stderr=stream,
            )
            try:
                wait_for(lambda: until in stderr.read_text(), timeout=30)
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=15)
        return stderr.read_text().splitlines()

    journal = tmp_path / "journal"
    lines = run(journal, journal, until="default BTC appeared")
    assert lines and all(re.match(r"<[3467]>\d{4}-", line) for line in lines), lines
    assert any(line.startswith("<4>") and "poll failed (http_status)" in line for line in lines)
    assert any(line.startswith("<6>") and "default BTC appeared" in line for line in lines)
    # A child writing to another file inherits the variable, not the stream: no prefix.
    elsewhere = run(tmp_path / "elsewhere", journal, until="Recording 1 account")
    assert elsewhere and not any(line.startswith("<") for line in elsewhere), elsewhere


def test_status_reports_health_and_exits_1_when_an_account_is_stale(
    env: dict[str, str],
    sqlite_url: str,
    simulator: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    simulator.add_fault(Fault.envelope(29001, "API access frequently"), API_KEY)
    assert runner.invoke(cli, ["poll"], env=env).exit_code == 1  # one error row
    assert runner.invoke(cli, ["poll"], env=env).exit_code == 0
    healthy = runner.invoke(cli, ["status"], env=env)
    assert healthy.exit_code == 0, healthy.output
    assert "default: last success" in healthy.stdout and "1 errors in 24 h" in healthy.stdout
    assert "last error" in healthy.stdout and "rate_limit" in healthy.stdout
    assert f"schema {HEAD_REVISION}" in healthy.stdout
    document = json.loads(runner.invoke(cli, ["status", "--format", "json"], env=env).stdout)
    (account,) = document["accounts"]
    assert account["snapshots"] == 1 and account["errors_24h"] == 1 and not account["stale"]
    assert document["size_bytes"] > 0
    # Make the last success three intervals old: the health check fails.
    database = Database(sqlite_url)
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE snapshots SET taken_at = ?",
            ((datetime.now(UTC) - timedelta(seconds=4)).strftime("%Y-%m-%d %H:%M:%S.%f"),),
        )
    database.close()
    stale = runner.invoke(cli, ["status"], env=env)
    assert stale.exit_code == 1
    assert "default: STALE" in stale.stdout


def test_gaps_are_found_between_snapshots_and_until_now() -> None:
    t = datetime(2026, 3, 31, tzinfo=UTC)
    times = [t, t + timedelta(seconds=60), t + timedelta(seconds=600), t + timedelta(seconds=660)]
    found = list(find_gaps("main", times, timedelta(seconds=120), t + timedelta(hours=1)))
    assert [(g.start, g.end) for g in found] == [
        (t + timedelta(seconds=60), t + timedelta(seconds=600)),
        (t + timedelta(seconds=660), None),
    ]


def test_the_gaps_command_lists_holes_from_the_database(
    env: dict[str, str], sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    database = open_db(sqlite_url)
    now = datetime.now(UTC).replace(microsecond=0)
    for seconds in (300, 299, 298, 100, 99):  # a 198 s hole between 298 s and 100 s ago
        add_snapshot(database, "default", now - timedelta(seconds=seconds), {"BTC": Decimal(1)})
    database.close()
    result = CliRunner().invoke(cli, ["gaps", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    gaps = json.loads(result.stdout)
    assert next(g["seconds"] for g in gaps) == 198
    assert gaps[-1]["until"] is None  # the open stretch since the last snapshot


def test_an_account_another_process_took_over_leaves_this_process_metrics() -> None:
    from recorder.errors import AccountLockedError
    from recorder.polling.metrics import Metrics
    from recorder.values import PollOutcome, PollStatus, Snapshot

    metrics = Metrics()
    now = datetime.now(UTC)
    snapshot = Snapshot(now, {"BTC": Decimal("1")})
    metrics.observe(PollOutcome("main", now, PollStatus.RECORDED, snapshot))
    text = metrics.registry.get_sample_value
    assert text("recorder_up", {"account": "main"}) == 1
    assert text("recorder_balance", {"account": "main", "currency": "BTC"}) == 1
    metrics.observe(PollOutcome("main", now, PollStatus.SKIPPED, error=AccountLockedError("held")))
    assert text("recorder_up", {"account": "main"}) is None
    assert text("recorder_balance", {"account": "main", "currency": "BTC"}) is None
    assert text("recorder_poll_errors_total", {"account": "main", "kind": "auth"}) is None


def test_a_buffered_poll_refused_on_its_way_in_counts_as_a_failed_poll() -> None:
    from recorder.errors import WriteRejectedError
    from recorder.polling.metrics import Metrics
    from recorder.values import PollOutcome, PollStatus, Snapshot

    metrics = Metrics()
    now = datetime.now(UTC)
    metrics.observe(PollOutcome("main", now, PollStatus.RECORDED, Snapshot(now, {})))
    refused = WriteRejectedError("refused")
    metrics.observe(
        PollOutcome("main", now, PollStatus.REPLAYED, error=refused, error_kind=refused.kind)
    )
    sample = metrics.registry.get_sample_value
    assert sample("recorder_up", {"account": "main"}) == 0
    labels = {"account": "main", "kind": "rejected_by_database"}
    assert sample("recorder_poll_errors_total", labels) == 1
