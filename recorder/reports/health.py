"""Is the recorder alive, and where does its history have holes? Read from the database.

`status` answers "when did each account last succeed, and what went wrong since"; an
account whose last success is older than three intervals is stale, and the command then
exits non-zero (a health check for cron or a container). `gaps` lists every stretch
longer than two intervals without a successful snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from recorder.store.database import Store

STALE_INTERVALS = 3
GAP_INTERVALS = 2


@dataclass(frozen=True)
class AccountStatus:
    """One account's health."""

    account: str
    last_success: datetime | None
    age: timedelta | None
    last_error: Mapping[str, Any] | None
    errors_24h: int
    snapshots: int
    stale: bool


def account_statuses(
    store: Store, accounts: Mapping[str, int], interval: float, now: datetime
) -> list[AccountStatus]:
    """The health of each account; stale when silent for more than three intervals."""
    result = []
    for name, account_id in accounts.items():
        found = store.account_status(account_id, now - timedelta(hours=24))
        last = found["last_success"]
        age = now - last if last is not None else None
        stale = age is None or age > timedelta(seconds=STALE_INTERVALS * interval)
        result.append(
            AccountStatus(
                name, last, age, found["last_error"], found["errors_24h"], found["snapshots"], stale
            )
        )
    return result


@dataclass(frozen=True)
class Gap:
    """A stretch without a successful snapshot; `end` None: still open now."""

    account: str
    start: datetime
    end: datetime | None
    length: timedelta


def find_gaps(
    account: str, times: Iterable[datetime], threshold: timedelta, now: datetime | None
) -> Iterator[Gap]:
    """Every pair of consecutive snapshots further apart than `threshold` (pure); with
    `now`, also the stretch from the last snapshot until now."""
    previous = None
    for moment in times:
        if previous is not None and moment - previous > threshold:
            yield Gap(account, previous, moment, moment - previous)
        previous = moment
    if now is not None and previous is not None and now - previous > threshold:
        yield Gap(account, previous, None, now - previous)


def gaps(
    store: Store,
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
        times = store.iter_snapshot_times(account_id, since, until)
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
