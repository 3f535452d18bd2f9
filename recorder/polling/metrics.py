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
    recorder_notifications_dropped_total           [[notify]] deliveries given up unsent
    recorder_build_info{version,python}            1
    recorder_interval_seconds                      interval_seconds, for alert rules
    process_*, python_*                            prometheus-client's own collectors

Error counters start at zero for every configured account and every kind, so a rate over
them works from the first scrape. Besides /metrics the server answers /healthz: 200 or 503
with what `recorder status` would say (the check is given by the caller).

Amounts become floats here and only here: Prometheus stores doubles. The database keeps
the exact values.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import platform
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from recorder import __version__
from recorder.errors import RecorderError, poll_error_kinds
from recorder.values import PollOutcome, PollStatus

log = logging.getLogger(__name__)

#: A health check: (healthy, the document to answer with).
HealthCheck = Callable[[], tuple[bool, str]]
#: Seconds a /healthz answer may take (it reads the database) before it is 503.
HEALTH_SECONDS = 10.0


class _Counted(Collector):
    """A counter another object keeps: read when scraped."""

    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self.name, self.documentation, self.read = name, documentation, read

    def collect(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.read())


class Metrics:
    """The recorder's metrics in their own registry (no process-global state)."""

    def __init__(
        self,
        waiting: Callable[[], tuple[int, float | None]] = lambda: (0, None),
        *,
        accounts: Iterable[str] = (),
        interval_seconds: float | None = None,
        notifications_dropped: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        build = Gauge(
            "recorder_build_info",
            "The recorder's version and Python's; always 1.",
            ["version", "python"],
            registry=self.registry,
        )
        build.labels(__version__, platform.python_version()).set(1)
        interval = Gauge(
            "recorder_interval_seconds",
            "Seconds between two polls of an account (interval_seconds).",
            registry=self.registry,
        )
        if interval_seconds is not None:
            interval.set(interval_seconds)
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
        self.registry.register(
            _Counted(
                "recorder_notifications_dropped",
                "Change notifications given up unsent ([[notify]]).",
                notifications_dropped,
            )
        )
        for account in accounts:
            for kind in sorted(poll_error_kinds()):
                self.errors.labels(account, kind)  # 0 from the start: rates work at once
        self._held: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._health: concurrent.futures.ThreadPoolExecutor | None = None

    def observe(self, result: PollOutcome) -> None:
        """Update from one poll (a recorder listener)."""
        account = result.account
        if result.status is PollStatus.REPLAYED:
            self.recording.labels(account).set(1)  # its backlog reaches the database again
            if result.error_kind is not None:  # refused on its way in: it failed after all
                self.up.labels(account).set(0)
                self.errors.labels(account, result.error_kind).inc()
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

    def serve(
        self, port: int, address: str = "127.0.0.1", health: HealthCheck | None = None
    ) -> int:
        """Serve /metrics (and /healthz, with `health`) on `port` (0 picks a free one);
        returns the port."""
        metrics_app = make_wsgi_app(self.registry)
        # One thread runs every health check: the database connection it opens is kept
        # for the next one instead of one per request.
        self._health = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="healthz")

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz" and health is not None:
                return self._answer_health(health, start_response)
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]

        family, address = _family(address, port)
        server_class = type("MetricsServer", (_ThreadingServer,), {"address_family": family})
        self._server = make_server(address, port, app, server_class, _QuietHandler)
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()
        return int(self._server.server_address[1])

    def _answer_health(self, health: HealthCheck, start_response: Any) -> Iterator[bytes]:
        assert self._health is not None
        try:
            healthy, document = self._health.submit(health).result(timeout=HEALTH_SECONDS)
        except concurrent.futures.TimeoutError:
            healthy, document = False, f"The health check took longer than {HEALTH_SECONDS:g} s."
        except RecorderError as error:
            healthy, document = False, str(error)
        except Exception as error:  # a bug must not take the metrics server down
            log.exception("The health check failed")
            healthy, document = False, f"The health check failed ({type(error).__name__})."
        status = "200 OK" if healthy else "503 Service Unavailable"
        body = (document + "\n").encode("utf-8")
        start_response(
            status,
            [
                ("Content-Type", "application/json" if document.startswith("{") else "text/plain"),
                ("Content-Length", str(len(body))),
            ],
        )
        yield body

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._health is not None:
            self._health.shutdown(wait=False, cancel_futures=True)
            self._health = None


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """Each request on a thread of its own: a slow health check never blocks a scrape."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _family(address: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family to listen on (IPv6 for "::")."""
    infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])
