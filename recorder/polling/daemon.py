"""The daemon: every account polled now and then every interval, until SIGTERM or SIGINT.

APScheduler runs the polls on a pool of worker threads, one poll per account at a time; a
late poll runs once, not once per missed interval. With [retention], old snapshots are
thinned out daily beside the polls. Under systemd it reports READY, pings the watchdog
from the worker pool, and reports STOPPING.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from recorder.config import AccountConfig, Settings
from recorder.errors import StoreError
from recorder.polling import systemd
from recorder.polling.cycle import Poller, utc_now
from recorder.store import maintenance, retention

log = logging.getLogger(__name__)

#: The first round is spread a little slower than max_requests_per_second (10 %), so it
#: never queues on the limiter.
FIRST_ROUND_MARGIN = 1.1


class Daemon:
    """Runs a Poller on a schedule until stopped."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.stopping = poller.stopping

    @property
    def settings(self) -> Settings:
        """The poller's settings."""
        return self.poller.settings

    def run(self, *, handle_signals: bool = True) -> None:
        """Poll every account now and then every interval until stopped (SIGTERM/SIGINT)."""
        accounts = self.settings.require_accounts()
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        self.poller.writes.prepare()
        scheduler = self._scheduler(accounts)
        log.info(
            "Recording %d account%s (%s) every %g s into %s.",
            len(accounts),
            "" if len(accounts) == 1 else "s",
            ", ".join(a.name for a in accounts),
            self.settings.interval_seconds,
            self.poller.writes.db.display_url,
        )
        scheduler.start()
        systemd.notify(f"READY=1\nSTATUS=Recording {len(accounts)} account(s)")
        try:
            self.stopping.wait()
        finally:
            systemd.notify("STOPPING=1")
            log.info("Stopping: finishing the polls in flight.")
            scheduler.shutdown(wait=True)
            buffer = self.poller.writes.buffer
            if len(buffer):
                log.warning(
                    "%d poll(s) are still waiting for the database in %s; the next run writes "
                    "them.",
                    len(buffer),
                    buffer.journal or "memory (lost now)",
                )
            log.info("Stopped.")

    def _scheduler(self, accounts: tuple[AccountConfig, ...]) -> BackgroundScheduler:
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
        spacing = FIRST_ROUND_MARGIN / self.settings.max_requests_per_second
        if len(accounts) * spacing > interval:
            log.warning(
                "%d accounts every %g s need %.0f requests per second, counting the 10 %% "
                "margin kept below max_requests_per_second (%g): polls will run late; raise "
                "max_requests_per_second or interval_seconds.",
                len(accounts),
                interval,
                len(accounts) * FIRST_ROUND_MARGIN / interval,
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
        return scheduler

    def _prune(self) -> None:
        kept = self.settings.retention
        if kept.keep_all_days is None:
            return
        db = self.poller.writes.db
        try:
            deleted = retention.prune(
                db, kept.keep_all_days, kept.keep_one_per, utc_now(), stop=self.stopping.is_set
            )
            if deleted:
                maintenance.analyze(db)
        except StoreError as error:
            log.warning("Pruning old snapshots failed (%s); it is tried again tomorrow.", error)

    def _scheduled_poll(self, account: AccountConfig, first: datetime) -> None:
        if self.stopping.is_set():
            return
        # The run this call stands for: the last one due (missed runs are coalesced).
        interval = timedelta(seconds=self.settings.interval_seconds)
        due = first + ((utc_now() - first) // interval) * interval
        self.poller.poll(account, scheduled_at=max(due, first))

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s.", signal.Signals(signum).name)
        self.stopping.set()

    def stop(self) -> None:
        """Ask `run()` to return after the polls in flight."""
        self.stopping.set()
