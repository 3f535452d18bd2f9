"""Two daemons on one database server, one of them cut off for a while. With ha = false
the cut-off one buffers its polls, and drops those another process recorded over once it
is back; with ha = true a holder whose lock session hangs (packets dropped silently, not
refused) gives up within an interval and another process takes the account over. The
history is checked afterwards."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from recorder.errors import RecorderError
from recorder.sources.coinw.simulator import Simulator
from recorder.store.database import Database
from tests.conftest import API_KEY, SECRET, fresh_database, snapshot_count, wait_for
from tests.consistency import (
    assert_at_says_what_the_polls_said,
    assert_change_log_is_the_diff,
    sampled_moments,
    snapshots,
)
from tests.proxy import TCPProxy

BUSY = "another recorder process is recording this account"


@contextlib.contextmanager
def behind_a_proxy(backend: str, tmp_path: Path) -> Iterator[tuple[str, TCPProxy, str]]:
    """A fresh database: its URL, a proxy in front of it and the URL through the proxy."""
    with fresh_database(backend, tmp_path) as url:
        parsed = make_url(url)
        proxy = TCPProxy(parsed.host or "127.0.0.1", parsed.port or 0).start()
        try:
            yield url, proxy, parsed.set(port=proxy.port).render_as_string(hide_password=False)
        finally:
            proxy.stop()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[tuple[str, TCPProxy, str]]:
    with behind_a_proxy("postgresql", tmp_path) as found:
        yield found


@pytest.fixture(params=["postgresql", "mysql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, TCPProxy, str]]:
    with behind_a_proxy(request.param, tmp_path) as found:
        yield found


def start(simulator: Simulator, url: str, folder: Path, *, ha: bool) -> subprocess.Popen[bytes]:
    folder.mkdir(exist_ok=True)
    env = {
        "COINW_API_KEY": API_KEY,
        "COINW_SECRET_KEY": SECRET,
        "COINW_BASE_URL": simulator.url,
        "RECORDER_DATABASE_URL": url,
        "RECORDER_INTERVAL_SECONDS": "1",
        "RECORDER_FETCH_PRICES": "false",
        "RECORDER_HA": "true" if ha else "false",
    }
    with (folder / "log").open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "recorder", "run"],
            env={**os.environ, **env},
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def stop(*daemons: subprocess.Popen[bytes] | None) -> None:
    for daemon in daemons:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=20) == 0


def recorded_by(url: str, pid: int) -> int:
    """Snapshots the process `pid` took."""
    db = Database(url)
    try:
        return sum(str(by).endswith(f":{pid}") for *_, by in snapshots(db, "default"))
    except RecorderError:
        return 0  # no table or no account yet
    finally:
        db.close()


def check_history(url: str) -> list[str]:
    """The change log is the diff, BTC (CoinW's count of answered polls) only grows in time
    order, `at` says what the polls said; returns who took each snapshot, in time order."""
    db = Database(url)
    try:
        stored = snapshots(db, "default")
        assert_change_log_is_the_diff(db)
        counted = [s[2]["BTC"] for s in stored]
        assert counted == sorted(set(counted)), counted  # none older slotted in, none twice
        timeline = [(s[1], s[2]) for s in stored]
        moments = sampled_moments([s[1] for s in stored])
        assert_at_says_what_the_polls_said(db, "default", timeline, moments)
        return [str(s[3]) for s in stored]
    finally:
        db.close()


def runs(recorders: list[str]) -> list[str]:
    """Who recorded, one entry per unbroken run: [A, B, A] means A, then B, then A again."""
    return [who for who, _ in itertools.groupby(recorders)]


def test_a_cut_off_daemon_drops_the_buffered_polls_another_process_recorded_over(
    simulator: Simulator, postgres: tuple[str, TCPProxy, str], tmp_path: Path
) -> None:
    url, proxy, through_proxy = postgres
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    first = start(simulator, through_proxy, tmp_path / "a", ha=False)
    second = None
    try:
        wait_for(lambda: recorded_by(url, first.pid) >= 2, timeout=30)
        second = start(simulator, url, tmp_path / "b", ha=False)
        wait_for(lambda: BUSY in (tmp_path / "b" / "log").read_text(), timeout=30)
        proxy.cut()  # the first loses the database, and with it the account's lock
        wait_for(lambda: recorded_by(url, second.pid) >= 3, timeout=30)
        stop(second)
        proxy.restore()
        log = tmp_path / "a" / "log"
        wait_for(lambda: "from the local buffer" in log.read_text(), timeout=30)
        count = snapshot_count(url)
        wait_for(lambda: snapshot_count(url) >= count + 2, timeout=30)
    finally:
        stop(first, second)
    text = (tmp_path / "a" / "log").read_text()
    assert f":{second.pid} recorded this account after it" in text
    assert "buffered poll(s) dropped so far for this reason" in text
    who = runs(check_history(url))
    # The first, then the second while the first was cut off, then the first again with
    # its newer polls only: never one of the first's among the second's.
    assert [w.split(":")[1] for w in who] == [str(first.pid), str(second.pid), str(first.pid)]


def test_a_holder_whose_lock_session_hangs_gives_up_and_another_takes_over(
    simulator: Simulator, server: tuple[str, TCPProxy, str], tmp_path: Path
) -> None:
    url, proxy, through_proxy = server
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    first = start(simulator, through_proxy, tmp_path / "a", ha=True)
    second = None
    try:
        wait_for(lambda: recorded_by(url, first.pid) >= 2, timeout=30)
        second = start(simulator, url, tmp_path / "b", ha=True)
        wait_for(lambda: BUSY in (tmp_path / "b" / "log").read_text(), timeout=30)
        proxy.hang()  # packets dropped silently: nothing closes, nothing answers
        wait_for(lambda: recorded_by(url, second.pid) >= 3, timeout=30)
        proxy.resume()
        wait_for(lambda: BUSY in (tmp_path / "a" / "log").read_text(), timeout=30)
        count = snapshot_count(url)
        wait_for(lambda: snapshot_count(url) >= count + 2, timeout=30)
    finally:
        stop(first, second)
    text = (tmp_path / "a" / "log").read_text()
    assert "Lost the database session that held the account locks (default)" in text
    assert "not polling this account (ha = true)" in text
    assert "polling anyway" not in text
    who = check_history(url)
    assert [w.split(":")[1] for w in runs(who)] == [str(first.pid), str(second.pid)]
    db = Database(url)
    try:
        times = [s[1] for s in snapshots(db, "default")]
    finally:
        db.close()
    # The hole is the holder's deadline plus the server's two silent intervals, not the
    # minutes to hours TCP takes to give up.
    handover = max(b - a for a, b in itertools.pairwise(times))
    assert handover.total_seconds() < 10, handover
