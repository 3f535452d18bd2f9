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
from recorder.reports import gather
from recorder.store import bulk, history, maintenance, retention
from recorder.store.database import Database
from recorder.store.retention import to_delete
from tests.conftest import open_db
from tests.consistency import (
    assert_at_says_what_the_polls_said,
    assert_change_log_is_the_diff,
    at_answers,
    sampled_moments,
    snapshots,
)
from tests.helpers import add_snapshot, counts

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
    database = open_db(db_url)
    make_history().generate(
        database, accounts=2, days=3, currencies=4, interval=600, trade_probability=0.05, echo=False
    )
    database.close()
    return db_url


def holdings_at(db: Database, moment: datetime) -> dict[tuple[str, str], object]:
    selection = gather.Selection(accounts=history.resolve_accounts(db))
    return {
        (h.account, h.currency): h.amount
        for entry in gather.holdings_at(db, selection, moment)
        for h in entry.holdings
    }


def test_pruning_keeps_the_change_log_and_every_holding_exact(generated: str) -> None:
    db = Database(generated)
    now = datetime.now(UTC)
    moments = [now - timedelta(hours=h, minutes=7) for h in range(0, 72, 5)]
    before = {m: holdings_at(db, m) for m in moments}
    found = counts(db)
    changes_before = bulk.checksums(db)["balance_changes"]

    deleted = retention.prune(db, 1, "hour", now)

    after = counts(db)
    assert deleted > 0 and after["snapshots"] == found["snapshots"] - deleted
    assert bulk.checksums(db)["balance_changes"] == changes_before  # not one change row lost
    assert {m: holdings_at(db, m) for m in moments} == before
    cutoff = now - timedelta(days=1)
    for account_id in history.resolve_accounts(db).values():
        old = maintenance.prune_candidates(db, account_id, cutoff)
        per_hour: dict[datetime, int] = {}
        for _, taken_at, changed in old:
            if not changed:
                hour = taken_at.replace(minute=0, second=0, microsecond=0)
                per_hour[hour] = per_hour.get(hour, 0) + 1
        assert per_hour and max(per_hour.values()) == 1  # one unchanged snapshot per hour
        recent = history.count_snapshots(db, [account_id], cutoff, None)
        assert recent >= 6 * 24 - 1  # everything younger than a day is kept
    assert retention.prune(db, 1, "hour", now) == 0
    db.close()


def test_the_prune_command_follows_the_config(generated: str, tmp_path: Path) -> None:
    config = tmp_path / "recorder.toml"
    config.write_text(
        f'database_url = "{generated}"\n[retention]\nkeep_all_days = 1\nkeep_one_per = "day"\n'
    )
    runner = CliRunner()
    dry = runner.invoke(cli, ["--config", str(config), "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    would = int(dry.stdout.split()[2].replace(",", ""))
    db = Database(generated)
    before = counts(db)["snapshots"]
    real = runner.invoke(cli, ["--config", str(config), "prune", "--vacuum"])
    assert real.exit_code == 0, real.output
    assert f"Pruned {would:,} snapshot" in real.stdout
    assert counts(db)["snapshots"] == before - would
    db.close()


def test_prune_without_retention_says_how_to_configure_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["prune"], env={"RECORDER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    )
    assert result.exit_code == 2
    assert "[retention]" in result.stderr


def test_polls_go_on_while_pruning_runs(generated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("recorder.store.retention.BATCH", 5)
    db = Database(generated)
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (retention.prune(db, 1, "day", datetime.now(UTC)), done.set())
    )
    thread.start()
    written = 0
    while not done.is_set() or written < 3:
        add_snapshot(db, "acct0000", datetime.now(UTC), {"BTC": Decimal(written + 1)}, [])
        written += 1
    thread.join(timeout=60)
    assert done.is_set() and written >= 3
    db.close()


def test_prune_keeps_an_empty_first_snapshot_and_the_first_after_a_gap(db: Database) -> None:
    # An account that held nothing for a while, with the recorder stopped for three hours
    # in between, then bought BTC: polls every ten minutes.
    polls = [T + timedelta(minutes=10 * n) for n in range(5)]
    polls += [T + timedelta(hours=4, minutes=10 * n) for n in range(5)]
    said: list[tuple[datetime, dict[str, Decimal]]] = [(t, {}) for t in polls]
    said.append((T + timedelta(hours=5), {"BTC": Decimal("0.5")}))
    for taken_at, holdings in said:
        add_snapshot(db, "empty", taken_at, holdings)
    moments = sampled_moments([t for t, _ in said])
    before = at_answers(db, "empty", moments)
    assert before[0] is None and {} in before  # "no snapshot", then "total 0"

    deleted = retention.prune(db, 0, "day", T + timedelta(days=2), interval_seconds=600)

    kept = [taken_at for _, taken_at, *_ in snapshots(db, "empty")]
    assert deleted == len(said) - 3
    assert kept == [polls[0], polls[5], said[-1][0]]  # the first, the first after the gap
    assert at_answers(db, "empty", moments) == before
    assert_at_says_what_the_polls_said(db, "empty", said, moments)
    assert_change_log_is_the_diff(db)
