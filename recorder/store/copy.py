"""`recorder db copy`: the whole history into another database, verified, safe to re-run.

Snapshots go over in chunks by id, each chunk with its balances and changes in one
transaction on the target, keeping every id. A chunk is there entirely or not at all, so
a copy that stopped half way resumes after the last chunk it finished, and a copy run
again copies nothing twice. Afterwards row counts and exact sums of every amount column
must match on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from recorder.errors import InputError, StoreError
from recorder.store import schema as models
from recorder.store.database import Store

log = logging.getLogger(__name__)

# Every column, in table order: a copy keeps ids and all the rest as they are.
SNAPSHOT_COLUMNS = tuple(models.snapshots.columns.keys())
BALANCE_COLUMNS = tuple(models.balances.columns.keys())
CHANGE_COLUMNS = tuple(models.balance_changes.columns.keys())
POLL_ERROR_COLUMNS = tuple(models.poll_errors.columns.keys())


@dataclass(frozen=True)
class CopyReport:
    """What a copy did and what the verification found."""

    copied: dict[str, int]
    checksums: dict[str, tuple[int, Decimal]]


def _copy_accounts(source: Store, target: Store) -> int:
    wanted = source.raw_accounts()
    present = dict(target.raw_accounts())
    by_name = {name: account_id for account_id, name in present.items()}
    missing = []
    for account_id, name in wanted:
        if present.get(account_id, name) != name or by_name.get(name, account_id) != account_id:
            raise InputError(
                f"The target database already holds a different history (account {name!r} "
                "has another id there); copy into an empty database."
            )
        if account_id not in present:
            missing.append((account_id, name))
    with target.bulk() as bulk:
        bulk.insert("accounts", ("id", "name"), missing)
    return len(missing)


def copy_history(
    source: Store,
    target: Store,
    *,
    chunk: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy everything in `source` that `target` lacks, then verify the two agree."""
    if source.display_url == target.display_url:
        raise InputError("The source and the target are the same database.")
    source.ensure_schema()
    target.ensure_schema()
    copied = {
        "accounts": _copy_accounts(source, target),
        "snapshots": 0,
        "balances": 0,
        "balance_changes": 0,
        "poll_errors": 0,
    }
    last = source.max_key("snapshots")
    done = target.max_key("snapshots")
    if done > last:
        raise InputError(
            "The target database holds snapshots the source does not have; copy "
            "into an empty database."
        )
    if done:
        log.info("The target already holds snapshots up to id %d; resuming after it.", done)
    while done < last:
        up_to = min(done + chunk, last)
        snapshots, balances, changes = source.raw_snapshot_chunk(done, up_to)
        with target.bulk() as bulk:
            bulk.insert(
                "snapshots",
                SNAPSHOT_COLUMNS,
                [(i, a, target.storage_time(t), v, u, r) for i, a, t, v, u, r in snapshots],
            )
            bulk.insert("balances", BALANCE_COLUMNS, balances)
            bulk.insert(
                "balance_changes",
                CHANGE_COLUMNS,
                [(*row[:7], target.storage_time(row[7])) for row in changes],
            )
        copied["snapshots"] += len(snapshots)
        copied["balances"] += len(balances)
        copied["balance_changes"] += len(changes)
        if progress is not None:
            progress(len(balances))
        done = up_to
    after = target.max_key("poll_errors")
    while rows := source.raw_poll_errors(after, chunk):
        with target.bulk() as bulk:
            bulk.insert(
                "poll_errors",
                POLL_ERROR_COLUMNS,
                [(i, a, target.storage_time(t), k, m) for i, a, t, k, m in rows],
            )
        copied["poll_errors"] += len(rows)
        after = rows[-1][0]
    target.sync_id_sequences()
    expected, found = source.checksums(), target.checksums()
    for table, (count, total) in expected.items():
        if found[table] != (count, total):
            raise StoreError(
                f"The copy does not match in {table}: {count} rows summing to {total} in the "
                f"source, {found[table][0]} rows summing to {found[table][1]} in the target."
            )
    target.analyze()
    return CopyReport(copied, expected)
