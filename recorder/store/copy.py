"""`recorder db copy`: the whole history into another database, verified, safe to re-run.

The source is read in one read transaction, so the copy is a consistent snapshot of it
(up to its largest snapshot and poll error ids at that moment) even while a daemon writes
to it. Snapshots go over in chunks by id, each chunk with its balances and changes in one
transaction on the target, keeping every id. Each chunk is compared with what the target
already holds for the same ids: rows that differ are refused, missing rows are copied
(wherever they are, so a chunk that committed late in the source is not skipped), and
rows already there are left alone. Afterwards every table's checksum (rows and a SHA-256
over ids, times, currencies and exact amounts, bulk.Checksum) must match on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from recorder.errors import InputError, StoreError, WriteRejectedError
from recorder.store import bulk, maintenance, migrate
from recorder.store import schema as models
from recorder.store.bulk import Bounds, Checksum, Reader, Row
from recorder.store.database import Database
from recorder.store.dialects import TABLES

log = logging.getLogger(__name__)

# Every column, in table order: a copy keeps ids and all the rest as they are.
COLUMNS = {table: tuple(models.metadata.tables[table].columns.keys()) for table in TABLES}
#: Where each table's time column is, to store it in the target's form.
_TIMES = {"snapshots": 2, "balance_changes": 7, "poll_errors": 2}
_CHUNK_TABLES = ("snapshots", "balances", "balance_changes")
SNAPSHOT_COLUMNS = COLUMNS["snapshots"]
BALANCE_COLUMNS = COLUMNS["balances"]
CHANGE_COLUMNS = COLUMNS["balance_changes"]
POLL_ERROR_COLUMNS = COLUMNS["poll_errors"]


@dataclass(frozen=True)
class CopyReport:
    """What a copy did and what the verification found."""

    copied: dict[str, int]
    #: Per table: rows and the SHA-256 of their normal form, equal on both sides.
    checksums: dict[str, tuple[int, str]]
    #: The consistent snapshot copied: the source up to these ids ...
    bounds: Bounds
    #: ... whose newest snapshot was taken then (None: no snapshot).
    newest: datetime | None
    #: The source holds more than that now (a daemon wrote to it during the copy).
    source_changed: bool


_ROW = {
    "accounts": "account",
    "snapshots": "snapshot",
    "balances": "balance",
    "balance_changes": "change",
    "poll_errors": "failed poll",
}


def _refuse(why: str) -> InputError:
    return InputError(
        f"The target database already holds a different history ({why}); copy into an empty "
        "database, or into one an earlier copy of this source filled."
    )


def _key(table: str, row: Row) -> object:
    """How a row is known: its id, or (snapshot id, currency) for a balance."""
    return (row[0], row[1]) if table == "balances" else row[0]


def _missing(table: str, wanted: Sequence[Row], present: Sequence[Row]) -> list[Row]:
    """The rows of `wanted` the target lacks; refuses a row that differs from the
    source's with the same id, or a row the source does not have."""
    there = {_key(table, row): row for row in present}
    missing = []
    for row in wanted:
        found = there.pop(_key(table, row), None)
        if found is None:
            missing.append(row)
        elif found != row:
            raise _refuse(f"{_ROW[table]} {_key(table, row)} differs from the source's")
    if there:
        raise _refuse(f"{_ROW[table]} {min(there)} is not in the source")  # type: ignore[type-var]
    return missing


class _Copy:
    """One run of `copy_history`: the source's snapshot, the target, the checksums."""

    def __init__(self, source: Reader, target: Database, up_to: Bounds) -> None:
        self.source, self.target, self.up_to = source, target, up_to
        self.there = bulk.reader(target)
        self.copied = dict.fromkeys(TABLES, 0)
        self.sums = {side: {table: Checksum() for table in TABLES} for side in ("from", "to")}

    def insert(self, tables: Sequence[str], rows: Sequence[Sequence[Row]]) -> None:
        """Rows of these tables into the target in one transaction, times in its form."""
        stored = self.target.dialect.storage_time
        try:
            with bulk.bulk(self.target) as writer:
                for table, found in zip(tables, rows, strict=True):
                    at = _TIMES.get(table)
                    writer.insert(
                        table,
                        COLUMNS[table],
                        found
                        if at is None
                        else [(*r[:at], stored(r[at]), *r[at + 1 :]) for r in found],
                    )
        except WriteRejectedError as error:  # a duplicate id elsewhere in the target
            raise _refuse(f"it refused a row: {error.reason}") from None
        for table, found in zip(tables, rows, strict=True):
            self.copied[table] += len(found)

    def accounts(self) -> None:
        wanted, present = self.source.accounts(), self.there.accounts()
        by_name = {name: account_id for account_id, name in present}
        for account_id, name in wanted:
            if by_name.get(name, account_id) != account_id:
                raise _refuse(f"account {name!r} has another id there")
        self.insert(["accounts"], [_missing("accounts", wanted, present)])
        self.sums["from"]["accounts"].add(wanted)
        self.sums["to"]["accounts"].add(self.there.accounts())

    def snapshots(self, after: int, last: int) -> int:
        """Copy what the target lacks of one chunk; returns its balance rows."""
        wanted = self.source.snapshot_chunk(after, last)
        present = self.there.snapshot_chunk(after, last)
        missing = [_missing(*sides) for sides in zip(_CHUNK_TABLES, wanted, present, strict=True)]
        if any(missing):
            self.insert(_CHUNK_TABLES, missing)
            present = self.there.snapshot_chunk(after, last)  # read back: verified below
        for table, source_rows, target_rows in zip(_CHUNK_TABLES, wanted, present, strict=True):
            self.sums["from"][table].add(source_rows)
            self.sums["to"][table].add(target_rows)
        return len(wanted[1])

    def poll_errors(self, chunk: int) -> None:
        after = 0
        while wanted := self.source.poll_errors(after, self.up_to.poll_errors, chunk):
            last = wanted[-1][0] if len(wanted) == chunk else self.up_to.poll_errors
            present = self.there.poll_errors(after, last)
            missing = _missing("poll_errors", wanted, present)
            if missing:
                self.insert(["poll_errors"], [missing])
                present = self.there.poll_errors(after, last)
            self.sums["from"]["poll_errors"].add(wanted)
            self.sums["to"]["poll_errors"].add(present)
            after = last

    def check(self, chunk: int) -> None:
        """Before writing anything: refuse a target whose snapshots or failed polls differ
        from the source's with the same ids, or that holds ids the source does not."""
        pairs = {
            "snapshots": (self.source.snapshot_rows, self.there.snapshot_rows),
            "poll_errors": (self.source.poll_errors, self.there.poll_errors),
        }
        for table, (wanted, present) in pairs.items():
            after, last = 0, self.there.max_id(table)
            if last > getattr(self.up_to, table):
                raise _refuse(f"{_ROW[table]} {last} is not in the source")
            while after < last:
                ids = self.there.ids(table, after, last, chunk)
                end = ids[-1] if len(ids) == chunk else last
                _missing(table, wanted(after, end), present(after, end))
                after = end

    def verify(self) -> dict[str, tuple[int, str]]:
        expected = {table: s.value for table, s in self.sums["from"].items()}
        for table, (rows, digest) in expected.items():
            found_rows, found = self.sums["to"][table].value
            if (found_rows, found) != (rows, digest):
                raise StoreError(
                    f"The copy does not match in {table}: the source has {rows} rows with "
                    f"checksum {digest[:12]}, the target {found_rows} rows with checksum "
                    f"{found[:12]}."
                )
        return expected


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
    with bulk.read_snapshot(source) as snapshot:
        up_to = bulk.bounds(snapshot)
        newest = snapshot.rows("SELECT max(taken_at) FROM snapshots", ())[0][0]
        run = _Copy(snapshot, target, up_to)
        run.check(chunk)
        run.accounts()
        for after, last in bulk.chunks(snapshot, up_to, chunk):
            balances = run.snapshots(after, last)
            if progress is not None:
                progress(balances)
        run.poll_errors(chunk)
    checksums = run.verify()
    bulk.resync_ids(target)
    maintenance.analyze(target)
    # Newer rows, or rows that committed late below the bounds, or rows pruned since.
    now = bulk.reader(source)
    changed = bulk.bounds(now) != up_to or any(
        now.count(table, up_to=limit) != checksums[table][0]
        for table, limit in (("snapshots", up_to.snapshots), ("poll_errors", up_to.poll_errors))
    )
    return CopyReport(
        run.copied,
        checksums,
        up_to,
        None if newest is None else source.dialect.time_from_storage(newest),
        source_changed=changed,
    )
