"""The daemon: every account polled now and then every interval, until SIGTERM or SIGINT.

APScheduler runs the polls on a pool of worker threads, one poll per account at a time; a
late poll runs once, not once per missed interval. The schedule keeps to the monotonic
clock whatever the wall clock does (see `ClockWatch`). With [retention], old snapshots are
thinned out daily beside the polls. Under systemd it reports READY, pings the watchdog
from the worker pool, and reports STOPPING.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from recorder.config import AccountConfig, Settings
from recorder.errors import SchemaError, StoreError
from recorder.polling import systemd
from recorder.polling.cycle import Poller, utc_now
from recorder.store import maintenance, retention

log = logging.getLogger(__name__)

#: How long a stopping daemon lets the polls in flight finish, then how long it waits for
#: them once their requests are called off: SIGTERM ends the process within 10 s whatever
#: the exchange or the database is doing.
STOP_GRACE = 5.0
CALLED_OFF_GRACE = 2.5
#: The first round is spread a little slower than max_requests_per_second (10 %), so it
#: never queues on the limiter.
FIRST_ROUND_MARGIN = 1.1

#: A backward step of the wall clock smaller than this is left alone (NTP slews are far
#: slower; a poll is at most this late).
STEP_TOLERANCE = 0.25


class ClockWatch:
    """Notices the wall clock stepping back, by its distance from the monotonic clock.

    APScheduler 3 keeps each job's next run as a wall-clock time and compares it with
    `datetime.now()`; only its waits are monotonic. After a step back of an hour every job
    would wait an hour (and a forward step only makes the next run early, once, which its
    coalescing absorbs). So the daemon's main thread checks the clock every tick, on
    monotonic waits, and moves every job's next run back by the step: each keeps its
    monotonic phase. Re-arming the jobs through APScheduler's public API keeps
    APScheduler the one scheduler, rather than replacing its loop or trigger internals.
    """

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def stepped_back(self) -> float:
        """Seconds the wall clock went back since the last call (0 if it did not)."""
        offset = time.time() - time.monotonic()
        step, self._offset = self._offset - offset, offset
        return step if step > STEP_TOLERANCE else 0.0


class Daemon:
    """Runs a Poller on a schedule until stopped."""

    def __init__(self, poller: Poller, call_off: threading.Event | None = None) -> None:
        self.poller = poller
        self.stopping = poller.stopping
        #: Set when polls in flight must end now: their requests to the exchange stop.
        self.call_off = call_off or threading.Event()
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def settings(self) -> Settings:
        """The poller's settings."""
        return self.poller.settings

    def run(self, *, handle_signals: bool = True) -> bool:
        """Poll every account now and then every interval until stopped (SIGTERM/SIGINT);
        False when polls were still in flight after STOP_GRACE (they are abandoned)."""
        accounts = self.settings.require_accounts()
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        # The schema is checked beside the first polls, not before them: a database that
        # does not answer must neither delay recording (polls wait in the buffer) nor
        # SIGTERM. A schema newer than this program stops the daemon.
        refused: list[SchemaError] = []
        threading.Thread(target=self._prepare, args=(refused,), name="prepare", daemon=True).start()
        scheduler = self._scheduler(accounts)
        log.info(
            "Recording %d account%s (%s) every %g s into %s.",
            len(accounts),
            "" if len(accounts) == 1 else "s",
            ", ".join(a.name for a in accounts),
            self.settings.interval_seconds,
            self.poller.writes.db.display_url,
        )
        watch = ClockWatch()
        scheduler.start()
        systemd.notify(f"READY=1\nSTATUS=Recording {len(accounts)} account(s)")
        tick = min(1.0, self.settings.interval_seconds / 4)
        try:
            while not self.stopping.wait(tick):
                step = watch.stepped_back()
                if step:
                    self._rearm(scheduler, step)
        finally:
            systemd.notify("STOPPING=1")
            log.info("Stopping: finishing the polls in flight.")
            scheduler.shutdown(wait=False)
            finished = self._wait_for_polls()
            self._report_buffer()
            log.info("Stopped.")
        if refused:
            raise refused[0]
        return finished

    def _prepare(self, refused: list[SchemaError]) -> None:
        try:
            self.poller.writes.prepare()
        except SchemaError as error:
            refused.append(error)
            self.stopping.set()

    def _wait_for_polls(self) -> bool:
        """Let the polls in flight finish; call off their requests if they take too long;
        False if some are still stuck after that (on the database)."""
        with self._idle:
            if self._idle.wait_for(lambda: self._in_flight == 0, timeout=STOP_GRACE):
                return True
            log.warning(
                "%d poll(s) still in flight after %g s; their requests are called off.",
                self._in_flight,
                STOP_GRACE,
            )
            self.call_off.set()
            if self._idle.wait_for(lambda: self._in_flight == 0, timeout=CALLED_OFF_GRACE):
                return True
            log.error(
                "%d poll(s) did not end after being called off (they wait for the database); "
                "they are abandoned.",
                self._in_flight,
            )
            self.poller.writes.keep_in_flight()
            return False

    def _report_buffer(self) -> None:
        buffer = self.poller.writes.buffer
        if not len(buffer):
            return
        buffer.save()
        saved = buffer.saved()
        log.warning(
            "%d poll(s) are still waiting for the database: %d in the journal %s, which the "
            "next run writes first, and %d in memory only, which are lost now.",
            len(buffer),
            saved,
            buffer.journal,
            len(buffer) - saved,
        )

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
        start, began = datetime.now(UTC), time.monotonic()
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
                args=[account, began + index * spacing],
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
                db,
                kept.keep_all_days,
                kept.keep_one_per,
                utc_now(),
                interval_seconds=self.settings.interval_seconds,
                stop=self.stopping.is_set,
            )
            if deleted:
                maintenance.analyze(db)
        except StoreError as error:
            log.warning("Pruning old snapshots failed (%s); it is tried again tomorrow.", error)

    @staticmethod
    def _rearm(scheduler: BackgroundScheduler, step: float) -> None:
        log.warning(
            "The system clock went back by %.1f s; polls keep their interval, and each is "
            "stored after its account's newest snapshot until the clock catches up.",
            step,
        )
        for job in scheduler.get_jobs():
            if job.next_run_time is not None:
                job.modify(next_run_time=job.next_run_time - timedelta(seconds=step))

    def _scheduled_poll(self, account: AccountConfig, first: float) -> None:
        if self.stopping.is_set():
            return
        # The run this call stands for: the last one due (missed runs are coalesced),
        # counted on the monotonic clock from the account's first poll.
        interval = self.settings.interval_seconds
        now = time.monotonic()
        due = first + max(math.floor((now - first) / interval), 0) * interval
        with self._idle:
            self._in_flight += 1
        try:
            self.poller.poll(account, scheduled_at=utc_now() - timedelta(seconds=now - due))
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s.", signal.Signals(signum).name)
        self.stopping.set()

    def stop(self) -> None:
        """Ask `run()` to return after the polls in flight."""
        self.stopping.set()
