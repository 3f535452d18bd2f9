"""Retention: keep every snapshot for a while, then one per hour or day.

Pruning never touches the change log, and never removes a snapshot that recorded a change:
holdings only change at those, so what an account held at any moment (`recorder at`)
stays exactly answerable after pruning. What goes are the snapshots that only confirmed
nothing had changed, beyond the last one of each hour or day.
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


def to_delete(snapshots: Iterable[tuple[int, datetime, bool]], every: str) -> Iterator[int]:
    """Ids to prune from (id, taken_at, recorded a change) in time order: everything but
    the last snapshot of each period (in UTC) and those that recorded a change. Pure."""
    group: list[tuple[int, bool]] = []
    current = None
    for snapshot_id, taken_at, changed in snapshots:
        period = timespec.period_start(taken_at, every, UTC)
        if period != current and group:
            yield from _prunable(group)
            group = []
        current = period
        group.append((snapshot_id, changed))
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
    dry_run: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Delete what the retention lets go, in short batches; returns how many snapshots."""
    before = now - timedelta(days=keep_all_days)
    deleted = 0
    for name, account_id in history.resolve_accounts(db).items():
        candidates = maintenance.prune_candidates(db, account_id, before)
        ids = list(to_delete(candidates, keep_one_per))
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
