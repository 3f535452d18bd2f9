"""Retention: keep every snapshot for a while, then one per hour or day.

Pruning never touches the change log, and never removes a snapshot that recorded a change:
holdings only change at those, so what an account held at any moment (`recorder at`)
stays exactly answerable after pruning. Nor does it remove an account's first snapshot
(one that held nothing records no change, yet without it `at` would find no snapshot at
all), or the first after a gap in the recording (it shows when recording resumed). What
goes are the snapshots that only confirmed nothing had changed, beyond the last one of
each hour or day.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

from recorder import timespec
from recorder.store import history, maintenance
from recorder.store.database import Database

log = logging.getLogger(__name__)

BATCH = 1000
#: A gap is more than this many intervals without a snapshot (as reports/health.py says).
GAP_INTERVALS = 2


def to_delete(
    snapshots: Iterable[tuple[int, datetime, bool]], every: str, gap: timedelta | None = None
) -> Iterator[int]:
    """Ids to prune from an account's (id, taken_at, recorded a change), all of them from
    its first, in time order: everything but the last snapshot of each period (in UTC),
    those that recorded a change, the first, and the first after more than `gap` without
    a snapshot. Pure."""
    group: list[tuple[int, bool]] = []
    current = previous = None
    for snapshot_id, taken_at, changed in snapshots:
        period = timespec.period_start(taken_at, every, UTC)
        if period != current and group:
            yield from _prunable(group)
            group = []
        current = period
        first = previous is None or (gap is not None and taken_at - previous > gap)
        group.append((snapshot_id, changed or first))
        previous = taken_at
    yield from _prunable(group)


def _prunable(group: list[tuple[int, bool]]) -> list[int]:
    """All of one period's snapshots but its last and those with a change."""
    return [snapshot_id for snapshot_id, changed in group[:-1] if not changed]


def prune(
    db: Database,
    keep_all_days: float,
    keep_one_per: str,
    now: datetime,
    *,
    interval_seconds: float | None = None,
    dry_run: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Delete what the retention lets go, in short batches; returns how many snapshots.
    With `interval_seconds`, the first snapshot after a gap (more than two intervals, as
    `recorder gaps` counts them) is kept."""
    before = now - timedelta(days=keep_all_days)
    gap = None if interval_seconds is None else timedelta(seconds=GAP_INTERVALS * interval_seconds)
    deleted = 0
    for name, account_id in history.resolve_accounts(db).items():
        candidates = maintenance.prune_candidates(db, account_id, before)
        ids = list(to_delete(candidates, keep_one_per, gap))
        if dry_run:
            deleted += len(ids)
            continue
        for start in range(0, len(ids), BATCH):
            if stop():
                return deleted
            # One short transaction per batch: the daemon's polls get in between.
            maintenance.delete_snapshots(db, ids[start : start + BATCH])
            deleted += len(ids[start : start + BATCH])
        if ids:
            log.info(
                "%s: pruned %d snapshots older than %s.",
                name,
                len(ids),
                before.isoformat(timespec="seconds"),
            )
    return deleted
