"""The outage journal keeps what it promises: whole lines on a full disk, honest messages,
nothing unreadable or tampered reaches the history, and one journal per database."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from recorder import app
from recorder.cli import cli
from recorder.errors import ConfigError
from recorder.polling.buffer import OutageBuffer
from recorder.polling.journal import Journal, from_line, to_line
from recorder.store.database import Database
from recorder.values import Observation, Snapshot
from tests.disk import SmallDisk
from tests.helpers import counts, recorder, settings_for

T0 = datetime(2026, 3, 31, 12, tzinfo=UTC)
DB = "0123456789abcdef"


def entry(btc: str = "1", account: str = "main") -> Observation:
    return Observation.of_snapshot(account, Snapshot(T0, {"BTC": Decimal(btc)}))


def big() -> Observation:
    """An entry of about 60 kB: more than a full disk has left."""
    held = {f"C{n:05d}": Decimal(n + 1) for n in range(4000)}
    return Observation.of_snapshot("main", Snapshot(T0, held))


def line(**changes: object) -> str:
    document = json.loads(to_line(entry(), DB))
    document.update(changes)
    return json.dumps(document)


def test_a_short_write_on_a_full_disk_is_cut_back_and_lines_stay_whole(
    disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    path = disk.path / "journal.jsonl"
    buffer = OutageBuffer(path, 100, DB)
    buffer.add(entry("1"))
    disk.fill()
    with caplog.at_level(logging.ERROR):
        _, saved = buffer.add(big())  # too big for what is left
    assert not saved and buffer.unsaved == 1
    assert "exists in memory only and is lost if the recorder stops" in caplog.text
    disk.free()
    buffer.add(entry("3"))
    lines = path.read_text().splitlines()
    read = [from_line(x).observation.snapshot for x in lines]
    assert [s.balances["BTC"] for s in read if s] == [1, 3]


def test_a_fragment_left_by_a_crash_never_swallows_the_next_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(to_line(entry("1"), DB) + "\n" + to_line(entry("2"), DB)[:25])
    Journal(path).append(to_line(entry("3"), DB))
    buffer = OutageBuffer(path, 100, DB)
    assert [e.snapshot.balances["BTC"] for e in buffer if e.snapshot] == [1, 3]
    assert "line 2" in Journal(path).quarantine_path.read_text()


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (b"\xff\xfe not utf-8", "utf-8"),
        (line(balances=5).encode(), "balances"),
        (line(balances={"BTC": 5}).encode(), "balances"),
        (("[" * 100_000 + "]" * 100_000).encode(), "deeply"),
        (line(at="2026-03-31T12:00:00").encode(), "time zone"),
        (line(balances={"BTC": "NaN"}).encode(), "BTC"),
        (line(balances={"BTC": "-5"}).encode(), "BTC"),
        (line(balances={'=HYPERLINK("x")': "1"}).encode(), "currency"),
        (line(prices={"BTC": "Infinity"}).encode(), "prices"),
        (line(account="../../etc").encode(), "account"),
        (line(error_kind="x' OR 1=1").encode(), "error_kind"),
    ],
)
def test_an_unreadable_or_tampered_line_is_quarantined_and_the_rest_kept(
    tmp_path: Path, bad: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.jsonl"
    good = to_line(entry("1"), DB).encode()
    path.write_bytes(good + b"\n" + bad + b"\n" + good + b"\n")
    buffer = OutageBuffer(path, 100, DB)
    assert [e.snapshot.balances for e in buffer if e.snapshot] == [{"BTC": 1}, {"BTC": 1}]
    quarantined = Journal(path).quarantine_path.read_text()
    assert why in quarantined.lower() or why in quarantined
    assert "Moved 1 unreadable line(s)" in caplog.text
    assert len(path.read_text().splitlines()) == 2  # the journal keeps only what is good


def test_a_journal_of_another_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(to_line(entry(), "fedcba9876543210") + "\n")
    with pytest.raises(ConfigError, match="holds polls of another database"):
        OutageBuffer(path, 100, DB)


def test_two_configurations_in_one_folder_never_share_a_journal(tmp_path: Path) -> None:
    first = Database(f"sqlite:///{tmp_path / 'a.db'}")
    second = Database(f"sqlite:///{tmp_path / 'b.db'}")
    settings = settings_for("http://x", buffer_file=tmp_path / "recorder-buffer-{database}.jsonl")
    paths = {app.journal_path(settings, first), app.journal_path(settings, second)}
    first.close()
    second.close()
    assert len(paths) == 2


def test_the_command_line_refuses_a_journal_of_another_database(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "shared.jsonl"
    shared.write_text(to_line(entry(), "fedcba9876543210") + "\n")
    result = CliRunner().invoke(cli, ["poll"], env={**env, "RECORDER_BUFFER_FILE": str(shared)})
    assert result.exit_code == 2
    assert "holds polls of another database" in result.stderr
    assert "Traceback" not in result.output


def test_what_waits_is_counted_on_exit_in_the_journal_and_in_memory_only(
    disk: SmallDisk, sqlite_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    built = recorder(settings_for("http://x", buffer_file=disk.path / "j.jsonl"), sqlite_db)
    buffer = built.poller.writes.buffer
    buffer.add(entry("1"))
    disk.fill()
    buffer.add(big())
    with caplog.at_level(logging.WARNING):
        built.daemon._report_buffer()
    built.close()
    disk.free()
    assert "2 poll(s) are still waiting for the database: 1 in the journal" in caplog.text
    assert "1 in memory only, which are lost now" in caplog.text
    assert counts(sqlite_db)["snapshots"] == 0
