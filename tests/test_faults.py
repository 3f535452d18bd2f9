"""Every exchange fault, injected for real over loopback: one poll_errors row of its kind, one
log line, no snapshot, and the daemon keeps its schedule."""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from recorder import app
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.store.database import Database
from recorder.values import PollOutcome
from tests.conftest import API_KEY, SECRET, wait_for
from tests.helpers import counts, query, recorder, settings_for

BAD_AMOUNT = '{"code": "200", "data": {"BTC": "0.1", "ETH": %s}}'
FAULTS = [
    ("reset mid-body", Fault.reset(), "connection_lost"),
    ("read timeout", Fault.stall(3.0), "timeout"),
    ("HTTP 429 page", Fault.http(429), "rate_limit"),
    ("HTTP 500 page", Fault.http(500), "http_status"),
    ("HTTP 502 page", Fault.http(502), "http_status"),
    ("HTTP 503 page", Fault.http(503), "http_status"),
    ("not JSON", Fault.raw("<html>maintenance</html>"), "not_json"),
    ("JSON not an object", Fault.raw("[1, 2, 3]"), "bad_envelope"),
    ("code 29001", Fault.envelope(29001, "API access frequently"), "rate_limit"),
    ("code 1003", Fault.envelope(1003, "api key invalid"), "auth"),
    ("code 6000", Fault.envelope(6000, "sign error"), "auth"),
    ("code -200", Fault.envelope(-200, "system error"), "api_error"),
    ("success false with 200", Fault.json({"code": "200", "success": False}), "bad_envelope"),
    ("negative amount", Fault.raw(BAD_AMOUNT % '"-1"'), "invalid_amount"),
    ("NaN amount", Fault.raw(BAD_AMOUNT % '"NaN"'), "invalid_amount"),
    ("Infinity amount", Fault.raw(BAD_AMOUNT % '"Infinity"'), "invalid_amount"),
    ("1e400 amount", Fault.raw(BAD_AMOUNT % "1e400"), "invalid_amount"),
    ("empty amount", Fault.raw(BAD_AMOUNT % '""'), "invalid_amount"),
    ("boolean amount", Fault.raw(BAD_AMOUNT % "true"), "invalid_amount"),
    ("nested amount", Fault.raw(BAD_AMOUNT % '{"a": "1"}'), "invalid_amount"),
    ("body over 5 MB", Fault.huge(6 * 1024 * 1024), "too_large"),
]


@pytest.fixture
def built(simulator: Simulator, sqlite_db: Database) -> Iterator[app.Recorder]:
    settings = settings_for(simulator.url, interval_seconds=2, timeout_seconds=1)
    made = recorder(settings, sqlite_db)
    yield made
    made.close()


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "poll failed" in r.getMessage()]


@pytest.mark.parametrize(("fault", "kind"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_each_fault_is_one_error_row_one_line_and_no_snapshot(
    built: app.Recorder,
    simulator: Simulator,
    sqlite_db: Database,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    kind: str,
) -> None:
    fault.times = None  # retries, where they happen, meet the same fault
    simulator.add_fault(fault, API_KEY)
    result = built.poller.poll(built.settings.accounts[0])
    assert result.error_kind == kind
    found = counts(sqlite_db)
    assert found["snapshots"] == 0 and found["balances"] == 0
    rows = query(sqlite_db, "SELECT kind, message FROM poll_errors")
    assert [r[0] for r in rows] == [kind]
    assert "\n" not in rows[0][1] and SECRET not in rows[0][1]
    (line,) = failure_lines(caplog)
    assert f"main: poll failed ({kind})" in line


def test_connect_refused_is_one_error_row(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    made = recorder(settings_for(f"http://127.0.0.1:{port}"), sqlite_db)
    result = made.poller.poll(made.settings.accounts[0])
    made.close()
    assert result.error_kind == "connect"
    assert counts(sqlite_db)["poll_errors"] == 1
    assert counts(sqlite_db)["snapshots"] == 0
    assert len(failure_lines(caplog)) == 1


def test_overload_is_retried_with_growing_delays_within_the_interval(
    built: app.Recorder, simulator: Simulator, sqlite_db: Database
) -> None:
    poller = built.poller
    poller.settings = replace(poller.settings, interval_seconds=10, backoff_base_seconds=0.2)
    simulator.add_fault(Fault.http(503, times=None), API_KEY)
    result = poller.poll(poller.settings.accounts[0])
    assert result.error is not None and "attempts" in str(result.error)
    times = [r.at for r in simulator.requests("returnBalances")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 3
    # Full jitter draws each delay from [step/2, step], the step doubling: neighbours may
    # come out alike, but the third delay is always at least the first's double.
    assert gaps[2] > gaps[0] * 1.5 if len(gaps) > 2 else gaps[-1] > gaps[0]
    assert times[-1] - times[0] < 10 * 0.5 + 0.5  # never past half the interval
    assert counts(sqlite_db)["poll_errors"] == 1


def test_retries_count_the_attempts_own_time_and_none_starts_past_half_the_interval(
    built: app.Recorder, simulator: Simulator
) -> None:
    poller = built.poller
    # Each attempt waits out its 1 s timeout: the delays alone would allow many more.
    poller.settings = replace(poller.settings, interval_seconds=4, backoff_base_seconds=0.05)
    simulator.add_fault(Fault.stall(3.0, times=None), API_KEY)
    result = poller.poll(poller.settings.accounts[0])
    assert result.error_kind == "timeout"
    times = [r.at for r in simulator.requests("returnBalances")]
    assert len(times) >= 2  # it was retried
    assert times[-1] - times[0] <= 4 * 0.5 + 0.25  # but no retry started past the budget


def test_the_daemon_keeps_its_schedule_through_a_run_of_faults(
    built: app.Recorder, simulator: Simulator, sqlite_db: Database
) -> None:
    built.poller.settings = replace(built.poller.settings, interval_seconds=1)
    sequence = [
        Fault.reset(),
        Fault.http(502),
        Fault.raw("nope"),
        Fault.envelope(29001),
        Fault.raw(BAD_AMOUNT % '"-5"'),
    ]
    for fault in sequence:
        simulator.add_fault(fault, API_KEY)
    results: list[PollOutcome] = []
    built.poller.listeners.append(results.append)
    thread = threading.Thread(target=built.daemon.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        wait_for(lambda: sum(r.ok for r in results) >= 2, timeout=30)
    finally:
        built.daemon.stop()
        thread.join(timeout=10)
    kinds = [r.error_kind for r in results if r.error_kind is not None]
    assert kinds == ["connection_lost", "http_status", "not_json", "rate_limit", "invalid_amount"]
    times = [r.at for r in simulator.requests("returnBalances")]
    assert len(times) <= (times[-1] - times[0]) + 2  # one poll per interval, faults or not
    assert counts(sqlite_db)["poll_errors"] == 5
    assert counts(sqlite_db)["snapshots"] >= 2
