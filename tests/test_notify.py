"""Alerts on change, delivered to a real HTTP receiver on loopback and to a real command."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from recorder.config import NotifyRule
from recorder.polling.notify import Notifier, selects
from recorder.sources.coinw.simulator import Simulator
from recorder.store.database import Database
from recorder.values import Change
from tests.conftest import API_KEY, wait_for
from tests.helpers import counts, recorder, settings_for


class Receiver:
    """A webhook receiver: records every POSTed JSON; can be told to fail first."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(500)
                else:
                    receiver.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def record_changes(
    simulator: Simulator,
    db: Database,
    rules: tuple[NotifyRule, ...],
    holdings: list[dict[str, str]],
    **options: Any,
) -> Notifier:
    settings = settings_for(simulator.url, interval_seconds=60, fetch_prices=False)
    notifier = Notifier(rules, **options)
    built = recorder(settings, db)
    built.poller.listeners.append(notifier.observe)
    for held in holdings:
        simulator.set_holdings(API_KEY, held)
        began = time.monotonic()
        assert built.poller.poll(settings.accounts[0]).ok
        assert time.monotonic() - began < 2  # delivery never holds a poll up
    built.close()
    return notifier


def test_selected_changes_are_posted_with_exact_amounts(
    simulator: Simulator, sqlite_db: Database, receiver: Receiver
) -> None:
    rules = (NotifyRule(url=receiver.url, currencies=("BTC",), min_abs_change=Decimal("0.0002")),)
    notifier = record_changes(
        simulator,
        sqlite_db,
        rules,
        [
            {"BTC": "0.0012", "ETH": "1"},
            {"BTC": "0.0013", "ETH": "2"},  # BTC moved by 0.0001: below the threshold
            {"BTC": "0.0016", "ETH": "2"},
        ],
    )
    wait_for(lambda: len(receiver.received) >= 2)
    notifier.close()
    assert [
        (r["currency"], r["change"], r["old_amount"], r["new_amount"], r["delta"])
        for r in receiver.received
    ] == [
        ("BTC", "appeared", None, "0.0012", "0.0012"),
        ("BTC", "changed", "0.0013", "0.0016", "0.0003"),
    ]
    assert receiver.received[1]["text"] == "main BTC 0.0013 -> 0.0016 (+0.0003)"


def test_failed_deliveries_are_retried(simulator: Simulator, sqlite_db: Database) -> None:
    flaky = Receiver(failures=2)
    notifier = record_changes(
        simulator, sqlite_db, (NotifyRule(url=flaky.url),), [{"BTC": "1"}], first_pause=0.05
    )
    wait_for(lambda: flaky.received)
    notifier.close()
    flaky.close()
    assert flaky.attempts == 3 and len(flaky.received) == 1


def test_an_unreachable_receiver_is_logged_and_never_fails_a_poll(
    simulator: Simulator, sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Receiver()
    url = dead.url
    dead.close()  # nothing listens there any more
    notifier = record_changes(
        simulator,
        sqlite_db,
        (NotifyRule(url=url),),
        [{"BTC": "1"}, {"BTC": "2"}],
        first_pause=0.01,
    )
    wait_for(lambda: "could not deliver" in caplog.text)
    notifier.close()
    assert "s3cret" not in caplog.text  # the URL's token stays out of the log
    assert counts(sqlite_db)["snapshots"] == 2


def test_a_command_gets_the_change_in_its_environment_and_on_stdin(
    simulator: Simulator, sqlite_db: Database, tmp_path: Path
) -> None:
    out = tmp_path / "alerts.jsonl"
    script = tmp_path / "alert.py"
    script.write_text(
        "import json, os, sys\n"
        "seen = {k: v for k, v in os.environ.items() if k.startswith('RECORDER_')}\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'env': seen, 'stdin': json.load(sys.stdin)}) + '\\n')\n"
    )
    rule = NotifyRule(command=(sys.executable, str(script)), min_rel_change=Decimal("0.5"))
    notifier = record_changes(
        simulator,
        sqlite_db,
        (rule,),
        [
            {"BTC": "1"},
            {"BTC": "1.2"},
            {"BTC": "2"},  # +20 % is below 50 %, +66 % is not
        ],
    )
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 2)
    notifier.close()
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c["env"]["RECORDER_CHANGE"] for c in calls] == ["appeared", "changed"]
    assert calls[1]["env"]["RECORDER_OLD_AMOUNT"] == "1.2"
    assert calls[1]["env"]["RECORDER_DELTA"] == "0.8"
    assert calls[1]["stdin"]["new_amount"] == "2"


def test_rules_filter_by_account_currency_and_size() -> None:
    change = Change("BTC", Decimal("1"), Decimal("1.04"))
    assert selects(NotifyRule(), "main", change)
    assert not selects(NotifyRule(accounts=("savings",)), "main", change)
    assert not selects(NotifyRule(currencies=("ETH",)), "main", change)
    assert not selects(NotifyRule(min_abs_change=Decimal("0.05")), "main", change)
    assert selects(NotifyRule(min_abs_change=Decimal("0.04")), "main", change)
    assert not selects(NotifyRule(min_rel_change=Decimal("0.05")), "main", change)
    assert selects(
        NotifyRule(min_rel_change=Decimal("0.05")), "main", Change("BTC", None, Decimal("0.001"))
    )  # appeared: always selected
