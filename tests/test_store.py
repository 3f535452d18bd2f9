"""The store on every backend: exact amounts, UTC times, one transaction per snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from recorder.diff import diff
from recorder.errors import ConfigError, StoreError
from recorder.store.database import Store

D = Decimal
T0 = datetime(2026, 3, 31, 23, 59, 59, 123456, tzinfo=UTC)
EXACT = [
    "257.518301140000000",
    "0.000000000000000001",
    "123456789012345678901234.123456789",
    "400.000",
    "99999999999999999999999999999999999.999999999999999999999999999999",
]


def test_amounts_read_back_exactly_as_the_exchange_sent_them(store: Store) -> None:
    account = store.account_id("main")
    balances = {f"C{i}": D(text) for i, text in enumerate(EXACT)}
    with store.writer() as writer:
        writer.add_snapshot(account, T0, balances, diff({}, balances))
    assert store.latest_balances(account) == {f"C{i}": D(text) for i, text in enumerate(EXACT)}
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT currency, new_amount, delta FROM balance_changes ORDER BY currency")
        ).all()
    assert [D(str(new)) for _, new, _ in rows] == [D(text) for text in EXACT]


def test_amounts_come_back_as_canonical_decimals(store: Store) -> None:
    account = store.account_id("main")
    with store.writer() as writer:
        writer.add_snapshot(account, T0, {"USDT": D("257.518301140000000")}, [])
    (amount,) = store.latest_balances(account).values()
    assert isinstance(amount, Decimal)
    assert str(amount) == "257.51830114"


def test_sqlite_stores_amounts_as_canonical_text(sqlite_store: Store) -> None:
    account = sqlite_store.account_id("main")
    with sqlite_store.writer() as writer:
        writer.add_snapshot(account, T0, {"CWT": D("400.000"), "X": D("1E-18")}, [])
    with sqlite_store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT currency, amount, typeof(amount) FROM balances ORDER BY currency"
        ).all()
    assert rows == [("CWT", "400", "text"), ("X", "0.000000000000000001", "text")]


def test_times_are_stored_in_utc_whatever_zone_they_arrive_in(store: Store) -> None:
    account = store.account_id("main")
    tokyo = T0.astimezone(timezone(timedelta(hours=9)))
    with store.writer() as writer:
        writer.add_snapshot(account, tokyo, {"BTC": D(1)}, [])
    with store.engine.connect() as connection:
        (taken_at,) = connection.execute(sa.text("SELECT taken_at FROM snapshots")).one()
    if isinstance(taken_at, str):
        taken_at = datetime.fromisoformat(taken_at)
    assert taken_at.replace(tzinfo=None) == T0.replace(tzinfo=None) or taken_at == T0


def test_a_failure_inside_the_transaction_stores_nothing(store: Store) -> None:
    account = store.account_id("main")
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.add_snapshot(account, T0, {"BTC": D(1)}, diff({}, {"BTC": D(1)}))
        raise RuntimeError("crash between the inserts and the commit")
    counts = store.count_rows()
    assert counts["snapshots"] == counts["balances"] == counts["balance_changes"] == 0


def test_the_previous_snapshot_is_the_latest_by_time(store: Store) -> None:
    account = store.account_id("main")
    with store.writer() as writer:
        writer.add_snapshot(account, T0, {"BTC": D(2)}, [])
        writer.add_snapshot(account, T0 - timedelta(hours=1), {"BTC": D(1)}, [])
    assert store.latest_balances(account) == {"BTC": D(2)}


def test_accounts_are_created_once(store: Store) -> None:
    assert store.account_id("main") == store.account_id("main")
    assert store.account_id("other") != store.account_id("main")
    assert store.count_rows()["accounts"] == 2


def test_floats_are_refused_at_the_door(sqlite_store: Store) -> None:
    account = sqlite_store.account_id("main")
    with pytest.raises(TypeError, match="Decimal"), sqlite_store.writer() as writer:
        writer.add_snapshot(account, T0, {"BTC": 0.1}, [])  # type: ignore[dict-item]


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_store: Store) -> None:
    with sqlite_store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with pytest.raises(sa.exc.IntegrityError):
            connection.exec_driver_sql(
                "INSERT INTO balances (snapshot_id, currency, amount) VALUES (999, 'X', '1')"
            )


def test_a_malformed_database_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        Store("not a url")
    with pytest.raises(ConfigError, match="supports sqlite"):
        Store("oracle://scott@host/db")


def test_a_missing_sqlite_folder_is_named(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Store("sqlite:////nonexistent-folder-xyz/recorder.db")


def test_an_unreachable_server_is_one_clear_sentence() -> None:
    store = Store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError) as caught:
        store.ensure_schema()
    message = str(caught.value)
    assert "unreachable" in message and "check database_url" in message
    assert "\n" not in message
    store.close()


def test_the_password_never_shows_in_messages() -> None:
    store = Store("postgresql://user:hunter2-password@127.0.0.1:1/db?connect_timeout=2")
    with pytest.raises(StoreError) as caught:
        store.current_revision()
    assert "hunter2-password" not in str(caught.value)
    assert "***" in store.display_url
    store.close()
