"""Retention: old snapshots thinned to one per hour or day; the change log and every
holding at every moment survive."""

from __future__ import annotations

import importlib.util
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from recorder.cli import cli
from recorder.config import Retention
from recorder.reports import gather as report
from recorder.store.database import Store
from recorder.store.retention import prune, to_delete

ROOT = Path(__file__).resolve().parent.parent
T = datetime(2026, 3, 31, 10, 0, tzinfo=UTC)


def make_history() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_history", ROOT / "benchmarks" / "make_history.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_keeps_the_last_of_each_hour_and_every_snapshot_with_a_change() -> None:
    snapshots = [
        (1, T, True),
        (2, T + timedelta(minutes=10), False),
        (3, T + timedelta(minutes=20), True),
        (4, T + timedelta(minutes=30), False),
        (5, T + timedelta(minutes=50), False),  # last of 10:00
        (6, T + timedelta(minutes=65), False),
        (7, T + timedelta(minutes=70), False),  # last of 11:00
        (8, T + timedelta(hours=3), True),  # alone in 13:00
    ]
    assert list(to_delete(snapshots, "hour")) == [2, 4, 6]
    assert list(to_delete(snapshots, "day")) == [2, 4, 5, 6, 7]
    assert list(to_delete([], "day")) == []


@pytest.fixture
def generated(db_url: str) -> str:
    store = Store(db_url)
    store.ensure_schema()
    make_history().generate(
        store, accounts=2, days=3, currencies=4, interval=600, trade_probability=0.05, echo=False
    )
    store.close()
    return db_url


def holdings_at(store: Store, moment: datetime) -> dict[tuple[str, str], object]:
    selection = report.Selection(accounts=store.resolve_accounts())
    return {
        (h.account, h.currency): h.amount
        for entry in report.holdings_at(store, selection, moment)
        for h in entry.holdings
    }


def test_pruning_keeps_the_change_log_and_every_holding_exact(generated: str) -> None:
    store = Store(generated)
    now = datetime.now(UTC)
    moments = [now - timedelta(hours=h, minutes=7) for h in range(0, 72, 5)]
    before = {m: holdings_at(store, m) for m in moments}
    counts = store.count_rows()
    changes_before = store.checksums()["balance_changes"]

    deleted = prune(store, Retention(keep_all_days=1, keep_one_per="hour"), now)

    after = store.count_rows()
    assert deleted > 0 and after["snapshots"] == counts["snapshots"] - deleted
    assert store.checksums()["balance_changes"] == changes_before  # not one change row lost
    assert {m: holdings_at(store, m) for m in moments} == before
    cutoff = now - timedelta(days=1)
    for account_id in store.resolve_accounts().values():
        old = store.prune_candidates(account_id, cutoff)
        per_hour: dict[datetime, int] = {}
        for _, taken_at, changed in old:
            if not changed:
                hour = taken_at.replace(minute=0, second=0, microsecond=0)
                per_hour[hour] = per_hour.get(hour, 0) + 1
        assert per_hour and max(per_hour.values()) == 1  # one unchanged snapshot per hour
        recent = store.count_snapshots([account_id], cutoff, None)
        assert recent >= 6 * 24 - 1  # everything younger than a day is kept
    assert prune(store, Retention(keep_all_days=1, keep_one_per="hour"), now) == 0
    store.close()


def test_the_prune_command_follows_the_config(generated: str, tmp_path: Path) -> None:
    config = tmp_path / "recorder.toml"
    config.write_text(
        f'database_url = "{generated}"\n[retention]\nkeep_all_days = 1\nkeep_one_per = "day"\n'
    )
    runner = CliRunner()
    dry = runner.invoke(cli, ["--config", str(config), "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    would = int(dry.stdout.split()[2].replace(",", ""))
    store = Store(generated)
    before = store.count_rows()["snapshots"]
    real = runner.invoke(cli, ["--config", str(config), "prune", "--vacuum"])
    assert real.exit_code == 0, real.output
    assert f"Deleted {would:,} snapshots" in real.stdout
    assert store.count_rows()["snapshots"] == before - would
    store.close()


def test_prune_without_retention_says_how_to_configure_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["prune"], env={"RECORDER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    )
    assert result.exit_code == 2
    assert "[retention]" in result.stderr


def test_polls_go_on_while_pruning_runs(generated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("recorder.store.retention.BATCH", 5)
    store = Store(generated)
    account = store.account_id("acct0000")
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (prune(store, Retention(1, "day"), datetime.now(UTC)), done.set())
    )
    thread.start()
    written = 0
    while not done.is_set() or written < 3:
        with store.writer() as writer:
            writer.add_snapshot(account, datetime.now(UTC), {"BTC": Decimal(written + 1)}, [])
        written += 1
    thread.join(timeout=60)
    assert done.is_set() and written >= 3
    store.close()
