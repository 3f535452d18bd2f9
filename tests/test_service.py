"""The cycle and the scheduler, driven in-process against the simulator."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from recorder.config import AccountConfig, Settings
from recorder.polling.cycle import PollResult, Recorder
from recorder.secret import Secret
from recorder.sources.coinw.client import CoinWClient, Credentials
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.store.database import Store
from tests.conftest import API_KEY, SECRET, wait_for


def account(name: str, key: str = API_KEY) -> AccountConfig:
    return AccountConfig(name, Credentials(key, Secret(SECRET)))


@pytest.fixture
def make_recorder(simulator: Simulator, sqlite_store: Store) -> Iterator[object]:
    clients: list[CoinWClient] = []
    recorders: list[Recorder] = []

    def make(**options: object) -> Recorder:
        settings = replace(
            Settings(base_url=simulator.url, interval_seconds=1, accounts=(account("main"),)),
            **options,
        )
        client = CoinWClient(simulator.url, timeout=settings.timeout_seconds)
        clients.append(client)
        recorders.append(Recorder(settings, sqlite_store, client))
        return recorders[-1]

    yield make
    for recorder in recorders:
        recorder.close()
    for client in clients:
        client.close()


def test_retries_overload_errors_within_the_interval(
    make_recorder: object, simulator: Simulator, sqlite_store: Store
) -> None:
    recorder = make_recorder(interval_seconds=20, backoff_base_seconds=0.05)  # type: ignore[operator]
    simulator.add_fault(Fault.envelope(29001, "API access frequently", times=2), API_KEY)
    result = recorder.poll(recorder.settings.accounts[0])
    assert result.ok
    assert sqlite_store.count_rows()["poll_errors"] == 0
    assert [r.answered for r in simulator.requests("returnBalances")] == ["fault:body"] * 2 + ["ok"]


def test_authentication_errors_are_not_retried_and_are_logged_loudly(
    make_recorder: object,
    simulator: Simulator,
    sqlite_store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = make_recorder(  # type: ignore[operator]
        interval_seconds=20, backoff_base_seconds=0.05, accounts=(account("main", "unknown"),)
    )
    with caplog.at_level(logging.WARNING):
        result = recorder.poll(recorder.settings.accounts[0])
    assert not result.ok and result.error is not None and result.error.kind == "auth"
    assert len(simulator.requests("returnBalances")) == 1
    (record,) = [r for r in caplog.records if "configuration problem" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert sqlite_store.count_rows()["poll_errors"] == 1


def test_a_slow_account_does_not_delay_the_others_and_never_overlaps_itself(
    make_recorder: object, simulator: Simulator, sqlite_store: Store
) -> None:
    simulator.add_account("slow-key", SECRET, {"ETH": "1"})
    simulator.add_fault(Fault.stall(2.5, times=None), "slow-key")
    recorder = make_recorder(accounts=(account("fast"), account("slow", "slow-key")))  # type: ignore[operator]
    results: list[PollResult] = []
    recorder.listeners.append(results.append)
    thread = threading.Thread(target=recorder.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        wait_for(lambda: sum(r.account == "fast" for r in results) >= 4, timeout=20)
    finally:
        recorder.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    slow = [r.at for r in simulator.requests() if r.api_key == "slow-key"]
    assert all(b - a >= 2.4 for a, b in itertools.pairwise(slow)), slow
    assert all(r.ok for r in results)


def test_listeners_that_fail_do_not_fail_the_poll(
    make_recorder: object, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = make_recorder()  # type: ignore[operator]

    def broken(_result: PollResult) -> None:
        raise RuntimeError("listener bug")

    recorder.listeners.append(broken)
    assert recorder.poll(recorder.settings.accounts[0]).ok
    assert "a poll listener failed" in caplog.text


def test_a_failed_ticker_never_loses_the_snapshot(
    make_recorder: object,
    simulator: Simulator,
    sqlite_store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator.add_fault(Fault.http(503), command="returnTicker")
    recorder = make_recorder()  # type: ignore[operator]
    result = recorder.poll(recorder.settings.accounts[0])
    assert result.ok
    assert "The ticker could not be fetched" in caplog.text
    with sqlite_store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT currency, amount, price_usdt, value_usdt FROM balances ORDER BY currency"
        ).all()
        snapshot = connection.exec_driver_sql(
            "SELECT total_value_usdt, unpriced_count FROM snapshots"
        ).one()
    assert rows == [("BTC", "0.0012", None, None), ("USDT", "257.51830114", None, None)]
    assert tuple(snapshot) == (None, 2)


def test_prices_and_values_are_stored_with_each_balance(
    make_recorder: object, simulator: Simulator, sqlite_store: Store
) -> None:
    simulator.set_ticker({"BTC_USDT": "96903.7"})
    recorder = make_recorder()  # type: ignore[operator]
    assert recorder.poll(recorder.settings.accounts[0]).ok
    with sqlite_store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT currency, price_usdt, value_usdt FROM balances ORDER BY currency"
        ).all()
        total = connection.exec_driver_sql("SELECT total_value_usdt FROM snapshots").scalar()
    assert rows == [("BTC", "96903.7", "116.28444"), ("USDT", "1", "257.51830114")]
    assert total == "373.80274114"


def test_complete_balances_store_available_and_on_orders_and_an_order_is_no_change(
    make_recorder: object, simulator: Simulator, sqlite_store: Store
) -> None:
    complete = AccountConfig("main", Credentials(API_KEY, Secret(SECRET)), "complete")
    recorder = make_recorder(accounts=(complete,))  # type: ignore[operator]
    simulator.set_holdings(API_KEY, {"BTC": {"available": "0.0012", "onOrders": "0"}})
    assert recorder.poll(complete).ok
    # Placing an order moves BTC from available to on_orders: the holding is unchanged.
    simulator.set_holdings(API_KEY, {"BTC": {"available": "0.0002", "onOrders": "0.0010"}})
    second = recorder.poll(complete)
    assert second.ok and second.changes == []
    private = {r.command for r in simulator.requests() if r.api_key is not None}
    assert private == {"returnCompleteBalances"}
    with sqlite_store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT amount, available, on_orders FROM balances ORDER BY snapshot_id"
        ).all()
    assert rows == [("0.0012", "0.0012", "0"), ("0.0012", "0.0002", "0.001")]
