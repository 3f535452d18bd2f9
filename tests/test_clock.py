"""A wall clock that steps back (a bad NTP step, a VM restored from a snapshot), made for
real with libfaketime (Debian's `faketime`) under the recorder's own processes: no poll is
stored before the newest snapshot of its account, the change log stays the diff of
consecutive snapshots in time order, and the daemon keeps polling every interval."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from recorder.reports import health
from recorder.sources.coinw.simulator import Simulator
from recorder.store import history
from recorder.store.database import Database
from tests.conftest import API_KEY, BACKENDS, SECRET, fresh_database, snapshot_count, wait_for
from tests.consistency import (
    assert_at_says_what_the_polls_said,
    assert_change_log_is_the_diff,
    at_answers,
    sampled_moments,
    snapshots,
)

LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)
TICK = timedelta(microseconds=1)


@pytest.fixture
def faketime() -> Path:
    """The libfaketime library, preloaded into the recorder's processes."""
    if LIBFAKETIME is None:
        if os.environ.get("RECORDER_TEST_REQUIRE_FAKETIME"):
            pytest.fail("libfaketime is required here (RECORDER_TEST_REQUIRE_FAKETIME is set).")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    return LIBFAKETIME


def fake_clock(library: Path, **settings: str) -> dict[str, str]:
    """Environment that runs a process on a fake wall clock; its monotonic clock stays
    real, as it does through a real clock step."""
    return {"LD_PRELOAD": str(library), "FAKETIME_DONT_FAKE_MONOTONIC": "1", **settings}


def recorder(
    env: dict[str, str], *args: str, cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "recorder", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def base_env(simulator: Simulator, url: str) -> dict[str, str]:
    return {
        "COINW_API_KEY": API_KEY,
        "COINW_SECRET_KEY": SECRET,
        "COINW_BASE_URL": simulator.url,
        "RECORDER_DATABASE_URL": url,
        "RECORDER_FETCH_PRICES": "false",
        "RECORDER_BUFFER_FILE": "",
    }


def latest_balances(url: str) -> list[tuple[str, Decimal]]:
    """The latest_balances view: what each account holds now."""
    db = Database(url)
    try:
        rows = db.rows("SELECT currency, amount FROM latest_balances ORDER BY currency")
        return [(currency, db.dialect.amount(amount)) for currency, amount in rows]
    finally:
        db.close()


# The audit's sequence: three polls, three with the clock an hour behind, one after it is
# put right (BTC amounts as CoinW answered).
POLLS = [
    ("2026-03-31 10:00:00", "1"),
    ("2026-03-31 10:01:00", "2"),
    ("2026-03-31 10:02:00", "3"),
    ("2026-03-31 09:02:30", "4"),
    ("2026-03-31 09:03:30", "4"),
    ("2026-03-31 09:04:30", "5"),
    ("2026-03-31 10:03:00", "5"),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_polls_taken_while_the_clock_is_behind_are_stored_after_the_newest_snapshot(
    backend: str, faketime: Path, simulator: Simulator, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path) as url:
        env = base_env(simulator, url)
        logs = []
        for when, btc in POLLS:
            simulator.set_holdings(API_KEY, {"BTC": btc})
            clock = fake_clock(faketime, FAKETIME=f"@{when}")
            polled = recorder({**env, **clock}, "poll", cwd=tmp_path)
            logs.append(polled.stdout + polled.stderr)
            if when.startswith("2026-03-31 09"):
                # While the clock is behind: a warning naming both times, and the account's
                # latest holdings are what it holds.
                assert "the clock went back: this poll was taken at 2026-03-31T09:0" in logs[-1]
                assert "not after the account's newest poll of 2026-03-31T10:0" in logs[-1]
                assert latest_balances(url) == [("BTC", Decimal(btc))]
                # And `at` (now) says so too, though "now" is before those snapshots.
                held = recorder({**env, **clock}, "at", "--format", "csv", cwd=tmp_path)
                assert held.stdout.splitlines()[1].split(",")[2:4] == ["BTC", btc], held.stdout
            else:
                assert "clock went back" not in logs[-1]
            if when == "2026-03-31 09:04:30":  # no age is negative
                status = recorder({**env, **clock}, "status", "--format", "json", cwd=tmp_path)
                assert json.loads(status.stdout)["accounts"][0]["age_seconds"] == 0
        assert "BTC appeared" in logs[0] and "appeared" not in "".join(logs[1:])

        db = Database(url)
        try:
            stored = snapshots(db, "default")
            # Every poll is there, in the order it was taken; a late-stamped one sits a
            # microsecond after the newest snapshot before it.
            assert [s[2] for s in stored] == [{"BTC": Decimal(btc)} for _, btc in POLLS]
            times = [s[1] for s in stored]
            assert times[3:6] == [times[2] + TICK, times[2] + 2 * TICK, times[2] + 3 * TICK]
            assert times[6] > times[5] and times[0] < times[1] < times[2]
            assert_change_log_is_the_diff(db)
            said = [{"BTC": Decimal(btc)} for _, btc in POLLS]
            timeline = list(zip(times, said, strict=True))
            moments = sampled_moments(times)
            assert_at_says_what_the_polls_said(db, "default", timeline, moments)
            accounts = history.resolve_accounts(db)
            assert health.gaps(db, accounts, 60, None, times[-1], times[-1]) == []
            answers = at_answers(db, "default", moments)

            # Pruning afterwards keeps the change log the diff, and every answer of `at`.
            prune = {**env, "RECORDER_RETENTION_KEEP_ALL_DAYS": "0"}
            clock = fake_clock(faketime, FAKETIME="@2026-03-31 10:05:00")
            pruned = recorder({**prune, **clock}, "prune", cwd=tmp_path)
            assert "Pruned 1 snapshot " in pruned.stdout
            assert assert_change_log_is_the_diff(db) == len(POLLS) - 1
            assert at_answers(db, "default", moments) == answers
        finally:
            db.close()


def test_the_daemon_polls_every_interval_while_the_clock_steps_back_and_forward(
    faketime: Path, simulator: Simulator, tmp_path: Path, sqlite_url: str
) -> None:
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    setting = tmp_path / "faketime.rc"
    setting.write_text("+0\n")
    clock = fake_clock(faketime, FAKETIME_TIMESTAMP_FILE=str(setting), FAKETIME_NO_CACHE="1")
    env = {**base_env(simulator, sqlite_url), "RECORDER_INTERVAL_SECONDS": "1", **clock}
    log = tmp_path / "daemon.log"
    with log.open("wb") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "recorder", "run"],
            env={**os.environ, **env},
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for(lambda: snapshot_count(sqlite_url) >= 3, timeout=30)
        setting.write_text("-3600\n")  # an hour back
        behind = snapshot_count(sqlite_url)
        wait_for(lambda: snapshot_count(sqlite_url) >= behind + 4)
        status = recorder(env, "status", "--format", "json", cwd=tmp_path, check=False)
        assert json.loads(status.stdout)["accounts"][0]["age_seconds"] >= 0
        setting.write_text("+0\n")  # put right
        right = snapshot_count(sqlite_url)
        wait_for(lambda: snapshot_count(sqlite_url) >= right + 3)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    text = log.read_text()
    assert "The system clock went back by 3600" in text and "the clock went back" in text

    requests = [r for r in simulator.requests("returnBalances") if r.answered == "ok"]
    # Polls went on every interval throughout (the simulator's own monotonic clock).
    spacing = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert max(spacing) < 2.0, spacing
    db = Database(sqlite_url)
    try:
        stored = snapshots(db, "default")
        # Every poll is stored, in the order CoinW answered them (BTC counts the polls).
        assert [s[2] for s in stored] == [{"BTC": Decimal(n)} for n in range(1, len(requests) + 1)]
        times = [s[1] for s in stored]
        assert all(a < b for a, b in itertools.pairwise(times))
        restamped = [b for a, b in itertools.pairwise(times) if b - a == TICK]
        assert len(restamped) >= 3
        # While the clock was right, each snapshot carries the moment of its poll.
        now, wall = time.monotonic(), datetime.now(UTC)
        for request, taken_at in zip(requests, times, strict=True):
            if taken_at not in restamped:
                polled = wall - timedelta(seconds=now - request.at)
                assert abs((taken_at - polled).total_seconds()) < 0.5, (taken_at, polled)
        assert_change_log_is_the_diff(db)
        timeline = [(s[1], s[2]) for s in stored]
        assert_at_says_what_the_polls_said(db, "default", timeline, sampled_moments(times))
        accounts = history.resolve_accounts(db)
        assert health.gaps(db, accounts, 1, None, times[-1], times[-1]) == []
    finally:
        db.close()
