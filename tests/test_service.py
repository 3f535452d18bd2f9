"""The cycle and the scheduler, driven in-process against the simulator."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from recorder import app
from recorder.polling.cycle import Poller
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.store.database import Database
from recorder.values import PollOutcome
from tests.conftest import API_KEY, SECRET, wait_for
from tests.helpers import account, counts, query, recorder, settings_for

MakeRecorder = Callable[..., app.Recorder]


@pytest.fixture
def make_recorder(simulator: Simulator, sqlite_db: Database) -> Iterator[MakeRecorder]:
    built: list[app.Recorder] = []

    def make(**options: object) -> app.Recorder:
        built.append(recorder(settings_for(simulator.url, **options), sqlite_db))
        return built[-1]

    yield make
    for item in built:
        item.close()


def first_poll(built: app.Recorder) -> PollOutcome:
    poller: Poller = built.poller
    return poller.poll(poller.settings.accounts[0])


def test_retries_overload_errors_within_the_interval(
    make_recorder: MakeRecorder, simulator: Simulator, sqlite_db: Database
) -> None:
    built = make_recorder(interval_seconds=20, backoff_base_seconds=0.05)
    simulator.add_fault(Fault.envelope(29001, "API access frequently", times=2), API_KEY)
    result = first_poll(built)
    assert result.ok
    assert counts(sqlite_db)["poll_errors"] == 0
    assert [r.answered for r in simulator.requests("returnBalances")] == ["fault:body"] * 2 + ["ok"]


def test_authentication_errors_are_not_retried_and_are_logged_loudly(
    make_recorder: MakeRecorder,
    simulator: Simulator,
    sqlite_db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    built = make_recorder(
        interval_seconds=20, backoff_base_seconds=0.05, accounts=(account("main", "unknown"),)
    )
    with caplog.at_level(logging.WARNING):
        result = first_poll(built)
    assert not result.ok and result.error_kind == "auth"
    assert len(simulator.requests("returnBalances")) == 1
    (record,) = [r for r in caplog.records if "configuration problem" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert counts(sqlite_db)["poll_errors"] == 1


def test_a_slow_account_does_not_delay_the_others_and_never_overlaps_itself(
    make_recorder: MakeRecorder, simulator: Simulator, sqlite_db: Database
) -> None:
    simulator.add_account("slow-key", SECRET, {"ETH": "1"})
    simulator.add_fault(Fault.stall(2.5, times=None), "slow-key")
    built = make_recorder(accounts=(account("fast"), account("slow", "slow-key")))
    results: list[PollOutcome] = []
    built.poller.listeners.append(results.append)
    thread = threading.Thread(target=built.daemon.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        wait_for(lambda: sum(r.account == "fast" for r in results) >= 4, timeout=20)
    finally:
        built.daemon.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    slow = [r.at for r in simulator.requests() if r.api_key == "slow-key"]
    assert all(b - a >= 2.4 for a, b in itertools.pairwise(slow)), slow
    assert all(r.ok for r in results)


def test_listeners_that_fail_do_not_fail_the_poll(
    make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    built = make_recorder()

    def broken(_result: PollOutcome) -> None:
        raise RuntimeError("listener bug")

    built.poller.listeners.append(broken)
    assert first_poll(built).ok
    assert "a poll listener failed" in caplog.text


def test_a_failed_ticker_never_loses_the_snapshot(
    make_recorder: MakeRecorder,
    simulator: Simulator,
    sqlite_db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator.add_fault(Fault.http(503), command="returnTicker")
    built = make_recorder()
    result = first_poll(built)
    assert result.ok
    assert "The ticker could not be fetched" in caplog.text
    rows = query(
        sqlite_db, "SELECT currency, amount, price_usdt, value_usdt FROM balances ORDER BY currency"
    )
    (snapshot,) = query(sqlite_db, "SELECT total_value_usdt, unpriced_count FROM snapshots")
    assert rows == [("BTC", "0.0012", None, None), ("USDT", "257.51830114", None, None)]
    assert snapshot == (None, 2)


def test_prices_and_values_are_stored_with_each_balance(
    make_recorder: MakeRecorder, simulator: Simulator, sqlite_db: Database
) -> None:
    simulator.set_ticker({"BTC_USDT": "96903.7"})
    built = make_recorder()
    assert first_poll(built).ok
    rows = query(
        sqlite_db, "SELECT currency, price_usdt, value_usdt FROM balances ORDER BY currency"
    )
    ((total,),) = query(sqlite_db, "SELECT total_value_usdt FROM snapshots")
    assert rows == [("BTC", "96903.7", "116.28444"), ("USDT", "1", "257.51830114")]
    assert total == "373.80274114"


def test_complete_balances_store_available_and_on_orders_and_an_order_is_no_change(
    make_recorder: MakeRecorder, simulator: Simulator, sqlite_db: Database
) -> None:
    complete = account("main", source="complete")
    built = make_recorder(accounts=(complete,))
    simulator.set_holdings(API_KEY, {"BTC": {"available": "0.0012", "onOrders": "0"}})
    assert built.poller.poll(complete).ok
    # Placing an order moves BTC from available to on_orders: the holding is unchanged.
    simulator.set_holdings(API_KEY, {"BTC": {"available": "0.0002", "onOrders": "0.0010"}})
    second = built.poller.poll(complete)
    assert second.ok and second.changes == []
    private = {r.command for r in simulator.requests() if r.api_key is not None}
    assert private == {"returnCompleteBalances"}
    rows = query(
        sqlite_db, "SELECT amount, available, on_orders FROM balances ORDER BY snapshot_id"
    )
    assert rows == [("0.0012", "0.0012", "0"), ("0.0012", "0.0002", "0.001")]
