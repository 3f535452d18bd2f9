"""Diffing snapshots: appeared, changed, gone; never a change for the same amount."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from recorder.diff import apply, diff
from recorder.values import Change

D = Decimal


def test_it_records_every_currency_of_a_first_snapshot_as_appeared() -> None:
    assert diff({}, {"BTC": D("1"), "ETH": D("2")}) == [
        Change("BTC", None, D("1")),
        Change("ETH", None, D("2")),
    ]


def test_it_records_a_change_when_a_currency_disappears() -> None:
    (change,) = diff({"SAND": D("108.467")}, {})
    assert change.kind == "gone"
    assert change.delta == D("-108.467")
    assert change.describe("main") == "main SAND gone (was 108.467)"


def test_it_records_nothing_for_the_same_amount_written_differently() -> None:
    assert diff({"CWT": D("400.000")}, {"CWT": D("400.0")}) == []


def test_a_changed_amount_reads_like_the_operator_expects() -> None:
    (change,) = diff({"BTC": D("0.0012")}, {"BTC": D("0.0015")})
    assert change.describe("main") == "main BTC 0.0012 -> 0.0015 (+0.0003)"
    assert change.delta == D("0.0003")


def test_zero_counts_as_not_held() -> None:
    assert diff({"BTC": D("0")}, {}) == []
    assert diff({}, {"BTC": D("0.000")}) == []


def test_an_empty_snapshot_records_every_held_currency_as_gone() -> None:
    changes = diff({"A": D(1), "B": D(2)}, {})
    assert [(c.currency, c.kind) for c in changes] == [("A", "gone"), ("B", "gone")]


def test_deltas_are_exact_beyond_28_digits() -> None:
    (change,) = diff(
        {"X": D("123456789012345678901234.123456789")},
        {"X": D("123456789012345678901234.123456790")},
    )
    assert change.delta == D("0.000000001")


holdings = st.dictionaries(
    st.sampled_from(["BTC", "ETH", "USDT", "SAND", "CWT"]),
    st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False),
    max_size=5,
)


@given(holdings, holdings)
def test_applying_the_diff_gives_the_new_holdings(a: dict[str, D], b: dict[str, D]) -> None:
    changes = diff(a, b)
    assert apply(a, changes) == {k: v for k, v in b.items() if not v.is_zero()}
    assert all(c.old_amount != c.new_amount for c in changes)
