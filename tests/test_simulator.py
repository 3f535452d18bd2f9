"""The simulated exchange checks signatures and limits like CoinW does."""

from __future__ import annotations

import httpx
import pytest

from recorder import errors
from recorder.secret import Secret
from recorder.sources.coinw.client import CoinWClient, signed_query
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.values import Credentials
from tests.conftest import API_KEY, SECRET

GOOD = Credentials(API_KEY, Secret(SECRET))


def test_a_correctly_signed_request_gets_the_balances(simulator: Simulator) -> None:
    with CoinWClient(simulator.url) as client:
        assert set(client.fetch_balances(GOOD).balances) == {"BTC", "USDT"}


def test_a_wrong_secret_fails_the_signature_check(simulator: Simulator) -> None:
    with CoinWClient(simulator.url) as client, pytest.raises(errors.AuthenticationError) as caught:
        client.fetch_balances(Credentials(API_KEY, Secret("wrong-secret")))
    assert caught.value.code == "6000"


def test_an_unknown_key_is_refused(simulator: Simulator) -> None:
    with CoinWClient(simulator.url) as client, pytest.raises(errors.AuthenticationError) as caught:
        client.fetch_balances(Credentials("nobody", Secret(SECRET)))
    assert caught.value.code == "1003"


def test_more_than_three_requests_a_second_are_rate_limited(simulator: Simulator) -> None:
    query = signed_query("returnBalances", GOOD)
    codes = []
    with httpx.Client(base_url=simulator.url) as http:
        for _ in range(5):
            codes.append(http.post("/api/v1/private", params=query).json()["code"])
    assert codes[:3] == ["200", "200", "200"]
    assert "29001" in codes[3:]


def test_the_client_never_trips_the_rate_limit(simulator: Simulator) -> None:
    with CoinWClient(simulator.url) as client:
        for _ in range(7):
            client.fetch_balances(GOOD)
    answers = [r.answered for r in simulator.requests("returnBalances")]
    assert answers == ["ok"] * 7


def test_faults_are_played_in_order_then_normal_answers_resume(simulator: Simulator) -> None:
    simulator.add_fault(Fault.http(502), API_KEY)
    simulator.add_fault(Fault.raw("not json"), API_KEY)
    with CoinWClient(simulator.url) as client:
        with pytest.raises(errors.HTTPStatusError):
            client.fetch_balances(GOOD)
        with pytest.raises(errors.NotJSONError):
            client.fetch_balances(GOOD)
        assert client.fetch_balances(GOOD).balances


def test_the_ticker_is_served_publicly(simulator: Simulator) -> None:
    simulator.set_ticker({"BTC_USDT": "96903.7"})
    with CoinWClient(simulator.url) as client:
        assert client.fetch_ticker()["BTC_USDT"]["last"] == "96903.7"


def test_holdings_can_change_with_every_request(simulator: Simulator) -> None:
    simulator.set_holdings(API_KEY, lambda n: {"BTC": str(n)})
    with CoinWClient(simulator.url) as client:
        amounts = [str(client.fetch_balances(GOOD).balances["BTC"]) for _ in range(3)]
    assert amounts == ["1", "2", "3"]
