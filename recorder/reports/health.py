"""Is the recorder alive, and where does its history have holes? Read from the database.

`status` answers "when did each account last succeed, and what went wrong since"; an
account whose last success is older than three intervals is stale, and the command then
exits non-zero (a health check for cron or a container). `gaps` lists every stretch
longer than two intervals without a successful snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from recorder import text
from recorder.store import migrate, status
from recorder.store.database import Database
from recorder.values import ErrorRow

STALE_INTERVALS = 3
GAP_INTERVALS = 2


@dataclass(frozen=True)
class AccountStatus:
    """One account's health."""

    account: str
    last_success: datetime | None
    age: timedelta | None
    last_error: ErrorRow | None
    errors_24h: int
    snapshots: int
    stale: bool


@dataclass(frozen=True)
class StatusReport:
    """The health of the recording: the database and every account."""

    database: str
    size_bytes: int | None
    schema_revision: str | None
    checked_at: datetime
    interval_seconds: float
    accounts: list[AccountStatus]
    #: Polls that wait in the outage journal for the database, and the oldest one's time.
    waiting: int = 0
    oldest_waiting: datetime | None = None

    @property
    def healthy(self) -> bool:
        """False when an account is stale, polls wait for the database, or there is no
        account to check."""
        fresh = bool(self.accounts) and not any(a.stale for a in self.accounts)
        return fresh and not self.waiting


def account_statuses(
    db: Database, accounts: Mapping[str, int], interval: float, now: datetime
) -> list[AccountStatus]:
    """The health of each account; stale when silent for more than three intervals."""
    result = []
    for name, account_id in accounts.items():
        found = status.account_activity(db, account_id, now - timedelta(hours=24))
        last = found.last_success
        # Never negative: with the clock behind, the newest snapshot lies in its future.
        age = max(now - last, timedelta(0)) if last is not None else None
        stale = age is None or age > timedelta(seconds=STALE_INTERVALS * interval)
        result.append(
            AccountStatus(
                name, last, age, found.last_error, found.errors_since, found.snapshots, stale
            )
        )
    return result


def status_report(
    db: Database,
    accounts: Mapping[str, int],
    interval: float,
    now: datetime,
    waiting: tuple[int, datetime | None] = (0, None),
) -> StatusReport:
    """Everything `recorder status` shows; `waiting`: what the outage journal holds."""
    return StatusReport(
        database=db.display_url,
        size_bytes=status.database_size(db),
        schema_revision=migrate.current_revision(db),
        checked_at=now,
        interval_seconds=interval,
        accounts=account_statuses(db, accounts, interval, now),
        waiting=waiting[0],
        oldest_waiting=waiting[1],
    )


def status_json(report: StatusReport) -> str:
    """`recorder status --format json`."""

    def error(row: ErrorRow | None) -> dict[str, Any] | None:
        if row is None:
            return None
        # Rows are shown as text from outside: another program may have written them.
        return {
            "at": row.at.isoformat(),
            "kind": text.safe(row.kind),
            "message": text.safe(row.message),
        }

    return json.dumps(
        {
            "database": report.database,
            "size_bytes": report.size_bytes,
            "schema_revision": report.schema_revision,
            "checked_at": report.checked_at.isoformat(),
            "interval_seconds": report.interval_seconds,
            "waiting_polls": report.waiting,
            "oldest_waiting": report.oldest_waiting.isoformat() if report.oldest_waiting else None,
            "accounts": [
                {
                    "account": s.account,
                    "stale": s.stale,
                    "last_success": s.last_success.isoformat() if s.last_success else None,
                    "age_seconds": s.age.total_seconds() if s.age is not None else None,
                    "last_error": error(s.last_error),
                    "errors_24h": s.errors_24h,
                    "snapshots": s.snapshots,
                }
                for s in report.accounts
            ],
        },
        indent=2,
    )


def status_lines(report: StatusReport) -> Iterator[str]:
    """`recorder status` as readable lines."""
    size = report.size_bytes
    megabytes = f"{size / 1e6:,.1f} MB" if size is not None else "unknown size"
    yield f"Database {report.database}: {megabytes}, schema {report.schema_revision}"
    if report.waiting:
        since = report.oldest_waiting
        age = f", the oldest for {human(report.checked_at - since)}" if since else ""
        yield (
            f"NOT RECORDING: {report.waiting} poll(s) wait in the outage journal for the "
            f"database{age}; the recorder's log says why."
        )
    for s in report.accounts:
        when = (
            f"last success {s.last_success.isoformat(timespec='seconds')} ({human(s.age)} ago)"
            if s.last_success and s.age is not None
            else "never succeeded"
        )
        line = f"{s.account}: {'STALE, ' if s.stale else ''}{when}; {s.snapshots:,} "
        line += f"snapshots; {s.errors_24h} errors in 24 h"
        if s.last_error:
            error = s.last_error
            line += (
                f"; last error {error.at.isoformat(timespec='seconds')} "
                f"{text.safe(error.kind)}: {text.safe(error.message)}"
            )
        yield line


@dataclass(frozen=True)
class Gap:
    """A stretch without a successful snapshot; `end` None: still open now."""

    account: str
    start: datetime
    end: datetime | None
    length: timedelta


#: Snapshots this close were stamped by the clock rule (store/writes.py: one microsecond
#: after the newest while the clock was behind); real polls are never this close.
RESTAMPED = timedelta(milliseconds=1)


def find_gaps(
    account: str, times: Iterable[datetime], threshold: timedelta, now: datetime | None
) -> Iterator[Gap]:
    """Every pair of consecutive snapshots further apart than `threshold` (pure); with
    `now`, also the stretch from the last snapshot until now. Polls stamped a microsecond
    apart while the clock was behind happened during the stretch after them: each
    covers one interval (half the threshold) of it."""
    previous = None
    covered = timedelta(0)
    for moment in times:
        if previous is not None and moment - previous <= RESTAMPED:
            covered += threshold / GAP_INTERVALS
        elif previous is not None:
            if moment - previous - covered > threshold:
                yield Gap(account, previous, moment, moment - previous)
            covered = timedelta(0)
        previous = moment
    if now is not None and previous is not None and now - previous - covered > threshold:
        yield Gap(account, previous, None, now - previous)


def gaps(
    db: Database,
    accounts: Mapping[str, int],
    interval: float,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
) -> list[Gap]:
    """Gaps longer than two intervals, per account, from the stored snapshots alone."""
    threshold = timedelta(seconds=GAP_INTERVALS * interval)
    found: list[Gap] = []
    for name, account_id in accounts.items():
        times = status.iter_snapshot_times(db, account_id, since, until)
        found.extend(find_gaps(name, times, threshold, None if until else now))
    return found


def human(length: timedelta) -> str:
    """'3 d 4 h', '12 min 5 s': a duration as an operator reads it."""
    seconds = int(length.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{value} {unit}" for value, unit in parts if value]
    return " ".join(shown[:2]) or "0 s"
