"""The write and outage policy on SQLite alone: the disk of a database on a small
filesystem of the test's own is filled for real; polls wait in the buffer and are written
in order, each diffed against the one before, once there is room again."""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from recorder.polling.buffer import OutageBuffer
from recorder.polling.journal import from_line
from recorder.polling.locks import AccountLocks, Claim, Claims
from recorder.polling.writes import WritePath
from recorder.sources.coinw.simulator import Simulator
from recorder.store.database import Database
from recorder.values import Observation, PollOutcome, PollStatus, Snapshot
from tests.conftest import API_KEY, SECRET, open_db, wait_for
from tests.disk import SmallDisk
from tests.helpers import account, counts, query, recorder, settings_for

T0 = datetime(2026, 3, 31, 12, tzinfo=UTC)


def observation(minute: int, btc: str, account: str = "main") -> Observation:
    snapshot = Snapshot(T0 + timedelta(minutes=minute), {"BTC": Decimal(btc)})
    return Observation.of_snapshot(account, snapshot)


def history(db: Database) -> list[tuple[str, str | None, str | None]]:
    """(BTC amount, old, new) of every snapshot in time order."""
    return [
        (row[0], row[1], row[2])
        for row in query(
            db,
            "SELECT b.amount, c.old_amount, c.new_amount FROM snapshots s "
            "JOIN balances b ON b.snapshot_id = s.id "
            "LEFT JOIN balance_changes c ON c.snapshot_id = s.id ORDER BY s.taken_at",
        )
    ]


class Busy(AccountLocks):
    """Another process holds every account."""

    def claim(self, account: str) -> Claim:
        return Claim.BUSY


def write_path(db: Database, journal: Path | None, locks: AccountLocks | None = None) -> WritePath:
    return WritePath(
        db,
        OutageBuffer(journal, 100),
        claims=Claims(locks or AccountLocks()),
        recorded_by="test:1",
        retry_seconds=0,
    )


def test_polls_on_a_full_disk_wait_and_are_written_in_order_after(
    disk: SmallDisk, simulator: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    database = open_db(f"sqlite:///{disk.path / 'recorder.db'}")
    settings = settings_for(
        simulator.url, buffer_file=tmp_path / "journal.jsonl", fetch_prices=False
    )
    built = recorder(settings, database)

    def poll() -> PollOutcome:
        return built.poller.poll(settings.accounts[0])

    try:
        assert poll().status is PollStatus.RECORDED
        disk.fill()
        outcomes = [poll() for _ in range(3)]
        assert [o.status for o in outcomes] == [PollStatus.BUFFERED] * 3
        assert "disk is full" in caplog.text  # the database's own reason
        assert "the disk holding it is full" in caplog.text  # and what it means
        assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == 3
        disk.free()
        # The database is knocked on again once per interval: the next poll after it.
        wait_for(lambda: poll().status is PollStatus.RECORDED, timeout=10, interval=0.2)
    finally:
        built.close()
    rows = history(database)
    assert len(rows) >= 5
    assert rows == [
        (str(n), None if n == 1 else str(n - 1), str(n)) for n in range(1, len(rows) + 1)
    ]
    assert not (tmp_path / "journal.jsonl").exists()
    database.close()


def test_what_the_journal_kept_is_written_once_by_the_next_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    first = OutageBuffer(journal, 100)
    for minute, btc in ((1, "1"), (2, "2")):
        first.add(observation(minute, btc))
    # The first of them reached the database just before a crash; the journal still holds it.
    write_path(sqlite_db, None).store(observation(1, "1"))
    later = write_path(sqlite_db, journal).store(observation(3, "3"))
    assert later.written is not None and len(later.replayed) == 2
    assert history(sqlite_db) == [("1", None, "1"), ("2", "1", "2"), ("3", "2", "3")]
    assert counts(sqlite_db)["snapshots"] == 3
    assert not journal.exists()


def test_failed_polls_wait_too_and_become_one_row_each(sqlite_db: Database, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    buffer = OutageBuffer(journal, 100)
    failure = Observation.of_failure("main", T0, "timeout", "slow")
    buffer.add(failure)
    buffer.add(failure)  # the same failure twice: written once
    write_path(sqlite_db, journal).store(observation(1, "1"))
    assert query(sqlite_db, "SELECT kind, message FROM poll_errors") == [("timeout", "slow")]


def test_a_buffer_whose_account_another_process_took_is_dropped_with_a_reason(
    sqlite_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "journal.jsonl"
    OutageBuffer(journal, 100).add(observation(1, "1", account="taken"))
    with caplog.at_level(logging.WARNING):
        stored = write_path(sqlite_db, journal, Busy()).store(observation(2, "2"))
    assert stored.replayed == [] and stored.written is not None
    assert "another recorder process took this account" in caplog.text
    assert query(sqlite_db, "SELECT name FROM accounts") == [("main",)]
    assert not journal.exists()


def test_a_read_only_disk_under_the_database_keeps_polls_in_the_journal(
    disk: SmallDisk, env: dict[str, str], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from recorder.cli import cli

    url = f"sqlite:///{disk.path / 'recorder.db'}"
    env = {**env, "RECORDER_DATABASE_URL": url, "RECORDER_BUFFER_FILE": str(tmp_path / "j.jsonl")}
    runner = CliRunner()
    assert runner.invoke(cli, ["poll"], env=env).exit_code == 0
    disk.read_only()  # nothing is open: the kernel lets it go read-only
    down = runner.invoke(cli, ["poll"], env=env)
    assert down.exit_code == 1 and "Traceback" not in down.output
    assert "waits in the buffer journal" in down.stdout
    # SQLite says "unable to open database file" or "disk I/O error": the disk is named.
    assert "the file system holding it is mounted read-only" in down.stderr
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 1
    disk.writable()
    assert runner.invoke(cli, ["poll"], env=env).exit_code == 0
    database = open_db(url)
    assert counts(database)["snapshots"] == 3
    database.close()
    assert not (tmp_path / "j.jsonl").exists()


def test_a_poll_that_neither_the_database_nor_a_journal_can_keep_says_it_is_lost(
    disk: SmallDisk, env: dict[str, str], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from recorder.cli import cli

    url = f"sqlite:///{disk.path / 'recorder.db'}"
    config = tmp_path / "recorder.toml"
    config.write_text('buffer_file = ""\n')  # memory only
    env = {**env, "RECORDER_DATABASE_URL": url, "RECORDER_CONFIG": str(config)}
    runner = CliRunner()
    assert runner.invoke(cli, ["poll"], env=env).exit_code == 0
    disk.read_only()
    try:
        down = runner.invoke(cli, ["poll"], env=env)
    finally:
        disk.writable()
    assert down.exit_code == 1
    assert "could not be kept in the buffer journal" in down.stdout
    assert "is lost now" in down.stdout and "waits in the buffer journal" not in down.stdout


def test_the_database_is_not_said_to_be_back_when_nothing_was_written(
    sqlite_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from recorder.errors import DatabaseUnavailableError
    from recorder.polling.locks import FileLocks

    (tmp_path / "locks").mkdir()  # a lock file that cannot be opened: no claim is known
    journal = tmp_path / "journal.jsonl"
    OutageBuffer(journal, 100).add(observation(1, "1"))
    path = write_path(sqlite_db, journal, FileLocks(tmp_path / "locks"))
    path.outage.failed(DatabaseUnavailableError("away"), logged=True)
    with caplog.at_level(logging.INFO):
        stored = path.store(observation(2, "2"))
    assert stored.written is None  # waits behind the entry it could not write
    assert "is back" not in caplog.text
    assert "the lock file" in caplog.text and "cannot be opened" in caplog.text
    assert counts(sqlite_db)["snapshots"] == 0


def test_a_write_that_hangs_holds_no_other_accounts_poll_and_is_kept_when_stopping(
    sqlite_db: Database, simulator: Simulator, tmp_path: Path
) -> None:
    simulator.add_account("other-key", SECRET, {"ETH": "1"})
    journal = tmp_path / "j.jsonl"
    settings = settings_for(
        simulator.url, buffer_file=journal, accounts=(account("a"), account("b", "other-key"))
    )
    built = recorder(settings, sqlite_db)
    a, b = settings.accounts
    outcomes: list[PollOutcome] = []
    try:
        assert built.poller.poll(a).stored and built.poller.poll(b).stored  # schema ready
        assert sqlite_db.path is not None
        holder = sqlite3.connect(sqlite_db.path)
        holder.execute("BEGIN IMMEDIATE")  # another writer: a's write waits for it
        writing = threading.Thread(target=lambda: outcomes.append(built.poller.poll(a)))
        writing.start()
        wait_for(lambda: built.poller.writes.in_flight() is not None, timeout=30)
        # b's poll does not wait for a's write: it waits in the buffer, at once.
        polled_b = built.poller.poll(b)
        assert polled_b.status is PollStatus.BUFFERED and writing.is_alive()
        # A daemon stopping now keeps a's observation (it is not in the buffer yet).
        built.poller.writes.keep_in_flight()
        kept = [from_line(line).observation.account for line in journal.read_text().split()]
        assert kept == ["b", "a"]
        holder.rollback()
        holder.close()
        writing.join(timeout=60)
        assert outcomes and outcomes[0].stored
        # The next poll writes what waited; a's kept copy is not written twice.
        wait_for(lambda: built.poller.poll(b).stored, timeout=30)
    finally:
        built.close()
    taken = query(
        sqlite_db,
        "SELECT a.name, s.taken_at FROM snapshots s JOIN accounts a ON a.id = s.account_id",
    )
    assert len(taken) == len(set(taken))
    assert sum(1 for name, _ in taken if name == "a") == 2
    assert sum(1 for name, _ in taken if name == "b") >= 3


def test_empty_replies_while_the_clock_is_behind_still_confirm_one_another(
    sqlite_db: Database,
) -> None:
    from recorder.store import migrate, writes

    migrate.ensure_schema(sqlite_db)
    writes.record(sqlite_db, observation(60, "1"), recorded_by="t", replay=False)
    for minute in (1, 2):  # an hour behind the snapshot: each restamped after the last
        empty = Snapshot(T0 + timedelta(minutes=minute), {}, ambiguous=True)
        last = writes.record(
            sqlite_db, Observation.of_snapshot("main", empty), recorded_by="t", replay=False
        )
    assert last.snapshot_id is not None  # the second confirmed the first
    assert query(sqlite_db, "SELECT count(*) FROM poll_errors") == [(1,)]
    assert counts(sqlite_db)["snapshots"] == 2
    gone = query(sqlite_db, "SELECT old_amount FROM balance_changes WHERE new_amount IS NULL")
    assert [str(old) for (old,) in gone] == ["1"]


def recorded_then_buffered(
    db: Database, journal: Path, first: tuple[int, str, str], *kept: Observation
) -> None:
    """One snapshot (minute, BTC, recorded_by) in the database, then `kept` in a journal."""
    from recorder.store import migrate, writes

    migrate.ensure_schema(db)
    minute, btc, who = first
    writes.record(db, observation(minute, btc), recorded_by=who, replay=False)
    buffer = OutageBuffer(journal, 100)
    for entry in kept:
        buffer.add(entry)
    buffer.close()


def test_polls_a_process_buffered_before_its_restart_are_written_under_its_name(
    sqlite_db: Database, tmp_path: Path
) -> None:
    # The earlier run recorded at 13:00, then buffered a poll with its clock an hour behind.
    journal = tmp_path / "journal.jsonl"
    kept = replace(observation(1, "2"), recorded_by="host:100")
    recorded_then_buffered(sqlite_db, journal, (60, "1", "host:100"), kept)
    # The next run (another pid) writes it: not "recorded over by another process".
    stored = write_path(sqlite_db, journal).store(observation(61, "3"))
    assert [entry.recorded_by for entry, _ in stored.replayed] == ["host:100"]
    assert query(sqlite_db, "SELECT recorded_by FROM snapshots ORDER BY taken_at") == [
        ("host:100",),
        ("host:100",),
        ("test:1",),
    ]
    assert [row[0] for row in history(sqlite_db)] == ["1", "2", "3"]


def test_a_buffered_poll_is_dropped_when_another_process_recorded_after_it_whatever_its_clock(
    sqlite_db: Database, tmp_path: Path
) -> None:
    from recorder.store import writes

    # Cut off, this process buffers a poll; another one, its clock an hour behind, records.
    journal = tmp_path / "journal.jsonl"
    kept = replace(observation(61, "2"), recorded_by="test:1")
    recorded_then_buffered(sqlite_db, journal, (60, "1", "test:1"), kept)
    writes.record(sqlite_db, observation(1, "7"), recorded_by="other:2", replay=False)
    stored = write_path(sqlite_db, journal).store(observation(62, "8"))
    assert stored.replayed == []  # dropped: it would sit among the other process's polls
    assert [row[0] for row in history(sqlite_db)] == ["1", "7", "8"]


def test_after_a_restart_the_runs_whose_polls_the_journal_holds_are_not_another_process(
    sqlite_db: Database, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    before = replace(observation(61, "2"), recorded_by="host:100")  # the run before
    behind = replace(observation(2, "3"), recorded_by="test:1")  # this one, clock behind
    recorded_then_buffered(sqlite_db, journal, (60, "1", "host:100"), before, behind)
    stored = write_path(sqlite_db, journal).store(observation(3, "4"))
    assert [entry.recorded_by for entry, _ in stored.replayed] == ["host:100", "test:1"]
    assert [row[0] for row in history(sqlite_db)] == ["1", "2", "3", "4"]
