"""Exact decimal amounts: the one canonical form, the bounds we can store, exact arithmetic.

Amounts travel as `Decimal` from the HTTP body to the database and back; nothing here
goes through float. The canonical form has no exponent and no trailing zeros, so
"400.000", "400" and "4E+2" are all stored and shown as "400".
"""

from __future__ import annotations

import decimal
from decimal import Decimal

#: What the widest column type (DECIMAL(65,30) on MariaDB/MySQL) holds without rounding.
MAX_FRACTION_DIGITS = 30
MAX_INTEGER_DIGITS = 35

# Far wider than any stored amount or product of two, and traps Inexact: if a result could
# not be represented exactly we would rather fail loudly than store a rounded number.
_EXACT = decimal.Context(
    prec=200,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)


def canonical(value: Decimal) -> Decimal:
    """The same amount without trailing zeros or exponent (400.000 -> 400, 1E-18 stays)."""
    if not isinstance(value, Decimal):  # a float would already have lost digits
        raise TypeError(f"amounts must be Decimal, not {type(value).__name__}")
    if value.is_zero():
        return Decimal(0)
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=_EXACT)
    return value.normalize(context=_EXACT)


def to_text(value: Decimal) -> str:
    """Plain positional notation, never scientific: 1E-18 -> "0.000000000000000001"."""
    return format(canonical(value), "f")


def from_text(text: str) -> Decimal:
    """Read back a string written by `to_text` (the SQLite storage form)."""
    return canonical(Decimal(text))


def fits_storage(value: Decimal) -> bool:
    """True when every backend stores the value exactly (at most 35 + 30 digits)."""
    if not value.is_finite():
        return False
    if value.is_zero():
        return True
    try:
        normalized = value.normalize(context=_EXACT)
    except ArithmeticError:  # more than 200 significant digits
        return False
    exponent = normalized.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, so never "n", "N" or "F"
    fraction_digits = max(0, -exponent)
    integer_digits = max(0, normalized.adjusted() + 1)
    return fraction_digits <= MAX_FRACTION_DIGITS and integer_digits <= MAX_INTEGER_DIGITS


def subtract(new: Decimal, old: Decimal) -> Decimal:
    """new - old, exactly (the default context would round past 28 digits)."""
    return canonical(_EXACT.subtract(new, old))


def add(a: Decimal, b: Decimal) -> Decimal:
    """a + b, exactly."""
    return canonical(_EXACT.add(a, b))


def multiply(a: Decimal, b: Decimal) -> Decimal:
    """a * b, exactly."""
    return canonical(_EXACT.multiply(a, b))


def ratio(a: Decimal, b: Decimal) -> Decimal:
    """a / b to 50 significant digits: for comparisons, never stored."""
    return decimal.Context(prec=50).divide(a, b)


def round_to_storage(value: Decimal) -> Decimal:
    """`value` rounded half-even to the 30 decimal places every backend stores."""
    rounding = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_EVEN)
    return canonical(value.quantize(Decimal(1).scaleb(-MAX_FRACTION_DIGITS), context=rounding))


def signed_text(value: Decimal) -> str:
    """A delta as an operator reads it: "+0.0003", "-12.5"."""
    text = to_text(value)
    return text if text.startswith("-") else "+" + text
