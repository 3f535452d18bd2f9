"""The recorder's cycle and its daemon.

`Recorder.poll(account)` is one cycle: claim the account's lock, fetch (with backoff on
overload), value, then store the snapshot with its diff in one transaction, or store one
poll_errors row. When the database cannot take it, the outcome waits in the outage buffer
and is written, in order, once the database is back. `run()` schedules the cycle for
every account with APScheduler and stops cleanly on SIGTERM/SIGINT.

The exchange client, the store and diff do not know each other; this module wires them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from recorder.config import AccountConfig, Settings
from recorder.diff import Change, diff
from recorder.errors import (
    AccountLockedError,
    AuthenticationError,
    PollError,
    RateLimitError,
    SchemaError,
    StoreError,
)
from recorder.polling import locks, systemd
from recorder.polling.buffer import OutageBuffer, Pending
from recorder.polling.pricing import TickerCache, Valuation, valuate
from recorder.sources.coinw.client import CoinWClient, utc_now
from recorder.sources.coinw.parse import Snapshot
from recorder.sources.pacing import backoff_delays
from recorder.store.database import Store

log = logging.getLogger(__name__)

#: Retries after overload stop once this share of the interval is spent, so a struggling
#: exchange never pushes a poll into the next one.
RETRY_BUDGET_SHARE = 0.5


@dataclass(frozen=True)
class PollResult:
    """What one poll of one account did (or, with `replayed`, a late write of one)."""

    account: str
    attempted_at: datetime
    snapshot: Snapshot | None = None
    snapshot_id: int | None = None
    changes: list[Change] = field(default_factory=list)
    error: PollError | StoreError | None = None
    #: The poll succeeded but the database was down: the snapshot waits in the buffer.
    buffered: bool = False
    #: A buffered snapshot written to the database after an outage.
    replayed: bool = False
    #: For scheduled polls: when the poll was due (its lateness is attempted_at minus this).
    scheduled_at: datetime | None = None
    #: Seconds from the start of the poll to its commit (or to its failure).
    duration: float = 0.0
    #: Prices and values of the snapshot, as stored with it.
    valuation: Valuation | None = None
    #: Not polled: another process records this account.
    skipped: bool = False

    @property
    def ok(self) -> bool:
        """True when the poll succeeded (stored, or safe in the buffer)."""
        return self.error is None


@dataclass(frozen=True)
class _Stored:
    snapshot_id: int | None
    changes: list[Change]


class Recorder:
    """Polls accounts and records what they hold."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: CoinWClient,
        *,
        account_locks: locks.AccountLocks | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.stop_event = threading.Event()
        # One ticker per round of polls, a round being (a little under) one interval.
        self.tickers = TickerCache(client.fetch_ticker, max_age=settings.interval_seconds * 0.9)
        self.locks = account_locks or locks.for_store(store)
        self.buffer = OutageBuffer(settings.buffer_file, settings.buffer_max_snapshots)
        #: Called after every poll and every late write, from the polling thread.
        self.listeners: list[Callable[[PollResult], None]] = []
        # Writes happen one at a time and in order: the buffer first, then new polls.
        self._write_gate = threading.Lock()
        self._schema_ready = False
        self._database_down_since: float | None = None
        self._retry_database_at = 0.0
        self._claims: dict[str, locks.Claim] = {}
        #: Who took a snapshot, stored with it: tells recorders sharing a database apart.
        self.instance = f"{socket.gethostname()}:{os.getpid()}"[:64]

    # -- one cycle ---------------------------------------------------------------------

    def poll(self, account: AccountConfig, scheduled_at: datetime | None = None) -> PollResult:
        """Poll one account once and record the outcome; never raises an expected error."""
        attempted_at = utc_now()
        began = time.monotonic()
        name = account.name
        claim = self._claim(name)
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
                PollResult(name, attempted_at, error=error, skipped=True, scheduled_at=scheduled_at)
            )
        try:
            snapshot = self._fetch(account)
        except PollError as error:
            self._log_failure(account, error)
            pending = Pending(name, attempted_at, error_kind=error.kind, message=str(error))
            buffered = self._store(pending) is None
            return self._notify(
                PollResult(
                    name,
                    attempted_at,
                    error=error,
                    buffered=buffered,
                    scheduled_at=scheduled_at,
                    duration=time.monotonic() - began,
                )
            )
        pairs = self.tickers.pairs() if self.settings.fetch_prices else None
        valuation = valuate(snapshot.balances, pairs)
        pending = Pending(
            name, snapshot.taken_at, dict(snapshot.balances), dict(snapshot.parts), valuation
        )
        stored = self._store(pending)
        return self._notify(
            PollResult(
                name,
                attempted_at,
                snapshot,
                stored.snapshot_id if stored else None,
                stored.changes if stored else [],
                buffered=stored is None,
                scheduled_at=scheduled_at,
                duration=time.monotonic() - began,
                valuation=valuation,
            )
        )

    def poll_all(self) -> list[PollResult]:
        """Poll every configured account once, one after the other."""
        return [self.poll(account) for account in self.settings.require_accounts()]

    def _claim(self, account: str) -> locks.Claim:
        claim = self.locks.claim(account)
        previous = self._claims.get(account)
        if claim is not previous:
            self._claims[account] = claim
            if claim is locks.Claim.BUSY:
                log.warning(
                    "%s: another recorder process is recording this account; this one will "
                    "not poll it, and checks again every interval.",
                    account,
                    extra={"account": account},
                )
            elif claim is locks.Claim.UNKNOWN:
                log.warning(
                    "%s: the database that holds the account locks is unreachable; polling "
                    "anyway, into the local buffer, until the lock can be taken.",
                    account,
                    extra={"account": account},
                )
            elif previous is not None:
                log.info(
                    "%s: this process records the account now.", account, extra={"account": account}
                )
        return claim

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
                    extra={"account": account.name},
                )
                if self.stop_event.wait(delay):
                    raise
                attempt += 1

    def _log_failure(self, account: AccountConfig, error: PollError) -> None:
        if isinstance(error, AuthenticationError):
            log.error(
                "%s: poll failed (%s): %s This is a configuration problem; polls will keep "
                "failing until it is fixed.",
                account.name,
                error.kind,
                error,
                extra={"account": account.name},
            )
        else:
            log.warning(
                "%s: poll failed (%s): %s",
                account.name,
                error.kind,
                error,
                extra={"account": account.name},
            )

    # -- storing, through the outage buffer --------------------------------------------

    def _store(self, entry: Pending) -> _Stored | None:
        """Write `entry` after anything buffered; None when it had to be buffered."""
        with self._write_gate:
            if self._drain():
                try:
                    stored = self._write(entry, replay=False)
                except StoreError as error:
                    self._database_failed(error)
                else:
                    self._database_answered()
                    return stored
            self._keep(entry)
            return None

    def _write(self, entry: Pending, *, replay: bool) -> _Stored:
        if not self._schema_ready:
            self.store.ensure_schema()
            self._schema_ready = True
        account_id = self.store.account_id(entry.account)
        with self.store.writer() as writer:
            if not entry.is_snapshot:
                assert entry.error_kind is not None
                if not (replay and writer.has_poll_error(account_id, entry.at, entry.error_kind)):
                    writer.add_poll_error(account_id, entry.at, entry.error_kind, entry.message)
                return _Stored(None, [])
            if replay and writer.has_snapshot(account_id, entry.at):
                return _Stored(None, [])  # written before a crash, journal not yet trimmed
            previous = writer.previous_balances(account_id, before=entry.at)
            changes = diff(previous, entry.balances)
            snapshot_id = writer.add_snapshot(
                account_id,
                entry.at,
                entry.balances,
                changes,
                valuation=entry.valuation,
                parts=entry.parts,
                recorded_by=self.instance,
            )
        for change in changes:
            log.info("%s", change.describe(entry.account), extra={"account": entry.account})
        return _Stored(snapshot_id, changes)

    def _drain(self) -> bool:
        """Write every buffered entry, oldest first; True when the buffer is empty."""
        if not len(self.buffer):
            return True
        if time.monotonic() < self._retry_database_at:
            return False
        written = 0
        try:
            while (entry := self.buffer.peek()) is not None:
                claim = self._claim(entry.account)
                if claim is locks.Claim.BUSY:
                    dropped = self.buffer.discard(entry.account)
                    log.warning(
                        "%s: another recorder process took this account while the database "
                        "was away; the %d poll(s) buffered here are dropped so its history "
                        "stays consistent.",
                        entry.account,
                        dropped,
                        extra={"account": entry.account},
                    )
                    continue
                if claim is locks.Claim.UNKNOWN:
                    return False
                try:
                    stored = self._write(entry, replay=True)
                except StoreError as error:
                    self._database_failed(error)
                    return False
                self.buffer.pop()
                written += 1
                if entry.is_snapshot:
                    self._notify(
                        PollResult(
                            entry.account,
                            entry.at,
                            None,
                            stored.snapshot_id,
                            stored.changes,
                            replayed=True,
                        )
                    )
            self._database_answered()
            return True
        finally:
            if written:
                self.buffer.persist()
                log.info(
                    "Wrote %d buffered poll%s to the database; %d still buffered.",
                    written,
                    "" if written == 1 else "s",
                    len(self.buffer),
                )

    def _keep(self, entry: Pending) -> None:
        for dropped in self.buffer.add(entry):
            log.error(
                "The local buffer is full (%d polls): dropped %s%s.",
                self.buffer.capacity,
                dropped.describe(),
                ""
                if not dropped.is_snapshot
                else "; the history has a gap there unless it repeated the snapshot before it",
            )
        log.warning(
            "%s: the database is unavailable; kept %s in the local buffer (%d buffered, "
            "%d of them snapshots; at most %d%s).",
            entry.account,
            entry.describe(),
            len(self.buffer),
            self.buffer.snapshots(),
            self.buffer.capacity,
            f"; journal {self.buffer.journal}" if self.buffer.journal else "",
            extra={"account": entry.account},
        )

    def _database_failed(self, error: StoreError) -> None:
        if isinstance(error, SchemaError):
            log.error("%s", error)
        elif self._database_down_since is None:
            log.error("%s Polls are kept in the local buffer until it is back.", error)
        if self._database_down_since is None:
            self._database_down_since = time.monotonic()
        # Do not knock on a dead database for every poll: at most once per interval.
        self._retry_database_at = time.monotonic() + min(self.settings.interval_seconds, 30)

    def _database_answered(self) -> None:
        if self._database_down_since is not None:
            log.info(
                "The database is back after %.0f s.", time.monotonic() - self._database_down_since
            )
        self._database_down_since = None
        self._retry_database_at = 0.0

    def _notify(self, result: PollResult) -> PollResult:
        for listener in self.listeners:
            try:
                listener(result)
            except Exception:
                log.exception(
                    "%s: a poll listener failed", result.account, extra={"account": result.account}
                )
        return result

    # -- the daemon --------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> None:
        """Poll every account now and then every interval until stopped (SIGTERM/SIGINT)."""
        accounts = self.settings.require_accounts()
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        try:
            self.store.ensure_schema()
            self._schema_ready = True
        except SchemaError:
            raise
        except StoreError as error:
            log.error(
                "%s Recording starts anyway; polls are kept in the local buffer until "
                "the database is back.",
                error,
            )
            self._database_failed(error)
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
        # "At once" for a few accounts; for many, as fast as max_requests_per_second allows,
        # each account keeping its own phase so later rounds are as smooth as the first.
        # (A little slower than the limit itself, so the first round never queues on it.)
        spacing = 1.1 / self.settings.max_requests_per_second
        if len(accounts) * spacing > interval:
            log.warning(
                "%d accounts every %g s need %.0f requests per second, more than "
                "max_requests_per_second (%g): polls will run late.",
                len(accounts),
                interval,
                len(accounts) / interval,
                self.settings.max_requests_per_second,
            )
        for index, account in enumerate(accounts):
            first = start + timedelta(seconds=index * spacing)
            scheduler.add_job(
                self._scheduled_poll,
                IntervalTrigger(seconds=interval, start_date=first, timezone=UTC),
                args=[account, first],
                id=account.name,
                name=f"poll {account.name}",
                next_run_time=first,
            )
        if self.settings.retention.keep_all_days is not None:
            # Thinning out old snapshots runs in short batches beside the polls, daily.
            scheduler.add_job(
                self._prune,
                IntervalTrigger(hours=24, timezone=UTC),
                id="prune",
                name="prune",
                next_run_time=start + timedelta(minutes=1),
            )
        log.info(
            "Recording %d account%s (%s) every %g s into %s.",
            len(accounts),
            "" if len(accounts) == 1 else "s",
            ", ".join(a.name for a in accounts),
            interval,
            self.store.display_url,
        )
        watchdog = systemd.watchdog_interval()
        if watchdog is not None:
            # Pinged from the worker pool, so a stuck pool (not just a live process) stops
            # the pings and lets systemd restart the daemon.
            scheduler.add_job(
                systemd.notify,
                IntervalTrigger(seconds=watchdog, timezone=UTC),
                args=["WATCHDOG=1"],
                id="watchdog",
                name="watchdog",
            )
        scheduler.start()
        systemd.notify(f"READY=1\nSTATUS=Recording {len(accounts)} account(s)")
        try:
            self.stop_event.wait()
        finally:
            systemd.notify("STOPPING=1")
            log.info("Stopping: finishing the polls in flight.")
            scheduler.shutdown(wait=True)
            if len(self.buffer):
                log.warning(
                    "%d poll(s) are still waiting for the database in %s; the next run writes "
                    "them.",
                    len(self.buffer),
                    self.buffer.journal or "memory (lost now)",
                )
            self.close()
            log.info("Stopped.")

    def close(self) -> None:
        """Release the account locks (the store and client belong to the caller)."""
        self.locks.close()

    def _prune(self) -> None:
        from recorder.store.retention import prune

        try:
            deleted = prune(
                self.store, self.settings.retention, utc_now(), stop=self.stop_event.is_set
            )
            if deleted:
                self.store.analyze()
        except StoreError as error:
            log.warning("Pruning old snapshots failed (%s); it is tried again tomorrow.", error)

    def _scheduled_poll(self, account: AccountConfig, first: datetime) -> None:
        if self.stop_event.is_set():
            return
        # The run this call stands for: the last one due (missed runs are coalesced).
        interval = timedelta(seconds=self.settings.interval_seconds)
        due = first + ((utc_now() - first) // interval) * interval
        self.poll(account, scheduled_at=max(due, first))

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s.", signal.Signals(signum).name)
        self.stop_event.set()

    def stop(self) -> None:
        """Ask `run()` to return after the polls in flight."""
        self.stop_event.set()
