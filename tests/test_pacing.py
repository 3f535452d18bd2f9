"""The rate limiter and backoff delays, on a fake clock."""

from __future__ import annotations

import random
import threading
import time

from recorder.sources.pacing import RateLimiter, backoff_delays


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_limiter_lets_three_through_then_waits_for_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 1.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(7):
        limiter.acquire()
        starts.append(clock.now)
    assert starts == [0, 0, 0, 1.0, 1.0, 1.0, 2.0]


def test_no_window_of_one_second_ever_holds_more_than_three_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 1.0, clock=clock, sleep=clock.sleep)
    rng = random.Random(7)
    sent = []
    for _ in range(200):
        clock.now += rng.choice([0, 0.01, 0.2, 0.5])
        limiter.acquire()
        sent.append(clock.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t - start < 1.0 - 1e-6) <= 3


def test_the_limiter_holds_across_threads() -> None:
    limiter = RateLimiter(3, 0.2)
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            limiter.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent.sort()
    assert len(sent) == 12
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t - start < 0.2 - 0.005) <= 3


def test_backoff_grows_and_stays_within_its_budget() -> None:
    delays = list(backoff_delays(1.0, 30.0, random.Random(1)))
    assert 3 <= len(delays) <= 6
    assert sum(delays) <= 30.0
    for n, delay in enumerate(delays):
        assert 2**n / 2 <= delay <= 2**n


def test_backoff_gives_nothing_when_the_budget_is_too_small() -> None:
    assert list(backoff_delays(1.0, 0.4, random.Random(1))) == []
