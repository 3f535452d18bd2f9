"""Small strict readers of setting values: each refuses anything ambiguous with one
sentence naming where the value came from (`where`) and what it should be."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from recorder.errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def type_name(value: Any) -> str:
    """How a TOML value's type is named in messages."""
    return {
        bool: "true/false",
        str: "a string",
        int: "a whole number",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def number(where: str, value: Any, *, minimum: float, maximum: float) -> float:
    """A number (a duration, a rate) within bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, not {type_name(value)}.")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{where} must be between {minimum:g} and {maximum:g} (got {value}).")
    return float(value)  # float-ok: a duration, not an amount


def integer(where: str, value: Any, *, minimum: int, maximum: int) -> int:
    """A whole number within bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number, not {type_name(value)}.")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{where} must be between {minimum} and {maximum} (got {value}).")
    return value


def boolean(where: str, value: Any) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, not {type_name(value)}.")
    return value


def text(where: str, value: Any) -> str:
    """A non-empty string, without surrounding blanks."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {type_name(value)}.")
    if not value.strip():
        raise ConfigError(f"{where} must not be empty.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of an environment variable
        raise ConfigError(f"{where} holds bytes that are not UTF-8; write it in UTF-8.") from None
    return value.strip()


def optional_text(where: str, value: Any) -> str:
    """A string that may be empty ("" turns the feature off)."""
    return value if value == "" else text(where, value)


def choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of `choices` (log levels in any case)."""
    given = text(where, value)
    normalized = given.upper() if choices == LOG_LEVELS else given
    if normalized not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)} (got {given!r}).")
    return normalized


def url(where: str, value: Any) -> str:
    """An http(s) URL without a query or a password, shown back in messages."""
    given = text(where, value)
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", given):
        raise ConfigError(f"{where} must be an http:// or https:// URL.")
    if "@" in given.split("/")[2]:
        # It would travel in every error message and log line that names the host.
        raise ConfigError(
            f"{where} must not hold a user name or password (the part before '@'); "
            "CoinW needs none, so remove it."
        )
    return given.rstrip("/")


def webhook_url(where: str, value: Any) -> str:
    """A webhook URL: query strings allowed (tokens live there), and never echoed back."""
    given = text(where, value)
    if not re.fullmatch(r"https?://[^\s/?#]+([/?][^\s#]*)?", given):
        raise ConfigError(f"{where} must be an http:// or https:// URL.")
    return given


def decimal(where: str, value: Any) -> Decimal:
    """A threshold as exact as written: TOML strings ("0.001") or numbers."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f'{where} must be a number like "0.001", not {type_name(value)}.')
    try:
        found = Decimal(str(value))
    except ArithmeticError:
        raise ConfigError(f'{where} must be a number like "0.001" (got {value!r}).') from None
    if not found.is_finite() or found < 0:
        raise ConfigError(f"{where} must be a number of at least 0 (got {value!r}).")
    return found


def names(where: str, value: Any) -> tuple[str, ...]:
    """A list of names."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of names.")
    return tuple(value)


def check_keys(where: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """Refuse a key that is not one of `known` (a typo would otherwise be ignored)."""
    for key in table:
        if key not in known:
            raise ConfigError(
                f"Unknown key {key!r} in {where}; the known keys are: {', '.join(known)}."
            )


# -- environment values are text: each kind of setting reads it strictly ----------------


def env_number(value: str) -> Any:
    """ "30", "2.5", "-1" -> numbers (a negative one is refused by the reader's bounds,
    in the same words as in the file); anything else ("inf", "1e3", "soon") is left for
    the reader to refuse."""
    if re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    if re.fullmatch(r"-?[0-9]*\.[0-9]+", value):
        return float(value)  # float-ok: a duration, not an amount
    return value


def env_boolean(value: str) -> Any:
    """true/false, 1/0, yes/no, on/off -> bool; anything else is left to be refused."""
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    return value


def env_text(value: str) -> Any:
    """Text as given."""
    return value
