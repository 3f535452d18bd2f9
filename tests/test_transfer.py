"""`recorder db copy`: SQLite into PostgreSQL and MariaDB, verified, safe to re-run."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from recorder.cli import cli
from recorder.errors import InputError
from recorder.store import bulk, writes
from recorder.store.copy import copy_history
from recorder.store.database import Database
from recorder.values import Snapshot
from tests.conftest import BACKENDS, fresh_database, open_db
from tests.consistency import (
    assert_change_log_is_the_diff,
    at_answers,
    sampled_moments,
    snapshots,
)
from tests.helpers import add_snapshot, counts
from tests.history import record


def dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, amounts as Decimal and times as UTC text, for comparing."""
    db = Database(url)
    tables = {
        "accounts": "SELECT id, name FROM accounts ORDER BY id",
        "snapshots": "SELECT id, account_id, taken_at, total_value_usdt, unpriced_count, "
        "recorded_by FROM snapshots ORDER BY id",
        "balances": "SELECT snapshot_id, currency, amount, price_usdt, value_usdt, available, "
        "on_orders FROM balances ORDER BY snapshot_id, currency",
        "balance_changes": "SELECT id, snapshot_id, currency, old_amount, new_amount, delta, "
        "taken_at FROM balance_changes ORDER BY id",
        "poll_errors": "SELECT id, account_id, attempted_at, kind, message FROM poll_errors "
        "ORDER BY id",
    }

    def normal(value: object) -> object:
        if isinstance(value, Decimal | str) and str(value).lstrip("-").replace(".", "").isdigit():
            return Decimal(str(value))
        if hasattr(value, "isoformat"):
            return db.dialect.time_from_storage(value).isoformat()
        if isinstance(value, str) and len(value) == 26 and value[10] == " ":
            return db.dialect.time_from_storage(value).isoformat()
        return value

    with db.engine.connect() as connection:
        result = {
            table: [tuple(normal(v) for v in row) for row in connection.exec_driver_sql(sql)]
            for table, sql in tables.items()
        }
    db.close()
    return result


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    record(url)
    db = Database(url)
    with db.transaction() as connection:
        writes.add_poll_error(
            db,
            connection,
            writes.account_id(db, "main"),
            db.dialect.time_from_storage("2026-04-01 10:00:00.000000"),
            "timeout",
            "CoinW did not answer within 10 s.",
        )
    db.close()
    return url


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_copy_moves_the_whole_history_exactly_and_a_rerun_adds_nothing(
    source: str, backend: str, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path) as target:
        runner = CliRunner()
        env = {"RECORDER_DATABASE_URL": source}
        first = runner.invoke(cli, ["db", "copy", "--to", target], env=env)
        assert first.exit_code == 0, first.output
        assert "Verified" in first.stdout
        assert dump(target) == dump(source)
        second = runner.invoke(cli, ["db", "copy", "--to", target], env=env)
        assert second.exit_code == 0, second.output
        assert "Copied 0 accounts, 0 snapshots, 0 balance rows" in second.stdout
        assert dump(target) == dump(source)
        # The target works as a recorder database afterwards: new ids do not collide.
        db = Database(target)
        snapshot = Snapshot(
            db.dialect.time_from_storage("2026-05-01 00:00:00"), {"BTC": Decimal(1)}
        )
        with db.transaction() as connection:
            new_id = writes.add_snapshot(db, connection, 1, snapshot, [])
        assert new_id > max(int(str(r[0])) for r in dump(source)["snapshots"])
        db.close()


def test_an_interrupted_copy_resumes_where_it_stopped(source: str, tmp_path: Path) -> None:
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    src, target = Database(source), Database(target_url)
    calls = 0

    def stop_after_first_chunk(_rows: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # the operator pressed Ctrl+C mid-copy

    with pytest.raises(KeyboardInterrupt):
        copy_history(src, target, chunk=1, progress=stop_after_first_chunk)
    partial = counts(target)["snapshots"]
    assert 0 < partial < counts(src)["snapshots"]
    copy_history(src, target, chunk=1)
    src.close()
    target.close()
    assert dump(target_url) == dump(source)


def test_copy_refuses_a_target_with_another_history(source: str, tmp_path: Path) -> None:
    target_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = open_db(target_url)
    writes.account_id(other, "someone-else")
    with pytest.raises(InputError, match="different history"):
        copy_history(Database(source), other)
    other.close()


def test_checksums_see_every_id_time_currency_and_exact_amount(source: str) -> None:
    db = Database(source)
    before = bulk.checksums(db)
    assert before == bulk.checksums(db)
    assert before["balances"][0] == counts(db)["balances"]
    changes = [
        "UPDATE snapshots SET taken_at = '2026-03-30 12:00:00.000001' WHERE id = 1",
        "UPDATE balances SET currency = 'btc' WHERE currency = 'BTC' AND snapshot_id = 1",
        "UPDATE balances SET amount = '257.518301140000001' WHERE currency = 'USDT'",
        "UPDATE balance_changes SET id = id + 100 WHERE id = 1",
        "UPDATE poll_errors SET kind = 'connect'",
    ]
    engine = sa.create_engine(source)
    for change in changes:
        with engine.begin() as connection:
            connection.exec_driver_sql(change)
        after = bulk.checksums(db)
        table = change.split()[1]
        assert after[table] != before[table], change
        assert {t: v for t, v in after.items() if t != table} == {
            t: v for t, v in before.items() if t != table
        }
        before = after
    engine.dispose()
    db.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_copy_refuses_a_target_whose_rows_differ_from_the_sources_with_the_same_ids(
    source: str, backend: str, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path) as target:
        # The daemon was pointed at the target first: its own polls of the same account.
        db = open_db(target)
        add_snapshot(db, "main", datetime(2026, 4, 2, 8, 0, tzinfo=UTC), {"BTC": Decimal(7)})
        db.close()
        before = dump(target)
        result = CliRunner().invoke(
            cli, ["db", "copy", "--to", target], env={"RECORDER_DATABASE_URL": source}
        )
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "already holds a different history (snapshot 1 differs" in result.stderr
        assert dump(target) == before  # nothing was written


def test_resuming_copies_every_missing_id_not_only_those_past_the_largest(
    source: str, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    src, into = Database(source), Database(target)
    copy_history(src, into)
    with into.transaction() as connection:  # lose a snapshot in the middle, as if never copied
        into.run(connection, "DELETE FROM balance_changes WHERE snapshot_id = 2")
        into.run(connection, "DELETE FROM balances WHERE snapshot_id = 2")
        into.run(connection, "DELETE FROM snapshots WHERE id = 2")
    report = copy_history(src, into)
    src.close()
    into.close()
    assert report.copied["snapshots"] == 1 and report.copied["balances"] > 0
    assert dump(target) == dump(source)


@pytest.mark.parametrize(
    ("backend", "target_backend"), [("postgresql", "mysql"), ("mysql", "sqlite")]
)
def test_a_snapshot_that_commits_after_a_higher_id_is_copied_on_the_next_run(
    source: str, backend: str, target_backend: str, tmp_path: Path
) -> None:
    with (
        fresh_database(backend, tmp_path) as live,
        fresh_database(target_backend, tmp_path) as target,
    ):
        first = CliRunner().invoke(
            cli, ["db", "copy", "--to", live], env={"RECORDER_DATABASE_URL": source}
        )
        assert first.exit_code == 0, first.output
        db, into = Database(live), Database(target)
        account = writes.account_id(db, "main")
        late = Snapshot(datetime(2026, 4, 2, 9, 0, tzinfo=UTC), {"BTC": Decimal(9)})
        with db.transaction() as connection:  # takes the next id, commits after the copy
            late_id = writes.add_snapshot(db, connection, account, late, [])
            add_snapshot(db, "main", datetime(2026, 4, 2, 9, 1, tzinfo=UTC), {"BTC": Decimal(8)})
            report = copy_history(db, into)
            assert report.bounds.snapshots > late_id and not report.source_changed
            assert late_id not in {row[0] for row in dump(target)["snapshots"]}
        again = copy_history(db, into)
        db.close()
        into.close()
        assert again.copied["snapshots"] == 1 and again.copied["balances"] == 1
        assert dump(target) == dump(live)


def test_copying_a_source_that_is_written_meanwhile_copies_a_consistent_snapshot_and_says_so(
    source: str, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    src, into = Database(source), Database(target)
    written: list[int] = []

    def a_daemon_writes(_rows: int) -> None:
        moment = datetime(2026, 4, 3, 0, len(written), tzinfo=UTC)
        written.append(add_snapshot(src, "main", moment, {"BTC": Decimal(len(written) + 1)}))

    report = copy_history(src, into, chunk=1, progress=a_daemon_writes)
    assert written and report.source_changed
    assert report.bounds.snapshots < min(written)
    assert {row[0] for row in dump(target)["snapshots"]}.isdisjoint(written)
    again = copy_history(src, into)
    src.close()
    into.close()
    assert again.copied["snapshots"] == len(written) and not again.source_changed
    assert dump(target) == dump(source)
    copied, original = Database(target), Database(source)
    assert assert_change_log_is_the_diff(copied) == counts(copied)["snapshots"]
    for account in ("main", "savings"):  # `at` answers as it did on the source
        moments = sampled_moments([s[1] for s in snapshots(original, account)])
        assert at_answers(copied, account, moments) == at_answers(original, account, moments)
    copied.close()
    original.close()
