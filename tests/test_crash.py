"""Crash safety: kill -9 the daemon at random moments; the database stays whole and the
next poll diffs against the last complete snapshot."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from recorder.diff import diff
from recorder.sources.coinw.simulator import Simulator
from tests.conftest import SECRET, wait_for

ACCOUNTS = 6
KILLS = 20


def write_config(path: Path, simulator: Simulator, database: Path) -> None:
    lines = [
        f'database_url = "sqlite:///{database}"',
        f'base_url = "{simulator.url}"',
        "interval_seconds = 1",
        "fetch_prices = true",
        f'buffer_file = "{path.parent / "buffer.jsonl"}"',
    ]
    for n in range(ACCOUNTS):
        lines += [
            "[[accounts]]",
            f'name = "acct{n}"',
            f'api_key = "key-{n}"',
            'secret_key_env = "CRASH_SECRET"',
        ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def snapshots(database: Path) -> int:
    if not database.exists():
        return 0
    with sqlite3.connect(database) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM snapshots").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def balances_by_snapshot(connection: sqlite3.Connection) -> dict[int, dict[str, Decimal]]:
    result: dict[int, dict[str, Decimal]] = {}
    for snapshot_id, currency, amount in connection.execute(
        "SELECT snapshot_id, currency, amount FROM balances"
    ):
        result.setdefault(snapshot_id, {})[currency] = Decimal(amount)
    return result


def check_database(database: Path) -> int:
    """Integrity, no half-written snapshot, no orphan change, every diff right."""
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        holdings = balances_by_snapshot(connection)
        ids = [row[0] for row in connection.execute("SELECT id FROM snapshots")]
        assert set(ids) == set(holdings), "a snapshot lacks its balances"
        orphans = connection.execute(
            "SELECT count(*) FROM balance_changes c LEFT JOIN snapshots s ON s.id = c.snapshot_id "
            "WHERE s.id IS NULL OR s.account_id != c.account_id"
        ).fetchone()[0]
        assert orphans == 0
        changes: dict[int, set[tuple[str, str | None, str | None]]] = {}
        for snapshot_id, currency, old, new in connection.execute(
            "SELECT snapshot_id, currency, old_amount, new_amount FROM balance_changes"
        ):
            changes.setdefault(snapshot_id, set()).add((currency, old, new))
        for (account_id,) in connection.execute("SELECT id FROM accounts"):
            previous: dict[str, Decimal] = {}
            for (snapshot_id,) in connection.execute(
                "SELECT id FROM snapshots WHERE account_id = ? ORDER BY taken_at, id",
                (account_id,),
            ):
                expected = {
                    (c.currency, _text(c.old_amount), _text(c.new_amount))
                    for c in diff(previous, holdings[snapshot_id])
                }
                assert changes.get(snapshot_id, set()) == expected
                previous = holdings[snapshot_id]
        return len(ids)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


@pytest.mark.slow
def test_kill_9_at_random_moments_never_leaves_a_broken_history(
    simulator: Simulator, tmp_path: Path
) -> None:
    for n in range(ACCOUNTS):
        simulator.add_account(
            f"key-{n}",
            SECRET,
            lambda step, n=n: {
                "BTC": f"0.{step:04d}",
                "ETH": str(n + step % 3),
                "USDT": "100" if step % 2 else "100.5",
            },
        )
    simulator.set_ticker({"BTC_USDT": "96903.7", "ETH_USDT": "3391.25"})
    database = tmp_path / "crash.db"
    config = tmp_path / "recorder.toml"
    write_config(config, simulator, database)
    env = {**os.environ, "CRASH_SECRET": SECRET}
    rng = random.Random(20261124)
    kills = 0
    for _ in range(KILLS):
        before = snapshots(database)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "recorder", "--config", str(config), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda before=before: snapshots(database) > before, timeout=30, interval=0.01)
            time.sleep(rng.uniform(0, 1.2))  # a random moment, often mid-write: not a wait
        finally:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=10)
        kills += 1
        check_database(database)
    assert kills == KILLS
    total = check_database(database)
    assert total >= KILLS * ACCOUNTS
    # The next poll diffs against the last complete snapshot.
    result = subprocess.run(
        [sys.executable, "-m", "recorder", "--config", str(config), "poll"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert check_database(database) == total + ACCOUNTS
