"""`recorder db copy`: SQLite into PostgreSQL and MariaDB, verified, safe to re-run."""

from __future__ import annotations

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
from tests.conftest import fresh_database, open_db
from tests.helpers import counts
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


def test_amount_sums_are_exact_on_every_backend(source: str) -> None:
    db = Database(source)
    checksums = bulk.checksums(db)
    engine = sa.create_engine(source)
    with engine.connect() as connection:
        amounts = [Decimal(v) for (v,) in connection.exec_driver_sql("SELECT amount FROM balances")]
    engine.dispose()
    db.close()
    assert checksums["balances"][0] == len(amounts)
    assert checksums["balances"][1] > sum(amounts)  # prices and values are summed too
