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
from recorder.store import bulk, maintenance, migrate
from recorder.store import schema as models
from recorder.store.database import Database

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


def _copy_accounts(source: Database, target: Database) -> int:
    wanted = bulk.accounts(source)
    present = dict(bulk.accounts(target))
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
    with bulk.bulk(target) as writer:
        writer.insert("accounts", ("id", "name"), missing)
    return len(missing)


def copy_history(
    source: Database,
    target: Database,
    *,
    chunk: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy everything in `source` that `target` lacks, then verify the two agree."""
    if source.display_url == target.display_url:
        raise InputError("The source and the target are the same database.")
    migrate.ensure_schema(source)
    migrate.ensure_schema(target)
    copied = {
        "accounts": _copy_accounts(source, target),
        "snapshots": 0,
        "balances": 0,
        "balance_changes": 0,
        "poll_errors": 0,
    }
    last = bulk.max_id(source, "snapshots")
    done = bulk.max_id(target, "snapshots")
    if done > last:
        raise InputError(
            "The target database holds snapshots the source does not have; copy "
            "into an empty database."
        )
    stored = target.dialect.storage_time
    if done:
        log.info("The target already holds snapshots up to id %d; resuming after it.", done)
    while done < last:
        up_to = min(done + chunk, last)
        snapshots, balances, changes = bulk.snapshot_chunk(source, done, up_to)
        with bulk.bulk(target) as writer:
            writer.insert(
                "snapshots",
                SNAPSHOT_COLUMNS,
                [(i, a, stored(t), v, u, r) for i, a, t, v, u, r in snapshots],
            )
            writer.insert("balances", BALANCE_COLUMNS, balances)
            writer.insert(
                "balance_changes",
                CHANGE_COLUMNS,
                [(*row[:7], stored(row[7])) for row in changes],
            )
        copied["snapshots"] += len(snapshots)
        copied["balances"] += len(balances)
        copied["balance_changes"] += len(changes)
        if progress is not None:
            progress(len(balances))
        done = up_to
    after = bulk.max_id(target, "poll_errors")
    while rows := bulk.poll_errors_after(source, after, chunk):
        with bulk.bulk(target) as writer:
            writer.insert(
                "poll_errors",
                POLL_ERROR_COLUMNS,
                [(i, a, stored(t), k, m) for i, a, t, k, m in rows],
            )
        copied["poll_errors"] += len(rows)
        after = rows[-1][0]
    bulk.resync_ids(target)
    expected, found = bulk.checksums(source), bulk.checksums(target)
    for table, (count, total) in expected.items():
        if found[table] != (count, total):
            raise StoreError(
                f"The copy does not match in {table}: {count} rows summing to {total} in the "
                f"source, {found[table][0]} rows summing to {found[table][1]} in the target."
            )
    maintenance.analyze(target)
    return CopyReport(copied, expected)
