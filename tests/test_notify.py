"""Alerts on change, delivered to a real HTTP receiver on loopback and to a real command."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from recorder.cli import cli
from recorder.config import NotifyRule, reference
from recorder.polling.notify import Notifier, command_environment, selects
from recorder.sources.coinw.simulator import Simulator
from recorder.store.database import Database
from recorder.values import Change, PollOutcome, PollStatus, Snapshot
from tests.conftest import API_KEY, wait_for
from tests.helpers import counts, recorder, settings_for


class Receiver:
    """A webhook receiver: records every POSTed JSON; can be told to fail first."""

    def __init__(self, failures: int = 0, hold: threading.Event | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.failures = failures
        #: While given and not set, every request waits before it is answered.
        self.hold = hold
        self.waiting = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.hold is not None:
                    receiver.waiting += 1
                    receiver.hold.wait(30)
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
    # A command that runs the recorder itself hears no warning about these variables.
    assert reference.unknown_variables(calls[1]["env"]) == []


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


def change_outcome(account: str, *changes: Change) -> PollOutcome:
    now = datetime.now(UTC)
    snapshot = Snapshot(now, {c.currency: c.new_amount or Decimal(0) for c in changes})
    return PollOutcome(account, now, PollStatus.RECORDED, snapshot, 1, list(changes))


def test_closing_never_closes_the_client_under_a_delivery_in_flight(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hold = threading.Event()
    slow = Receiver(hold=hold)
    notifier = Notifier((NotifyRule(url=slow.url),))
    notifier.observe(change_outcome("main", Change("BTC", None, Decimal("1"))))
    notifier.observe(change_outcome("main", Change("ETH", None, Decimal("2"))))
    wait_for(lambda: slow.waiting == 1)
    notifier.close(timeout=0.1)  # returns although the receiver has not answered
    assert notifier._worker.is_alive()
    assert "1 notification(s) were not delivered before the recorder stopped" in caplog.text
    hold.set()
    wait_for(lambda: not notifier._worker.is_alive())
    slow.close()
    assert [r["currency"] for r in slow.received] == ["BTC"]  # the one in flight arrived
    assert "could not deliver" not in caplog.text and "closed" not in caplog.text
    assert notifier._http.is_closed and notifier.dropped == 1


def test_a_dead_receiver_is_given_up_at_shutdown_without_waiting_for_its_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Receiver()
    url = dead.url
    dead.close()
    notifier = Notifier((NotifyRule(url=url),), first_pause=60)  # retries an hour apart
    notifier.observe(change_outcome("main", Change("BTC", None, Decimal("1"))))
    notifier.close(timeout=0.2)
    wait_for(lambda: not notifier._worker.is_alive(), timeout=5)
    assert "could not deliver the BTC appeared change" in caplog.text
    assert notifier.dropped == 1


def test_the_queue_is_bounded_and_what_it_drops_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hold = threading.Event()
    slow = Receiver(hold=hold)
    notifier = Notifier((NotifyRule(url=slow.url),), capacity=2)
    notifier.observe(change_outcome("main", Change("BTC", None, Decimal("1"))))
    wait_for(lambda: slow.waiting == 1)  # the worker is busy with the first one
    for amount in range(2, 7):  # two wait, three are dropped
        notifier.observe(change_outcome("main", Change("BTC", None, Decimal(amount))))
    assert notifier.dropped == 3
    assert caplog.text.count("the notification queue is full (2 waiting") == 1
    hold.set()
    wait_for(lambda: len(slow.received) == 3)
    notifier.observe(change_outcome("main", Change("ETH", None, Decimal("1"))))
    assert "3 notification(s) were dropped while it was full" in caplog.text
    wait_for(lambda: len(slow.received) == 4)
    notifier.close()
    slow.close()
    assert [r["new_amount"] for r in slow.received] == ["1", "2", "3", "1"]


def test_a_batch_rule_sends_one_notification_per_poll_with_all_its_changes(
    simulator: Simulator, sqlite_db: Database, receiver: Receiver
) -> None:
    rules = (NotifyRule(url=receiver.url, batch=True, currencies=("BTC", "USDT", "ETH")),)
    notifier = record_changes(
        simulator,
        sqlite_db,
        rules,
        [
            {"BTC": "0.0012", "ETH": "1", "USDT": "10", "SAND": "5"},
            {"BTC": "0.0012", "ETH": "1", "USDT": "10", "SAND": "6"},  # nothing selected
            {"BTC": "0.0013", "ETH": "1"},
        ],
    )
    wait_for(lambda: len(receiver.received) >= 2)
    notifier.close()
    first, second = receiver.received
    assert first["change"] == "batch" and first["count"] == 3
    assert [(c["currency"], c["change"]) for c in first["changes"]] == [
        ("BTC", "appeared"),
        ("ETH", "appeared"),
        ("USDT", "appeared"),
    ]
    assert first["text"].splitlines() == [c["text"] for c in first["changes"]]
    assert [(c["currency"], c["change"]) for c in second["changes"]] == [
        ("BTC", "changed"),
        ("USDT", "gone"),
    ]
    assert second["snapshot_id"] == second["changes"][0]["snapshot_id"] == 3
    assert reference.unknown_variables(command_environment(second, {})) == []


@pytest.mark.slow
def test_a_receiver_that_never_answers_does_not_hold_up_recorder_poll(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold = threading.Event()
    stuck = Receiver(hold=hold)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recorder.toml").write_text(f'[[notify]]\nurl = "{stuck.url}"\n')
    try:
        result = CliRunner().invoke(cli, ["poll"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert stuck.waiting >= 1  # it returned while the receiver still held a request
        assert "still being delivered as the recorder stops" in result.stderr
        assert "s3cret" not in result.output
    finally:
        hold.set()
        stuck.close()
