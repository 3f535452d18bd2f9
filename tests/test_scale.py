"""Many accounts polled concurrently against the simulator: every limit held."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from recorder import app
from recorder.config import AccountConfig, Settings
from recorder.secret import Secret
from recorder.sources.coinw.client import BALANCES_LIMIT, CoinWClient
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.sources.pacing import RateLimiter
from recorder.values import Credentials, PollOutcome
from tests.conftest import SECRET, wait_for

ACCOUNTS = 60


class Granting(RateLimiter):
    """A rate limiter that notes when it let each request go."""

    def __init__(self, limit: int, period: float) -> None:
        super().__init__(limit, period)
        self.times: list[float] = []

    def acquire(self) -> float:
        with self._lock:  # the same (re-entrant) lock: the note is the slot's own time
            waited = super().acquire()
            self.times.append(self._sent[-1])
            return waited


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max(
        (sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times)),
        default=0,
    )


def test_many_accounts_are_polled_concurrently_within_every_limit(
    simulator: Simulator, tmp_path: Path
) -> None:
    for n in range(ACCOUNTS):
        simulator.add_account(f"key-{n}", SECRET, {"BTC": str(n + 1)})
    simulator.add_fault(Fault.stall(2.5, times=None), "key-0")  # one slow account
    settings = Settings(
        base_url=simulator.url,
        interval_seconds=2,
        workers=8,
        max_requests_per_second=40,
        buffer_file=None,
        fetch_prices=False,
        accounts=tuple(
            AccountConfig(f"acct{n}", Credentials(f"key-{n}", Secret(SECRET)))
            for n in range(ACCOUNTS)
        ),
    )
    settings = replace(settings, database_url=f"sqlite:///{tmp_path / 'scale.db'}")
    client = CoinWClient(simulator.url, max_requests_per_second=40, max_connections=8)
    granted = Granting(40, BALANCES_LIMIT[1])
    client._global_limiter = granted
    recorder = app.build(settings, client=client)
    results: list[PollOutcome] = []
    lock = threading.Lock()

    def collect(result: PollOutcome) -> None:
        with lock:
            results.append(result)

    recorder.poller.listeners.append(collect)
    thread = threading.Thread(target=recorder.daemon.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        wait_for(lambda: sum(r.ok for r in results) >= 3 * (ACCOUNTS - 1), timeout=60)
    finally:
        recorder.daemon.stop()
        thread.join(timeout=20)
        recorder.close()
        client.close()
    requests = simulator.requests("returnBalances")
    by_key: dict[str | None, list[float]] = defaultdict(list)
    for request in requests:
        by_key[request.api_key].append(request.at)
    assert len(by_key) == ACCOUNTS  # every account was polled
    assert max(max_in_window(times) for times in by_key.values()) <= 3  # CoinW's 3/s
    # The process-wide limit (our own setting) is kept where the process decides: when its
    # limiter lets a request go. (The simulator's clock cannot tell: on a loaded machine its
    # handlers run late and in bunches.)
    assert len(granted.times) >= len(requests)
    assert max_in_window(granted.times) <= 40
    assert {r.answered for r in requests} <= {"ok"}  # never tripped a limit
    # The slow account held its worker but never delayed the others' schedule.
    fast = [r for r in results if r.account != "acct0" and r.scheduled_at is not None]
    lateness = sorted(
        (r.attempted_at - r.scheduled_at).total_seconds() for r in fast if r.scheduled_at
    )
    assert lateness[int(len(lateness) * 0.99) - 1] < 1.0
