"""The store on every backend: exact amounts, UTC times, one transaction per snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from recorder.diff import diff
from recorder.errors import ConfigError, StoreError
from recorder.store import migrate, writes
from recorder.store.database import Database
from recorder.values import Snapshot
from tests.helpers import add_snapshot, counts, latest, query

D = Decimal
T0 = datetime(2026, 3, 31, 23, 59, 59, 123456, tzinfo=UTC)
EXACT = [
    "257.518301140000000",
    "0.000000000000000001",
    "123456789012345678901234.123456789",
    "400.000",
    "99999999999999999999999999999999999.999999999999999999999999999999",
]


def test_amounts_read_back_exactly_as_the_exchange_sent_them(db: Database) -> None:
    balances = {f"C{i}": D(text) for i, text in enumerate(EXACT)}
    add_snapshot(db, "main", T0, balances)
    assert latest(db, "main") == {f"C{i}": D(text) for i, text in enumerate(EXACT)}
    rows = query(db, "SELECT currency, new_amount, delta FROM balance_changes ORDER BY currency")
    assert [D(str(new)) for _, new, _ in rows] == [D(text) for text in EXACT]


def test_amounts_come_back_as_canonical_decimals(db: Database) -> None:
    add_snapshot(db, "main", T0, {"USDT": D("257.518301140000000")}, [])
    (amount,) = latest(db, "main").values()
    assert isinstance(amount, Decimal)
    assert str(amount) == "257.51830114"


def test_sqlite_stores_amounts_as_canonical_text(sqlite_db: Database) -> None:
    add_snapshot(sqlite_db, "main", T0, {"CWT": D("400.000"), "X": D("1E-18")}, [])
    rows = query(
        sqlite_db, "SELECT currency, amount, typeof(amount) FROM balances ORDER BY currency"
    )
    assert rows == [("CWT", "400", "text"), ("X", "0.000000000000000001", "text")]


def test_times_are_stored_in_utc_whatever_zone_they_arrive_in(db: Database) -> None:
    tokyo = T0.astimezone(timezone(timedelta(hours=9)))
    add_snapshot(db, "main", tokyo, {"BTC": D(1)}, [])
    ((taken_at,),) = query(db, "SELECT taken_at FROM snapshots")
    if isinstance(taken_at, str):
        taken_at = datetime.fromisoformat(taken_at)
    assert taken_at.replace(tzinfo=None) == T0.replace(tzinfo=None) or taken_at == T0


def test_a_failure_inside_the_transaction_stores_nothing(db: Database) -> None:
    account = writes.account_id(db, "main")
    snapshot = Snapshot(T0, {"BTC": D(1)})
    with pytest.raises(RuntimeError), db.transaction() as connection:
        writes.add_snapshot(db, connection, account, snapshot, diff({}, {"BTC": D(1)}))
        raise RuntimeError("crash between the inserts and the commit")
    found = counts(db)
    assert found["snapshots"] == found["balances"] == found["balance_changes"] == 0


def test_the_previous_snapshot_is_the_latest_by_time(db: Database) -> None:
    add_snapshot(db, "main", T0, {"BTC": D(2)}, [])
    add_snapshot(db, "main", T0 - timedelta(hours=1), {"BTC": D(1)}, [])
    assert latest(db, "main") == {"BTC": D(2)}


def test_accounts_are_created_once(db: Database) -> None:
    assert writes.account_id(db, "main") == writes.account_id(db, "main")
    assert writes.account_id(db, "other") != writes.account_id(db, "main")
    assert counts(db)["accounts"] == 2


def test_floats_are_refused_at_the_door(sqlite_db: Database) -> None:
    with pytest.raises(TypeError, match="Decimal"):
        add_snapshot(sqlite_db, "main", T0, {"BTC": 0.1}, [])  # type: ignore[dict-item]


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_db: Database) -> None:
    with sqlite_db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with pytest.raises(sa.exc.IntegrityError):
            connection.exec_driver_sql(
                "INSERT INTO balances (snapshot_id, currency, amount) VALUES (999, 'X', '1')"
            )


def test_a_malformed_database_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        Database("not a url")
    with pytest.raises(ConfigError, match="supports sqlite"):
        Database("oracle://scott@host/db")


def test_a_missing_sqlite_folder_is_named(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Database("sqlite:////nonexistent-folder-xyz/recorder.db")


def test_an_unreachable_server_is_one_clear_sentence() -> None:
    database = Database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError) as caught:
        migrate.ensure_schema(database)
    message = str(caught.value)
    assert "is unavailable" in message and "check database_url" in message
    assert "refused" in message  # the database's own reason, not a guess
    assert "\n" not in message
    database.close()


def test_the_password_never_shows_in_messages() -> None:
    database = Database("postgresql://user:hunter2-password@127.0.0.1:1/db?connect_timeout=2")
    with pytest.raises(StoreError) as caught:
        migrate.current_revision(database)
    assert "hunter2-password" not in str(caught.value)
    assert "***" in database.display_url
    database.close()
