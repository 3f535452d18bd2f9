"""Database outages against real PostgreSQL: polls made while the database is cut off are
buffered, and written in order with correct changes once it is back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from recorder import app
from recorder.sources.coinw.simulator import Simulator
from recorder.values import PollOutcome, PollStatus
from tests.conftest import API_KEY, wait_for
from tests.helpers import settings_for
from tests.proxy import TCPProxy


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[str, TCPProxy]]:
    """(URL through the proxy, the proxy) for a fresh PostgreSQL schema."""
    url = make_url(postgres_url)
    proxy = TCPProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.stop()


def ok_polls(simulator: Simulator) -> int:
    return sum(1 for r in simulator.requests("returnBalances") if r.answered == "ok")


def stored(url: str) -> list[tuple[Decimal, Decimal | None, Decimal | None]]:
    """(BTC amount, old, new) of every snapshot in time order, from the database directly."""
    engine = sa.create_engine(url)
    query = (
        "SELECT b.amount, c.old_amount, c.new_amount FROM snapshots s "
        "JOIN balances b ON b.snapshot_id = s.id "
        "LEFT JOIN balance_changes c ON c.snapshot_id = s.id "
        "ORDER BY s.taken_at"
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(query)).all()
    except sa.exc.ProgrammingError:
        return []  # the recorder has not created the tables yet
    finally:
        engine.dispose()
    return [tuple(r) for r in rows]


def start_recorder(
    url: str, simulator: Simulator, tmp_path: Path
) -> tuple[app.Recorder, threading.Thread, list[PollOutcome]]:
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    settings = settings_for(
        simulator.url,
        database_url=url,
        buffer_file=tmp_path / "buffer.jsonl",
        fetch_prices=False,
    )
    recorder = app.build(settings)
    results: list[PollOutcome] = []
    recorder.poller.listeners.append(results.append)
    thread = threading.Thread(target=recorder.daemon.run, kwargs={"handle_signals": False})
    thread.start()
    return recorder, thread, results


def stop_recorder(recorder: app.Recorder, thread: threading.Thread) -> None:
    recorder.daemon.stop()
    thread.join(timeout=15)
    assert not thread.is_alive()
    recorder.close()


def buffered_polls(results: list[PollOutcome]) -> int:
    return sum(r.status is PollStatus.BUFFERED for r in results)


def check_history(url: str, polls: int) -> None:
    """Every poll is stored once, in order, each with the change from the one before."""
    rows = stored(url)
    assert [amount for amount, _, _ in rows] == [Decimal(n) for n in range(1, polls + 1)]
    assert rows[0][1:] == (None, Decimal(1))
    for n, (_, old, new) in enumerate(rows[1:], start=2):
        assert (old, new) == (Decimal(n - 1), Decimal(n))


def test_polls_during_a_cut_are_written_in_order_when_the_database_is_back(
    proxied: tuple[str, TCPProxy],
    postgres_url: str,
    simulator: Simulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, proxy = proxied
    caplog.set_level(logging.INFO)
    recorder, thread, results = start_recorder(url, simulator, tmp_path)
    try:
        wait_for(lambda: len(stored(postgres_url)) >= 2, timeout=20)
        proxy.cut()
        cut_at = ok_polls(simulator)
        wait_for(lambda: ok_polls(simulator) >= cut_at + 4, timeout=20)  # several intervals
        assert wait_for(lambda: buffered_polls(results) >= 3, timeout=10)
        assert (tmp_path / "buffer.jsonl").exists()  # also safe from a restart
        proxy.restore()
        wait_for(lambda: len(stored(postgres_url)) >= ok_polls(simulator) >= cut_at + 4, timeout=20)
    finally:
        stop_recorder(recorder, thread)
    check_history(postgres_url, ok_polls(simulator))
    assert not (tmp_path / "buffer.jsonl").exists()
    assert "main's snapshot of" in caplog.text and "waits in the local buffer" in caplog.text
    assert "Wrote" in caplog.text and "The database is back" in caplog.text


def test_the_daemon_starts_while_the_database_is_down_and_catches_up(
    proxied: tuple[str, TCPProxy],
    postgres_url: str,
    simulator: Simulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, proxy = proxied
    proxy.cut()
    recorder, thread, results = start_recorder(url, simulator, tmp_path)
    try:
        wait_for(lambda: buffered_polls(results) >= 3, timeout=20)
        assert stored(postgres_url) == []
        proxy.restore()
        wait_for(lambda: len(stored(postgres_url)) >= ok_polls(simulator) >= 4, timeout=20)
    finally:
        stop_recorder(recorder, thread)
    check_history(postgres_url, ok_polls(simulator))
    assert "Recording starts anyway" in caplog.text


def test_a_restart_writes_what_the_journal_kept(
    proxied: tuple[str, TCPProxy], postgres_url: str, simulator: Simulator, tmp_path: Path
) -> None:
    url, proxy = proxied
    proxy.cut()
    recorder, thread, results = start_recorder(url, simulator, tmp_path)
    try:
        wait_for(lambda: buffered_polls(results) >= 2, timeout=20)
    finally:
        stop_recorder(recorder, thread)
    buffered = ok_polls(simulator)
    assert len((tmp_path / "buffer.jsonl").read_text().splitlines()) == buffered
    proxy.restore()
    recorder, thread, results = start_recorder(url, simulator, tmp_path)
    try:
        wait_for(lambda: len(stored(postgres_url)) >= buffered + 1, timeout=20)
    finally:
        stop_recorder(recorder, thread)
    check_history(postgres_url, ok_polls(simulator))
