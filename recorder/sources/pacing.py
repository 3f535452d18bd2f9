"""Keeping to CoinW's limits: a thread-safe sliding-window limiter and backoff delays."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator


class RateLimiter:
    """At most `limit` acquisitions in any `period` seconds; `acquire` waits for a slot."""

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.RLock()  # re-entrant: a subclass may extend `acquire`

    def acquire(self) -> float:
        """Wait until a request may go out and record it; returns the seconds waited."""
        waited = 0.0
        # Holding the lock while sleeping is deliberate: callers queue up in order, and the
        # limit is what bounds them anyway.
        with self._lock:
            while True:
                now = self._clock()
                # The epsilon keeps float rounding from leaving a slot a hair short of free.
                while self._sent and now - self._sent[0] >= self.period - 1e-9:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return waited
                pause = self.period - (now - self._sent[0])
                self._sleep(pause)
                waited += pause


def backoff_delays(base: float, budget: float, rng: random.Random | None = None) -> Iterator[float]:
    """Exponential delays with full jitter (base, 2*base, 4*base...) until `budget` is spent."""
    rng = rng or random.Random()
    spent = 0.0
    step = base
    while True:
        delay = rng.uniform(step / 2, step)
        if spent + delay > budget:
            return
        spent += delay
        yield delay
        step *= 2
