"""The outage journal keeps what it promises: whole lines on a full disk, honest messages,
nothing unreadable or tampered reaches the history, and one journal per database."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
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
    buffer.add(entry("3"))  # the disk takes writes again: what was in memory only is saved
    assert buffer.unsaved == 0
    lines = path.read_text().splitlines()
    read = [from_line(x).observation.snapshot for x in lines]
    assert [len(s.balances) for s in read if s] == [1, 4000, 1]
    assert [s.balances["BTC"] for s in read if s and "BTC" in s.balances] == [1, 3]
    buffer.close()


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
        (line(at="1970-01-01T00:00:00+00:00").encode(), "before 2000"),
        (line(at="9999-12-31T23:59:59+00:00").encode(), "in the future"),
        (line(at="9999-12-31T23:59:59-14:00").encode(), "out of range"),
        (line(at="0001-01-01T00:00:00+14:00").encode(), "out of range"),
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
    path.write_text(to_line(entry(), "fedcba9876543210") + "\n{not json\n")
    with pytest.raises(ConfigError, match="holds polls of another database"):
        OutageBuffer(path, 100, DB)
    # Refused before anything is moved: a second start does not quarantine a line twice.
    assert not Journal(path).quarantine_path.exists()
    assert "{not json" in path.read_text()


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


def test_an_unreadable_line_the_quarantine_cannot_take_stays_in_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.jsonl"
    good = to_line(entry("1"), DB)
    path.write_text(good + "\n" + "{not json\n" + good + "\n")
    Journal(path).quarantine_path.mkdir()  # cannot be appended to
    with caplog.at_level(logging.ERROR):
        buffer = OutageBuffer(path, 100, DB)
    assert "could not be moved" in caplog.text
    buffer.remove([next(iter(buffer))])  # the journal is rewritten: the line stays
    assert "{not json" in path.read_text()
    buffer.close()


def test_another_process_cannot_use_the_same_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from recorder.polling.buffer import OutageBuffer; "
            f"b = OutageBuffer(pathlib.Path({str(path)!r}), 10, {DB!r}); "
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError, match="Another recorder process uses the buffer journal"):
            OutageBuffer(path, 100, DB)
    finally:
        holder.communicate("")
    OutageBuffer(path, 100, DB).close()  # free again once that process has ended
    assert not Journal(path).lock_path.exists()  # and closing leaves no lock file behind


def test_a_lock_file_removed_under_a_waiting_process_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    first = Journal(path)
    first.take()
    stale = os.open(first.lock_path, os.O_RDWR)  # opened before the holder lets go
    first.release()
    second = Journal(path)
    second.take()  # takes a new lock file at the path
    try:
        assert second.lock_path.exists()
        assert os.fstat(stale).st_ino != os.stat(second.lock_path).st_ino
        with pytest.raises(ConfigError, match="Another recorder process"):
            _take_in_another_process(path)
    finally:
        os.close(stale)
        second.release()


def _take_in_another_process(path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pathlib; from recorder.polling.journal import Journal; "
            f"Journal(pathlib.Path({str(path)!r})).take()",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "Another recorder process" in result.stderr:
        raise ConfigError("Another recorder process holds it")


def test_a_relative_sqlite_url_names_the_same_database_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = Database("sqlite:///recorder.db")
    absolute = Database(f"sqlite:///{tmp_path / 'recorder.db'}")
    assert relative.identity == absolute.identity
    relative.close()
    absolute.close()


def test_what_is_in_memory_only_is_counted_right_after_it_is_written(disk: SmallDisk) -> None:
    buffer = OutageBuffer(disk.path / "journal.jsonl", 100, DB)
    buffer.add(entry("1"))
    disk.fill()
    lost = big()
    buffer.add(lost)
    disk.free()
    buffer.remove([lost])  # written to the database after all
    assert buffer.unsaved == 0 and buffer.saved() == 1 == len(buffer)
    buffer.close()


def test_a_journal_left_under_another_spelling_of_the_url_is_pointed_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pattern = tmp_path / "recorder-buffer-{database}.jsonl"
    settings = settings_for("http://x", buffer_file=pattern)
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        mine = app.journal_path(settings, db)
        left = tmp_path / "recorder-buffer-0f582e6d.jsonl"
        left.write_text(to_line(entry(), "0f582e6d00000000") + "\n")
        (tmp_path / "recorder-buffer-00000000.jsonl").write_text("")  # empty: nothing waits
        assert app.other_journals(settings, mine) == [left]
        with caplog.at_level(logging.WARNING):
            app.build(settings, db=db).close()
        assert f"The buffer journal {left} beside this one holds polls" in caplog.text
    finally:
        db.close()
