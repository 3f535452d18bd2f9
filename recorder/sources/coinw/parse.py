"""CoinW response bodies -> snapshots. Pure functions: bytes in, a Snapshot or a PollError out.

Everything the exchange sends is checked before anything is stored: the envelope, every
currency name and every amount. One bad amount rejects the whole poll, because a snapshot
missing one currency would record a false "gone" change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from recorder import amounts, text
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
AUTH_CODES = frozenset({"1003", "6000"})

# A plain decimal as CoinW writes it, optionally with an exponent; no sign, no spaces,
# no underscores (Decimal() would accept "1_000" and " 1 ", which CoinW never sends).
_AMOUNT_TEXT = re.compile(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?")
_CURRENCY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


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
        text = body.decode("utf-8")
        return json.loads(
            text,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except UnicodeDecodeError:
        raise NotJSONError("CoinW sent a response that is not UTF-8 text.") from None
    except RecursionError:
        raise NotJSONError("CoinW sent JSON nested too deeply to read.") from None
    except ValueError as exc:
        snippet = _snippet(body)
        raise NotJSONError(
            f"CoinW sent a response that is not valid JSON ({exc}): {snippet}"
        ) from None


def _snippet(body: bytes, limit: int = 80) -> str:
    return f"'{text.one_line(body.decode('utf-8', 'replace'), limit)}'"


def _code_text(code: Any) -> str | None:
    if isinstance(code, bool) or code is None:
        return None
    if isinstance(code, Decimal):
        return str(code) if code == code.to_integral_value() else None
    if isinstance(code, str):
        return code.strip()
    return None


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
            "CoinW sent a response whose 'code' is neither text nor a number."
        )
    message = document.get("msg") or document.get("message") or ""
    message = message if isinstance(message, str) else json.dumps(message, default=str)
    message = text.safe(message, 200)
    if code != "200":
        code = text.safe(code, 40)  # the exchange's text too: bounded, escaped
        described = f"CoinW answered with error code {code}" + (f" ({message})" if message else "")
        if code in RATE_LIMIT_CODES:
            raise RateLimitError(described + ": too many requests; the recorder will slow down.")
        if code in AUTH_CODES:
            raise AuthenticationError(
                described + ": check this account's api key and secret key in the configuration.",
                code,
            )
        raise APIError(described + ".", code)
    if document.get("success") is False or document.get("failed") is True:
        raise ResponseFormatError(
            "CoinW answered with code 200 but marked the request as failed"
            + (f" ({message})" if message else "")
            + "."
        )
    return document.get("data")


def _json_type(python_name: str) -> str:
    return {"list": "an array", "str": "a string", "Decimal": "a number", "bool": "a boolean"}.get(
        python_name, python_name
    )


def parse_amount(currency: str, raw: Any) -> Decimal:
    """One amount as an exact, canonical Decimal; InvalidAmountError for anything else."""
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
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid text
            raise InvalidAmountError(f"CoinW sent an unreadable amount for {currency}.") from None
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
    shown = str(raw)
    return shown[:40] + ("..." if len(shown) > 40 else "")


def _check_currency(name: str) -> str:
    if not _CURRENCY.fullmatch(name):
        raise ResponseFormatError(
            f"CoinW sent a currency name we do not accept ({_describe(name)}): "
            "expected 1-32 letters, digits, '.', '_' or '-'."
        )
    return name


def _holdings(data: Any) -> Mapping[str, Any]:
    # "If a user holds no assets, an empty response will be returned": the exact form is not
    # documented, so every empty value means "holds nothing".
    if data is None or data in ([], {}, ""):
        return {}
    if not isinstance(data, dict):
        raise ResponseFormatError(
            f"CoinW sent balances as {_json_type(type(data).__name__)} instead of an object "
            "of currency -> amount."
        )
    return data


def parse_balances(body: bytes, taken_at: datetime) -> Snapshot:
    """A returnBalances body -> Snapshot; an empty body means the account holds nothing."""
    if not body.strip():
        return Snapshot(taken_at=taken_at, balances={})
    data = check_envelope(decode_json(body))
    balances: dict[str, Decimal] = {}
    for currency, raw in _holdings(data).items():
        amount = parse_amount(_check_currency(currency), raw)
        if not amount.is_zero():
            balances[currency] = amount
    return Snapshot(taken_at=taken_at, balances=balances)


def parse_complete_balances(body: bytes, taken_at: datetime) -> Snapshot:
    """A returnCompleteBalances body -> Snapshot whose amount is available + onOrders."""
    if not body.strip():
        return Snapshot(taken_at=taken_at, balances={})
    data = check_envelope(decode_json(body))
    balances: dict[str, Decimal] = {}
    parts: dict[str, tuple[Decimal, Decimal]] = {}
    for currency, raw in _holdings(data).items():
        _check_currency(currency)
        if not isinstance(raw, dict):
            raise ResponseFormatError(
                f"CoinW sent the balance of {currency} as {_json_type(type(raw).__name__)} "
                "instead of an object with 'available' and 'onOrders'."
            )
        available = parse_amount(currency, raw.get("available", "0"))
        on_orders = parse_amount(currency, raw.get("onOrders", "0"))
        total = amounts.add(available, on_orders)
        if not amounts.fits_storage(total):
            raise InvalidAmountError(f"CoinW sent a total for {currency} too large to store.")
        if not total.is_zero():
            balances[currency] = total
            parts[currency] = (available, on_orders)
    return Snapshot(taken_at=taken_at, balances=balances, parts=parts)
