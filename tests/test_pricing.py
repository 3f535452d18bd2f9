"""Valuation: direct pairs, through BTC, USDT = 1, unpriced never counted as zero."""

from __future__ import annotations

from decimal import Decimal

from recorder.errors import ConnectError
from recorder.polling.pricing import TickerCache, last_prices, usdt_price, valuate, value_of

D = Decimal
PAIRS = {"BTC_USDT": D("96903.7"), "SAND_BTC": D("0.0000027"), "ETH_USDT": D("3391.25")}


def test_a_currency_is_priced_directly_then_through_btc() -> None:
    assert usdt_price("USDT", PAIRS) == 1
    assert usdt_price("ETH", PAIRS) == D("3391.25")
    assert usdt_price("SAND", PAIRS) == D("0.0000027") * D("96903.7")
    assert usdt_price("XYZ", PAIRS) is None


def test_values_are_exact_products() -> None:
    assert value_of(D("0.0012"), D("96903.7")) == D("116.28444")
    assert value_of(D("123456789012345678901234.123456789"), D("1")) == D(
        "123456789012345678901234.123456789"
    )


def test_unpriced_currencies_are_listed_and_not_counted() -> None:
    valuation = valuate({"ETH": D(2), "XYZ": D(5), "USDT": D("1.5")}, PAIRS)
    assert valuation.total == D("6784")
    assert valuation.unpriced == ("XYZ",)
    assert "XYZ" not in valuation.values


def test_without_a_ticker_everything_is_unpriced_and_the_total_unknown() -> None:
    valuation = valuate({"ETH": D(2)}, None)
    assert valuation.total is None and valuation.unpriced == ("ETH",)
    assert valuate({}, None).total == 0


def test_malformed_ticker_entries_are_skipped_not_fatal() -> None:
    ticker = {
        "BTC_USDT": {"last": "96903.7"},
        "BAD_USDT": {"last": "-1"},
        "NAN_USDT": {"last": "NaN"},
        "ZERO_USDT": {"last": "0"},
        "X": "junk",
    }
    assert last_prices(ticker) == {"BTC_USDT": D("96903.7")}


def test_the_ticker_is_fetched_once_per_round() -> None:
    calls = []
    now = [0.0]

    def fetch() -> dict[str, object]:
        calls.append(now[0])
        return {"BTC_USDT": {"last": "1"}}

    cache = TickerCache(fetch, max_age=60, clock=lambda: now[0])
    for t in (0.0, 1.0, 59.0, 61.0, 62.0):
        now[0] = t
        assert cache.pairs() == {"BTC_USDT": D(1)}
    assert calls == [0.0, 61.0]


def test_a_failed_ticker_gives_no_prices_for_the_round() -> None:
    def fetch() -> dict[str, object]:
        raise ConnectError("down")

    assert TickerCache(fetch, max_age=60).pairs() is None


def test_a_cross_price_that_rounds_to_nothing_is_unpriced_not_worthless() -> None:
    pairs = {"DUST_BTC": Decimal("1E-20"), "BTC_USDT": Decimal("1E-15")}
    assert usdt_price("DUST", pairs) is None
    valuation = valuate({"DUST": Decimal(5)}, pairs)
    assert valuation.unpriced == ("DUST",) and valuation.total is None


def test_values_too_large_to_store_are_left_unpriced_and_the_total_still_fits() -> None:
    huge = Decimal("9" * 34)
    valuation = valuate(
        {"A": huge, "B": huge, "C": Decimal(1)},
        {"A_USDT": huge, "B_USDT": Decimal(9), "C_USDT": Decimal(2)},
    )
    assert "A" in valuation.unpriced  # amount x price has 68 integer digits
    assert valuation.total is not None and valuation.values["C"] == 2
