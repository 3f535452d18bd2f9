"""Hostile bytes from the exchange, sent for real by a hand-written server: every wait is
bounded, and everything ends as a snapshot or one typed poll_errors row."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from recorder.store.database import Database
from recorder.values import PollStatus
from tests.conftest import API_KEY, SECRET, wait_for
from tests.helpers import counts, query, recorder, settings_for
from tests.rawserver import by_command, raw_server, response, trickle

GOOD = b'{"code": "200", "data": {"BTC": "0.5"}, "success": true, "failed": false}'
TICKER = b'{"code": "200", "data": {"BTC_USDT": {"last": "100"}}}'


def send(body: bytes, status: str = "200 OK", **headers: str):  # type: ignore[no-untyped-def]
    def answer(connection: socket.socket, _stop: threading.Event) -> None:
        connection.sendall(
            response(body, status, {k.replace("_", "-"): v for k, v in headers.items()})
        )

    return answer


def trickled(data: bytes, pause: float = 0.3):  # type: ignore[no-untyped-def]
    def answer(connection: socket.socket, stop: threading.Event) -> None:
        trickle(connection, data, pause, stop)

    return answer


def one_poll(url: str, db: Database, **options: object) -> object:
    built = recorder(settings_for(url, **options), db)
    try:
        return built.poller.poll(built.settings.accounts[0])
    finally:
        built.close()


def error_kinds(db: Database) -> list[str]:
    return [row[0] for row in query(db, "SELECT kind FROM poll_errors ORDER BY id")]


def test_headers_trickled_a_byte_at_a_time_end_the_poll_at_its_deadline(
    sqlite_db: Database,
) -> None:
    headers = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 50
    with raw_server(by_command(trickled(headers))) as server:
        outcome = one_poll(server.url, sqlite_db, timeout_seconds=1.5, interval_seconds=2)
    assert outcome.error_kind == "timeout"  # type: ignore[attr-defined]
    assert error_kinds(sqlite_db) == ["timeout"]


def test_a_body_trickled_past_the_deadline_ends_the_poll_too(sqlite_db: Database) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n"

    def answer(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(head)
        trickle(connection, GOOD * 5, 0.3, stop)

    with raw_server(by_command(answer)) as server:
        outcome = one_poll(server.url, sqlite_db, timeout_seconds=1.5, interval_seconds=2)
    assert outcome.error_kind == "timeout"  # type: ignore[attr-defined]
    assert counts(sqlite_db)["snapshots"] == 0


@pytest.mark.parametrize("where", ["balances", "ticker"])
def test_a_gzip_header_on_a_plain_body_is_a_typed_error(sqlite_db: Database, where: str) -> None:
    lying = send(GOOD if where == "balances" else TICKER, Content_Encoding="gzip")
    handler = by_command(lying) if where == "balances" else by_command(send(GOOD), lying)
    with raw_server(handler) as server:
        outcome = one_poll(server.url, sqlite_db, interval_seconds=60)
    if where == "balances":
        assert outcome.error_kind == "not_json"  # type: ignore[attr-defined]
        assert error_kinds(sqlite_db) == ["not_json"]
    else:  # the ticker is broken, the balances are not: the snapshot is stored unpriced
        assert outcome.status is PollStatus.RECORDED  # type: ignore[attr-defined]
        assert query(sqlite_db, "SELECT currency, price_usdt FROM balances") == [("BTC", None)]


def test_a_body_that_really_is_gzip_is_read(sqlite_db: Database) -> None:
    with raw_server(by_command(send(gzip.compress(GOOD), Content_Encoding="gzip"))) as server:
        outcome = one_poll(server.url, sqlite_db, interval_seconds=60)
    assert outcome.status is PollStatus.RECORDED  # type: ignore[attr-defined]


@pytest.mark.parametrize("encoding", ["br", "zstd", "x-unknown", "gzip, br"])
def test_a_body_in_an_encoding_the_recorder_did_not_ask_for_is_a_typed_error(
    sqlite_db: Database, encoding: str
) -> None:
    # httpx would pass a body it cannot decode through as is, and a plain one be believed.
    with raw_server(by_command(send(GOOD, Content_Encoding=encoding))) as server:
        outcome = one_poll(server.url, sqlite_db, interval_seconds=60)
    assert outcome.error_kind == "not_json"  # type: ignore[attr-defined]
    assert counts(sqlite_db)["snapshots"] == 0


def test_a_hung_ticker_never_holds_back_a_good_snapshot(sqlite_db: Database) -> None:
    with raw_server(by_command(send(GOOD), trickled(TICKER * 100, 0.5))) as server:
        outcome = one_poll(server.url, sqlite_db, timeout_seconds=1, interval_seconds=60)
    assert outcome.status is PollStatus.RECORDED  # type: ignore[attr-defined]
    assert query(sqlite_db, "SELECT currency, amount, price_usdt FROM balances") == [
        ("BTC", "0.5", None)
    ]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"code": "200", "data": {"BTC": 1e9999999999999999999}}', "invalid_amount"),
        (b'{"code": "200", "data": {"BTC": "1e9999999999999999999"}}', "invalid_amount"),
        (b'{"code": 1e9999999999999999999, "data": {}}', "bad_envelope"),
        (b'{"code": "7", "msg": "\\ud800 broken \\u0000 text \\u001b[31m"}', "api_error"),
        (b'{"code": "200", "success": "false", "data": {"BTC": "1"}}', "bad_envelope"),
        (b'{"code": "200", "failed": "true", "data": {"BTC": "1"}}', "bad_envelope"),
        (b'{"code": 500.0, "data": {"BTC": "1"}}', "api_error"),
    ],
)
def test_hostile_replies_become_one_typed_row_that_every_backend_stores(
    db: Database, body: bytes, kind: str
) -> None:
    with raw_server(by_command(send(body))) as server:
        outcome = one_poll(server.url, db, interval_seconds=60)
    assert outcome.error_kind == kind  # type: ignore[attr-defined]
    ((stored_kind, message),) = query(db, "SELECT kind, message FROM poll_errors")
    assert stored_kind == kind
    assert "\x00" not in message and "\x1b" not in message and "\n" not in message


def test_a_huge_ticker_price_leaves_the_holding_unpriced_not_unstored(db: Database) -> None:
    ticker = b'{"code": "200", "data": {"BTC_USDT": {"last": "9' + b"9" * 34 + b'"}}}'
    with raw_server(by_command(send(GOOD.replace(b"0.5", b"999")), send(ticker))) as server:
        outcome = one_poll(server.url, db, interval_seconds=60)
    assert outcome.status is PollStatus.RECORDED  # type: ignore[attr-defined]
    ((price, value),) = query(db, "SELECT price_usdt, value_usdt FROM balances")
    assert price is None and value is None


def test_code_200_written_as_a_number_is_success(sqlite_db: Database) -> None:
    for code in (b"200", b"200.0", b"2E2"):
        body = b'{"code": ' + code + b', "data": {"BTC": "1"}}'
        with raw_server(by_command(send(body))) as server:
            outcome = one_poll(server.url, sqlite_db, interval_seconds=60)
        assert outcome.status is PollStatus.RECORDED, code  # type: ignore[attr-defined]


def test_http_204_on_a_private_call_is_an_ambiguous_empty_reply(sqlite_db: Database) -> None:
    with raw_server(by_command(send(GOOD))) as server:
        one_poll(server.url, sqlite_db, interval_seconds=60)
    with raw_server(by_command(send(b"", "204 No Content"))) as server:
        outcome = one_poll(server.url, sqlite_db, interval_seconds=60)
    assert outcome.error_kind == "empty_reply"  # type: ignore[attr-defined]
    assert counts(sqlite_db)["balance_changes"] == 1  # only BTC appearing; nothing "gone"


def test_sigterm_ends_the_daemon_within_ten_seconds_while_the_exchange_trickles(
    tmp_path: Path,
) -> None:
    with raw_server(by_command(trickled(b"H" * 10_000, 0.5))) as server:
        env = {
            **os.environ,
            "COINW_API_KEY": API_KEY,
            "COINW_SECRET_KEY": SECRET,
            "COINW_BASE_URL": server.url,
            "RECORDER_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
            "RECORDER_TIMEOUT_SECONDS": "300",
            "RECORDER_INTERVAL_SECONDS": "60",
        }
        daemon = subprocess.Popen(
            [sys.executable, "-m", "recorder", "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: server.requests, timeout=20)
            daemon.send_signal(signal.SIGTERM)
            _, stderr = daemon.communicate(timeout=10)  # the promise itself
        finally:
            if daemon.poll() is None:
                daemon.kill()
    assert daemon.returncode == 0, stderr
    assert "called off" in stderr
