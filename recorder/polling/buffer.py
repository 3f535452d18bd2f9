"""The outage buffer: polls completed while the database cannot take them.

Entries wait in memory and in a journal file (JSON Lines, one entry per line, appended and
synced as they arrive), so a restart does not lose them. They are written to the database
in the order they were taken once it is back; writing an entry twice is harmless because
the writer skips what is already stored. The buffer is bounded: when full it first drops
snapshots that repeat the one before them (no change is lost), then the oldest entries,
and says so.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from recorder import amounts
from recorder.values import Observation, Snapshot, Valuation

log = logging.getLogger(__name__)


def _decimals(mapping: Mapping[str, Decimal]) -> dict[str, str]:
    return {key: amounts.to_text(value) for key, value in mapping.items()}


def to_json(entry: Observation) -> str:
    """One journal line."""
    document: dict[str, Any] = {
        "account": entry.account,
        "at": entry.at.isoformat(),
        "error_kind": entry.error_kind,
        "message": entry.message,
    }
    snapshot = entry.snapshot
    if snapshot is not None:
        valuation = snapshot.valuation or Valuation()
        document.update(
            balances=_decimals(snapshot.balances),
            parts={
                c: [amounts.to_text(a), amounts.to_text(o)] for c, (a, o) in snapshot.parts.items()
            },
            prices=_decimals(valuation.prices),
            values=_decimals(valuation.values),
            total=amounts.to_text(valuation.total) if valuation.total is not None else None,
            unpriced=list(valuation.unpriced),
        )
    return json.dumps(document, separators=(",", ":"))


def from_json(line: str) -> Observation:
    """Read back a journal line written by `to_json`."""
    data: dict[str, Any] = json.loads(line)

    def decimals(mapping: dict[str, str]) -> dict[str, Decimal]:
        return {key: amounts.from_text(value) for key, value in mapping.items()}

    at = datetime.fromisoformat(data["at"])
    if data.get("error_kind") is not None:
        return Observation.of_failure(
            data["account"], at, data["error_kind"], data.get("message", "")
        )
    total = data.get("total")
    snapshot = Snapshot(
        taken_at=at,
        balances=decimals(data.get("balances", {})),
        parts={
            c: (amounts.from_text(a), amounts.from_text(o))
            for c, (a, o) in data.get("parts", {}).items()
        },
        valuation=Valuation(
            prices=decimals(data.get("prices", {})),
            values=decimals(data.get("values", {})),
            total=amounts.from_text(total) if total is not None else None,
            unpriced=tuple(data.get("unpriced", ())),
        ),
    )
    return Observation.of_snapshot(data["account"], snapshot)


class OutageBuffer:
    """A bounded FIFO of Observation entries, mirrored in a journal file when one is given."""

    def __init__(self, journal: Path | None, capacity: int) -> None:
        self.journal = journal
        self.capacity = capacity
        self._entries: deque[Observation] = deque()
        self._lock = threading.RLock()
        if journal is not None and journal.exists():
            self._load(journal)

    def _load(self, journal: Path) -> None:
        bad = 0
        for line in journal.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                self._entries.append(from_json(line))
            except (ValueError, KeyError, TypeError, ArithmeticError):
                bad += 1  # a line cut short by a crash mid-append
        if self._entries:
            log.info(
                "Found %d buffered poll%s in %s from an earlier run; they will be written to "
                "the database first.",
                len(self._entries),
                "" if len(self._entries) == 1 else "s",
                journal,
            )
        if bad:
            log.warning("Skipped %d unreadable line(s) of the buffer journal %s.", bad, journal)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def snapshots(self) -> int:
        """How many buffered entries are snapshots (not failed polls)."""
        with self._lock:
            return sum(1 for entry in self._entries if entry.is_snapshot)

    def add(self, entry: Observation) -> list[Observation]:
        """Keep `entry`; returns what had to be dropped to make room (usually nothing)."""
        with self._lock:
            dropped = []
            while len(self._entries) >= self.capacity:
                dropped.append(self._drop_one())
            self._entries.append(entry)
            if dropped:
                self._rewrite()
            else:
                self._append(entry)
            return dropped

    def _drop_one(self) -> Observation:
        """The least valuable entry: a repeated snapshot, else a failure, else the oldest."""
        last: dict[str, Observation] = {}
        for index, entry in enumerate(self._entries):
            if not entry.is_snapshot:
                continue
            previous = last.get(entry.account)
            if previous is not None and _same_holdings(previous, entry):
                del self._entries[index]
                return entry
            last[entry.account] = entry
        for index, entry in enumerate(self._entries):
            if not entry.is_snapshot:
                del self._entries[index]
                return entry
        return self._entries.popleft()

    def __iter__(self) -> Iterator[Observation]:
        with self._lock:
            return iter(list(self._entries))

    def peek(self) -> Observation | None:
        """The oldest entry, or None."""
        with self._lock:
            return self._entries[0] if self._entries else None

    def pop(self) -> None:
        """Forget the oldest entry (it is stored); call `persist()` after a batch."""
        with self._lock:
            self._entries.popleft()

    def discard(self, account: str) -> int:
        """Forget every entry of one account; returns how many."""
        with self._lock:
            kept = deque(e for e in self._entries if e.account != account)
            removed = len(self._entries) - len(kept)
            self._entries = kept
            return removed

    def persist(self) -> None:
        """Make the journal match memory (after entries were written or discarded)."""
        with self._lock:
            self._rewrite()

    def _append(self, entry: Observation) -> None:
        if self.journal is None:
            return
        try:
            with open(self.journal, "a", encoding="utf-8") as handle:
                handle.write(to_json(entry) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(self.journal, 0o600)
        except OSError as error:
            log.error(
                "Could not write the buffer journal %s (%s); buffered polls are kept in "
                "memory only.",
                self.journal,
                error.strerror,
            )

    def _rewrite(self) -> None:
        if self.journal is None:
            return
        if not self._entries:
            self.journal.unlink(missing_ok=True)
            return
        temporary = self.journal.with_name(self.journal.name + ".tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.writelines(to_json(entry) + "\n" for entry in self._entries)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.journal)  # atomic: the old journal or the new one
        except OSError as error:
            log.error("Could not rewrite the buffer journal %s (%s).", self.journal, error.strerror)


def _same_holdings(a: Observation, b: Observation) -> bool:
    return (
        a.snapshot is not None
        and b.snapshot is not None
        and (a.snapshot.balances == b.snapshot.balances)
    )
