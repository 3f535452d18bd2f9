"""The outage buffer: journal round trip, bounded size, and what it drops first."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from recorder.polling.buffer import OutageBuffer
from recorder.polling.journal import JournalLineError, from_line, to_line
from recorder.polling.pricing import revalue
from recorder.sources.coinw.simulator import Simulator
from recorder.store.database import Database
from recorder.values import Observation, PollStatus, Snapshot, Valuation
from tests.conftest import API_KEY
from tests.helpers import recorder, settings_for

T0 = datetime(2026, 3, 31, 12, tzinfo=UTC)


def snapshot(n: int, amount: str = "1", account: str = "main") -> Observation:
    at = T0 + timedelta(minutes=n)
    held = {"BTC": Decimal(amount)}
    return Observation.of_snapshot(account, Snapshot(at, held, {}, revalue(held, {})))


def test_entries_survive_the_journal_exactly(tmp_path: Path) -> None:
    entry = Observation.of_snapshot(
        "main",
        Snapshot(
            T0,
            {"USDT": Decimal("257.518301140000000"), "X": Decimal("1E-18")},
            {"USDT": (Decimal("200"), Decimal("57.51830114"))},
            Valuation(
                {"USDT": Decimal(1)},
                {"USDT": Decimal("257.51830114")},
                Decimal("257.51830114"),
                ("X",),
            ),
        ),
    )
    error = Observation.of_failure("main", T0, "timeout", "slow")
    assert from_line(to_line(entry, "db1")).observation == entry
    assert from_line(to_line(error, "db1")).observation == error
    journal = tmp_path / "buffer.jsonl"
    buffer = OutageBuffer(journal, capacity=10)
    buffer.add(entry)
    buffer.add(error)
    assert list(OutageBuffer(journal, capacity=10)) == [entry, error]
    assert journal.stat().st_mode & 0o077 == 0


def test_a_journal_line_cannot_state_values_or_kinds_its_data_do_not_make() -> None:
    line = json.loads(to_line(snapshot(1, "7"), "db1"))
    line.update(prices={"BTC": "1"}, values={"BTC": "999"}, total="999", unpriced=[])
    read = from_line(json.dumps(line)).observation.snapshot
    assert read is not None and read.valuation is not None
    assert read.valuation.values == {"BTC": Decimal(7)} and read.valuation.total == Decimal(7)
    with pytest.raises(JournalLineError, match="does not hold"):
        from_line(json.dumps({**line, "prices": {"ETH": "1"}}))
    for parts in ({"BTC": ["5", "5"]}, {"BTC": ["3", "4"], "ETH": ["3", "0"]}):
        with pytest.raises(JournalLineError, match="do not add up"):
            from_line(json.dumps({**line, "parts": parts}))
    assert from_line(json.dumps({**line, "parts": {"BTC": ["3", "4"]}}))
    failure = json.loads(to_line(Observation.of_failure("main", T0, "timeout", "slow"), "db1"))
    with pytest.raises(JournalLineError, match="not a kind of failed poll"):
        from_line(json.dumps({**failure, "error_kind": "evil_kind"}))


def test_a_line_cut_short_by_a_crash_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "buffer.jsonl"
    journal.write_text(to_line(snapshot(1), "") + "\n" + to_line(snapshot(2), "")[:30])
    assert list(OutageBuffer(journal, capacity=10)) == [snapshot(1)]
    assert "Moved 1 unreadable line(s)" in caplog.text
    assert "line 2" in (tmp_path / "buffer.jsonl.quarantine").read_text()


def test_when_full_a_repeated_snapshot_goes_first_then_failures_then_the_oldest() -> None:
    buffer = OutageBuffer(None, capacity=3)
    buffer.add(snapshot(1, "1"))
    buffer.add(snapshot(2, "1"))  # repeats the one before: no change lost if dropped
    buffer.add(Observation.of_failure("main", T0 + timedelta(minutes=3), "timeout", ""))
    assert buffer.add(snapshot(4, "2"))[0] == [snapshot(2, "1")]
    dropped, _ = buffer.add(snapshot(5, "3"))
    assert [d.error_kind for d in dropped] == ["timeout"]
    assert buffer.add(snapshot(6, "4"))[0] == [snapshot(1, "1")]
    assert [e.snapshot.balances["BTC"] for e in buffer if e.snapshot] == [
        Decimal(2),
        Decimal(3),
        Decimal(4),
    ]


def test_writing_the_journal_back_after_a_flush(tmp_path: Path) -> None:
    journal = tmp_path / "buffer.jsonl"
    buffer = OutageBuffer(journal, capacity=10)
    for n in range(3):
        buffer.add(snapshot(n, str(n)))
    first, *rest = list(buffer)
    buffer.remove([first])
    assert len(journal.read_text().splitlines()) == 2
    buffer.remove(rest)
    assert not journal.exists()


def test_a_full_buffer_says_plainly_what_it_dropped(
    simulator: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    settings = settings_for(
        simulator.url,
        buffer_file=tmp_path / "b.jsonl",
        buffer_max_snapshots=2,
        fetch_prices=False,
    )
    database = Database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    built = recorder(settings, database)
    with caplog.at_level(logging.INFO):
        results = [built.poller.poll(settings.accounts[0]) for _ in range(3)]
    built.close()
    database.close()
    assert all(r.status is PollStatus.BUFFERED for r in results)
    assert "The local buffer is full (2 polls): dropped main's snapshot of" in caplog.text
    assert (
        "(journal " in caplog.text and "2 buffered, 2 of them snapshots; at most 2)" in caplog.text
    )
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 2
