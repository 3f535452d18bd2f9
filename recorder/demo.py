"""`recorder demo`: the real daemon against the simulator, into a fresh SQLite file."""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from recorder import app
from recorder.config import AccountConfig, Settings
from recorder.secret import Secret
from recorder.sources.coinw.simulator import Simulator
from recorder.values import Credentials, PollOutcome

log = logging.getLogger(__name__)

#: The one account the demo records, and the `recorded_by` of its snapshots: `recorder
#: demo` replaces only a database holding nothing else (a real account may be named demo).
DEMO_ACCOUNT = "demo"
DEMO_RECORDER = "recorder demo"

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
            accounts=(AccountConfig(DEMO_ACCOUNT, Credentials(api_key, Secret(secret_key))),),
        )
        log.info("Simulated CoinW exchange listening on %s.", exchange.url)
        with app.running(settings) as recorder:
            recorder.poller.writes.recorded_by = DEMO_RECORDER
            daemon = recorder.daemon
            done = 0

            def count(_outcome: PollOutcome) -> None:
                nonlocal done
                done += 1
                if done >= polls:
                    daemon.stop()

            recorder.poller.listeners.append(count)
            daemon.run()
    return database


def demo_holdings(step: int) -> dict[str, str]:
    """A small portfolio that changes as a trader would, one step per request."""
    btc = ("0.0012", "0.0012", "0.0015", "0.0015", "0.0009", "0.0009", "0.0021")
    holdings = {
        "BTC": btc[(step - 1) % len(btc)],
        "CWT": "400.000" if step % 2 else "400",  # same amount, written differently
        "ETH": "0.0330",
        "USDT": "257.518301140000000" if step < 3 else "187.518301140000000",
    }
    if step < 4:
        holdings["SAND"] = "108.467"
    if step >= 5:
        holdings["SOL"] = "1.25"
    return holdings


DEMO_TICKER = {
    "BTC_USDT": "96903.7",
    "ETH_USDT": "3391.25",
    "CWT_USDT": "0.0124",
    "SAND_USDT": "0.2634",
    "SOL_USDT": "187.41",
}


def demo_ticker(step: int) -> dict[str, str]:
    """The demo's prices, drifting a little with every ticker request."""
    drift = ("1", "1.012", "0.994", "1.021", "1.008", "0.987", "1.03")[(step - 1) % 7]
    return {
        pair: format((Decimal(last) * Decimal(drift)).normalize(), "f")
        for pair, last in DEMO_TICKER.items()
    }
