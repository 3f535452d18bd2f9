"""The outage buffer's journal: one JSON line per waiting poll, appended and synced.

What is written here comes back in through `read`, which trusts nothing: every line is
checked like an exchange reply (amounts, currency names, times with a zone) before it can
reach the history, so a corrupt or tampered journal cannot put `NaN`, `-5` or a formula
into it. A line that cannot be read goes to the quarantine file beside the journal, with
the reason, and start-up goes on. Each line carries the identity of the database it was
meant for: a journal of another database is refused.

Appends stay line-aligned: a short write (a full disk) is cut back off, and a fragment
left by a crash is closed with a newline before the next line, so it never swallows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from recorder import amounts, text
from recorder.errors import ConfigError, InvalidAmountError, PollError, poll_error_kinds
from recorder.polling.pricing import revalue
from recorder.sources.coinw.parse import check_currency, parse_amount
from recorder.values import Observation, Snapshot, Valuation

_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")
_KIND = re.compile(r"[a-z][a-z_]{0,31}")
#: How long a message read back may be (the store bounds what it writes the same way).
_MESSAGE_LIMIT = 1000
#: A poll's time read back lies between these and at most a day ahead of the clock: the
#: history never gets a snapshot from 1970 or 9999 out of a tampered line.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_AHEAD = timedelta(days=1)


class JournalLineError(ValueError):
    """A journal line that cannot be trusted; the reason says why."""


@dataclass(frozen=True)
class Entry:
    """One journal line read back: the observation and the database it belongs to."""

    observation: Observation
    database: str | None  # None: written before lines carried it


def _texts(mapping: Mapping[str, Decimal]) -> dict[str, str]:
    return {key: amounts.to_text(value) for key, value in mapping.items()}


def to_line(entry: Observation, database: str) -> str:
    """One journal line (without the newline)."""
    document: dict[str, Any] = {
        "database": database,
        "account": entry.account,
        "at": entry.at.isoformat(),
        "error_kind": entry.error_kind,
        "message": entry.message,
        "recorded_by": entry.recorded_by,
    }
    snapshot = entry.snapshot
    if snapshot is not None:
        valuation = snapshot.valuation or Valuation()
        document.update(
            balances=_texts(snapshot.balances),
            parts={
                c: [amounts.to_text(a), amounts.to_text(o)] for c, (a, o) in snapshot.parts.items()
            },
            prices=_texts(valuation.prices),
            values=_texts(valuation.values),
            total=None if valuation.total is None else amounts.to_text(valuation.total),
            unpriced=list(valuation.unpriced),
            ambiguous=snapshot.ambiguous,
        )
    return json.dumps(document, separators=(",", ":"))


def _string(document: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise JournalLineError(f"'{key}' is not a valid name")
    return value


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise JournalLineError("'at' is not a time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise JournalLineError("'at' is not a time") from None
    if moment.tzinfo is None:
        raise JournalLineError("'at' has no time zone")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise JournalLineError("'at' is out of range") from None
    if not _EARLIEST <= moment <= datetime.now(UTC) + _AHEAD:
        raise JournalLineError(f"'at' ({value}) is before 2000 or in the future")
    return moment


def _amounts(document: Mapping[str, Any], key: str) -> dict[str, Decimal]:
    """currency -> amount, each checked exactly as CoinW's replies are."""
    value = document.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(a, str) for a in value.values()):
        raise JournalLineError(f"'{key}' is not an object of amounts written as text")
    try:
        return {check_currency(c): parse_amount(c, a) for c, a in value.items()}
    except PollError as error:
        raise JournalLineError(f"'{key}': {error}") from None


def _snapshot(document: Mapping[str, Any], at: datetime) -> Snapshot:
    balances = _amounts(document, "balances")
    parts_raw = document.get("parts", {})
    if not isinstance(parts_raw, dict) or not all(
        isinstance(v, list) and len(v) == 2 for v in parts_raw.values()
    ):
        raise JournalLineError("'parts' is malformed")
    try:
        parts = {
            check_currency(c): (parse_amount(c, str(a)), parse_amount(c, str(o)))
            for c, (a, o) in parts_raw.items()
        }
    except PollError as error:
        raise JournalLineError(str(error)) from None
    # As in a returnCompleteBalances reply, each amount is its available + on orders.
    if any(
        currency not in balances or amounts.add(available, on_orders) != balances[currency]
        for currency, (available, on_orders) in parts.items()
    ):
        raise JournalLineError("'parts' do not add up to the amounts")
    prices = _amounts(document, "prices")
    if not prices.keys() <= balances.keys():
        raise JournalLineError("'prices' names a currency the snapshot does not hold")
    # Values, total and unpriced currencies are worked out again from the amounts and the
    # prices: a line cannot state a value its amounts do not make.
    valuation = revalue(balances, prices)
    return Snapshot(at, balances, parts, valuation, ambiguous=document.get("ambiguous") is True)


def from_line(line: str) -> Entry:
    """A journal line -> Entry; JournalLineError for anything that cannot be trusted."""
    try:
        document = json.loads(line, parse_constant=_no_constant)
    except RecursionError:
        raise JournalLineError("nested too deeply") from None
    except ValueError as error:
        raise JournalLineError(f"not JSON ({text.one_line(error, 80)})") from None
    if not isinstance(document, dict):
        raise JournalLineError("not an object")
    try:
        account = _string(document, "account", _ACCOUNT)
        at = _time(document.get("at"))
        database = document.get("database")
        if database is not None and not isinstance(database, str):
            raise JournalLineError("'database' is not text")
        taker = _recorded_by(document.get("recorded_by"))
        if document.get("error_kind") is not None:
            kind = _string(document, "error_kind", _KIND)
            if kind not in poll_error_kinds():
                raise JournalLineError(f"'error_kind' ({kind}) is not a kind of failed poll")
            message = document.get("message", "")
            if not isinstance(message, str):
                raise JournalLineError("'message' is not text")
            failure = Observation.of_failure(account, at, kind, text.safe(message, _MESSAGE_LIMIT))
            return Entry(replace(failure, recorded_by=taker), database)
        snapshot = Observation.of_snapshot(account, _snapshot(document, at))
        return Entry(replace(snapshot, recorded_by=taker), database)
    except (InvalidAmountError, ArithmeticError):
        raise JournalLineError("an amount is malformed") from None


def _recorded_by(value: Any) -> str | None:
    """Who took a buffered poll ("host:pid"; absent in lines of older versions)."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise JournalLineError("'recorded_by' is not a process name")
    return text.safe(value, 64)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file is still the one at the path."""
    try:
        held, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


class Journal:
    """The file: appends, rewrites, and the quarantine beside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.quarantine_path = path.with_name(path.name + ".quarantine")
        self.lock_path = path.with_name(path.name + ".lock")
        self._lock: int | None = None

    def take(self) -> None:
        """Hold the journal for this process: two processes appending to and rewriting one
        file would drop each other's lines. ConfigError if another holds it."""
        import fcntl

        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as error:
                raise ConfigError(
                    f"The buffer journal's lock file {str(self.lock_path)!r} cannot be opened "
                    f"({error.strerror}); set buffer_file to a file in a folder this user "
                    "can write."
                ) from None
            try:
                # A POSIX lock: per process, so only another process is kept out.
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise ConfigError(
                    f"Another recorder process uses the buffer journal {str(self.path)!r}; "
                    "stop it, or give this configuration its own buffer_file."
                ) from None
            # The holder before us removes the lock file when it lets go; a lock on a file
            # that is no longer at the path keeps nobody out, so take the new one instead.
            if _same_file(fd, self.lock_path):
                self._lock = fd
                return
            os.close(fd)

    def release(self) -> None:
        """Let another process hold the journal, leaving no lock file behind."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self.lock_path.unlink()  # while still held: nobody can have locked it since
            os.close(self._lock)  # closing the file releases its lock
            self._lock = None

    def read(self) -> tuple[list[Entry], list[tuple[str, str]]]:
        """Every readable line, in order; and the unreadable lines, each with why (for
        `set_aside`)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], []
        entries, bad = [], []
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                entries.append(from_line(line.decode("utf-8")))
            except (UnicodeDecodeError, JournalLineError) as error:
                bad.append((line.decode("utf-8", "replace"), f"line {number}: {error}"))
        return entries, bad

    def set_aside(self, bad: list[tuple[str, str]]) -> list[str]:
        """Move unreadable lines to the quarantine file; those it could not take (they
        must stay in the journal)."""
        return [line for line, reason in bad if not self.quarantine(line, reason)]

    def append(self, line: str) -> None:
        """Add one line, synced to disk; OSError if it could not be (nothing half-written
        is left behind)."""
        _append_line(self.path, line)

    def rewrite(self, lines: Iterable[str]) -> None:
        """Replace the whole journal atomically (the old one or the new one, never half)."""
        lines = list(lines)
        if not lines:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.writelines(line + "\n" for line in lines)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)

    def quarantine(self, line: str, reason: str) -> bool:
        """Keep `line` aside with the reason, for an operator to look at; False if even
        that cannot be written."""
        record = json.dumps({"reason": reason, "line": line}, separators=(",", ":"))
        try:
            _append_line(self.quarantine_path, record)
        except OSError:
            return False
        return True


def waiting(path: Path | None) -> tuple[int, datetime | None]:
    """How many polls a journal holds and when the oldest was taken, read without changing
    it (for `recorder status`, beside a running daemon)."""
    if path is None:
        return 0, None
    try:
        lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    except OSError:
        return 0, None
    times = []
    for line in lines:
        try:
            times.append(from_line(line.decode("utf-8")).observation.at)
        except (UnicodeDecodeError, JournalLineError):
            continue
    return len(lines), min(times, default=None)


def _append_line(path: Path, line: str) -> None:
    """Append one line to a file readable by its owner only, synced; OSError if it could
    not be, with nothing half-written left behind: a short write (a full disk) is cut back
    off, and a fragment left by a crash is closed first, so lines stay whole."""
    data = line.encode("utf-8") + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            done = 0
            while done < len(data):
                done += os.write(fd, data[done:])
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
