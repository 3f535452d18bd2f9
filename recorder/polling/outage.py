"""What the write path knows of the database's answers: whether it is away (and when to
knock again), and which entries fail alone while it answers.

An error the database names neither a refusal nor an outage (a trigger's own error code,
an unexpected error), while it answers a question at once, may still be about the data.
Such an entry is counted against: its account waits while the others go on, and once it
has failed STRIKES times while other writes succeeded it is set aside as refused. A known
outage (lost, full, read-only, locked, too slow) never counts against an entry: however
long it lasts, the entry waits and is written when the database can take it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from recorder.errors import DatabaseUnavailableError, SchemaError, StoreError
from recorder.store.database import Database
from recorder.values import Observation

log = logging.getLogger(__name__)

#: Longest pause between two knocks on a database that is away.
MAX_RETRY_SECONDS = 30.0
#: How many times an entry may fail to be written while the database answers and takes
#: other writes, before it is set aside as refused (its error was not recognised as one).
STRIKES = 3


class Outage:
    """The database's state as the write path has seen it. Used under the write gate."""

    def __init__(self, db: Database, retry_seconds: float) -> None:
        self.db = db
        self.retry_seconds = min(retry_seconds, MAX_RETRY_SECONDS)
        self._down_since: float | None = None
        self._retry_at = 0.0
        #: Writes that succeeded, and per (account, time) of an entry that failed alone:
        #: its failures and that count at its first.
        self._writes_done = 0
        self._strikes: dict[tuple[str, datetime], tuple[int, int]] = {}

    def may_knock(self) -> bool:
        """False while a database that is away should be left alone."""
        return time.monotonic() >= self._retry_at

    def wrote(self, entry: Observation) -> None:
        """`entry` reached the database."""
        self._writes_done += 1
        self._strikes.pop((entry.account, entry.at), None)

    def failed(self, error: StoreError, *, logged: bool = False) -> None:
        """The database is away (or its schema refuses this program)."""
        if not logged:
            if isinstance(error, SchemaError):
                log.error("%s", error)
            elif self._down_since is None:
                log.error("%s Polls are kept in the local buffer until it is back.", error)
        if self._down_since is None:
            self._down_since = time.monotonic()
        # Do not knock on a dead database for every poll: at most once per interval.
        self._retry_at = time.monotonic() + self.retry_seconds

    def answered(self) -> None:
        """The database took a write (or refused its data): it is there."""
        if self._down_since is not None:
            log.info("The database is back after %.0f s.", time.monotonic() - self._down_since)
        self._down_since = None
        self._retry_at = 0.0

    def failed_alone(self, entry: Observation, error: StoreError) -> bool:
        """Whether writing `entry` failed while the database answers: counted against
        the entry, and its account waits while the others go on."""
        if not isinstance(error, DatabaseUnavailableError) or error.certain:
            return False  # an outage (or a schema it refuses) is never the entry's fault
        try:
            self.db.rows("SELECT 1")
        except StoreError:
            return False
        key = (entry.account, entry.at)
        count, since = self._strikes.get(key, (0, self._writes_done))
        self._strikes[key] = (count + 1, since)
        log.error(
            "%s: the database answers but did not take %s (%s); it waits in the local buffer "
            "and is tried again with the next poll (failure %d; after %d, while other writes "
            "succeed, it is set aside as refused).",
            entry.account,
            entry.describe(),
            error.reason,
            count + 1,
            STRIKES,
            extra={"account": entry.account},
        )
        return True

    def struck_out(self, entry: Observation) -> bool:
        """Whether `entry` has failed alone often enough, while other writes succeeded, to
        be set aside as refused."""
        count, since = self._strikes.get((entry.account, entry.at), (0, self._writes_done))
        return count >= STRIKES and self._writes_done > since
