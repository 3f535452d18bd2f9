"""The write and outage policy: every poll's observation reaches the database, in order.

`WritePath.store` writes one observation after anything buffered. When the database is
away (DatabaseUnavailableError), the observation waits in the outage buffer (memory and
journal) and is written, in order and with its original time, once the database answers
again; the database is knocked on at most once per interval meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from recorder import text
from recorder.errors import SchemaError, StoreError
from recorder.polling.buffer import OutageBuffer
from recorder.polling.locks import Claim, Claims
from recorder.store import migrate, writes
from recorder.store.database import Database
from recorder.values import Observation, Written

log = logging.getLogger(__name__)

#: Longest pause between two knocks on a database that is away.
MAX_RETRY_SECONDS = 30.0


@dataclass
class Stored:
    """What one call of `WritePath.store` did."""

    #: What the observation wrote; None when it waits in the buffer.
    written: Written | None
    #: Buffered observations written before it, with what each wrote.
    replayed: list[tuple[Observation, Written]] = field(default_factory=list)


class WritePath:
    """Writes observations one at a time and in order: the buffer first, then new polls."""

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
        self.retry_seconds = min(retry_seconds, MAX_RETRY_SECONDS)
        self._gate = threading.Lock()
        self._schema_ready = False
        self._down_since: float | None = None
        self._retry_at = 0.0
        #: Buffered snapshots dropped because another process recorded after them.
        self.superseded = 0

    def prepare(self) -> None:
        """Bring the schema up to date now (at start); if the database is away, say so and
        let the buffer hold the polls until it is back. A newer schema is refused."""
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
            self._failed(error, logged=True)

    def store(self, observation: Observation) -> Stored:
        """Write `observation` after anything buffered, or keep it in the buffer."""
        with self._gate:
            replayed: list[tuple[Observation, Written]] = []
            if self._drain(replayed):
                try:
                    written = self._write(observation, replay=False)
                except StoreError as error:
                    self._failed(error)
                else:
                    self._answered()
                    return Stored(written, replayed)
            self._keep(observation)
            return Stored(None, replayed)

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            migrate.ensure_schema(self.db)
            self._schema_ready = True

    def _write(self, observation: Observation, *, replay: bool) -> Written:
        self._ensure_schema()
        return writes.record(self.db, observation, recorded_by=self.recorded_by, replay=replay)

    def _drain(self, replayed: list[tuple[Observation, Written]]) -> bool:
        """Write every buffered entry, oldest first, adding each written snapshot to
        `replayed`; True when the buffer is empty."""
        if not len(self.buffer):
            return True
        if time.monotonic() < self._retry_at:
            return False
        written = dropped = 0
        try:
            while (entry := self.buffer.peek()) is not None:
                claim = self.claims.claim(entry.account)
                if claim is Claim.BUSY:
                    dropped = self.buffer.discard(entry.account)
                    log.warning(
                        "%s: another recorder process took this account while the database "
                        "was away; the %d poll(s) buffered here are dropped so its history "
                        "stays consistent.",
                        entry.account,
                        dropped,
                        extra={"account": entry.account},
                    )
                    continue
                if claim is Claim.UNKNOWN:
                    return False
                try:
                    if self._recorded_over(entry):
                        self.buffer.pop()
                        dropped += 1
                        continue
                    stored = self._write(entry, replay=True)
                except StoreError as error:
                    self._failed(error)
                    return False
                self.buffer.pop()
                written += 1
                if entry.is_snapshot:
                    replayed.append((entry, stored))
            self._answered()
            return True
        finally:
            if written or dropped:
                self.buffer.persist()
            if written:
                log.info(
                    "Wrote %d buffered poll%s to the database; %d still buffered.",
                    written,
                    "" if written == 1 else "s",
                    len(self.buffer),
                )

    def _recorded_over(self, entry: Observation) -> bool:
        """Whether another process recorded the account after this buffered snapshot was
        taken (two daemons with ha = false, one cut off for a while): written now, it would
        sit among that process's snapshots, so it is dropped instead."""
        if not entry.is_snapshot:
            return False  # a failed poll's row never changes the history
        self._ensure_schema()
        found = writes.recorded_since(self.db, entry.account, entry.at, self.recorded_by)
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

    def _keep(self, observation: Observation) -> None:
        for dropped in self.buffer.add(observation):
            log.error(
                "The local buffer is full (%d polls): dropped %s%s.",
                self.buffer.capacity,
                dropped.describe(),
                ""
                if not dropped.is_snapshot
                else "; the history has a gap there unless it repeated the snapshot before it",
            )
        log.warning(
            "%s: the database is unavailable; kept %s in the local buffer (%d buffered, "
            "%d of them snapshots; at most %d%s).",
            observation.account,
            observation.describe(),
            len(self.buffer),
            self.buffer.snapshots(),
            self.buffer.capacity,
            f"; journal {self.buffer.journal}" if self.buffer.journal else "",
            extra={"account": observation.account},
        )

    def _failed(self, error: StoreError, *, logged: bool = False) -> None:
        if not logged:
            if isinstance(error, SchemaError):
                log.error("%s", error)
            elif self._down_since is None:
                log.error("%s Polls are kept in the local buffer until it is back.", error)
        if self._down_since is None:
            self._down_since = time.monotonic()
        # Do not knock on a dead database for every poll: at most once per interval.
        self._retry_at = time.monotonic() + self.retry_seconds

    def _answered(self) -> None:
        if self._down_since is not None:
            log.info("The database is back after %.0f s.", time.monotonic() - self._down_since)
        self._down_since = None
        self._retry_at = 0.0
