"""Small helpers the tests share: settings pointed at a simulator, an assembled recorder,
and writing or reading snapshots directly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from recorder import app
from recorder.config import AccountConfig, Settings
from recorder.diff import diff
from recorder.secret import Secret
from recorder.sources.coinw.client import CoinWClient
from recorder.store import status, writes
from recorder.store.database import Database
from recorder.values import Change, Credentials, Snapshot, Valuation
from tests.conftest import API_KEY, SECRET


def account(name: str = "main", key: str = API_KEY, source: str = "balances") -> AccountConfig:
    """An account whose keys the simulator fixture knows."""
    return AccountConfig(name, Credentials(key, Secret(SECRET)), source)


def settings_for(url: str, **overrides: Any) -> Settings:
    """Settings pointed at a simulator, with one account `main` unless told otherwise."""
    base = Settings(base_url=url, interval_seconds=1, accounts=(account(),), buffer_file=None)
    return replace(base, **overrides)


def recorder(settings: Settings, db: Database, **options: Any) -> app.Recorder:
    """A recorder on `db` with a client of its own (closed with it)."""
    client = CoinWClient(settings.base_url, timeout=settings.timeout_seconds)
    built = app.build(settings, db=db, client=client, **options)
    built.closing.insert(0, client.close)
    return built


def add_snapshot(
    db: Database,
    account_name: str,
    taken_at: datetime,
    balances: Mapping[str, Decimal],
    changes: Sequence[Change] | None = None,
    *,
    valuation: Valuation | None = None,
    parts: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> int:
    """Write one snapshot directly, with `changes` (default: the diff against the latest)."""
    account_id = writes.account_id(db, account_name)
    snapshot = Snapshot(taken_at, dict(balances), dict(parts or {}), valuation)
    with db.transaction() as connection:
        if changes is None:
            previous = writes.previous_balances(db, connection, account_id, before=taken_at)
            changes = diff(previous, snapshot.balances)
        return writes.add_snapshot(db, connection, account_id, snapshot, changes)


def latest(db: Database, account_name: str) -> dict[str, Decimal]:
    """What the account held at its latest snapshot."""
    return writes.latest_balances(db, writes.account_id(db, account_name))


def counts(db: Database) -> dict[str, int]:
    """Rows in every table."""
    return status.count_rows(db)


def query(db: Database, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one plain SQL query."""
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]
