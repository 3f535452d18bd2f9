"""The canonical decimal form and exact arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder import amounts


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("400.000", "400"),
        ("400", "400"),
        ("4E+2", "400"),
        ("257.518301140000000", "257.51830114"),
        ("0.000000000000000001", "0.000000000000000001"),
        ("1E-18", "0.000000000000000001"),
        ("123456789012345678901234.123456789", "123456789012345678901234.123456789"),
        ("0.0", "0"),
        ("-0", "0"),
    ],
)
def test_to_text_is_plain_and_without_trailing_zeros(text: str, canonical: str) -> None:
    assert amounts.to_text(Decimal(text)) == canonical
    assert amounts.from_text(canonical) == Decimal(text)


storable = st.decimals(min_value=0, max_value=Decimal("9" * 35), places=30, allow_nan=False)


@given(storable)
def test_text_round_trips_exactly(value: Decimal) -> None:
    assert amounts.fits_storage(value)
    assert amounts.from_text(amounts.to_text(value)) == value


@given(storable, storable)
def test_arithmetic_is_exact_past_28_digits(a: Decimal, b: Decimal) -> None:
    assert amounts.add(amounts.subtract(a, b), b) == a


def test_the_default_context_would_have_rounded() -> None:
    big = Decimal("123456789012345678901234.123456789")
    small = Decimal("0.000000000000000001")
    assert big + small - big != small  # what the default 28-digit context does
    assert amounts.subtract(amounts.add(big, small), big) == small


@pytest.mark.parametrize(
    "value",
    ["1" + "0" * 35, "0." + "0" * 30 + "1", "Infinity", "NaN"],
)
def test_values_no_backend_stores_exactly_are_refused(value: str) -> None:
    assert not amounts.fits_storage(Decimal(value))


def test_signed_text_shows_the_direction() -> None:
    assert amounts.signed_text(Decimal("0.0003")) == "+0.0003"
    assert amounts.signed_text(Decimal("-70.000")) == "-70"
