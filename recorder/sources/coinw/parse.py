"""CoinW response bodies -> snapshots. Pure functions: bytes in, a Snapshot or a PollError out.

Everything the exchange sends is checked before anything is stored: the envelope, every
currency name and every amount. One bad amount rejects the whole poll, because a snapshot
missing one currency would record a false "gone" change. Only a success envelope says
success: `code` 200 (as text or as a number equal to 200), and `success` / `failed`, where
present, the JSON booleans true / false. A reply that carries no envelope at all (an empty
body, HTTP 204) or an envelope without `data` (or with `data` null or "") is *ambiguous*: the
snapshot is marked so, and the write path believes "holds nothing" only when the next poll
confirms it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from recorder import amounts, secret, text
from recorder.errors import (
    APIError,
    AuthenticationError,
    InvalidAmountError,
    NotJSONError,
    RateLimitError,
    ResponseFormatError,
)
from recorder.values import Snapshot

RATE_LIMIT_CODES = frozenset({"29001", "429"})
#: Most currencies one reply may name (CoinW lists a few hundred): a reply naming more is
#: refused rather than stored, so no reply can hold the write path for long.
MAX_CURRENCIES = 5000
AUTH_CODES = frozenset({"1003", "6000"})

# A plain decimal as CoinW writes it, optionally with an exponent; no sign, no spaces,
# no underscores (Decimal() would accept "1_000" and " 1 ", which CoinW never sends).
_AMOUNT_TEXT = re.compile(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?")
_CURRENCY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


class OutOfRange(str):
    """A JSON number too large (or too precise) for Decimal itself: 1e9999999999999999999.
    Kept as its text, so the amount or code holding it is refused with a typed error."""


def _number(text: str) -> Decimal | OutOfRange:
    try:
        return Decimal(text)
    except ArithmeticError:
        return OutOfRange(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {_describe(key)} appears twice")
        result[key] = value
    return result


def decode_json(body: bytes) -> Any:
    """The body as JSON, numbers kept as Decimal; NotJSONError when it is not JSON."""
    try:
        return json.loads(
            body.decode("utf-8"),
            parse_float=_number,
            parse_int=_number,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except UnicodeDecodeError:
        raise NotJSONError("CoinW sent a response that is not UTF-8 text.") from None
    except RecursionError:
        raise NotJSONError("CoinW sent JSON nested too deeply to read.") from None
    except ValueError as exc:
        raise NotJSONError(
            f"CoinW sent a response that is not valid JSON ({text.one_line(exc, 120)}): "
            f"{_snippet(body)}"
        ) from None


def _snippet(body: bytes, limit: int = 80) -> str:
    return f"'{text.one_line(body.decode('utf-8', 'replace'), limit)}'"


def _code_text(code: Any) -> str | None:
    """The envelope's code as text ("200"), whether sent as text or as a number
    (200, 200.0 and 2E2 are all 200); None when it is neither."""
    if isinstance(code, bool) or code is None or isinstance(code, OutOfRange):
        return None
    if isinstance(code, Decimal):
        if not code.is_finite() or code.adjusted() > 18 or code != code.to_integral_value():
            return None
        return str(int(code))
    if isinstance(code, str):
        return code  # exactly: " 200 " is no success
    return None


def _flag(document: dict[str, Any], name: str) -> bool | None:
    """`success` / `failed`: a JSON boolean or absent; anything else is a malformed
    envelope, never a success ("false" as a string is not false)."""
    if name not in document:
        return None
    value = document[name]
    if not isinstance(value, bool):
        raise ResponseFormatError(
            f"CoinW sent '{name}' as {_describe(value)} instead of true or false; the reply "
            "is not taken as a success."
        )
    return value


def check_envelope(document: Any) -> Any:
    """The `data` of a successful envelope; a typed error for every other answer."""
    if not isinstance(document, dict):
        kind = type(document).__name__ if document is not None else "null"
        raise ResponseFormatError(
            f"CoinW sent JSON that is not a response object (got {_json_type(kind)})."
        )
    if "code" not in document:
        raise ResponseFormatError("CoinW sent a response object without a 'code' field.")
    code = _code_text(document["code"])
    if code is None:
        raise ResponseFormatError(
            "CoinW sent a response whose 'code' is neither text nor a whole number."
        )
    message = document.get("msg") or document.get("message") or ""
    message = message if isinstance(message, str) else json.dumps(message, default=str)
    message = text.safe(message, 200)
    if code != "200":
        shown = text.safe(code, 40)  # the exchange's text too: bounded, escaped
        described = f"CoinW answered with error code {shown}" + (f" ({message})" if message else "")
        if code in RATE_LIMIT_CODES:
            raise RateLimitError(described + ": too many requests; the recorder will slow down.")
        if code in AUTH_CODES:
            raise AuthenticationError(
                described + ": check this account's api key and secret key in the configuration.",
                code,
            )
        raise APIError(described + ".", code)
    success, failed = _flag(document, "success"), _flag(document, "failed")
    if success is False or failed is True:
        raise ResponseFormatError(
            "CoinW answered with code 200 but marked the request as failed"
            + (f" ({message})" if message else "")
            + "."
        )
    return document.get("data", MISSING)


#: `check_envelope`'s answer for a success envelope without a `data` key.
MISSING: Any = object()


def _json_type(python_name: str) -> str:
    return {"list": "an array", "str": "a string", "Decimal": "a number", "bool": "a boolean"}.get(
        python_name, python_name
    )


def parse_amount(currency: str, raw: Any) -> Decimal:
    """One amount as an exact, canonical Decimal; InvalidAmountError for anything else."""
    if isinstance(raw, OutOfRange):
        raise InvalidAmountError(
            f"CoinW sent an amount for {currency} too large to read ({_describe(raw)})."
        )
    if isinstance(raw, bool) or not isinstance(raw, str | Decimal):
        raise InvalidAmountError(
            f"CoinW sent an amount for {currency} that is not a number ({_describe(raw)})."
        )
    if isinstance(raw, str):
        if not _AMOUNT_TEXT.fullmatch(raw):
            raise InvalidAmountError(
                f"CoinW sent an amount for {currency} that is not a plain non-negative "
                f"decimal ({_describe(raw)})."
            )
        try:
            value = Decimal(raw)
        except InvalidOperation:  # an exponent beyond what Decimal holds: 1e99999999999999999
            raise InvalidAmountError(
                f"CoinW sent an amount for {currency} too large to read ({_describe(raw)})."
            ) from None
    else:
        value = raw
    if not value.is_finite() or (value.is_signed() and not value.is_zero()):
        raise InvalidAmountError(
            f"CoinW sent an amount for {currency} that is negative or not finite "
            f"({_describe(raw)})."
        )
    if not amounts.fits_storage(value):
        raise InvalidAmountError(
            f"CoinW sent an amount for {currency} with more than "
            f"{amounts.MAX_INTEGER_DIGITS} integer or {amounts.MAX_FRACTION_DIGITS} decimal "
            f"digits ({_describe(raw)}), which cannot be stored exactly."
        )
    return amounts.canonical(value)


def _describe(raw: Any) -> str:
    if isinstance(raw, str):
        return f"'{text.safe(raw, 40)}'" if raw else "an empty string"
    if isinstance(raw, bool):
        return "a boolean"
    if raw is None:
        return "null"
    if isinstance(raw, dict):
        return "an object"
    if isinstance(raw, list):
        return "an array"
    return text.safe(raw, 40)


def check_currency(name: str) -> str:
    """A currency name as CoinW writes it: 1-32 letters, digits, '.', '_' or '-'."""
    if not _CURRENCY.fullmatch(name):
        raise ResponseFormatError(
            f"CoinW sent a currency name we do not accept ({_describe(name)}): "
            "expected 1-32 letters, digits, '.', '_' or '-'."
        )
    # An echoed signature (or a piece of it) must not become history.
    if secret.holds_registered(name) or secret.inside_registered(name):
        raise ResponseFormatError(
            "CoinW sent a currency name that repeats a secret of this configuration (the "
            "request's signature or a key); the reply is not stored."
        )
    return name


def _holdings(data: Any) -> Mapping[str, Any]:
    # "If a user holds no assets, an empty response will be returned": in a success
    # envelope, an empty object or list means "holds nothing" (null or an empty string say
    # nothing; they are ambiguous, like a missing `data`).
    if isinstance(data, list | dict) and not data:
        return {}
    if not isinstance(data, dict):
        raise ResponseFormatError(
            f"CoinW sent balances as {_json_type(type(data).__name__)} instead of an object "
            "of currency -> amount."
        )
    if len(data) > MAX_CURRENCIES:
        raise ResponseFormatError(
            f"CoinW sent {len(data):,} currencies, more than the {MAX_CURRENCIES:,} the recorder "
            "accepts in one reply; the poll is not stored."
        )
    return data


def _ambiguous(taken_at: datetime) -> Snapshot:
    """A reply that does not say what the account holds: "nothing", until confirmed."""
    return Snapshot(taken_at=taken_at, balances={}, ambiguous=True)


def parse_balances(body: bytes, taken_at: datetime) -> Snapshot:
    """A returnBalances body -> Snapshot; an empty body or an envelope without `data` is
    an ambiguous empty snapshot."""
    if not body.strip():
        return _ambiguous(taken_at)
    data = check_envelope(decode_json(body))
    if data is MISSING or data is None or data == "":
        return _ambiguous(taken_at)
    balances: dict[str, Decimal] = {}
    for currency, raw in _holdings(data).items():
        amount = parse_amount(check_currency(currency), raw)
        if not amount.is_zero():
            balances[currency] = amount
    return Snapshot(taken_at=taken_at, balances=balances)


def parse_complete_balances(body: bytes, taken_at: datetime) -> Snapshot:
    """A returnCompleteBalances body -> Snapshot whose amount is available + onOrders."""
    if not body.strip():
        return _ambiguous(taken_at)
    data = check_envelope(decode_json(body))
    if data is MISSING or data is None or data == "":
        return _ambiguous(taken_at)
    balances: dict[str, Decimal] = {}
    parts: dict[str, tuple[Decimal, Decimal]] = {}
    for currency, raw in _holdings(data).items():
        check_currency(currency)
        if not isinstance(raw, dict):
            raise ResponseFormatError(
                f"CoinW sent the balance of {currency} as {_json_type(type(raw).__name__)} "
                "instead of an object with 'available' and 'onOrders'."
            )
        if "available" not in raw or "onOrders" not in raw:
            raise InvalidAmountError(
                f"CoinW sent the balance of {currency} without 'available' or 'onOrders'; "
                "a missing part is not taken as zero."
            )
        available = parse_amount(currency, raw["available"])
        on_orders = parse_amount(currency, raw["onOrders"])
        total = amounts.add(available, on_orders)
        if not amounts.fits_storage(total):
            raise InvalidAmountError(f"CoinW sent a total for {currency} too large to store.")
        if not total.is_zero():
            balances[currency] = total
            parts[currency] = (available, on_orders)
    return Snapshot(taken_at=taken_at, balances=balances, parts=parts)
