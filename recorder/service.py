"""The recorder's cycle and its daemon.

`Recorder.poll(account)` is one cycle: fetch (with backoff on overload) -> parse -> store
the snapshot with its diff in one transaction, or store one poll_errors row. `run()`
schedules that cycle for every account with APScheduler and stops cleanly on SIGTERM/SIGINT.
The exchange client, the store and diff do not know each other; this module wires them.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from recorder.config import AccountConfig, Settings
from recorder.diff import Change, diff
from recorder.errors import AuthenticationError, PollError, RateLimitError, StoreError
from recorder.exchange import CoinWClient, utc_now
from recorder.pacing import backoff_delays
from recorder.parse import Snapshot
from recorder.pricing import TickerCache, valuate
from recorder.store import Store

log = logging.getLogger(__name__)

#: Retries after overload stop once this share of the interval is spent, so a struggling
#: exchange never pushes a poll into the next one.
RETRY_BUDGET_SHARE = 0.5


@dataclass(frozen=True)
class PollResult:
    """What one poll of one account did."""

    account: str
    attempted_at: datetime
    snapshot: Snapshot | None = None
    snapshot_id: int | None = None
    changes: list[Change] = field(default_factory=list)
    error: PollError | StoreError | None = None

    @property
    def ok(self) -> bool:
        """True when the snapshot is stored."""
        return self.error is None


class Recorder:
    """Polls accounts and records what they hold."""

    def __init__(self, settings: Settings, store: Store, client: CoinWClient) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.stop_event = threading.Event()
        # One ticker per round of polls, a round being (a little under) one interval.
        self.tickers = TickerCache(client.fetch_ticker, max_age=settings.interval_seconds * 0.9)
        #: Called after every poll, from the polling thread (metrics, notifications, demo).
        self.listeners: list[Callable[[PollResult], None]] = []

    # -- one cycle ---------------------------------------------------------------------

    def poll(self, account: AccountConfig) -> PollResult:
        """Poll one account once and record the outcome; never raises an expected error."""
        attempted_at = utc_now()
        try:
            account_id = self.store.account_id(account.name)
        except StoreError as error:
            log.error("%s: %s", account.name, error)
            return self._notify(PollResult(account.name, attempted_at, error=error))
        try:
            snapshot = self._fetch(account)
        except PollError as error:
            return self._notify(self._record_failure(account, account_id, attempted_at, error))
        pairs = self.tickers.pairs() if self.settings.fetch_prices else None
        valuation = valuate(snapshot.balances, pairs)
        try:
            with self.store.writer() as writer:
                previous = writer.previous_balances(account_id)
                changes = diff(previous, snapshot.balances)
                snapshot_id = writer.add_snapshot(
                    account_id,
                    snapshot.taken_at,
                    snapshot.balances,
                    changes,
                    valuation=valuation,
                    parts=snapshot.parts,
                )
        except StoreError as error:
            log.error("%s: the snapshot could not be stored: %s", account.name, error)
            return self._notify(PollResult(account.name, attempted_at, snapshot, error=error))
        for change in changes:
            log.info("%s", change.describe(account.name))
        log.debug(
            "%s: stored snapshot %d (%d currencies, %d changes)",
            account.name,
            snapshot_id,
            len(snapshot.balances),
            len(changes),
        )
        return self._notify(PollResult(account.name, attempted_at, snapshot, snapshot_id, changes))

    def poll_all(self) -> list[PollResult]:
        """Poll every configured account once, one after the other."""
        return [self.poll(account) for account in self.settings.require_accounts()]

    def _fetch(self, account: AccountConfig) -> Snapshot:
        budget = self.settings.interval_seconds * RETRY_BUDGET_SHARE
        delays = backoff_delays(self.settings.backoff_base_seconds, budget)
        attempt = 1
        while True:
            try:
                return self.client.fetch_balances(
                    account.credentials, complete=account.balance_source == "complete"
                )
            except PollError as error:
                delay = next(delays, None) if error.retryable else None
                if isinstance(error, RateLimitError) and error.retry_after and delay is not None:
                    delay = max(delay, error.retry_after) if error.retry_after < budget else None
                if delay is None or self.stop_event.is_set():
                    if attempt > 1:
                        error.args = (f"{error} (after {attempt} attempts)",)
                    raise
                log.debug(
                    "%s: attempt %d failed (%s); retrying in %.1f s",
                    account.name,
                    attempt,
                    error.kind,
                    delay,
                )
                if self.stop_event.wait(delay):
                    raise
                attempt += 1

    def _record_failure(
        self, account: AccountConfig, account_id: int, attempted_at: datetime, error: PollError
    ) -> PollResult:
        if isinstance(error, AuthenticationError):
            log.error(
                "%s: poll failed (%s): %s This is a configuration problem; polls will keep "
                "failing until it is fixed.",
                account.name,
                error.kind,
                error,
            )
        else:
            log.warning("%s: poll failed (%s): %s", account.name, error.kind, error)
        try:
            self.store.add_poll_error(account_id, attempted_at, error.kind, str(error))
        except StoreError as store_error:
            log.error("%s: the failed poll could not be recorded: %s", account.name, store_error)
        return PollResult(account.name, attempted_at, error=error)

    def _notify(self, result: PollResult) -> PollResult:
        for listener in self.listeners:
            try:
                listener(result)
            except Exception:
                log.exception("%s: a poll listener failed", result.account)
        return result

    # -- the daemon --------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> None:
        """Poll every account now and then every interval until stopped (SIGTERM/SIGINT)."""
        accounts = self.settings.require_accounts()
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        interval = self.settings.interval_seconds
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(self.settings.workers)},
            job_defaults={
                # One poll per account at a time; a late poll runs once, not once per miss.
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": None,
            },
        )
        start = datetime.now(UTC)
        for account in accounts:
            scheduler.add_job(
                self._scheduled_poll,
                IntervalTrigger(seconds=interval, start_date=start, timezone=UTC),
                args=[account],
                id=account.name,
                name=f"poll {account.name}",
                next_run_time=start,
            )
        log.info(
            "Recording %d account%s (%s) every %g s into %s.",
            len(accounts),
            "" if len(accounts) == 1 else "s",
            ", ".join(a.name for a in accounts),
            interval,
            self.store.display_url,
        )
        scheduler.start()
        try:
            self.stop_event.wait()
        finally:
            log.info("Stopping: finishing the polls in flight.")
            scheduler.shutdown(wait=True)
            log.info("Stopped.")

    def _scheduled_poll(self, account: AccountConfig) -> None:
        if not self.stop_event.is_set():
            self.poll(account)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s.", signal.Signals(signum).name)
        self.stop_event.set()

    def stop(self) -> None:
        """Ask `run()` to return after the polls in flight."""
        self.stop_event.set()
