"""Comparing two snapshots of one account. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from recorder.values import Change


def diff(previous: Mapping[str, Decimal], current: Mapping[str, Decimal]) -> list[Change]:
    """Every currency whose amount differs, sorted by currency; zero counts as not held."""
    changes = []
    for currency in sorted(previous.keys() | current.keys()):
        old = previous.get(currency)
        new = current.get(currency)
        old = None if old is None or old.is_zero() else old
        new = None if new is None or new.is_zero() else new
        if old != new:  # Decimal equality: 400.000 == 400
            changes.append(Change(currency, old, new))
    return changes


def apply(previous: Mapping[str, Decimal], changes: list[Change]) -> dict[str, Decimal]:
    """The holdings after `changes`: apply(a, diff(a, b)) == b (b without zeros)."""
    result = {currency: amount for currency, amount in previous.items() if not amount.is_zero()}
    for change in changes:
        if change.new_amount is None:
            result.pop(change.currency, None)
        else:
            result[change.currency] = change.new_amount
    return result
