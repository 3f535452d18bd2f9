"""A database whose network goes silent (packets dropped, nothing closed): no write, no
question and no SIGTERM waits for TCP to give up. Writes end at their deadline as an
outage, the polls wait in the journal, and the next run writes them."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.errors import DatabaseUnavailableError, StoreError
from recorder.sources.coinw.simulator import Simulator
from recorder.store import migrate
from recorder.store.database import Database
from tests.conftest import API_KEY, snapshot_count, wait_for
from tests.test_writers import behind_a_proxy, check_history, start, stop


def journal_lines(folder: Path) -> int:
    return sum(
        len(path.read_text().splitlines()) for path in folder.glob("recorder-buffer-*.jsonl")
    )


def in_a_thread(work: Callable[[], object]) -> list[BaseException | None]:
    """Run `work` in a thread; the list gets its exception (or None) when it ends."""
    ended: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:
            ended.append(error)
        else:
            ended.append(None)

    threading.Thread(target=run, daemon=True).start()
    return ended


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_a_write_and_a_question_on_a_silent_connection_end_at_the_deadline(
    backend: str, tmp_path: Path
) -> None:
    with behind_a_proxy(backend, tmp_path) as (_url, proxy, through_proxy):
        db = Database(through_proxy)
        try:
            migrate.ensure_schema(db)
            db.deadline = 1.0
            db.rows("SELECT 1")  # the reading connection is open before the silence
            with db.transaction() as connection:
                db.run(connection, "SELECT 1")  # so is a pooled writing one
            proxy.hang()

            def write() -> None:
                with db.transaction() as connection:
                    db.run(connection, db.dialect.insert("accounts", ("name",)), ("silent",))

            wrote = in_a_thread(write)
            asked = in_a_thread(lambda: db.rows("SELECT count(*) FROM accounts"))
            wait_for(lambda: wrote and asked, timeout=30)
            assert isinstance(wrote[0], DatabaseUnavailableError), wrote
            assert isinstance(asked[0], StoreError), asked
            proxy.resume()
            assert db.rows("SELECT count(*) FROM accounts WHERE name = 'silent'") == [(0,)]
        finally:
            db.close()


@pytest.mark.slow
def test_a_daemon_whose_database_goes_silent_buffers_its_polls_and_stops_on_sigterm(
    simulator: Simulator, tmp_path: Path
) -> None:
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    with behind_a_proxy("postgresql", tmp_path) as (url, proxy, through_proxy):
        first = start(simulator, through_proxy, tmp_path / "a", ha=False)
        try:
            wait_for(lambda: snapshot_count(url) >= 2, timeout=30)
            proxy.hang()
            # The write in flight gives up at its deadline; the polls after it wait in the
            # journal instead of behind it.
            wait_for(lambda: journal_lines(tmp_path / "a") >= 2, timeout=60)
        except BaseException:
            stop(first)
            raise
        log = terminated_in_time(first, tmp_path / "a")
        assert "is unavailable" in log
        proxy.resume()
        count, waiting = snapshot_count(url), journal_lines(tmp_path / "a")
        # The next run, with the same journal, writes what waited.
        (tmp_path / "b").mkdir()
        for journal in (tmp_path / "a").glob("recorder-buffer-*.jsonl"):
            journal.rename(tmp_path / "b" / journal.name)
        second = start(simulator, through_proxy, tmp_path / "b", ha=False)
        try:
            wait_for(lambda: snapshot_count(url) >= count + waiting, timeout=60)
            wait_for(lambda: journal_lines(tmp_path / "b") == 0, timeout=30)
        finally:
            stop(second)
        check_history(url)


@pytest.mark.slow
def test_a_daemon_started_against_a_silent_database_polls_into_the_journal_and_stops_in_time(
    simulator: Simulator, tmp_path: Path
) -> None:
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    with behind_a_proxy("mysql", tmp_path) as (url, proxy, through_proxy):
        proxy.hang()  # connections are accepted, and then nothing answers
        daemon = start(simulator, through_proxy, tmp_path / "a", ha=False)
        try:
            wait_for(lambda: journal_lines(tmp_path / "a") >= 1, timeout=60)
            # The schema check gives up on the silent server (10 s), and says so.
            log_file = tmp_path / "a" / "log"
            wait_for(lambda: "Recording starts anyway" in log_file.read_text(), timeout=60)
        except BaseException:
            stop(daemon)
            raise
        log = terminated_in_time(daemon, tmp_path / "a")
        assert "Recording starts anyway" in log
        assert snapshot_count(url) == 0


def terminated_in_time(daemon: subprocess.Popen[bytes], folder: Path) -> str:
    """SIGTERM ends the daemon within 10 s, cleanly; its log, which holds no traceback."""
    try:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        stop(daemon)
    log = (folder / "log").read_text()
    assert "Traceback" not in log
    return log
