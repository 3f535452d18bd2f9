"""The outage buffer: polls completed while the database cannot take them.

Entries wait in memory and in a journal file (journal.py), so a restart does not lose
them. They are written to the database in the order they were taken, account by account,
once it is back; writing an entry twice is harmless because the writer skips what is
already stored. The buffer is bounded: when full it first drops snapshots that repeat the
one before them (no change is lost), then failed polls, then the oldest entries, and says
so.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from recorder.errors import ConfigError
from recorder.polling.journal import Journal, to_line
from recorder.values import Observation

log = logging.getLogger(__name__)


class OutageBuffer:
    """A bounded FIFO of Observations for one database, mirrored in a journal file."""

    def __init__(self, journal: Path | None, capacity: int, database: str = "") -> None:
        self.journal = journal
        self.capacity = capacity
        #: The identity of the database the entries belong to (Database.identity).
        self.database = database
        self._file = Journal(journal) if journal is not None else None
        self._entries: deque[Observation] = deque()
        #: Entries (by id) kept in memory only, because the journal could not be written.
        self._unsaved: set[int] = set()
        #: Unreadable journal lines the quarantine file could not take: kept in the journal.
        self._stuck: list[str] = []
        self._lock = threading.RLock()
        if self._file is not None:
            self._file.take()
            try:
                self._load(self._file)
            except BaseException:
                self._file.release()
                raise

    def close(self) -> None:
        """Let go of the journal (what it holds stays for the next run), after a last try
        to save what is in memory only."""
        if self._file is not None:
            self.save()
            self._file.release()

    def save(self) -> bool:
        """Write entries kept in memory only (the journal could not be written when they
        came) into the journal, if it can be written now; whether none is left unsaved."""
        with self._lock:
            if not self._unsaved:
                return True
            if not self._rewrite():
                return False
            log.info(
                "The buffer journal %s can be written again; it holds every buffered poll.",
                self.journal,
            )
            return True

    def _load(self, journal: Journal) -> None:
        entries, bad = journal.read()
        foreign = {e.database for e in entries if e.database not in (None, self.database)}
        if foreign:  # refused before anything is moved: the journal stays as it was
            raise ConfigError(
                f"The buffer journal {str(journal.path)!r} holds polls of another database; "
                "give this configuration its own buffer_file (or point database_url back at "
                "that database to write them)."
            )
        self._stuck = journal.set_aside(bad)
        self._entries.extend(entry.observation for entry in entries)
        if self._entries:
            log.info(
                "Found %d buffered poll%s in %s from an earlier run; they will be written to "
                "the database first.",
                len(self._entries),
                "" if len(self._entries) == 1 else "s",
                journal.path,
            )
        if len(bad) > len(self._stuck):
            log.warning(
                "Moved %d unreadable line(s) of the buffer journal %s to %s; the rest will be "
                "written. Look at them there; nothing of them reaches the history.",
                len(bad) - len(self._stuck),
                journal.path,
                journal.quarantine_path,
            )
            self._rewrite()
        if self._stuck:
            log.error(
                "%d unreadable line(s) of the buffer journal %s could not be moved to %s; "
                "they stay in the journal (nothing of them reaches the history). Free space "
                "or fix the permissions there, then restart to move them.",
                len(self._stuck),
                journal.path,
                journal.quarantine_path,
            )

    @property
    def unsaved(self) -> int:
        """How many entries exist in memory only."""
        with self._lock:
            return len(self._unsaved)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def snapshots(self) -> int:
        """How many buffered entries are snapshots (not failed polls)."""
        with self._lock:
            return sum(1 for entry in self._entries if entry.is_snapshot)

    def holds(self, account: str) -> bool:
        """True while an entry of `account` waits (its later polls must wait behind it)."""
        with self._lock:
            return any(entry.account == account for entry in self._entries)

    def oldest(self) -> Observation | None:
        """The entry that has waited longest, or None."""
        with self._lock:
            return self._entries[0] if self._entries else None

    def add(self, entry: Observation) -> tuple[list[Observation], bool]:
        """Keep `entry`; returns what had to be dropped to make room (usually nothing) and
        whether the journal holds it (False: in memory only)."""
        with self._lock:
            dropped = []
            while len(self._entries) >= self.capacity:
                dropped.append(self._drop_one())
            self._unsaved -= {id(gone) for gone in dropped}
            self._entries.append(entry)
            # With entries in memory only, the whole journal is rewritten: as soon as the
            # disk takes it again, they are saved too.
            saved = self._rewrite() if dropped or self._unsaved else self._append(entry)
            if not saved:
                self._unsaved.add(id(entry))
            return dropped, saved

    def _drop_one(self) -> Observation:
        """The least valuable entry: a repeated snapshot, else a failure, else the oldest."""
        last: dict[str, Observation] = {}
        for index, entry in enumerate(self._entries):
            if entry.snapshot is None:
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

    def remove(self, done: list[Observation]) -> None:
        """Forget these entries (written, refused or dropped) and bring the journal in
        step with memory."""
        if not done:
            return
        with self._lock:
            gone = {id(entry) for entry in done}
            self._entries = deque(e for e in self._entries if id(e) not in gone)
            self._unsaved -= gone
            self._rewrite()

    def discard(self, account: str) -> int:
        """Forget every entry of one account; returns how many."""
        with self._lock:
            mine = [e for e in self._entries if e.account == account]
            self.remove(mine)
            return len(mine)

    def quarantine(self, entry: Observation, reason: str) -> Path | None:
        """Keep a copy of `entry` aside with the reason; where it went (None: nowhere but
        the log, without a journal)."""
        if self._file is None:
            return None
        line = to_line(entry, self.database)
        return self._file.quarantine_path if self._file.quarantine(line, reason) else None

    def _append(self, entry: Observation) -> bool:
        if self._file is None:
            return False
        try:
            self._file.append(to_line(entry, self.database))
        except OSError as error:
            log.error(
                "Could not write the buffer journal %s (%s): %s exists in memory only and is "
                "lost if the recorder stops before the database is back.",
                self._file.path,
                error.strerror,
                entry.describe(),
            )
            return False
        return True

    def _rewrite(self) -> bool:
        if self._file is None:
            return False
        try:
            lines = [to_line(entry, self.database) for entry in self._entries]
            self._file.rewrite(self._stuck + lines)
        except OSError as error:
            log.error(
                "Could not rewrite the buffer journal %s (%s); what it holds may be written "
                "twice after a restart (harmless: written polls are skipped).",
                self._file.path,
                error.strerror,
            )
            return False
        self._unsaved.clear()
        return True

    def saved(self) -> int:
        """How many entries the journal holds (the rest are in memory only)."""
        with self._lock:
            return 0 if self._file is None else len(self._entries) - len(self._unsaved)


def _same_holdings(a: Observation, b: Observation) -> bool:
    return (
        a.snapshot is not None
        and b.snapshot is not None
        and (a.snapshot.balances == b.snapshot.balances)
    )
