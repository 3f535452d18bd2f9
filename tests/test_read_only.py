"""Commands that only read never create or change a database, and read a SQLite history
that the user may read but not write: a file of another user in a folder of theirs, while
its daemon writes (WAL, with its -shm) and after it stopped (no -wal, no -shm)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.store import migrate
from recorder.store.database import Database
from tests.conftest import snapshot_count, wait_for
from tests.users import give_away, need_root, without_file_powers

ROOT = Path(__file__).resolve().parent.parent
READING = [
    ["at"],
    ["history"],
    ["changes"],
    ["changes", "--format", "json"],
    ["export", "-o", "-"],
    ["status"],
    ["gaps"],
    ["statement", "--year", "2026"],
]


def digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def run(env: dict[str, str], *args: str, reader: bool = False) -> subprocess.CompletedProcess[str]:
    """The recorder in a process of its own; a `reader` may not write others' files."""
    return subprocess.run(
        [sys.executable, "-m", "recorder", *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
        preexec_fn=without_file_powers if reader else None,
    )


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder everybody may enter and read."""
    folder = Path(tempfile.mkdtemp(prefix="recorder-ro-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_a_history_the_user_cannot_write_is_read_with_and_without_its_daemon(
    env: dict[str, str], shared_folder: Path
) -> None:
    need_root()
    path = shared_folder / "history.db"
    url = f"sqlite:///{path}"
    env = {**env, "RECORDER_DATABASE_URL": url}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "recorder", "run"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: path.exists() and snapshot_count(url) >= 2, timeout=30)
        assert Path(f"{path}-shm").exists()  # WAL, while the daemon writes
        for file in shared_folder.iterdir():
            file.chmod(0o644)
        give_away(shared_folder, *shared_folder.iterdir())
        for command in READING:
            result = run(env, *command, reader=True)
            assert result.returncode in (0, 1), (command, result.stderr)
            assert "Traceback" not in result.stderr and "readonly" not in result.stderr
        assert run(env, "at", reader=True).returncode == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, stderr
    assert not Path(f"{path}-wal").exists()  # the daemon's last connection checkpointed it
    before, listed = digest(path), sorted(shared_folder.iterdir())
    answers = {}
    for command in READING:
        result = run(env, *command, reader=True)
        assert "Traceback" not in result.stderr and "readonly" not in result.stderr, result.stderr
        answers[" ".join(command)] = (result.returncode, result.stdout)
    assert answers["at"][0] == 0 and "BTC" in answers["at"][1]
    assert digest(path) == before
    assert sorted(shared_folder.iterdir()) == listed  # no -wal, no -shm
    # The same answers as the owner gets (the same rows: `at` and `status` say "now", and
    # `status` turns stale with time, so its exit code is not compared).
    for command in READING:
        result = run(env, *command)
        code, out = answers[" ".join(command)]
        assert command[0] == "status" or code == result.returncode, command
        if command[0] in ("export", "changes", "history"):
            assert out == result.stdout, command


@pytest.mark.parametrize("content", [b"", b"shopping list\n" * 100], ids=["empty", "text"])
def test_a_file_that_holds_no_history_is_one_sentence_and_left_as_it_was(
    env: dict[str, str], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    before = digest(path)
    for command in READING:
        result = run({**env, "RECORDER_DATABASE_URL": f"sqlite:///{path}"}, *command)
        assert result.returncode == 1, (command, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
        assert digest(path) == before, command
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_an_older_schema_is_left_byte_for_byte(env: dict[str, str], sqlite_url: str) -> None:
    db = Database(sqlite_url)
    migrate.upgrade(db, "0003")
    db.close()
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    # An old database in the rollback-journal mode older recorders left: switching it to
    # WAL would rewrite its header.
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    before = digest(path)
    for command in READING:
        result = run(env, *command)
        assert result.returncode == 1 and "older than this recorder" in result.stderr, command
    assert digest(path) == before
