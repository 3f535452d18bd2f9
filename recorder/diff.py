"""Comparing two snapshots of one account. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from recorder import amounts


@dataclass(frozen=True)
class Change:
    """One currency's change between two snapshots."""

    currency: str
    old_amount: Decimal | None  # None: the currency appeared
    new_amount: Decimal | None  # None: the currency is gone

    @property
    def delta(self) -> Decimal:
        """new - old, counting a missing side as zero."""
        return amounts.subtract(self.new_amount or Decimal(0), self.old_amount or Decimal(0))

    @property
    def kind(self) -> str:
        """ "appeared", "gone" or "changed"."""
        if self.old_amount is None:
            return "appeared"
        if self.new_amount is None:
            return "gone"
        return "changed"

    def describe(self, account: str) -> str:
        """One line an operator reads: `main BTC 0.0012 -> 0.0015 (+0.0003)`."""
        if self.old_amount is None:
            assert self.new_amount is not None
            return f"{account} {self.currency} appeared {amounts.to_text(self.new_amount)}"
        if self.new_amount is None:
            return f"{account} {self.currency} gone (was {amounts.to_text(self.old_amount)})"
        return (
            f"{account} {self.currency} {amounts.to_text(self.old_amount)} -> "
            f"{amounts.to_text(self.new_amount)} ({amounts.signed_text(self.delta)})"
        )


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
