"""The write and outage policy: every poll's observation reaches the database, in order,
and nothing one account sends can stop the others.

`WritePath.store` writes one observation after whatever of its account is buffered. What
the database answers decides what happens next:

- it is away (DatabaseUnavailableError: unreachable, lost, read-only, full, locked): the
  observation waits in the outage buffer (memory and journal) and is written, in order and
  with its original time, once the database answers again; the database is knocked on at
  most once per interval meanwhile;
- it refuses the data (WriteRejectedError: a value too long, out of range, a duplicate):
  trying again cannot help, so the poll becomes one poll_errors row of kind
  `rejected_by_database` with the database's reason, and recording goes on. A buffered
  entry refused on its way in goes the same way, and a copy goes to the quarantine file
  beside the journal.

An error the database names neither a refusal nor an outage, while it answers a question
at once, may still be about the data: that account alone waits while the others go on
(outage.py).

Order matters within an account (each snapshot is diffed against the one before), not
across accounts: an account whose entries cannot be written yet never holds up another.
Writes take turns; a poll that finds another's write still going after GATE_SECONDS (a
slow or silent database) waits in the buffer instead of holding its worker, so every
account keeps being polled on time, and the write going on writes it next.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from recorder import text
from recorder.errors import SchemaError, StoreError, WriteRejectedError
from recorder.polling.buffer import OutageBuffer
from recorder.polling.locks import Claim, Claims
from recorder.polling.outage import Outage
from recorder.store import migrate, writes
from recorder.store.database import Database
from recorder.values import Observation, Written

log = logging.getLogger(__name__)

#: Seconds a write (or a question of the write path) may take before its connection is
#: hung up on and the poll waits in the buffer: the interval, within these bounds (far
#: beyond any healthy write, and no poll held for long behind a silent database).
WRITE_SECONDS = (5.0, 20.0)


def write_deadline(interval_seconds: float) -> float:
    """How long one write may take, for a daemon polling every `interval_seconds`."""
    low, high = WRITE_SECONDS
    return min(max(interval_seconds, low), high)


#: How long a poll waits for another poll's write before its observation waits in the
#: buffer instead (a healthy write takes milliseconds).
GATE_SECONDS = 1.0

#: poll_errors.kind of a poll whose data the database refused.
REJECTED = WriteRejectedError.kind


class _Replay(enum.Enum):
    """Why a buffered entry was not written."""

    AWAY = "the database is away"
    HELD = "its account waits"
    SUPERSEDED = "another process recorded after it; dropped"


@dataclass
class Stored:
    """What one call of `WritePath.store` did."""

    #: What the observation wrote; None when it waits in the buffer.
    written: Written | None
    #: Buffered observations written before it, with what each wrote.
    replayed: list[tuple[Observation, Written]] = field(default_factory=list)
    #: Set when the database refused the observation: its reason (a poll_errors row of
    #: kind `rejected_by_database` stands in for it).
    rejected: str | None = None
    #: Whether a buffered observation is in the journal (False: in memory only).
    journaled: bool = True
    #: Buffered observations the database refused on their way in, with its reason (each
    #: is now a poll_errors row of kind `rejected_by_database`).
    refused: list[tuple[Observation, str]] = field(default_factory=list)


class WritePath:
    """Writes observations one at a time: the buffer first, then new polls."""

    def __init__(
        self,
        db: Database,
        buffer: OutageBuffer,
        *,
        claims: Claims,
        recorded_by: str,
        retry_seconds: float,
    ) -> None:
        self.db = db
        self.buffer = buffer
        self.claims = claims
        self.recorded_by = recorded_by
        #: This process's name and those of the runs before it whose polls its journal
        #: holds: their snapshots are this recorder's own, not another process's.
        self.own_names = {recorded_by} | {e.recorded_by for e in buffer if e.recorded_by}
        self.outage = Outage(db, retry_seconds)
        self._gate = threading.Lock()
        #: The new observation being written now (not yet in the buffer), if any.
        self._writing: Observation | None = None
        self._refused: list[tuple[Observation, str]] = []
        self._schema_ready = False
        #: Buffered snapshots dropped because another process recorded after them.
        self.superseded = 0

    def prepare(self) -> None:
        """Bring the schema up to date now (at start); if the database is away, say so and
        let the buffer hold the polls until it is back. A newer schema is refused. Polls
        wait for it to finish."""
        with self._gate:
            try:
                self._ensure_schema()
            except SchemaError:
                raise
            except StoreError as error:
                log.error(
                    "%s Recording starts anyway; polls are kept in the local buffer until "
                    "the database is back.",
                    error,
                )
                self.outage.failed(error, logged=True)

    def store(self, observation: Observation) -> Stored:
        """Write `observation` after what its account has buffered, or keep it."""
        if observation.recorded_by is None:  # taken here: a late write keeps this name
            observation = replace(observation, recorded_by=self.recorded_by)
        if not self._gate.acquire(timeout=GATE_SECONDS):
            log.info(
                "%s: another write is still going on; %s waits in the local buffer and is "
                "written after it.",
                observation.account,
                observation.describe(),
                extra={"account": observation.account},
            )
            return Stored(None, journaled=_keep(self.buffer, observation))
        try:
            stored = self._store(observation)
            if stored.written is not None and len(self.buffer):
                self._drain(stored.replayed)  # what waited behind this write
            stored.refused, self._refused = self._refused, []
            return stored
        finally:
            self._gate.release()

    def _store(self, observation: Observation) -> Stored:
        replayed: list[tuple[Observation, Written]] = []
        if self._drain(replayed) and not self.buffer.holds(observation.account):
            self._writing = observation
            try:
                written = self._write(observation, replay=False)
            except WriteRejectedError as error:
                self.outage.answered()
                # What it held is kept beside the journal, for an operator to look at.
                _set_aside(self.buffer, observation, error)
                return Stored(self._rejected(observation, error), replayed, error.reason)
            except StoreError as error:
                if not self.outage.failed_alone(observation, error):
                    self.outage.failed(error)
            else:
                self.outage.answered()
                return Stored(written, replayed)
            finally:
                self._writing = None
        return Stored(None, replayed, journaled=_keep(self.buffer, observation))

    def in_flight(self) -> Observation | None:
        """The new observation being written now, if any."""
        return self._writing

    def keep_in_flight(self) -> None:
        """Put the observation whose write is still going on into the buffer (and its
        journal): called when the daemon stops without waiting for it. Had the write
        reached the database after all, the next run's replay skips it."""
        observation = self.in_flight()
        if observation is not None and observation not in self.buffer:
            log.warning(
                "%s: %s was still being written when the recorder stopped; it is kept in "
                "the local buffer.",
                observation.account,
                observation.describe(),
                extra={"account": observation.account},
            )
            _keep(self.buffer, observation)

    def waiting(self) -> tuple[int, float | None]:
        """How many polls wait for the database, and how many seconds the oldest has."""
        oldest = self.buffer.oldest()
        age = None if oldest is None else (datetime.now(UTC) - oldest.at).total_seconds()
        return len(self.buffer), age

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            migrate.ensure_schema(self.db)
            self._schema_ready = True

    def _write(self, observation: Observation, *, replay: bool) -> Written:
        self._ensure_schema()
        who = observation.recorded_by or self.recorded_by
        written = writes.record(self.db, observation, recorded_by=who, replay=replay)
        self.outage.wrote(observation)
        return written

    def _rejected(self, observation: Observation, error: WriteRejectedError) -> Written:
        """The database refused the data itself: store one poll_errors row in its place."""
        log.error(
            "%s: the database refused %s (%s); it is recorded as a failed poll of kind %s, "
            "and recording goes on.",
            observation.account,
            observation.describe(),
            error.reason,
            REJECTED,
            extra={"account": observation.account},
        )
        message = f"The database refused this poll's data: {error.reason}"
        stand_in = Observation.of_failure(observation.account, observation.at, REJECTED, message)
        try:
            return self._write(stand_in, replay=True)
        except StoreError as again:  # even the error row: nothing more can be stored
            log.error(
                "%s: the database did not take that record either (%s).", stand_in.account, again
            )
            return Written(None)

    def _drain(self, replayed: list[tuple[Observation, Written]]) -> bool:
        """Write buffered entries in order, account by account, adding each written
        snapshot to `replayed`; False while the database is away."""
        if not len(self.buffer):
            return True
        if not self.outage.may_knock():
            return False
        done: list[Observation] = []
        held: set[str] = set()  # accounts whose next entry cannot be written yet
        answered = False
        try:
            for entry in self.buffer:
                if entry.account in held:
                    continue
                written = self._replay(entry)
                if written is _Replay.AWAY:
                    return False
                if written is _Replay.HELD:
                    held.add(entry.account)
                    continue
                answered = True
                if written is _Replay.SUPERSEDED:
                    continue
                done.append(entry)
                if entry.is_snapshot:
                    replayed.append((entry, written))
            if answered:
                self.outage.answered()
            return True
        finally:
            self.buffer.remove(done)
            if done:
                log.info(
                    "Wrote %d buffered poll%s to the database; %d still buffered.",
                    len(done),
                    "" if len(done) == 1 else "s",
                    len(self.buffer),
                )

    def _replay(self, entry: Observation) -> Written | _Replay:
        """Write one buffered entry: what it wrote, or why it did not."""
        claim = self.claims.claim(entry.account)
        if claim is Claim.BUSY:
            _taken_over(self.buffer, entry.account)
        if claim in (Claim.BUSY, Claim.UNKNOWN):
            return _Replay.HELD
        try:
            if self._recorded_over(entry):
                self.buffer.remove([entry])
                return _Replay.SUPERSEDED
            return self._write(entry, replay=True)
        except WriteRejectedError as error:
            return self._quarantined(entry, error)
        except StoreError as error:
            return self._not_written(entry, error)

    def _not_written(self, entry: Observation, error: StoreError) -> Written | _Replay:
        """A buffered entry's write failed: the database is away, or the entry waits, or
        it has failed too often while others were written and is set aside as refused."""
        if not self.outage.failed_alone(entry, error):
            self.outage.failed(error)
            return _Replay.AWAY
        if self.outage.struck_out(entry):
            return self._quarantined(entry, WriteRejectedError(str(error), error.reason))
        return _Replay.HELD

    def _recorded_over(self, entry: Observation) -> bool:
        """Whether another process recorded the account after this buffered snapshot was
        taken (two daemons with ha = false, one cut off for a while): written now, it would
        sit among that process's snapshots, so it is dropped instead."""
        if not entry.is_snapshot:
            return False  # a failed poll's row never changes the history
        self._ensure_schema()
        # Its own snapshots are those of the process that took it, even one before a
        # restart: only another process's can make it superseded.
        own = sorted(self.own_names | {entry.recorded_by or self.recorded_by})
        found = writes.recorded_since(self.db, entry.account, entry.at, own)
        if found is None:
            return False
        self.superseded += 1
        log.warning(
            "%s: dropped %s from the local buffer: %s recorded this account after it (up to "
            "%s); %d buffered poll(s) dropped so far for this reason.",
            entry.account,
            entry.describe(),
            text.safe(found[1] or "another recorder process"),
            found[0].isoformat(),
            self.superseded,
            extra={"account": entry.account},
        )
        return True

    def _quarantined(self, entry: Observation, error: WriteRejectedError) -> Written:
        self._refused.append((entry, error.reason))
        _set_aside(self.buffer, entry, error)
        return self._rejected(entry, error)


def _taken_over(buffer: OutageBuffer, account: str) -> None:
    """Drop what is buffered of an account another process took over."""
    dropped = buffer.discard(account)
    log.warning(
        "%s: another recorder process took this account while the database was away; "
        "the %d poll(s) buffered here are dropped so its history stays consistent.",
        account,
        dropped,
        extra={"account": account},
    )


def _keep(buffer: OutageBuffer, observation: Observation) -> bool:
    """Put `observation` into the buffer, saying so; whether the journal holds it."""
    dropped, journaled = buffer.add(observation)
    for entry in dropped:
        log.error(
            "The local buffer is full (%d polls): dropped %s%s.",
            buffer.capacity,
            entry.describe(),
            ""
            if not entry.is_snapshot
            else "; the history has a gap there unless it repeated the snapshot before it",
        )
    where = f"journal {buffer.journal}" if journaled else "memory only"
    log.warning(
        "%s: %s waits in the local buffer (%s; %d buffered, %d of them snapshots; at "
        "most %d) until the database takes it.",
        observation.account,
        observation.describe(),
        where,
        len(buffer),
        buffer.snapshots(),
        buffer.capacity,
        extra={"account": observation.account},
    )
    return journaled


def _set_aside(buffer: OutageBuffer, entry: Observation, error: WriteRejectedError) -> None:
    """Keep a copy of a refused buffered entry beside the journal, saying where."""
    where = buffer.quarantine(entry, f"refused by the database: {error.reason}")
    if where is None and buffer.journal is not None:
        log.error(
            "%s: %s was refused by the database, and no copy of it could be kept beside "
            "the journal (%s.quarantine cannot be written).",
            entry.account,
            entry.describe(),
            buffer.journal,
            extra={"account": entry.account},
        )
    elif where is not None:
        log.error(
            "%s: %s was refused by the database; a copy is kept in %s for you to look at "
            "(the entries behind it go on).",
            entry.account,
            entry.describe(),
            where,
            extra={"account": entry.account},
        )
