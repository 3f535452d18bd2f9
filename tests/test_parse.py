"""Response bodies -> snapshots: envelopes, empty holdings, and every kind of bad amount."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder import errors, secret
from recorder.sources.coinw.parse import MAX_CURRENCIES, parse_balances, parse_complete_balances
from recorder.values import Snapshot

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
DOC = {"code": "200", "msg": "SUCCESS", "success": True, "failed": False}


def parse(document: Any) -> Snapshot:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_balances(body, NOW)


def test_the_documented_example_parses_exactly() -> None:
    data = {
        "BTC": "0.0012",
        "CWT": "400.000",
        "SAND": "108.467",
        "ETH": "0.0330",
        "USDT": "257.518301140000000",
    }
    snapshot = parse({**DOC, "data": data})
    assert snapshot.balances == {currency: Decimal(text) for currency, text in data.items()}
    assert snapshot.taken_at == NOW


def test_the_same_amount_written_differently_is_equal() -> None:
    a = parse({**DOC, "data": {"CWT": "400.000"}}).balances["CWT"]
    b = parse({**DOC, "data": {"CWT": "400"}}).balances["CWT"]
    assert a == b and str(a) == str(b) == "400"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        json.dumps({**DOC, "data": {}}).encode(),
        json.dumps({**DOC, "data": None}).encode(),
        json.dumps({**DOC, "data": []}).encode(),
        json.dumps(DOC).encode(),
        json.dumps({**DOC, "data": {"BTC": "0", "ETH": "0.000"}}).encode(),
    ],
)
def test_every_form_of_empty_holdings_is_an_empty_snapshot(body: bytes) -> None:
    assert parse_balances(body, NOW).balances == {}


def test_the_code_may_be_text_or_a_number() -> None:
    assert parse({**DOC, "code": 200, "data": {"BTC": "1"}}).balances == {"BTC": Decimal(1)}


def test_the_error_message_is_read_from_msg_or_message() -> None:
    with pytest.raises(errors.APIError, match="boom"):
        parse({"code": "-103", "message": "boom"})
    with pytest.raises(errors.APIError, match="bang"):
        parse({"code": -103, "msg": "bang"})


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ('"-1"', "negative"),
        ("-0.5", "negative"),
        ('"NaN"', "not a plain"),
        ("NaN", "not valid JSON"),
        ('"Infinity"', "not a plain"),
        ("Infinity", "not valid JSON"),
        ("1e400", "cannot be stored"),
        ('"1e400"', "cannot be stored"),
        ('""', "empty string"),
        ("true", "boolean"),
        ("null", "null"),
        ('{"available": "1"}', "object"),
        ('["1"]', "array"),
        ('"1_000"', "not a plain"),
        ('" 1"', "not a plain"),
        ('"0x10"', "not a plain"),
        ('"0.0000000000000000000000000000001"', "cannot be stored"),
    ],
)
def test_a_bad_amount_rejects_the_whole_poll(raw: str, why: str) -> None:
    body = ('{"code": "200", "data": {"BTC": "1", "ETH": ' + raw + "}}").encode()
    with pytest.raises(errors.PollError) as caught:
        parse_balances(body, NOW)
    assert why in str(caught.value)
    if why != "not valid JSON":
        assert caught.value.kind == "invalid_amount"


def test_numbers_are_read_without_float() -> None:
    body = b'{"code": 200, "data": {"A": 0.1, "B": 123456789012345678901234.123456789}}'
    snapshot = parse_balances(body, NOW)
    assert snapshot.balances == {
        "A": Decimal("0.1"),
        "B": Decimal("123456789012345678901234.123456789"),
    }


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<html>502</html>", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1,2]", "bad_envelope"),
        (b'"text"', "bad_envelope"),
        (b"null", "bad_envelope"),
        (b'{"data": {}}', "bad_envelope"),
        (b'{"code": true}', "bad_envelope"),
        (b'{"code": "200", "data": "BTC"}', "bad_envelope"),
        (b'{"code": "200", "data": ["BTC"]}', "bad_envelope"),
        (b'{"code": "200", "data": {"": "1"}}', "bad_envelope"),
        (b'{"code": "200", "data": {"BTC": "1", "BTC": "2"}}', "not_json"),
        (b'{"code": "200", "success": false, "data": {}}', "bad_envelope"),
        (b'{"code": "29001", "msg": "API access frequently"}', "rate_limit"),
        (b'{"code": "1003"}', "auth"),
        (b'{"code": 6000}', "auth"),
        (b'{"code": "-200"}', "api_error"),
        (b"[" * 100000, "not_json"),
    ],
)
def test_malformed_envelopes_are_typed_errors(body: bytes, kind: str) -> None:
    with pytest.raises(errors.PollError) as caught:
        parse_balances(body, NOW)
    assert caught.value.kind == kind
    assert "\n" not in str(caught.value)


def test_complete_balances_sum_available_and_on_orders() -> None:
    body = json.dumps(
        {
            **DOC,
            "data": {
                "BTC": {"available": "0.0010", "onOrders": "0.0002"},
                "ETH": {"available": "0", "onOrders": "0"},
            },
        }
    ).encode()
    snapshot = parse_complete_balances(body, NOW)
    assert snapshot.balances == {"BTC": Decimal("0.0012")}
    assert snapshot.parts == {"BTC": (Decimal("0.001"), Decimal("0.0002"))}


def test_complete_balances_reject_a_bad_part() -> None:
    body = json.dumps({**DOC, "data": {"BTC": {"available": "1", "onOrders": "-1"}}}).encode()
    with pytest.raises(errors.InvalidAmountError):
        parse_complete_balances(body, NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
envelopes = st.fixed_dictionaries(
    {"code": st.sampled_from(["200", 200, "29001", 1003, "-200", None, True, "x"])},
    optional={
        "data": json_values
        | st.dictionaries(
            st.sampled_from(["BTC", "ETH", "USDT", "", "b c"]),
            st.one_of(st.decimals(allow_nan=True).map(str), json_values),
            max_size=5,
        ),
        "success": st.booleans(),
        "msg": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(document=json_values | envelopes)
def test_any_json_gives_a_snapshot_or_a_typed_error(document: Any) -> None:
    body = json.dumps(document, default=str).encode()
    for parser in (parse_balances, parse_complete_balances):
        try:
            snapshot = parser(body, NOW)
        except errors.PollError:
            continue
        for amount in snapshot.balances.values():
            assert isinstance(amount, Decimal) and amount.is_finite() and amount > 0


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_give_a_snapshot_or_a_typed_error(body: bytes) -> None:
    with contextlib.suppress(errors.PollError):
        parse_balances(body, NOW)


numbers = st.builds(
    lambda mantissa, exponent: f"{mantissa}e{exponent}",
    st.integers(min_value=-(10**40), max_value=10**40),
    st.integers(min_value=-(10**20), max_value=10**20),
) | st.integers().map(str)
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=300)
hostile_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda code, amount: (
            f'{{"code": {code}, "data": {{"BTC": {amount}, "btc": "{amount}"}}}}'.encode()
        ),
        numbers | st.just('"200"'),
        numbers,
    ),
    st.builds(
        lambda code, message: json.dumps({"code": code, "msg": message}).encode(),
        st.one_of(any_text, st.integers(), st.just("200")),
        any_text,
    ),
)


@settings(max_examples=300, deadline=None)
@given(body=hostile_bodies)
def test_any_bytes_numbers_or_error_envelope_give_a_snapshot_or_a_typed_error(body: bytes) -> None:
    for parser in (parse_balances, parse_complete_balances):
        with contextlib.suppress(errors.PollError):
            snapshot = parser(body, NOW)
            assert all(a.is_finite() and a > 0 for a in snapshot.balances.values())


def test_data_as_an_empty_string_or_null_is_ambiguous_and_an_empty_object_is_not() -> None:
    assert parse({**DOC, "data": ""}).ambiguous
    assert parse({**DOC, "data": None}).ambiguous
    assert not parse({**DOC, "data": {}}).ambiguous
    assert not parse({**DOC, "data": []}).ambiguous


@pytest.mark.parametrize("code", [" 200 ", "200\n", "\t200"])
def test_a_code_with_blanks_around_it_is_no_success(code: str) -> None:
    with pytest.raises(errors.APIError):
        parse({**DOC, "code": code, "data": {"BTC": "1"}})


def test_a_reply_naming_more_currencies_than_the_cap_is_refused() -> None:
    many = {f"C{n}": "1" for n in range(MAX_CURRENCIES + 1)}
    with pytest.raises(errors.ResponseFormatError, match="currencies, more than"):
        parse({**DOC, "data": many})
    many.pop("C0")
    assert len(parse({**DOC, "data": many}).balances) == MAX_CURRENCIES


def test_a_currency_name_that_repeats_a_registered_secret_is_refused() -> None:
    signature = "9F86D081884C7D659A2FEAA0C55AD015"
    secret.register(signature)
    for name in (signature, signature.lower(), signature[:16], signature[16:].lower()):
        with pytest.raises(errors.ResponseFormatError, match="repeats a secret"):
            parse({**DOC, "data": {name: "1"}})
    assert parse({**DOC, "data": {"9F86D08": "1"}}).balances  # 7 characters: a name
