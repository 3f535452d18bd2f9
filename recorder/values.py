"""The data passed between the stages (poll -> parse -> store -> diff -> report). No I/O.

Credentials      an account's keys, as the source needs them to ask for balances
Snapshot         what one account held at one moment (parsed, then valued)
Valuation        the USDT prices and values of a snapshot's holdings
Change           one currency's change between two snapshots
Observation      what one poll saw: a snapshot, or a failure; what the store writes
                 and the outage buffer keeps
Written          what writing an Observation stored
PollOutcome      what one poll did, for listeners (metrics, notify) and the CLI
StoredSnapshot, Holding, ChangeEntry, ErrorRow, AccountActivity
                 rows of the history as the store returns them to reports
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from recorder import amounts
from recorder.secret import Secret


@dataclass(frozen=True)
class Credentials:
    """An account's API key and secret; the secret only ever feeds the signature."""

    api_key: str
    secret_key: Secret


@dataclass(frozen=True)
class Valuation:
    """Prices and values of one snapshot's holdings."""

    prices: Mapping[str, Decimal] = field(default_factory=dict)  # priced currencies only
    values: Mapping[str, Decimal] = field(default_factory=dict)
    total: Decimal | None = None  # sum of the priced values; None when nothing is priced
    unpriced: tuple[str, ...] = ()

    @property
    def unpriced_count(self) -> int:
        """How many held currencies have no price."""
        return len(self.unpriced)


@dataclass(frozen=True)
class Snapshot:
    """What one account held at one moment; only non-zero amounts, canonical Decimals."""

    taken_at: datetime
    balances: Mapping[str, Decimal]
    # Only filled by returnCompleteBalances: currency -> (available, on_orders).
    parts: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    #: Filled in after parsing, from the ticker of the poll's round.
    valuation: Valuation | None = None
    #: A reply that did not clearly carry balances (an empty body, no `data`): it says
    #: "holds nothing" only once the next poll confirms it.
    ambiguous: bool = False


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


@dataclass(frozen=True)
class Observation:
    """What one poll of one account saw, ready to be stored: a snapshot, or a failure."""

    account: str
    at: datetime  # taken_at of a snapshot, attempted_at of a failure
    snapshot: Snapshot | None = None
    error_kind: str | None = None  # set for a failed poll
    message: str = ""
    #: The process that took it ("host:pid"), once it waits in a buffer: written late, by
    #: this or a later process, it is recorded under that name.
    recorded_by: str | None = None

    @classmethod
    def of_snapshot(cls, account: str, snapshot: Snapshot) -> Observation:
        """A successful poll."""
        return cls(account, snapshot.taken_at, snapshot)

    @classmethod
    def of_failure(cls, account: str, at: datetime, kind: str, message: str) -> Observation:
        """A failed poll: one poll_errors row."""
        return cls(account, at, None, kind, message)

    @property
    def is_snapshot(self) -> bool:
        """True for a snapshot, False for a failed poll."""
        return self.snapshot is not None

    def describe(self) -> str:
        """'main's snapshot of 2026-...' for log lines."""
        what = "snapshot" if self.is_snapshot else f"failed poll ({self.error_kind})"
        return f"{self.account}'s {what} of {self.at.isoformat()}"


@dataclass(frozen=True)
class Written:
    """What storing an Observation wrote: the snapshot's id and changes (None and [] for
    a failed poll, or a snapshot that was already stored)."""

    snapshot_id: int | None
    changes: list[Change] = field(default_factory=list)
    #: Set when the observation was stored as a poll_errors row instead of a snapshot
    #: (an ambiguous empty reply not yet confirmed): the row's kind and message.
    failure: tuple[str, str] | None = None


class PollStatus(enum.Enum):
    """What became of one poll."""

    RECORDED = "recorded"  # a snapshot, stored with its changes
    BUFFERED = "buffered"  # a snapshot, waiting in the outage buffer for the database
    FAILED = "failed"  # the poll failed: a poll_errors row (stored or buffered)
    SKIPPED = "skipped"  # not polled: another process records this account
    REPLAYED = "replayed"  # a buffered snapshot written late, after an outage


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of one account did (or, REPLAYED, a late write of one)."""

    account: str
    attempted_at: datetime
    status: PollStatus
    snapshot: Snapshot | None = None
    snapshot_id: int | None = None
    changes: list[Change] = field(default_factory=list)
    #: Why the poll failed (FAILED) or was skipped (SKIPPED).
    error: Exception | None = None
    #: The kind of failure, as stored in poll_errors.kind.
    error_kind: str | None = None
    #: For scheduled polls: when the poll was due (its lateness is attempted_at minus this).
    scheduled_at: datetime | None = None
    #: Seconds from the start of the poll to its commit (or to its failure).
    duration: float = 0.0
    #: What this poll observed reached the database now (False: it waits in the outage
    #: buffer, or the database refused it).
    stored: bool = True
    #: BUFFERED: whether the buffer journal holds it (False: memory only, lost at exit).
    journaled: bool = False

    @property
    def ok(self) -> bool:
        """True when the poll succeeded (stored, or safe in the buffer)."""
        return self.status in (PollStatus.RECORDED, PollStatus.BUFFERED, PollStatus.REPLAYED)


# -- rows of the history, as reports read them ------------------------------------------


class StoredSnapshot(NamedTuple):
    """One stored snapshot of one account, without its balances."""

    account: str
    snapshot_id: int
    taken_at: datetime
    total_value_usdt: Decimal | None
    unpriced_count: int | None


class Holding(NamedTuple):
    """One balance row with its account and time."""

    account: str
    snapshot_id: int
    taken_at: datetime
    currency: str
    amount: Decimal
    price_usdt: Decimal | None
    value_usdt: Decimal | None
    available: Decimal | None
    on_orders: Decimal | None


class ChangeEntry(NamedTuple):
    """One row of the change log with its account name."""

    account: str
    taken_at: datetime
    currency: str
    old_amount: Decimal | None
    new_amount: Decimal | None
    delta: Decimal


class ErrorRow(NamedTuple):
    """One failed poll as stored."""

    at: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class AccountActivity:
    """What the database says about one account's recording."""

    snapshots: int
    last_success: datetime | None
    last_error: ErrorRow | None
    errors_since: int
