"""Prometheus metrics, served by prometheus-client: a listener on the recorder's polls.

    recorder_up{account}                           1 if the last poll succeeded
    recorder_recording{account}                    1 if its last poll reached the database
    recorder_last_success_timestamp_seconds{account}
    recorder_poll_duration_seconds                 histogram of whole polls
    recorder_poll_lateness_seconds                 histogram: how late polls start
    recorder_poll_errors_total{account,kind}
    recorder_balance{account,currency}             what the account holds now
    recorder_portfolio_value_usdt{account}         its value at capture-time prices
    recorder_buffered_polls                        polls waiting for the database
    recorder_oldest_buffered_seconds               how long the oldest of them has waited

Amounts become floats here and only here: Prometheus stores doubles. The database keeps
the exact values.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from recorder.values import PollOutcome, PollStatus


class Metrics:
    """The recorder's metrics in their own registry (no process-global state)."""

    def __init__(self, waiting: Callable[[], tuple[int, float | None]] = lambda: (0, None)) -> None:
        self.registry = CollectorRegistry()
        self.up = Gauge(
            "recorder_up",
            "1 if the last poll of the account succeeded.",
            ["account"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "recorder_last_success_timestamp_seconds",
            "Unix time of the account's last successful poll.",
            ["account"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "recorder_poll_duration_seconds",
            "Time one poll took, from request to commit.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.lateness = Histogram(
            "recorder_poll_lateness_seconds",
            "How late scheduled polls started.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.errors = Counter(
            "recorder_poll_errors_total",
            "Failed polls, by kind (see poll_errors.kind).",
            ["account", "kind"],
            registry=self.registry,
        )
        self.balance = Gauge(
            "recorder_balance",
            "Amount held, from the latest snapshot.",
            ["account", "currency"],
            registry=self.registry,
        )
        self.value = Gauge(
            "recorder_portfolio_value_usdt",
            "Total value of the priced holdings at capture-time prices.",
            ["account"],
            registry=self.registry,
        )
        self.recording = Gauge(
            "recorder_recording",
            "1 if the account's last poll reached the database (0: it waits in the outage "
            "buffer, or the database refused it).",
            ["account"],
            registry=self.registry,
        )
        self.buffered = Gauge(
            "recorder_buffered_polls",
            "Polls waiting in the outage buffer for the database.",
            registry=self.registry,
        )
        self.buffered.set_function(lambda: float(waiting()[0]))  # float-ok: a count
        self.oldest = Gauge(
            "recorder_oldest_buffered_seconds",
            "How long the oldest poll in the outage buffer has waited (0 when none waits).",
            registry=self.registry,
        )
        self.oldest.set_function(lambda: waiting()[1] or 0.0)
        self._held: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._server: Any = None

    def observe(self, result: PollOutcome) -> None:
        """Update from one poll (a recorder listener)."""
        account = result.account
        if result.status is PollStatus.REPLAYED:
            self.recording.labels(account).set(1)  # its backlog reaches the database again
            return  # otherwise counted when it was polled
        if result.status is PollStatus.SKIPPED:
            self._forget(account)  # another process records it: its series are not ours
            return
        self.recording.labels(account).set(1 if result.stored else 0)
        self.duration.observe(result.duration)
        if result.scheduled_at is not None:
            late = (result.attempted_at - result.scheduled_at).total_seconds()
            self.lateness.observe(max(0.0, late))
        if result.status is PollStatus.FAILED:
            self.up.labels(account).set(0)
            self.errors.labels(account, result.error_kind or "poll_error").inc()
            return
        self.up.labels(account).set(1)
        self.last_success.labels(account).set(result.attempted_at.timestamp())
        if result.snapshot is None:
            return
        balances = result.snapshot.balances
        with self._lock:
            for gone in self._held.get(account, set()) - balances.keys():
                self.balance.remove(account, gone)
            self._held[account] = set(balances)
        for currency, amount in balances.items():
            self.balance.labels(account, currency).set(float(amount))  # float-ok: a gauge
        valuation = result.snapshot.valuation
        if valuation is not None and valuation.total is not None:
            self.value.labels(account).set(float(valuation.total))  # float-ok: a gauge

    def _forget(self, account: str) -> None:
        with self._lock:
            held = self._held.pop(account, set())
        for currency in held:
            self.balance.remove(account, currency)
        for gauge in (self.up, self.last_success, self.value, self.recording):
            with contextlib.suppress(KeyError):
                gauge.remove(account)

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        """Serve /metrics on `port` (0 picks a free one); returns the port."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
