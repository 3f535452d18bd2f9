"""High availability on PostgreSQL: three daemons, five accounts, holders killed one by one.
From the database afterwards: never two processes on one account at once, no gap longer
than two intervals."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from recorder.sources.coinw.simulator import Simulator
from tests.conftest import SECRET, fresh_database, wait_for

ACCOUNTS = 5
INTERVAL = 2.0


def snapshots(url: str) -> list[tuple[str, datetime, str]]:
    """(account, taken_at, recorded_by) in time order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT a.name, s.taken_at, s.recorded_by FROM snapshots s "
                    "JOIN accounts a ON a.id = s.account_id ORDER BY s.taken_at"
                )
            ).all()
        return [tuple(r) for r in rows]
    except sa.exc.DBAPIError:
        return []
    finally:
        engine.dispose()


def holders(url: str, since: datetime | None = None) -> dict[str, str]:
    """The process that took each account's latest snapshot."""
    latest: dict[str, str] = {}
    for account, taken_at, by in snapshots(url):
        if since is None or taken_at > since:
            latest[account] = by
    return latest


@pytest.mark.slow
def test_accounts_move_to_a_live_process_and_are_never_polled_twice(
    simulator: Simulator, tmp_path: Path
) -> None:
    for n in range(ACCOUNTS):
        simulator.add_account(f"ha-key-{n}", SECRET, lambda step, n=n: {"BTC": str(step)})
    with fresh_database("postgresql", tmp_path) as url:
        config = tmp_path / "recorder.toml"
        lines = [
            f'database_url = "{url}"',
            f'base_url = "{simulator.url}"',
            f"interval_seconds = {INTERVAL}",
            "ha = true",
            "fetch_prices = false",
        ]
        for n in range(ACCOUNTS):
            lines += [
                "[[accounts]]",
                f'name = "acct{n}"',
                f'api_key = "ha-key-{n}"',
                'secret_key_env = "HA_SECRET"',
            ]
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        daemons: dict[str, subprocess.Popen[bytes]] = {}
        for n in range(3):
            folder = tmp_path / f"node{n}"
            folder.mkdir()
            journal = folder / "journal.jsonl"  # each process its own buffer journal
            process = subprocess.Popen(
                [sys.executable, "-m", "recorder", "--config", str(config), "run"],
                env={**os.environ, "HA_SECRET": SECRET, "RECORDER_BUFFER_FILE": str(journal)},
                cwd=folder,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            daemons[str(process.pid)] = process
        try:
            wait_for(lambda: len(holders(url)) == ACCOUNTS, timeout=60)
            for _ in range(2):  # kill holders until one process is left
                current = holders(url)
                pid = max(set(current.values()), key=list(current.values()).count).split(":")[1]
                victim = daemons.pop(pid)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                killed_at = snapshots(url)[-1][1]
                wait_for(
                    lambda killed_at=killed_at, pid=pid: (
                        len(moved := holders(url, since=killed_at)) == ACCOUNTS
                        and all(not by.endswith(f":{pid}") for by in moved.values())
                    ),
                    timeout=60,
                )
        finally:
            for process in daemons.values():
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
        rows = snapshots(url)

    by_account: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for account, taken_at, by in rows:
        by_account[account].append((taken_at, by))
    assert len(by_account) == ACCOUNTS
    for account, history in by_account.items():
        recorders = [by for _, by in history]
        # Each process's snapshots of the account form one unbroken run: no A, B, A.
        runs = [by for i, by in enumerate(recorders) if i == 0 or by != recorders[i - 1]]
        assert len(runs) == len(set(runs)), (account, runs)
        for (earlier, first), (later, second) in itertools.pairwise(history):
            gap = (later - earlier).total_seconds()
            assert gap <= 2 * INTERVAL + 0.5, (account, earlier, later)  # no hole
            if first == second:  # one process keeps its interval: it never doubles up
                assert gap >= INTERVAL * 0.5, (account, earlier, later)
    handed_over = sum(len({by for _, by in h}) > 1 for h in by_account.values())
    assert handed_over >= 1
