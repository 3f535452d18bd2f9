"""One poll of one account: claim its lock, fetch (with backoff on overload), value the
holdings at this round's prices, and hand the observation to the write path. Every poll
ends as one PollOutcome, given to each listener (metrics, notify) in turn."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from recorder.config import AccountConfig, Settings
from recorder.errors import (
    AccountLockedError,
    AuthenticationError,
    EmptyReplyError,
    PollError,
    RateLimitError,
    WriteRejectedError,
)
from recorder.polling import locks
from recorder.polling.pricing import TickerCache, valuate
from recorder.polling.writes import REJECTED, Stored, WritePath
from recorder.sources.coinw.client import CoinWClient
from recorder.sources.pacing import backoff_delays
from recorder.values import Observation, PollOutcome, PollStatus, Snapshot, Written

log = logging.getLogger(__name__)

#: Retries after overload stop once this share of the interval is spent, so a struggling
#: exchange never pushes a poll into the next one.
RETRY_BUDGET_SHARE = 0.5

Listener = Callable[[PollOutcome], None]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Poller:
    """Polls accounts and records what they hold."""

    def __init__(
        self,
        settings: Settings,
        client: CoinWClient,
        claims: locks.Claims,
        writes: WritePath,
        stopping: threading.Event,
    ) -> None:
        self.settings = settings
        self.client = client
        self.claims = claims
        self.writes = writes
        #: Set when the recorder is stopping: retries end, the daemon returns.
        self.stopping = stopping
        # One ticker per round of polls, a round being (a little under) one interval.
        self.tickers = TickerCache(client.fetch_ticker, max_age=settings.interval_seconds * 0.9)
        #: Called after every poll and every late write, from the polling thread.
        self.listeners: list[Listener] = []

    def poll(self, account: AccountConfig, scheduled_at: datetime | None = None) -> PollOutcome:
        """Poll one account once and record the outcome; never raises an expected error."""
        attempted_at = utc_now()
        began = time.monotonic()
        name = account.name
        claim = self.claims.claim(name)
        if claim is locks.Claim.BUSY or (claim is locks.Claim.UNKNOWN and self.settings.ha):
            # In HA mode an account is never polled without its lock: another process may
            # hold it while this one cannot see the database.
            error = AccountLockedError(
                f"{name}: another recorder process is recording this account; this one "
                "leaves it alone."
                if claim is locks.Claim.BUSY
                else f"{name}: the account's lock cannot be checked; not polling it (ha = true)."
            )
            return self._notify(
                PollOutcome(
                    name, attempted_at, PollStatus.SKIPPED, error=error, scheduled_at=scheduled_at
                )
            )
        try:
            snapshot = self._fetch(account)
        except PollError as error:
            self._log_failure(name, error)
            failure = Observation.of_failure(name, attempted_at, error.kind, str(error))
            stored = self.writes.store(failure)
            self._replayed(stored)
            return self._notify(
                PollOutcome(
                    name,
                    attempted_at,
                    PollStatus.FAILED,
                    error=error,
                    error_kind=error.kind,
                    scheduled_at=scheduled_at,
                    duration=time.monotonic() - began,
                    stored=stored.written is not None,
                )
            )
        pairs = self.tickers.pairs() if self.settings.fetch_prices else None
        snapshot = replace(snapshot, valuation=valuate(snapshot.balances, pairs))
        stored = self.writes.store(Observation.of_snapshot(name, snapshot))
        self._replayed(stored)
        outcome = PollOutcome(
            name,
            attempted_at,
            PollStatus.RECORDED,
            snapshot,
            scheduled_at=scheduled_at,
            duration=time.monotonic() - began,
        )
        return self._notify(self._what_was_stored(outcome, stored))

    def _what_was_stored(self, outcome: PollOutcome, stored: Stored) -> PollOutcome:
        """The outcome of a poll that fetched a snapshot, by what the write path did."""
        written, name = stored.written, outcome.account
        if stored.rejected is not None:
            error = WriteRejectedError(
                f"The database refused this poll's data ({stored.rejected})."
            )
            return replace(
                outcome, status=PollStatus.FAILED, error=error, error_kind=REJECTED, stored=False
            )
        if written is None:
            return replace(
                outcome, status=PollStatus.BUFFERED, stored=False, journaled=stored.journaled
            )
        if written.failure is not None:
            kind, message = written.failure
            empty = EmptyReplyError(message)
            self._log_failure(name, empty)
            return replace(outcome, status=PollStatus.FAILED, error=empty, error_kind=kind)
        self._log_changes(name, written)
        return replace(outcome, snapshot_id=written.snapshot_id, changes=written.changes)

    def poll_all(self) -> list[PollOutcome]:
        """Poll every configured account once, one after the other."""
        return [self.poll(account) for account in self.settings.require_accounts()]

    def _replayed(self, stored: Stored) -> None:
        """Buffered snapshots that reached the database after an outage, before this
        poll's: log their changes and tell the listeners; and buffered entries the
        database refused on their way in (each now a poll_errors row)."""
        for observation, reason in stored.refused:
            self._notify(
                PollOutcome(
                    observation.account,
                    observation.at,
                    PollStatus.REPLAYED,
                    error=WriteRejectedError(f"The database refused this poll's data ({reason})."),
                    error_kind=REJECTED,
                )
            )
        for observation, written in stored.replayed:
            self._log_changes(observation.account, written)
            self._notify(
                PollOutcome(
                    observation.account,
                    observation.at,
                    PollStatus.REPLAYED,
                    observation.snapshot,
                    written.snapshot_id,
                    written.changes,
                )
            )

    def _fetch(self, account: AccountConfig) -> Snapshot:
        budget = self.settings.interval_seconds * RETRY_BUDGET_SHARE
        delays = backoff_delays(self.settings.backoff_base_seconds, budget)
        attempt, began = 1, time.monotonic()
        while True:
            try:
                return self.client.fetch_balances(
                    account.credentials, complete=account.balance_source == "complete"
                )
            except PollError as error:
                delay = next(delays, None) if error.retryable else None
                if isinstance(error, RateLimitError) and error.retry_after and delay is not None:
                    delay = max(delay, error.retry_after) if error.retry_after < budget else None
                # The attempts' own time counts too: no retry starts past the budget.
                if delay is not None and time.monotonic() - began + delay > budget:
                    delay = None
                if delay is None or self.stopping.is_set():
                    if attempt > 1:
                        error.args = (f"{error} (after {attempt} attempts)",)
                    raise
                log.debug(
                    "%s: attempt %d failed (%s); retrying in %.1f s",
                    account.name,
                    attempt,
                    error.kind,
                    delay,
                    extra={"account": account.name},
                )
                if self.stopping.wait(delay):
                    raise
                attempt += 1

    def _log_failure(self, account: str, error: PollError) -> None:
        if isinstance(error, AuthenticationError):
            log.error(
                "%s: poll failed (%s): %s This is a configuration problem; polls will keep "
                "failing until it is fixed.",
                account,
                error.kind,
                error,
                extra={"account": account},
            )
        else:
            log.warning(
                "%s: poll failed (%s): %s", account, error.kind, error, extra={"account": account}
            )

    @staticmethod
    def _log_changes(account: str, written: Written) -> None:
        for change in written.changes:
            fields = {"currency": change.currency, "old": change.old_amount}
            fields |= {"new": change.new_amount, "delta": change.delta}
            log.info("%s", change.describe(account), extra={"account": account, **fields})

    def _notify(self, outcome: PollOutcome) -> PollOutcome:
        for listener in self.listeners:
            try:
                listener(outcome)
            except Exception:
                log.exception(
                    "%s: a poll listener failed",
                    outcome.account,
                    extra={"account": outcome.account},
                )
        return outcome
