"""The CoinW client: signing, request shape, bounded reads and error mapping (MockTransport)."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from recorder import errors
from recorder.secret import Secret
from recorder.sources.coinw.client import CoinWClient, sign, signed_query
from recorder.values import Credentials

CREDENTIALS = Credentials("K", Secret("S"))


def client_for(handler: Any, **options: Any) -> CoinWClient:
    return CoinWClient("https://api.example", transport=httpx.MockTransport(handler), **options)


def envelope(data: Any, code: Any = "200", **extra: Any) -> httpx.Response:
    body = {"code": code, "data": data, "msg": "SUCCESS", "success": True, "failed": False}
    return httpx.Response(200, json={**body, **extra})


def test_the_signature_matches_coinws_published_test_vector() -> None:
    params = {"symbol": "BTC_USDT", "amount": "0.01", "api_key": "key"}
    assert sign(params, "secret") == "1F739D1FCDD9E1A86F45D47630B27909"


def test_return_balances_signs_only_the_api_key() -> None:
    query = signed_query("returnBalances", CREDENTIALS)
    expected = hashlib.md5(b"api_key=K&secret_key=S").hexdigest().upper()
    assert query == {"command": "returnBalances", "api_key": "K", "sign": expected}


def test_it_posts_an_empty_body_with_key_and_sign_in_the_query_string() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return envelope({"BTC": "0.0012"})

    with client_for(handler) as client:
        snapshot = client.fetch_balances(CREDENTIALS)
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/api/v1/private"
    assert dict(request.url.params) == signed_query("returnBalances", CREDENTIALS)
    assert request.content == b""
    assert "S" not in request.url.query.decode().split("sign=")[0].split("&")
    assert snapshot.balances == {"BTC": Decimal("0.0012")}
    assert snapshot.taken_at.tzinfo is not None


def test_it_reads_exact_amounts_and_accepts_a_numeric_code() -> None:
    body = b'{"code": 200, "data": {"USDT": "257.518301140000000", "X": 1.10}, "message": "ok"}'
    with client_for(lambda r: httpx.Response(200, content=body)) as client:
        snapshot = client.fetch_balances(CREDENTIALS)
    assert snapshot.balances == {"USDT": Decimal("257.51830114"), "X": Decimal("1.1")}
    assert str(snapshot.balances["USDT"]) == "257.51830114"


@pytest.mark.parametrize(
    ("response", "error", "kind"),
    [
        (httpx.Response(429, text="<html>slow down</html>"), errors.RateLimitError, "rate_limit"),
        (
            httpx.Response(502, html="<html><title>502 Bad Gateway</title></html>"),
            errors.HTTPStatusError,
            "http_status",
        ),
        (httpx.Response(200, text="<html>maintenance</html>"), errors.NotJSONError, "not_json"),
        (httpx.Response(200, json=[1, 2]), errors.ResponseFormatError, "bad_envelope"),
        (
            httpx.Response(200, json={"code": "29001", "msg": "API access frequently"}),
            errors.RateLimitError,
            "rate_limit",
        ),
        (
            httpx.Response(200, json={"code": 1003, "message": "bad key"}),
            errors.AuthenticationError,
            "auth",
        ),
        (
            httpx.Response(200, json={"code": "6000", "msg": "sign error"}),
            errors.AuthenticationError,
            "auth",
        ),
        (
            httpx.Response(200, json={"code": "-200", "msg": "system error"}),
            errors.APIError,
            "api_error",
        ),
        (
            httpx.Response(200, json={"code": "200", "success": False, "data": {}}),
            errors.ResponseFormatError,
            "bad_envelope",
        ),
        (
            httpx.Response(200, json={"code": "200", "data": {"BTC": "-1"}}),
            errors.InvalidAmountError,
            "invalid_amount",
        ),
    ],
)
def test_each_failure_becomes_a_typed_error(
    response: httpx.Response, error: type[errors.PollError], kind: str
) -> None:
    with client_for(lambda r: response) as client, pytest.raises(error) as caught:
        client.fetch_balances(CREDENTIALS)
    assert caught.value.kind == kind
    assert "\n" not in str(caught.value)


def test_a_502_error_names_the_status_and_the_page_title() -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    client = client_for(lambda r: httpx.Response(502, html=page))
    with client, pytest.raises(errors.HTTPStatusError) as caught:
        client.fetch_balances(CREDENTIALS)
    assert caught.value.status == 502
    assert caught.value.retryable
    assert "HTTP 502" in str(caught.value) and "Bad Gateway" in str(caught.value)


def test_a_429_with_retry_after_is_kept_for_the_backoff() -> None:
    response = httpx.Response(429, headers={"Retry-After": "3"})
    with client_for(lambda r: response) as client, pytest.raises(errors.RateLimitError) as caught:
        client.fetch_balances(CREDENTIALS)
    assert caught.value.retry_after == 3


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (httpx.ConnectError("refused"), "connect"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.RemoteProtocolError("peer closed connection"), "connection_lost"),
        (httpx.ReadError("reset by peer"), "connection_lost"),
        (httpx.UnsupportedProtocol("nope"), "transport"),
    ],
)
def test_transport_failures_are_typed(raised: Exception, kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    with client_for(handler) as client, pytest.raises(errors.TransportError) as caught:
        client.fetch_balances(CREDENTIALS)
    assert caught.value.kind == kind


def test_a_body_announced_over_the_cap_is_not_read() -> None:
    big = json.dumps({"code": "200", "data": {"BTC": "1" * 10}, "pad": "x" * 5000}).encode()
    client = client_for(lambda r: httpx.Response(200, content=big), max_response_bytes=2048)
    with client, pytest.raises(errors.ResponseTooLargeError) as caught:
        client.fetch_balances(CREDENTIALS)
    assert "2,048-byte cap" in str(caught.value)


def test_a_streamed_body_over_the_cap_stops_being_read() -> None:
    produced: list[int] = []

    def chunks() -> Any:
        for _ in range(1000):
            produced.append(1)
            yield b" " * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    client = client_for(handler, max_response_bytes=4096)
    with client, pytest.raises(errors.ResponseTooLargeError):
        client.fetch_balances(CREDENTIALS)
    assert len(produced) < 10


def test_the_ticker_keeps_prices_as_decimals() -> None:
    data = {"BTC_USDT": {"last": "96903.7", "isFrozen": 0}}
    with client_for(lambda r: envelope(data)) as client:
        ticker = client.fetch_ticker()
    assert ticker["BTC_USDT"]["last"] == "96903.7"


def test_no_error_message_reveals_the_secret_or_the_signature() -> None:
    credentials = Credentials("K", Secret("a-long-secret-value"))
    signature = signed_query("returnBalances", credentials)["sign"]
    messages = []
    for response in (httpx.Response(502, text="bad"), httpx.Response(200, json={"code": 6000})):
        client = client_for(lambda r, resp=response: resp)
        with client, pytest.raises(errors.PollError) as caught:
            client.fetch_balances(credentials)
        messages.append(str(caught.value))
    assert messages
    for message in messages:
        assert "a-long-secret-value" not in message
        assert signature not in message
