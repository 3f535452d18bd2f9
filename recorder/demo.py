"""`recorder demo`: the real daemon against the simulator, into a fresh SQLite file."""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from pathlib import Path

from recorder.config import AccountConfig, Settings
from recorder.polling.cycle import PollResult, Recorder
from recorder.secret import Secret
from recorder.sources.coinw.client import CoinWClient, Credentials
from recorder.sources.coinw.simulator import Simulator, demo_holdings, demo_ticker
from recorder.store.database import Store

log = logging.getLogger(__name__)

SQL_TO_TRY = (
    "SELECT a.name, c.currency, c.old_amount, c.new_amount, c.delta, c.taken_at "
    "FROM balance_changes c JOIN accounts a ON a.id = c.account_id ORDER BY c.id;"
)


def run_demo(database: Path, *, polls: int = 6, interval: float = 1.0) -> Path:
    """Record `polls` polls of a simulated, changing account into `database`."""
    database = database.resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    api_key, secret_key = "demo-" + secrets.token_hex(8), secrets.token_hex(16)
    with Simulator() as exchange:
        exchange.add_account(api_key, secret_key, demo_holdings)
        exchange.set_ticker(demo_ticker)
        settings = replace(
            Settings(),
            database_url=f"sqlite:///{database}",
            interval_seconds=interval,
            base_url=exchange.url,
            buffer_file=None,
            accounts=(AccountConfig("demo", Credentials(api_key, Secret(secret_key))),),
        )
        log.info("Simulated CoinW exchange listening on %s.", exchange.url)
        store = Store(settings.database_url)
        try:
            store.ensure_schema()
            with CoinWClient(settings.base_url, timeout=settings.timeout_seconds) as client:
                recorder = Recorder(settings, store, client)
                done = 0

                def count(_result: PollResult) -> None:
                    nonlocal done
                    done += 1
                    if done >= polls:
                        recorder.stop()

                recorder.listeners.append(count)
                recorder.run()
        finally:
            store.close()
    return database
