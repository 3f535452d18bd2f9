"""Two daemons on one database: only one polls an account; the other says so and takes
over when the first stops."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.sources.coinw.simulator import Simulator
from tests.conftest import API_KEY, BACKENDS, SECRET, fresh_database, snapshot_count, wait_for

BUSY = "another recorder process is recording this account"


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "recorder", "run"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=log.parent,
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_daemon_leaves_a_held_account_alone_then_takes_it_over(
    backend: str, simulator: Simulator, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path) as url:
        simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
        env = {
            "COINW_API_KEY": API_KEY,
            "COINW_SECRET_KEY": SECRET,
            "COINW_BASE_URL": simulator.url,
            "RECORDER_DATABASE_URL": url,
            "RECORDER_INTERVAL_SECONDS": "1",
        }
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = start(env, tmp_path / "a" / "log")
        second = None
        try:
            wait_for(lambda: snapshot_count(url) >= 1, timeout=30)
            second = start(env, tmp_path / "b" / "log")
            wait_for(lambda: BUSY in (tmp_path / "b" / "log").read_text(), timeout=30)
            # While both run, the account is polled once per interval, by the first only.
            requests = len(simulator.requests("returnBalances"))
            wait_for(lambda: len(simulator.requests("returnBalances")) >= requests + 3)
            times = [r.at for r in simulator.requests("returnBalances")][requests:]
            assert len(times) <= (times[-1] - times[0]) + 2
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=15) == 0
            taken_over = snapshot_count(url)
            wait_for(
                lambda: (
                    "this process records the account now" in (tmp_path / "b" / "log").read_text()
                ),
                timeout=30,
            )
            wait_for(lambda: snapshot_count(url) >= taken_over + 2, timeout=30)
        finally:
            for daemon in (first, second):
                if daemon is not None and daemon.poll() is None:
                    daemon.send_signal(signal.SIGTERM)
                    daemon.wait(timeout=15)
        answered = [r.answered for r in simulator.requests("returnBalances")]
        assert "rate_limit" not in answered  # never polled twice at once


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_account_locks_are_per_history_so_two_schemas_on_one_server_do_not_block(
    backend: str, tmp_path: Path
) -> None:
    from recorder.store.database import Database
    from recorder.store.locks import LockSession

    with fresh_database(backend, tmp_path) as one, fresh_database(backend, tmp_path) as other:
        sessions = [
            LockSession(Database(url), timeout=5, idle_seconds=60) for url in (one, one, other)
        ]
        try:
            taken = [session.try_acquire("main") for session in sessions]
        finally:
            for session in sessions:
                session.close()
    assert taken == [True, False, True]


@pytest.mark.parametrize(
    ("ha", "said"),
    [
        (True, "not polling this account (ha = true) until its lock can be taken again"),
        (False, "polling anyway, into the local buffer, until the lock can be taken"),
    ],
)
def test_an_unreachable_lock_says_what_this_process_does_about_it(
    ha: bool, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    from recorder.polling.locks import AccountLocks, Claim, Claims

    class Unreachable(AccountLocks):
        def claim(self, account: str) -> Claim:
            return Claim.UNKNOWN

    with caplog.at_level(logging.WARNING):
        assert Claims(Unreachable(), ha=ha).claim("main") is Claim.UNKNOWN
    assert [said in record.getMessage() for record in caplog.records] == [True]
